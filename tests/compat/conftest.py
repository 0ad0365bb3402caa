"""Fixtures: a real hushd process on SQLite, initialised and unsealed through hvac itself."""
import os
import socket
import subprocess
import time
from pathlib import Path

import hvac
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _bin(name):
    path = Path(os.environ.get("HUSH_BIN_DIR", ROOT / "target" / "debug")) / name
    if not path.exists():
        pytest.exit(f"{path} not found: run `cargo build --workspace --bins` first", 2)
    return str(path)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.port = _free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.log = open(self.tmp / "hushd.log", "w")
        self.proc = subprocess.Popen(
            [_bin("hushd"), "--storage", f"sqlite://{self.tmp}/hush.db", "--insecure-no-tls",
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                requests.get(self.addr + "/v1/sys/seal-status", timeout=1)
                break
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("hushd did not start: " + (self.tmp / "hushd.log").read_text())
                time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hushd"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def root_client(server):
    """Initialise (5 shares, threshold 3) and unseal with hvac, mount kv v2 at secret/."""
    client = hvac.Client(url=server.addr)
    assert client.sys.is_initialized() is False
    result = client.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(result["keys"]) == 5
    assert client.sys.is_sealed() is True
    client.sys.submit_unseal_keys(result["keys"][:3])
    assert client.sys.is_sealed() is False
    client.token = result["root_token"]
    assert client.is_authenticated()
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    server.unseal_keys = result["keys"]
    return client

"""Fixtures: a real hushd process on SQLite, initialised and unsealed through hvac itself."""
import json
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


# The suite-wide secret-leak check (tests/src/leaks.rs, `leak-grep`): with HUSH_TEST_LOG_DIR
# set, hushd logs at trace level into DIR/logs, and every secret that crosses the wire (tokens,
# unseal keys, secret IDs, passwords, KV values) is remembered in DIR/secrets.
LOG_DIR = os.environ.get("HUSH_TEST_LOG_DIR")
TRACE_FILTER = "hush_store=trace,hushd=trace,hush_api=trace,info"
SECRET_FIELDS = {"client_token", "secret_id", "password", "secret_key", "token", "encoded_token", "otp"}
TOP_LEVEL_SECRET_FIELDS = {"root_token", "keys", "keys_base64", "key"}


def _remember(value):
    if not LOG_DIR or not isinstance(value, str) or len(value.strip()) < 8:
        return
    secrets = Path(LOG_DIR) / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    with open(secrets / f"compat-{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps(value.strip()) + "\n")


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)


def _secret_fields(v, top=True):
    if isinstance(v, dict):
        for k, x in v.items():
            if (top and k in TOP_LEVEL_SECRET_FIELDS) or (k in SECRET_FIELDS and not isinstance(x, dict)):
                yield from _strings(x)
            else:
                yield from _secret_fields(x, False)
    elif isinstance(v, list):
        for x in v:
            yield from _secret_fields(x, False)


def _remember_exchange(request, response):
    token = request.headers.get("X-Vault-Token")
    if token:
        _remember(token)
    try:
        body = json.loads(request.body) if request.body else None
    except (ValueError, TypeError):
        body = None
    if body is not None:
        if "/data/" in request.url and isinstance(body, dict):
            for s in _strings(body.get("data")):
                _remember(s)
        for s in _secret_fields(body):
            _remember(s)
    try:
        answer = response.json()
    except ValueError:
        return
    for s in _secret_fields(answer):
        _remember(s)


if LOG_DIR:
    _send = requests.adapters.HTTPAdapter.send

    def _send_remembering(self, request, *args, **kwargs):
        response = _send(self, request, *args, **kwargs)
        _remember_exchange(request, response)
        return response

    requests.adapters.HTTPAdapter.send = _send_remembering


class Server:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.port = _free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "hushd.log"
        env = dict(os.environ)
        if LOG_DIR:
            logs = Path(LOG_DIR) / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            self.log_path = logs / f"compat-{os.getpid()}-{self.port}-hushd.log"
            env.setdefault("RUST_LOG", TRACE_FILTER)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [_bin("hushd"), "--storage", f"sqlite://{self.tmp}/hush.db", "--insecure-no-tls",
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while True:
            try:
                requests.get(self.addr + "/v1/sys/seal-status", timeout=1)
                break
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("hushd did not start: " + self.log_path.read_text())
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

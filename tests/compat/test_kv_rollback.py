"""`hush kv rollback` (Vault's `vault kv rollback`) against a real hushd, read back with hvac."""
import json
import os
import subprocess

from conftest import _bin


def hush(server, token, *args):
    env = dict(os.environ, VAULT_ADDR=server.addr, VAULT_TOKEN=token)
    return subprocess.run([_bin("hush"), *args], env=env, capture_output=True, text=True)


def test_rollback_makes_an_old_version_current_and_hvac_reads_it(server, root_client):
    kv = root_client.secrets.kv.v2
    for value in ("one", "two", "three"):
        kv.create_or_update_secret(path="rb/app", secret={"password": value}, mount_point="secret")

    out = hush(server, root_client.token, "kv", "rollback", "-version=1", "secret/rb/app")
    assert out.returncode == 0, out.stderr
    assert "version" in out.stdout

    read = kv.read_secret_version(path="rb/app", mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": "one"}
    assert read["data"]["metadata"]["version"] == 4
    # The history keeps every version; the rolled-back one is a new version.
    meta = kv.read_secret_metadata(path="rb/app", mount_point="secret")
    assert meta["data"]["current_version"] == 4
    assert kv.read_secret_version(path="rb/app", version=3, mount_point="secret",
                                  raise_on_deleted_version=True)["data"]["data"] == {"password": "three"}

    # JSON output carries the new version's metadata.
    out = hush(server, root_client.token, "kv", "rollback", "-version=2", "-format=json", "secret/rb/app")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"]["version"] == 5


def test_rollback_refuses_what_cannot_be_restored(server, root_client):
    kv = root_client.secrets.kv.v2
    for value in ("a", "b", "c"):
        kv.create_or_update_secret(path="rb/gone", secret={"v": value}, mount_point="secret")
    kv.delete_secret_versions(path="rb/gone", versions=[1], mount_point="secret")
    kv.destroy_secret_versions(path="rb/gone", versions=[2], mount_point="secret")

    out = hush(server, root_client.token, "kv", "rollback", "-version=1", "secret/rb/gone")
    assert out.returncode != 0 and "is deleted" in out.stderr and "undelete" in out.stderr, out.stderr
    out = hush(server, root_client.token, "kv", "rollback", "-version=2", "secret/rb/gone")
    assert out.returncode != 0 and "destroyed" in out.stderr, out.stderr
    out = hush(server, root_client.token, "kv", "rollback", "-version=9", "secret/rb/gone")
    assert out.returncode != 0 and "does not exist" in out.stderr, out.stderr
    out = hush(server, root_client.token, "kv", "rollback", "-version=1", "secret/rb/missing")
    assert out.returncode != 0 and "No value found" in out.stderr, out.stderr
    # Nothing was written by the refusals.
    meta = kv.read_secret_metadata(path="rb/gone", mount_point="secret")
    assert meta["data"]["current_version"] == 3

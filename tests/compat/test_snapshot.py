"""Snapshots (issue 16 item 3) through hvac: take_raft_snapshot / restore_raft_snapshot /
force_restore_raft_snapshot (hushd serves Vault's raft paths as aliases of sys/storage/snapshot)."""
import hvac
import pytest
from hvac import exceptions

from conftest import Server


def test_snapshot_restores_secrets_versions_and_policies(server, root_client, tmp_path):
    c = root_client
    c.secrets.kv.v2.create_or_update_secret(path="snap/app", secret={"pw": "one"})
    c.secrets.kv.v2.create_or_update_secret(path="snap/app", secret={"pw": "two"})
    c.sys.create_or_update_policy("snap-reader", 'path "secret/data/snap/*" { capabilities = ["read"] }')
    resp = c.sys.take_raft_snapshot()
    assert resp.status_code == 200
    snapshot = resp.content
    assert snapshot.startswith(b"HUSHSNP1")

    # Changed after the snapshot: the restore takes it back.
    c.secrets.kv.v2.create_or_update_secret(path="snap/app", secret={"pw": "three"})
    c.sys.delete_policy("snap-reader")
    assert c.sys.restore_raft_snapshot(snapshot).status_code == 204
    assert c.sys.is_sealed() is True
    c.sys.submit_unseal_keys(server.unseal_keys[:3])
    got = c.secrets.kv.v2.read_secret_version(path="snap/app", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"pw": "two"}
    assert got["data"]["metadata"]["version"] == 2
    old = c.secrets.kv.v2.read_secret_version(path="snap/app", version=1,
                                              raise_on_deleted_version=True)
    assert old["data"]["data"] == {"pw": "one"}
    assert "secret/data/snap/*" in c.sys.read_policy("snap-reader")["data"]["rules"]

    # A damaged snapshot is refused with Vault's error shape, and nothing changes.
    bad = bytearray(snapshot)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(exceptions.InvalidRequest, match="invalid snapshot"):
        c.sys.restore_raft_snapshot(bytes(bad))
    assert c.sys.is_sealed() is False

    # Into a fresh store with its own keys: only with force.
    other = Server(tmp_path)
    try:
        o = hvac.Client(url=other.addr)
        init = o.sys.initialize(secret_shares=1, secret_threshold=1)
        o.sys.submit_unseal_key(init["keys"][0])
        o.token = init["root_token"]
        with pytest.raises(exceptions.InvalidRequest, match="-force"):
            o.sys.restore_raft_snapshot(snapshot)
        assert o.sys.force_restore_raft_snapshot(snapshot).status_code == 204
        o.sys.submit_unseal_keys(server.unseal_keys[:3])
        o.token = c.token
        got = o.secrets.kv.v2.read_secret_version(path="snap/app", raise_on_deleted_version=True)
        assert got["data"]["data"] == {"pw": "two"}
    finally:
        other.stop()

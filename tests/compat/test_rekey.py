"""sys/rekey through hvac (start_rekey, rekey, rekey_multi, read_rekey_progress, cancel_rekey) on
a hushd of its own: the unseal keys change, so no other module's server is touched."""
import hvac
import pytest
from hvac import exceptions


def test_rekey_5_of_3_to_3_of_2(server, root_client):
    anon = hvac.Client(url=server.addr)  # unauthenticated, as in Vault
    sys = anon.sys
    old = server.unseal_keys
    root_client.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"})

    progress = sys.read_rekey_progress()
    assert progress["started"] is False and progress["required"] == 3
    assert progress["pgp_fingerprints"] is None and progress["verification_required"] is False

    with pytest.raises(exceptions.InvalidRequest, match="require_verification"):
        sys.start_rekey(secret_shares=3, secret_threshold=2, require_verification=True)
    with pytest.raises(exceptions.InvalidRequest, match="pgp_keys"):
        sys.start_rekey(secret_shares=1, secret_threshold=1, pgp_keys=["a"])
    started = sys.start_rekey(secret_shares=3, secret_threshold=2)
    nonce = started["nonce"]
    assert (started["started"], started["t"], started["n"], started["required"]) == (True, 2, 3, 3)
    with pytest.raises(exceptions.InvalidRequest, match="already in progress"):
        sys.start_rekey(secret_shares=3, secret_threshold=2)
    assert sys.read_rekey_progress()["nonce"] == nonce

    with pytest.raises(exceptions.InvalidRequest, match="nonce"):
        sys.rekey(key=old[0], nonce="not-the-nonce")
    assert sys.rekey(key=old[0], nonce=nonce)["progress"] == 1
    with pytest.raises(exceptions.InvalidRequest, match="already been provided"):
        sys.rekey(key=old[0], nonce=nonce)
    sys.cancel_rekey()
    assert sys.read_rekey_progress()["started"] is False
    with pytest.raises(exceptions.InvalidRequest, match="no rekey in progress"):
        sys.rekey(key=old[0], nonce=nonce)

    nonce = sys.start_rekey(secret_shares=3, secret_threshold=2)["nonce"]
    done = sys.rekey_multi(old[2:5], nonce=nonce)
    assert done["complete"] is True and done["nonce"] == nonce
    new = done["keys"]
    assert len(new) == 3 and len(done["keys_base64"]) == 3 and not set(new) & set(old)
    status = sys.read_seal_status()
    assert (status["t"], status["n"], status["sealed"]) == (2, 3, False)

    root_client.sys.seal()
    with pytest.raises(exceptions.VaultDown):
        sys.read_rekey_progress()
    with pytest.raises(exceptions.InvalidRequest):
        sys.submit_unseal_keys(old[:3])
    assert sys.is_sealed() is True
    sys.submit_unseal_keys(done["keys_base64"][1:])
    assert sys.is_sealed() is False
    assert root_client.secrets.kv.v2.read_secret_version(
        path="app", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}

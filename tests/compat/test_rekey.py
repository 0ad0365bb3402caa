"""sys/rekey through hvac (start_rekey, rekey, rekey_multi, read_rekey_progress, cancel_rekey,
rekey_verify, read_rekey_verify_progress, cancel_rekey_verify) on
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
    server.unseal_keys = new
    assert root_client.secrets.kv.v2.read_secret_version(
        path="app", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}


def test_rekey_with_verification(server, root_client):
    sys = hvac.Client(url=server.addr).sys
    current = server.unseal_keys  # 3 shares, threshold 2, from the test above
    started = sys.start_rekey(secret_shares=1, secret_threshold=1, require_verification=True)
    assert started["verification_required"] is True
    done = sys.rekey_multi(current[:2], nonce=started["nonce"])
    assert done["complete"] is True and done["verification_required"] is True
    new, vnonce = done["keys"], done["verification_nonce"]
    assert len(new) == 1
    assert sys.read_seal_status()["n"] == 3, "not in force before verification"
    progress = sys.read_rekey_verify_progress()
    assert (progress["nonce"], progress["progress"], progress["n"]) == (vnonce, 0, 1)
    with pytest.raises(exceptions.InvalidRequest, match="nonce"):
        sys.rekey_verify(new[0], nonce="not-the-nonce")
    vnonce = sys.cancel_rekey_verify()["nonce"]  # Vault answers the status
    assert vnonce != done["verification_nonce"]
    assert sys.rekey_verify(new[0], nonce=vnonce) == {"nonce": vnonce, "complete": True}
    assert (sys.read_seal_status()["t"], sys.read_seal_status()["n"]) == (1, 1)
    root_client.sys.seal()
    sys.submit_unseal_key(new[0])
    assert sys.is_sealed() is False

"""Response wrapping and the cubbyhole engine, with the real hvac client (issue 12, item 13).

Written from Vault's documented behaviour: `X-Vault-Wrap-TTL` on any request answers with
`wrap_info` only; `sys/wrapping/unwrap|lookup|rewrap|wrap`; single-use, TTL-bound wrapping
tokens; AppRole secret ids and tokens delivered wrapped (the trusted orchestrator pattern).
"""
import json
import time

import hvac
import pytest
import requests


def _wrapped_read(client, path, ttl="60s"):
    return client.adapter.get(f"/v1/{path}", wrap_ttl=ttl)


def _as(server, token):
    return hvac.Client(url=server.addr, token=token)


def test_a_wrapped_read_gives_wrap_info_only_and_unwraps_once(server, root_client):
    root_client.secrets.kv.v2.create_or_update_secret(path="wrapme", secret={"pw": "w-s3cret"})
    resp = _wrapped_read(root_client, "secret/data/wrapme")
    assert resp["data"] is None and resp["auth"] is None
    info = resp["wrap_info"]
    assert info["ttl"] == 60
    assert info["creation_path"] == "secret/data/wrapme"
    assert info["token"] and info["accessor"] and info["creation_time"]
    assert "wrapped_accessor" not in info
    assert "w-s3cret" not in json.dumps(resp)

    # The wrapping token as X-Vault-Token: hvac's own unwrap.
    wrapper = _as(server, info["token"])
    unwrapped = wrapper.sys.unwrap()
    assert unwrapped["data"]["data"] == {"pw": "w-s3cret"}
    assert unwrapped["data"]["metadata"]["version"] == 1

    # Single use: a second unwrap is refused as Vault refuses it.
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        wrapper.sys.unwrap()
    assert "wrapping token is not valid or does not exist" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.unwrap(token=info["token"])


def test_unwrap_with_the_token_in_the_body(root_client):
    info = _wrapped_read(root_client, "sys/mounts/secret/tune")["wrap_info"]
    out = root_client.sys.unwrap(token=info["token"])
    assert "max_lease_ttl" in out["data"]


def test_lookup_and_rewrap(server, root_client):
    info = root_client.sys.wrap(payload={"k": "v1"}, ttl=120)["wrap_info"]
    assert info["creation_path"] == "sys/wrapping/wrap"
    # Lookup needs no token of its own (unauthenticated in Vault) and does not use it up.
    anon = hvac.Client(url=server.addr)
    looked = anon.adapter.post("/v1/sys/wrapping/lookup", json={"token": info["token"]})["data"]
    assert looked["creation_path"] == "sys/wrapping/wrap"
    assert looked["creation_ttl"] == 120
    assert looked["creation_time"]

    new = root_client.adapter.post("/v1/sys/wrapping/rewrap", json={"token": info["token"]})["wrap_info"]
    assert new["token"] != info["token"]
    assert new["ttl"] == 120 and new["creation_path"] == "sys/wrapping/wrap"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anon.adapter.post("/v1/sys/wrapping/lookup", json={"token": info["token"]})
    assert root_client.sys.unwrap(token=new["token"])["data"] == {"k": "v1"}


def test_wrap_needs_a_wrap_ttl_and_data(root_client):
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        root_client.adapter.post("/v1/sys/wrapping/wrap", json={"a": "b"})
    assert "requires response wrapping" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.wrap(payload={}, ttl=60)


def test_bad_wrap_ttls_and_unwrappable_answers_are_400(server, root_client):
    for ttl in ["abc", "-5"]:
        r = requests.get(server.addr + "/v1/secret/data/wrapme",
                         headers={"X-Vault-Token": root_client.token, "X-Vault-Wrap-TTL": ttl})
        assert r.status_code == 400, ttl
        assert r.json()["errors"] and "wrap ttl" in r.json()["errors"][0]
    r = requests.get(server.addr + "/v1/sys/seal-status", headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 400 and "cannot wrap" in r.json()["errors"][0]
    # A bogus wrapping token: 400 with Vault's message.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.unwrap(token="hvs.notawrappingtoken0000000")
    # A regular token is not a wrapping token.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.unwrap(token=root_client.token)


def test_a_wrapping_token_serves_nothing_else_and_expires(server, root_client):
    info = _wrapped_read(root_client, "secret/data/wrapme")["wrap_info"]
    wrapper = _as(server, info["token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        wrapper.secrets.kv.v2.read_secret_version(path="wrapme", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        wrapper.read("cubbyhole/response")
    # Still unwrappable after those refusals.
    assert wrapper.sys.unwrap()["data"]["data"] == {"pw": "w-s3cret"}

    short = _wrapped_read(root_client, "secret/data/wrapme", ttl="1s")["wrap_info"]
    assert short["ttl"] == 1
    time.sleep(2.1)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.unwrap(token=short["token"])


def test_trusted_orchestrator_wrapped_secret_id(server, root_client):
    root_client.sys.enable_auth_method("approle")
    root_client.auth.approle.create_or_update_approle(role_name="wrapped-app", token_policies=["default"])
    role_id = root_client.auth.approle.read_role_id(role_name="wrapped-app")["data"]["role_id"]
    resp = root_client.auth.approle.generate_secret_id(role_name="wrapped-app", wrap_ttl="60s")
    info = resp["wrap_info"]
    assert resp["data"] is None
    assert info["creation_path"] == "auth/approle/role/wrapped-app/secret-id"
    # The application unwraps with the wrapping token only, then logs in.
    app = _as(server, info["token"])
    secret = app.sys.unwrap()["data"]
    assert info["wrapped_accessor"] == secret["secret_id_accessor"]
    login = hvac.Client(url=server.addr)
    login.auth.approle.login(role_id=role_id, secret_id=secret["secret_id"])
    assert login.is_authenticated()
    # A login can be wrapped too: the token comes out of the unwrap.
    second = root_client.auth.approle.generate_secret_id(role_name="wrapped-app")["data"]["secret_id"]
    anon = hvac.Client(url=server.addr)
    resp = anon.adapter.post("/v1/auth/approle/login", json={"role_id": role_id, "secret_id": second},
                             wrap_ttl="60s")
    assert resp["auth"] is None and resp["wrap_info"]["creation_path"] == "auth/approle/login"
    auth = root_client.sys.unwrap(token=resp["wrap_info"]["token"])["auth"]
    assert auth["accessor"] == resp["wrap_info"]["wrapped_accessor"]
    assert _as(server, auth["client_token"]).is_authenticated()


def test_wrapped_token_create(server, root_client):
    resp = root_client.auth.token.create(policies=["default"], ttl="1h", wrap_ttl="5m")
    info = resp["wrap_info"]
    assert resp["auth"] is None and info["ttl"] == 300
    assert info["creation_path"] == "auth/token/create"
    auth = root_client.sys.unwrap(token=info["token"])["auth"]
    assert auth["accessor"] == info["wrapped_accessor"]
    assert _as(server, auth["client_token"]).auth.token.lookup_self()["data"]["policies"] == ["default"]


def test_cubbyhole_is_per_token_and_goes_with_the_token(server, root_client):
    mounts = root_client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["cubbyhole/"]["type"] == "cubbyhole"
    a = _as(server, root_client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"])
    b = _as(server, root_client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"])
    a.write("cubbyhole/app/pw", pw="a-only")
    assert a.read("cubbyhole/app/pw")["data"] == {"pw": "a-only"}
    assert a.list("cubbyhole/")["data"]["keys"] == ["app/"]
    assert b.read("cubbyhole/app/pw") is None
    # Not even root sees another token's cubbyhole.
    assert root_client.read("cubbyhole/app/pw") is None
    a.delete("cubbyhole/app/pw")
    assert a.read("cubbyhole/app/pw") is None
    # Bad input: a write without data.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        a.adapter.post("/v1/cubbyhole/empty", json={})
    # cubbyhole/ is built in: it cannot be mounted elsewhere or disabled.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.enable_secrets_engine("cubbyhole", path="cubby2")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root_client.sys.disable_secrets_engine("cubbyhole")


def test_wrapping_is_audited_without_the_secret(server, root_client, tmp_path):
    log = tmp_path / "wrap-audit.log"
    root_client.sys.enable_audit_device(device_type="file", path="wrapfile", options={"file_path": str(log)})
    try:
        root_client.secrets.kv.v2.create_or_update_secret(path="audited-wrap", secret={"pw": "clear-xyz-123"})
        info = _wrapped_read(root_client, "secret/data/audited-wrap")["wrap_info"]
        assert root_client.sys.unwrap(token=info["token"])["data"]["data"]["pw"] == "clear-xyz-123"
    finally:
        root_client.sys.disable_audit_device("wrapfile")
    text = log.read_text()
    assert "clear-xyz-123" not in text
    assert info["token"] not in text
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    wrapped = [e for e in entries if e["type"] == "response"
               and e["request"]["path"] == "secret/data/audited-wrap"
               and e["response"].get("wrap_info")]
    assert wrapped, "the wrapped read's response entry holds wrap_info"
    w = wrapped[-1]["response"]["wrap_info"]
    assert w["creation_path"] == "secret/data/audited-wrap"
    assert w["token"].startswith("hmac-sha256:")
    assert "data" not in wrapped[-1]["response"]


def test_hush_cli_token_create_wrap_ttl(server, root_client):
    import os
    import subprocess

    from conftest import _bin

    env = dict(os.environ, HUSH_ADDR=server.addr, HUSH_TOKEN=root_client.token)
    out = subprocess.run([_bin("hush"), "token", "create", "-policy=default", "-wrap-ttl=2m",
                          "-field=wrapping_token"], env=env, capture_output=True, text=True, check=True)
    auth = root_client.sys.unwrap(token=out.stdout.strip())["auth"]
    assert auth["policies"] == ["default"]

"""Issue 12, items 1-4 and 10: answers that must match Vault's, with the real `hvac` client."""
import hvac
import pytest
import requests
from hvac import exceptions

SYSTEM_TTL = 768 * 3600  # Vault's default and max lease TTL: 2764800 s


def _raw(server, client, method, path, body=None):
    r = requests.request(method, f"{server.addr}/v1/{path}", json=body,
                         headers={"X-Vault-Token": client.token}, timeout=10)
    return r.status_code, (r.json() if r.content else None)


# 1. `path` is the old name of `file_path` (hvac's own docs use it).
def test_audit_option_path_is_the_old_name_of_file_path(server, root_client, tmp_path):
    log = tmp_path / "old-name.log"
    root_client.sys.enable_audit_device(device_type="file", path="oldname", options={"path": str(log)})
    try:
        listed = root_client.sys.list_enabled_audit_devices()["data"]
        assert listed["oldname/"]["options"]["path"] == str(log)
        root_client.secrets.kv.v2.create_or_update_secret(path="via-old-name", secret={"k": "v"})
        assert log.exists() and "secret/data/via-old-name" in log.read_text()
    finally:
        root_client.sys.disable_audit_device("oldname")
    # Neither name given: still a 400 naming the option Vault names.
    with pytest.raises(exceptions.InvalidRequest, match="file_path is required"):
        root_client.sys.enable_audit_device(device_type="file", path="none", options={})


# 2. audit-hash of a device that is not enabled: Vault's message.
def test_audit_hash_of_a_device_not_enabled(root_client):
    with pytest.raises(exceptions.InvalidRequest) as e:
        root_client.sys.calculate_hash(path="tmpfile", input_to_hash="hvac-rox")
    assert e.value.errors == ['unknown audit backend "tmpfile/"']


# 3. Tune reads report the effective TTLs and, for auth mounts, token_type.
def test_tune_reads_report_effective_ttls(server, root_client):
    root_client.sys.enable_secrets_engine("kv", path="tunefx", options={"version": "2"})
    cfg = root_client.sys.read_mount_configuration("tunefx")["data"]
    assert (cfg["default_lease_ttl"], cfg["max_lease_ttl"]) == (SYSTEM_TTL, SYSTEM_TTL)
    assert cfg["force_no_cache"] is False and "token_type" not in cfg
    assert cfg["options"] == {"version": "2"}
    root_client.sys.tune_mount_configuration("tunefx", default_lease_ttl="1h")
    cfg = root_client.sys.read_mount_configuration("tunefx")["data"]
    assert (cfg["default_lease_ttl"], cfg["max_lease_ttl"]) == (3600, SYSTEM_TTL)

    root_client.sys.enable_auth_method("approle", path="tuneauth")
    cfg = root_client.sys.read_auth_method_tuning("tuneauth")["data"]
    assert (cfg["default_lease_ttl"], cfg["max_lease_ttl"]) == (SYSTEM_TTL, SYSTEM_TTL)
    assert cfg["token_type"] == "default-service"
    assert "options" not in cfg  # Vault omits empty options
    root_client.sys.tune_auth_method("tuneauth", max_lease_ttl="2h")
    cfg = root_client.sys.read_auth_method_tuning("tuneauth")["data"]
    assert (cfg["default_lease_ttl"], cfg["max_lease_ttl"]) == (SYSTEM_TTL, 7200)
    # The token method is an auth mount like the others.
    assert root_client.sys.read_auth_method_tuning("token")["data"]["token_type"] == "default-service"

    # hushd issues service tokens only: Vault's default is kept, anything else is a clear 400.
    root_client.sys.tune_auth_method("tuneauth", token_type="default-service")
    with pytest.raises(exceptions.InvalidRequest, match="token_type"):
        root_client.sys.tune_auth_method("tuneauth", token_type="batch")
    with pytest.raises(exceptions.InvalidRequest, match="token_type"):
        root_client.sys.enable_auth_method("approle", path="batchy", config={"token_type": "default-batch"})
    assert root_client.sys.read_auth_method_tuning("tuneauth")["data"]["token_type"] == "default-service"

    # Bad input: nothing mounted there, a Vault-style error list.
    status, body = _raw(server, root_client, "GET", "sys/auth/nowhere/tune")
    assert status == 400 and body["errors"] and isinstance(body["errors"][0], str)


# 4. AppRole lookups of what is gone: 204 for a secret id, 404 for an accessor.
def test_approle_lookup_of_destroyed_secret_id_and_unknown_accessor(server, root_client):
    root_client.sys.enable_auth_method("approle", path="ar4")
    root_client.auth.approle.create_or_update_approle("app", token_policies=["default"], mount_point="ar4")
    sid = root_client.auth.approle.generate_secret_id("app", mount_point="ar4")["data"]
    looked = root_client.auth.approle.read_secret_id("app", sid["secret_id"], mount_point="ar4")
    assert looked["data"]["secret_id_accessor"] == sid["secret_id_accessor"]
    root_client.auth.approle.destroy_secret_id("app", sid["secret_id"], mount_point="ar4")

    gone = root_client.auth.approle.read_secret_id("app", sid["secret_id"], mount_point="ar4")
    assert isinstance(gone, requests.Response) and gone.status_code == 204 and not gone.content
    never = root_client.auth.approle.read_secret_id("app", "not-a-secret-id", mount_point="ar4")
    assert never.status_code == 204

    with pytest.raises(exceptions.InvalidPath) as e:
        root_client.auth.approle.read_secret_id_accessor("app", sid["secret_id_accessor"], mount_point="ar4")
    assert "failed to find accessor entry for secret_id_accessor" in e.value.errors[0]
    # Bad input: the accessor missing altogether is a 400.
    status, body = _raw(server, root_client, "POST", "auth/ar4/role/app/secret-id-accessor/lookup", {})
    assert status == 400 and body["errors"]


# 10. token_type reads back as written: "service" stays "service", unset or "default" is "default".
def test_token_type_reads_back_as_written(server, root_client):
    root_client.sys.enable_auth_method("approle", path="ar10")
    approle = root_client.auth.approle
    approle.create_or_update_approle("svc", token_type="service", mount_point="ar10")
    assert approle.read_role("svc", mount_point="ar10")["data"]["token_type"] == "service"
    approle.create_or_update_approle("svc", token_ttl="1h", mount_point="ar10")
    assert approle.read_role("svc", mount_point="ar10")["data"]["token_type"] == "service"
    approle.create_or_update_approle("plain", mount_point="ar10")
    assert approle.read_role("plain", mount_point="ar10")["data"]["token_type"] == "default"
    approle.create_or_update_approle("dflt", token_type="default", mount_point="ar10")
    assert approle.read_role("dflt", mount_point="ar10")["data"]["token_type"] == "default"
    # A service-typed role still logs in with a service token.
    role_id = approle.read_role_id("svc", mount_point="ar10")["data"]["role_id"]
    secret_id = approle.generate_secret_id("svc", mount_point="ar10")["data"]["secret_id"]
    login = hvac.Client(url=server.addr).auth.approle.login(role_id, secret_id, mount_point="ar10")
    assert login["auth"]["token_type"] == "service"

    root_client.sys.enable_auth_method("kubernetes", path="k8s10")
    k8s = root_client.auth.kubernetes  # its read_role returns the "data" object itself
    k8s.create_role("svc", ["app"], ["default"], token_type="service", mount_point="k8s10")
    assert k8s.read_role("svc", mount_point="k8s10")["token_type"] == "service"
    k8s.create_role("plain", ["app"], ["default"], mount_point="k8s10")
    assert k8s.read_role("plain", mount_point="k8s10")["token_type"] == "default"

    root_client.sys.enable_auth_method("jwt", path="jwt10")
    jwt = root_client.auth.jwt
    jwt.create_role("svc", user_claim="sub", allowed_redirect_uris=[], bound_audiences=["a"],
                    token_type="service", path="jwt10")
    assert jwt.read_role("svc", path="jwt10")["data"]["token_type"] == "service"
    jwt.create_role("plain", user_claim="sub", allowed_redirect_uris=[], bound_audiences=["a"], path="jwt10")
    assert jwt.read_role("plain", path="jwt10")["data"]["token_type"] == "default"

    # Bad input: batch tokens are not issued by hushd, a clear 400 naming it.
    with pytest.raises(exceptions.InvalidRequest, match="token_type"):
        approle.create_or_update_approle("batchy", token_type="batch", mount_point="ar10")
    status, body = _raw(server, root_client, "POST", "auth/ar10/role/svc", {"token_type": 7})
    assert status == 400 and body["errors"]

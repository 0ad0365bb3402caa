"""Compatibility of the operator surfaces with the real `hvac` client: token roles, sys/remount,
approle custom secret ids, aws config/identity and sys/generate-root (issue 12, items 14, 15, 17)."""
import hvac
import pytest
from hvac import exceptions

from test_hvac import moto_sts  # noqa: F401 (a fixture)


def test_token_roles(server, root_client):
    token = root_client.auth.token
    root_client.sys.create_or_update_policy("role-a", 'path "secret/*" { capabilities = ["read"] }')
    root_client.sys.create_or_update_policy(
        "role-caller", 'path "auth/token/create/ops-web" { capabilities = ["update"] }')
    token.create_or_update_role(
        "ops-web", allowed_policies=["role-a", "role-b"], disallowed_policies=["role-b"],
        orphan=True, renewable=True, path_suffix="v1", token_period="1h",
        token_explicit_max_ttl="24h")
    role = token.read_role("ops-web")["data"]
    assert role["name"] == "ops-web"
    assert role["allowed_policies"] == ["role-a", "role-b"]
    assert role["disallowed_policies"] == ["role-b"]
    assert role["orphan"] is True and role["renewable"] is True
    assert role["path_suffix"] == "v1"
    assert role["token_period"] == 3600 and role["token_explicit_max_ttl"] == 86400
    assert role["token_type"] == "default-service"
    assert "ops-web" in token.list_roles()["data"]["keys"]

    # A caller with no policy of the role's gets, through it, a periodic orphan (no sudo).
    caller = token.create(policies=["role-caller"], ttl="10m")["auth"]["client_token"]
    client = hvac.Client(url=server.addr, token=caller)
    auth = client.auth.token.create(role_name="ops-web", policies=["role-a"])["auth"]
    assert auth["policies"] == ["default", "role-a"] or auth["policies"] == ["role-a", "default"]
    assert auth["orphan"] is True and auth["lease_duration"] == 3600 and auth["renewable"]
    looked = token.lookup(auth["client_token"])["data"]
    assert looked["path"] == "auth/token/create/ops-web/v1"
    assert looked["period"] == 3600 and looked["explicit_max_ttl"] == 86400
    with pytest.raises(exceptions.InvalidRequest, match="allowed policies"):
        client.auth.token.create(role_name="ops-web", policies=["root-ish"])
    with pytest.raises(exceptions.InvalidRequest, match="disallowed"):
        client.auth.token.create(role_name="ops-web", policies=["role-b"])
    with pytest.raises(exceptions.InvalidRequest, match="unknown role"):
        token.create(role_name="nope")

    # Bad input: Vault-style 400s naming the problem.
    with pytest.raises(exceptions.InvalidRequest, match="batch tokens"):
        root_client.write_data("auth/token/roles/bad", data={"token_type": "batch"})
    with pytest.raises(exceptions.InvalidRequest, match="not supported"):
        root_client.write_data("auth/token/roles/bad", data={"allowed_entity_aliases": ["x"]})
    with pytest.raises(exceptions.InvalidRequest):
        root_client.write_data("auth/token/roles/bad", data={"token_bound_cidrs": ["1.2.3.4/99"]})

    token.delete_role("ops-web")
    with pytest.raises(exceptions.InvalidPath):
        token.read_role("ops-web")


def test_remount_moves_a_mount_and_its_data(root_client):
    sys = root_client.sys
    sys.enable_secrets_engine("kv", path="ops-kv", options={"version": "2"})
    root_client.secrets.kv.v2.create_or_update_secret(
        path="app", secret={"k": "v"}, mount_point="ops-kv")
    accessor = sys.list_mounted_secrets_engines()["data"]["ops-kv/"]["accessor"]
    resp = sys.move_backend(from_path="ops-kv", to_path="ops-moved")
    # Vault 1.10+: a migration id, and its status at sys/remount/status/:id.
    migration_id = resp["data"]["migration_id"]
    status = root_client.read(f"sys/remount/status/{migration_id}")["data"]
    assert status["migration_id"] == migration_id
    assert status["migration_info"] == {
        "source_mount": "ops-kv/", "target_mount": "ops-moved/", "status": "success"}
    mounts = sys.list_mounted_secrets_engines()["data"]
    assert "ops-moved/" in mounts and "ops-kv/" not in mounts
    assert mounts["ops-moved/"]["accessor"] == accessor
    read = root_client.secrets.kv.v2.read_secret_version(
        path="app", mount_point="ops-moved", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}
    with pytest.raises(exceptions.InvalidPath):
        root_client.secrets.kv.v2.read_secret_version(
            path="app", mount_point="ops-kv", raise_on_deleted_version=True)

    # Auth methods move among auth/ paths.
    sys.enable_auth_method("approle", path="ops-ar")
    root_client.write_data("auth/ops-ar/role/r1", data={"token_policies": ["default"]})
    sys.move_backend(from_path="auth/ops-ar", to_path="auth/ops-ar2")
    assert root_client.read("auth/ops-ar2/role/r1")["data"]["token_policies"] == ["default"]

    # Bad input: Vault-style 400s.
    for body in [{"from": "ops-moved"}, {"from": "nothing-here", "to": "x"},
                 {"from": "ops-moved", "to": "auth/x"}, {"from": "auth/ops-ar2", "to": "kv-x"},
                 {"from": "sys", "to": "sys2"}, {"from": "auth/token", "to": "auth/t2"},
                 {"from": "ops-moved", "to": "secret"}]:
        with pytest.raises(exceptions.InvalidRequest):
            root_client.write_data("sys/remount", data=body)
    with pytest.raises(exceptions.InvalidRequest):
        root_client.read("sys/remount/status/not-an-id")


def test_approle_custom_secret_id(server, root_client):
    root_client.sys.enable_auth_method("approle", path="ops-custom")
    approle = root_client.auth.approle
    approle.create_or_update_approle("app", token_policies=["default"], mount_point="ops-custom")
    role_id = approle.read_role_id("app", mount_point="ops-custom")["data"]["role_id"]
    resp = approle.create_custom_secret_id(
        "app", secret_id="my-own-secret-id-0001", metadata={"team": "ops"},
        cidr_list=["127.0.0.0/8"], mount_point="ops-custom")["data"]
    assert resp["secret_id"] == "my-own-secret-id-0001"
    assert resp["secret_id_accessor"] and resp["secret_id_num_uses"] == 0
    looked = approle.read_secret_id("app", "my-own-secret-id-0001", mount_point="ops-custom")
    assert looked["data"]["metadata"] == {"team": "ops"}
    assert looked["data"]["cidr_list"] == ["127.0.0.0/8"]
    client = hvac.Client(url=server.addr)
    login = client.auth.approle.login(role_id, "my-own-secret-id-0001", mount_point="ops-custom")
    assert login["auth"]["client_token"]
    # Bad input: a secret id already registered, or none.
    with pytest.raises(exceptions.InvalidRequest, match="already registered"):
        approle.create_custom_secret_id("app", secret_id="my-own-secret-id-0001",
                                        mount_point="ops-custom")
    with pytest.raises(exceptions.InvalidRequest, match="missing secret_id"):
        root_client.write_data("auth/ops-custom/role/app/custom-secret-id", data={})
    with pytest.raises(exceptions.InvalidRequest):
        approle.create_custom_secret_id("nope", secret_id="x", mount_point="ops-custom")


def test_aws_config_identity(server, root_client, moto_sts):  # noqa: F811
    import boto3
    root_client.sys.enable_auth_method("aws", path="ops-aws")
    aws = root_client.auth.aws
    # Never written: Vault's defaults.
    cfg = aws.read_identity_integration(mount_point="ops-aws")
    assert cfg["iam_alias"] == "role_id" and cfg["ec2_alias"] == "role_id"
    aws.configure_identity_integration(iam_alias="full_arn", iam_metadata=["client_arn", "auth_type"],
                                       ec2_alias="instance_id", mount_point="ops-aws")
    cfg = aws.read_identity_integration(mount_point="ops-aws")
    assert cfg["iam_alias"] == "full_arn" and cfg["ec2_alias"] == "instance_id"
    assert cfg["iam_metadata"] == ["auth_type", "client_arn"]

    # A login's token metadata keeps the chosen fields (and role_id, role).
    kw = dict(endpoint_url=moto_sts, region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="ops-user")
    key = iam.create_access_key(UserName="ops-user")["AccessKey"]
    aws.configure(sts_endpoint=moto_sts, mount_point="ops-aws")
    aws.create_role(role="dev", auth_type="iam", policies=["default"], mount_point="ops-aws",
                    bound_iam_principal_arn=["arn:aws:iam::123456789012:user/ops-*"])
    resp = hvac.Client(url=server.addr).auth.aws.iam_login(
        key["AccessKeyId"], key["SecretAccessKey"], role="dev", mount_point="ops-aws")
    assert sorted(resp["auth"]["metadata"]) == ["auth_type", "client_arn", "role", "role_id"]

    # Bad values: Vault-style 400s (written raw: hvac checks the alias names itself).
    for body in [{"iam_alias": "nope"}, {"ec2_alias": "unique_id"},
                 {"iam_metadata": ["zone"]}, {"iam_metadata": ["default", "auth_type"]}]:
        with pytest.raises(exceptions.InvalidRequest):
            root_client.write_data("auth/ops-aws/config/identity", data=body)
    aws.configure_identity_integration(iam_metadata="default", mount_point="ops-aws")
    assert "account_id" in aws.read_identity_integration(mount_point="ops-aws")["iam_metadata"]


def _decode_root(encoded, otp):
    import base64
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def test_generate_root(server, root_client):
    anon = hvac.Client(url=server.addr)  # unauthenticated, as in Vault
    sys = anon.sys
    status = sys.read_root_generation_progress()
    assert status["started"] is False and status["required"] == 3 and status["otp_length"] == 28

    # Vault 1.10+: without an otp the server makes one and answers it once.
    started = sys.start_root_token_generation()
    otp, nonce = started["otp"], started["nonce"]
    assert len(otp) == 28 and started["started"] is True and nonce
    with pytest.raises(exceptions.InvalidRequest, match="already in progress"):
        sys.start_root_token_generation()
    assert sys.read_root_generation_progress()["otp"] == ""
    keys = server.unseal_keys
    with pytest.raises(exceptions.InvalidRequest, match="nonce"):
        sys.generate_root(key=keys[0], nonce="not-the-nonce")
    r = sys.generate_root(key=keys[0], nonce=nonce)
    assert r["progress"] == 1 and r["complete"] is False
    # The same share again: a 400 as in Vault, and no progress.
    with pytest.raises(exceptions.InvalidRequest, match="already been provided"):
        sys.generate_root(key=keys[0], nonce=nonce)
    assert sys.read_root_generation_progress()["progress"] == 1
    sys.generate_root(key=keys[1], nonce=nonce)
    done = sys.generate_root(key=keys[2], nonce=nonce)
    assert done["complete"] is True and done["encoded_token"] == done["encoded_root_token"]
    token = _decode_root(done["encoded_token"], otp)
    assert token.startswith("hvs.") and token != root_client.token
    minted = hvac.Client(url=server.addr, token=token)
    assert minted.auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert sys.read_root_generation_progress()["started"] is False
    minted.auth.token.revoke_self()

    # The caller's own OTP, then cancel.
    own = "A" * 28
    started = sys.start_root_token_generation(otp=own)
    assert started["otp"] == ""
    sys.generate_root(key=keys[3], nonce=started["nonce"])
    sys.cancel_root_generation()
    assert sys.read_root_generation_progress() == {**sys.read_root_generation_progress(),
                                                   "started": False, "progress": 0}
    # Bad input: Vault-style 400s.
    with pytest.raises(exceptions.InvalidRequest, match="wrong length"):
        sys.start_root_token_generation(otp="short")
    with pytest.raises(exceptions.InvalidRequest, match="pgp_key"):
        sys.start_root_token_generation(pgp_key="xyz")
    with pytest.raises(exceptions.InvalidRequest, match="no root generation"):
        sys.generate_root(key=keys[0], nonce=nonce)
    started = sys.start_root_token_generation()
    with pytest.raises(exceptions.InvalidRequest):
        sys.generate_root(key="not-a-key", nonce=started["nonce"])
    # Shares of another key: refused at the threshold, the attempt stays with no progress.
    import os
    fake = [bytes([i]).hex() + os.urandom(32).hex() for i in (1, 2, 3)]
    sys.generate_root(key=fake[0], nonce=started["nonce"])
    sys.generate_root(key=fake[1], nonce=started["nonce"])
    with pytest.raises(exceptions.InvalidRequest, match="verification failed"):
        sys.generate_root(key=fake[2], nonce=started["nonce"])
    status = sys.read_root_generation_progress()
    assert status["started"] is True and status["progress"] == 0
    sys.cancel_root_generation()


def test_hush_operator_generate_root(server, root_client):
    import json
    import os
    import subprocess
    from conftest import _bin
    env = {**os.environ, "HUSH_ADDR": server.addr}
    env.pop("HUSH_TOKEN", None)

    def hush(*args, stdin=None):
        r = subprocess.run([_bin("hush"), "operator", "generate-root", *args], input=stdin,
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    started = json.loads(hush("-init", "-format=json"))
    otp, nonce = started["otp"], started["nonce"]
    assert len(otp) == 28 and started["started"] is True
    assert json.loads(hush("-status", "-format=json"))["nonce"] == nonce
    for key in server.unseal_keys[:2]:
        hush("-nonce", nonce, "-", stdin=key + "\n")
    # Without -nonce: the one in progress.
    done = json.loads(hush("-format=json", "-", stdin=server.unseal_keys[2] + "\n"))
    assert done["complete"] is True
    token = hush("-decode", done["encoded_token"], "-otp", otp).strip()
    assert hvac.Client(url=server.addr, token=token).auth.token.lookup_self()["data"]["policies"] == ["root"]
    # Cancel, and the errors of a key without an attempt.
    hush("-init", "-otp", "B" * 28)
    hush("-cancel")
    assert json.loads(hush("-status", "-format=json"))["started"] is False
    r = subprocess.run([_bin("hush"), "operator", "generate-root", "-"], input=server.unseal_keys[0],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "-init" in r.stderr

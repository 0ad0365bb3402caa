"""Compatibility: the real `hvac` client against hushd (KV v2, policies, tokens, sys, audit)."""
import json
import subprocess

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import _bin


def test_seal_status_and_health(server, root_client):
    status = root_client.sys.read_seal_status()
    assert status["sealed"] is False and status["t"] == 3 and status["n"] == 5
    assert root_client.sys.read_health_status(method="GET")["initialized"] is True
    assert "secret/" in root_client.sys.list_mounted_secrets_engines()["data"]


def test_kv_v2_crud_versions_and_cas(root_client):
    kv = root_client.secrets.kv.v2
    r = kv.create_or_update_secret(path="app/db", secret={"user": "app", "password": "s1"})
    assert r["data"]["version"] == 1
    kv.create_or_update_secret(path="app/db", secret={"user": "app", "password": "s2"}, cas=1)
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret(path="app/db", secret={"password": "bad"}, cas=1)
    latest = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"user": "app", "password": "s2"}
    assert latest["data"]["metadata"]["version"] == 2
    v1 = kv.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)
    assert v1["data"]["data"]["password"] == "s1"
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="app/missing", raise_on_deleted_version=True)


def test_kv_v2_patch_and_merge_patch(server, root_client):
    kv = root_client.secrets.kv.v2
    kv.create_or_update_secret(path="patch/me", secret={"a": "1", "b": "2"})
    kv.patch(path="patch/me", secret={"b": "3", "c": "4"})
    got = kv.read_secret_version(path="patch/me", raise_on_deleted_version=True)["data"]["data"]
    assert got == {"a": "1", "b": "3", "c": "4"}
    # A real JSON merge patch (what `vault kv patch` sends): null deletes a field.
    r = requests.patch(server.addr + "/v1/secret/data/patch/me",
                       headers={"X-Vault-Token": root_client.token,
                                "Content-Type": "application/merge-patch+json"},
                       data=json.dumps({"data": {"a": None, "d": "5"}}))
    assert r.status_code == 200, r.text
    got = kv.read_secret_version(path="patch/me", raise_on_deleted_version=True)["data"]["data"]
    assert got == {"b": "3", "c": "4", "d": "5"}
    bad = requests.patch(server.addr + "/v1/secret/data/patch/me",
                         headers={"X-Vault-Token": root_client.token, "Content-Type": "application/json"},
                         data=json.dumps({"data": {"x": "y"}}))
    assert bad.status_code >= 400


def test_kv_v2_metadata(root_client):
    kv = root_client.secrets.kv.v2
    kv.create_or_update_secret(path="meta/k", secret={"x": "1"})
    kv.update_metadata(path="meta/k", max_versions=2, custom_metadata={"owner": "team-a"})
    for i in range(3):
        kv.create_or_update_secret(path="meta/k", secret={"x": str(i + 2)})
    meta = kv.read_secret_metadata(path="meta/k")["data"]
    assert meta["max_versions"] == 2
    assert meta["custom_metadata"] == {"owner": "team-a"}
    assert meta["current_version"] == 4
    assert sorted(meta["versions"].keys(), key=int) == ["3", "4"]
    assert meta["oldest_version"] == 3
    keys = kv.list_secrets(path="meta")["data"]["keys"]
    assert keys == ["k"]
    top = kv.list_secrets(path="")["data"]["keys"]
    assert "meta/" in top and "app/" in top
    kv.delete_metadata_and_all_versions(path="meta/k")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata(path="meta/k")
    kv.configure(max_versions=5, cas_required=False)
    assert kv.read_configuration()["data"]["max_versions"] == 5


def test_kv_v2_soft_delete_undelete_destroy(root_client):
    kv = root_client.secrets.kv.v2
    kv.create_or_update_secret(path="life/k", secret={"v": "1"})
    kv.create_or_update_secret(path="life/k", secret={"v": "2"})
    kv.delete_latest_version_of_secret(path="life/k")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="life/k", raise_on_deleted_version=True)
    kv.undelete_secret_versions(path="life/k", versions=[2])
    assert kv.read_secret_version(path="life/k", raise_on_deleted_version=True)["data"]["data"] == {"v": "2"}
    kv.delete_secret_versions(path="life/k", versions=[1])
    kv.destroy_secret_versions(path="life/k", versions=[1])
    meta = kv.read_secret_metadata(path="life/k")["data"]
    assert meta["versions"]["1"]["destroyed"] is True
    kv.undelete_secret_versions(path="life/k", versions=[1])
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="life/k", version=1, raise_on_deleted_version=True)


def test_policies_and_scoped_tokens(server, root_client):
    hcl = '''
path "secret/data/team/*" { capabilities = ["create", "read", "update"] }
path "secret/data/team/locked" { capabilities = ["deny"] }
path "secret/metadata/team/*" { capabilities = ["list"] }
'''
    root_client.sys.create_or_update_acl_policy(name="team", policy=hcl)
    assert "team" in root_client.sys.list_acl_policies()["data"]["keys"]
    assert "path" in root_client.sys.read_acl_policy("team")["data"]["policy"]
    root_client.sys.create_or_update_acl_policy(
        name="json-pol", policy=json.dumps({"path": {"secret/data/json/*": {"capabilities": ["read"]}}}))
    with pytest.raises(exceptions.InvalidRequest):
        root_client.sys.create_or_update_acl_policy(name="broken", policy='path "x" { capabilities = ["fly"] }')

    tok = root_client.auth.token.create(policies=["team"], ttl="1h")["auth"]
    assert "team" in tok["policies"] and "default" in tok["policies"]
    user = hvac.Client(url=server.addr, token=tok["client_token"])
    user.secrets.kv.v2.create_or_update_secret(path="team/app", secret={"k": "v"})
    assert user.secrets.kv.v2.read_secret_version(path="team/app", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}
    with pytest.raises(exceptions.Forbidden):
        user.secrets.kv.v2.read_secret_version(path="other/app", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        user.secrets.kv.v2.create_or_update_secret(path="team/locked", secret={"k": "v"})
    with pytest.raises(exceptions.Forbidden):
        user.sys.enable_secrets_engine("kv", path="evil", options={"version": "2"})
    caps = user.sys.get_capabilities(paths=["secret/data/team/x"])  # capabilities-self
    assert sorted(caps["capabilities"]) == ["create", "read", "update"]
    root_client.sys.delete_acl_policy("json-pol")
    with pytest.raises(exceptions.InvalidRequest):
        root_client.sys.delete_acl_policy("default")


def test_token_lifecycle(server, root_client):
    tokens = root_client.auth.token
    root_client.sys.create_or_update_acl_policy(
        name="tokener", policy='path "auth/token/create" { capabilities = ["update"] }')
    parent = tokens.create(policies=["default", "tokener"], ttl="1h", renewable=True,
                           meta={"app": "x"})["auth"]
    assert parent["renewable"] is True and parent["lease_duration"] == 3600
    pclient = hvac.Client(url=server.addr, token=parent["client_token"])
    child = pclient.auth.token.create(policies=["default"], ttl="30m")["auth"]
    looked = tokens.lookup(parent["client_token"])["data"]
    assert looked["meta"] == {"app": "x"} and looked["accessor"] == parent["accessor"]
    self_lookup = pclient.auth.token.lookup_self()["data"]
    assert self_lookup["display_name"].startswith("token")
    by_accessor = tokens.lookup_accessor(parent["accessor"])["data"]
    assert by_accessor["id"] == ""
    renewed = tokens.renew(parent["client_token"], increment="2h")["auth"]
    assert renewed["lease_duration"] >= 7000
    pclient.auth.token.renew_self()
    with pytest.raises(exceptions.InvalidRequest):
        pclient.auth.token.create(policies=["root"])
    # Revoking the parent revokes the child.
    tokens.revoke(parent["client_token"])
    for t in (parent["client_token"], child["client_token"]):
        with pytest.raises(exceptions.Forbidden):
            hvac.Client(url=server.addr, token=t).auth.token.lookup_self()
    orphan = tokens.create_orphan(policies=["default"], ttl="10m")["auth"]
    assert orphan["orphan"] is True
    tokens.revoke_accessor(orphan["accessor"])
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=server.addr, token=orphan["client_token"]).auth.token.lookup_self()
    once = tokens.create(policies=["default"], num_uses=1)["auth"]
    oclient = hvac.Client(url=server.addr, token=once["client_token"])
    oclient.auth.token.lookup_self()
    with pytest.raises(exceptions.Forbidden):
        oclient.auth.token.lookup_self()
    selfrev = tokens.create(policies=["default"])["auth"]
    sclient = hvac.Client(url=server.addr, token=selfrev["client_token"])
    sclient.auth.token.revoke_self()
    assert not sclient.is_authenticated()


def test_audit_device_and_chain(server, root_client, tmp_path):
    log = tmp_path / "audit.log"
    root_client.sys.enable_audit_device(device_type="file", path="file", options={"file_path": str(log)})
    assert "file/" in root_client.sys.list_enabled_audit_devices()["data"]
    root_client.secrets.kv.v2.create_or_update_secret(path="audited", secret={"pw": "hunter2-audit"})
    root_client.secrets.kv.v2.read_secret_version(path="audited", raise_on_deleted_version=True)
    text = log.read_text()
    assert "hunter2-audit" not in text and root_client.token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert {l["type"] for l in lines} == {"request", "response"}
    assert any(l["request"]["path"] == "secret/data/audited" for l in lines)
    h = root_client.sys.calculate_hash(path="file", input_to_hash="hunter2-audit")["data"]["hash"]
    assert h in text
    ok = subprocess.run([_bin("hush"), "audit", "verify", str(log)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    root_client.sys.disable_audit_device("file")
    raw = log.read_text().splitlines()
    raw[1], raw[2] = raw[2], raw[1]
    (tmp_path / "reordered.log").write_text("\n".join(raw) + "\n")
    bad = subprocess.run([_bin("hush"), "audit", "verify", str(tmp_path / "reordered.log")],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert "line 2" in (bad.stdout + bad.stderr)


def test_key_rotation_and_reseal(server, root_client):
    before = root_client.sys.get_encryption_key_status()["data"]["term"]
    root_client.sys.rotate_encryption_key()
    assert root_client.sys.get_encryption_key_status()["data"]["term"] == before + 1
    root_client.secrets.kv.v2.create_or_update_secret(path="rotated", secret={"k": "after"})
    root_client.sys.seal()
    assert root_client.sys.is_sealed()
    with pytest.raises(exceptions.VaultDown):
        root_client.secrets.kv.v2.read_secret_version(path="rotated", raise_on_deleted_version=True)
    root_client.sys.submit_unseal_keys(server.unseal_keys[2:5])
    assert root_client.secrets.kv.v2.read_secret_version(path="rotated", raise_on_deleted_version=True)["data"]["data"] == {"k": "after"}
    assert root_client.secrets.kv.v2.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)["data"]["data"]["password"] == "s1"


def test_approle_login(server, root_client):
    root_client.sys.enable_auth_method("approle")
    assert root_client.sys.list_auth_methods()["data"]["approle/"]["type"] == "approle"
    root_client.sys.create_or_update_policy(
        name="approle-app", policy='path "secret/data/approle/*" { capabilities = ["read"] }')
    root_client.secrets.kv.v2.create_or_update_secret(path="approle/db", secret={"pw": "ar"})
    root_client.auth.approle.create_or_update_approle(
        role_name="web", token_policies=["approle-app"], token_ttl="15m", secret_id_num_uses=1)
    assert root_client.auth.approle.read_role(role_name="web")["data"]["token_policies"] == ["approle-app"]
    role_id = root_client.auth.approle.read_role_id(role_name="web")["data"]["role_id"]
    secret = root_client.auth.approle.generate_secret_id(role_name="web", metadata={"team": "a"})["data"]
    client = hvac.Client(url=server.addr)
    resp = client.auth.approle.login(role_id=role_id, secret_id=secret["secret_id"])
    assert client.token == resp["auth"]["client_token"]
    assert resp["auth"]["policies"] == ["approle-app", "default"]
    assert resp["auth"]["lease_duration"] == 900
    assert resp["auth"]["metadata"] == {"role_name": "web", "team": "a"}
    read = client.secrets.kv.v2.read_secret_version(path="approle/db", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"pw": "ar"}
    with pytest.raises(exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)
    # The secret ID had one use.
    with pytest.raises(exceptions.InvalidRequest):
        hvac.Client(url=server.addr).auth.approle.login(role_id=role_id, secret_id=secret["secret_id"])
    root_client.sys.disable_auth_method("approle")
    assert "approle/" not in root_client.sys.list_auth_methods()["data"]


def _b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _fake_google(tmp_path):
    """A local HTTPS "Google" (a CA made here) serving key documents; returns (base, ca_pem, docs)."""
    import datetime
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hvac test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "google.pem", tmp_path / "google.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    docs = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = docs.get(self.path)
            self.send_response(200 if body else 404)
            body = (body or "{}").encode()
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"https://127.0.0.1:{httpd.server_address[1]}"
    return base, ca.public_bytes(serialization.Encoding.PEM).decode(), docs, httpd


class _RsaSigner:
    """An RSA key that signs RS256 JWTs (as Google and service-account keys do) and shows its JWKS."""

    def __init__(self, kid):
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self):
        n = self.key.public_key().public_numbers()
        as_bytes = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
        return json.dumps({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                                     "n": _b64url(as_bytes(n.n)), "e": _b64url(as_bytes(n.e))}]})

    def sign(self, claims):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        body = _b64url(json.dumps(claims).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64url(sig)}"


def test_gcp_login(server, root_client, tmp_path):
    import time
    sa_email = "web@proj.iam.gserviceaccount.com"
    base, ca_pem, docs, httpd = _fake_google(tmp_path)
    google, sa = _RsaSigner("g1"), _RsaSigner("sa1")
    docs["/oauth2/v3/certs"] = google.jwks()
    docs[f"/service_accounts/v1/metadata/jwk/{sa_email}"] = sa.jwks()
    root_client.sys.enable_auth_method("gcp")
    # hvac's configure (credentials, default google_certs_endpoint), then the endpoint override.
    root_client.auth.gcp.configure(credentials=json.dumps({"type": "service_account", "private_key": "never-shown"}))
    root_client.adapter.post("/v1/auth/gcp/config",
                             json={"custom_endpoint": {"api": base}, "custom_endpoint_ca_pem": ca_pem})
    config = root_client.auth.gcp.read_config()
    assert config["custom_endpoint"] == {"api": base}
    assert "never-shown" not in json.dumps(config)
    root_client.sys.create_or_update_policy(
        name="gcp-app", policy='path "secret/data/gcp/*" { capabilities = ["read"] }')
    root_client.secrets.kv.v2.create_or_update_secret(path="gcp/db", secret={"pw": "g"})
    root_client.auth.gcp.create_role(name="web", role_type="iam", project_id="proj", policies=["gcp-app"],
                                     bound_service_accounts=[sa_email], ttl="10m", max_jwt_exp="20m")
    root_client.auth.gcp.create_role(name="vm", role_type="gce", project_id="proj", policies=["gcp-app"],
                                     bound_zones=["us-central1-a"])
    role = root_client.auth.gcp.read_role(name="web")
    assert role["bound_service_accounts"] == [sa_email]
    assert role["bound_projects"] == ["proj"] and role["max_jwt_exp"] == 1200
    assert root_client.auth.gcp.list_roles()["keys"] == ["vm", "web"]
    other = "other@proj.iam.gserviceaccount.com"
    root_client.auth.gcp.edit_service_accounts_on_iam_role(name="web", add=[other])
    assert root_client.auth.gcp.read_role(name="web")["bound_service_accounts"] == [sa_email, other]
    root_client.auth.gcp.edit_service_accounts_on_iam_role(name="web", remove=[other])

    now = int(time.time())
    client = hvac.Client(url=server.addr)
    resp = client.auth.gcp.login(role="web", jwt=sa.sign(
        {"sub": sa_email, "aud": "vault/web", "iat": now, "exp": now + 600}))
    assert resp["auth"]["policies"] == ["default", "gcp-app"]
    assert resp["auth"]["lease_duration"] == 600
    assert resp["auth"]["metadata"]["service_account_email"] == sa_email
    assert client.secrets.kv.v2.read_secret_version(path="gcp/db", raise_on_deleted_version=True)["data"]["data"] == {"pw": "g"}

    gce_claims = {"iss": "https://accounts.google.com", "aud": "http://vault/vm", "sub": "1122",
                  "email": "vm@proj.iam.gserviceaccount.com", "iat": now, "exp": now + 3600,
                  "google": {"compute_engine": {"project_id": "proj", "project_number": 4455,
                                                "zone": "us-central1-a", "instance_id": "987",
                                                "instance_name": "vm-1"}}}
    resp = hvac.Client(url=server.addr).auth.gcp.login(role="vm", jwt=google.sign(gce_claims))
    assert resp["auth"]["metadata"]["instance_name"] == "vm-1"

    # Too long-lived for max_jwt_exp, the wrong zone, a foreign key: 400s.
    for role_name, jwt in [
        ("web", sa.sign({"sub": sa_email, "aud": "vault/web", "iat": now, "exp": now + 7200})),
        ("vm", google.sign({**gce_claims, "google": {"compute_engine": {
            **gce_claims["google"]["compute_engine"], "zone": "europe-west1-b"}}})),
        ("web", _RsaSigner("sa1").sign({"sub": sa_email, "aud": "vault/web", "exp": now + 600})),
    ]:
        with pytest.raises(exceptions.InvalidRequest):
            hvac.Client(url=server.addr).auth.gcp.login(role=role_name, jwt=jwt)
    root_client.auth.gcp.delete_role(role="vm")
    assert root_client.auth.gcp.list_roles()["keys"] == ["web"]
    root_client.sys.disable_auth_method("gcp")
    httpd.shutdown()
def _self_signed_cert(signer):
    """A self-signed certificate (PEM) for the signer's RSA key, as a cluster's sa.crt would be."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service-account-signer")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(signer.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(signer.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_kubernetes_local_login_with_certificate_pem_keys(server, root_client):
    import time
    signer, other = _RsaSigner("k1"), _RsaSigner("k1")
    cert_pem = _self_signed_cert(signer)
    root_client.sys.enable_auth_method("kubernetes")
    # hvac only lets certificates through as pem_keys; the certificate's public key verifies.
    root_client.auth.kubernetes.configure(kubernetes_host="", pem_keys=[cert_pem])
    config = root_client.auth.kubernetes.read_config()
    assert [k.strip() for k in config["pem_keys"]] == [cert_pem.strip()]
    root_client.auth.kubernetes.create_role(
        name="web", bound_service_account_names=["web"], bound_service_account_namespaces=["prod"],
        policies=["default"], ttl="10m")
    now = int(time.time())
    claims = {"iss": "https://kubernetes.default.svc", "aud": ["vault"],
              "sub": "system:serviceaccount:prod:web", "iat": now, "nbf": now, "exp": now + 600,
              "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "web", "uid": "u-1"}}}
    client = hvac.Client(url=server.addr)
    resp = client.auth.kubernetes.login(role="web", jwt=signer.sign(claims))
    assert resp["auth"]["metadata"]["service_account_name"] == "web"
    assert client.is_authenticated()
    # A token signed by another key is refused.
    with pytest.raises(exceptions.InvalidRequest):
        hvac.Client(url=server.addr).auth.kubernetes.login(role="web", jwt=other.sign(claims))
    root_client.sys.disable_auth_method("kubernetes")


@pytest.fixture()
def moto_sts():
    """The Python moto server (moto[server]) as STS and IAM on a free loopback port."""
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto did not start")
            time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait()


def test_aws_iam_login(server, root_client, moto_sts):
    """hvac's iam_login signs for sts.amazonaws.com (its Host header is signed); hushd sends
    the request to the configured sts_endpoint (moto here) keeping that signed Host."""
    import boto3
    kw = dict(endpoint_url=moto_sts, region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="hvac-user")
    key = iam.create_access_key(UserName="hvac-user")["AccessKey"]
    role_arn = iam.create_role(RoleName="HvacRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    temp = boto3.client("sts", **kw).assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]

    root_client.sys.enable_auth_method("aws")
    root_client.auth.aws.configure(sts_endpoint=moto_sts, iam_server_id_header_value="hushd.compat",
                                   access_key="AKIAHUSHD", secret_key="never-shown")
    cfg = root_client.auth.aws.read_config()
    assert cfg["sts_endpoint"] == moto_sts and cfg["iam_server_id_header_value"] == "hushd.compat"
    assert "never-shown" not in json.dumps(cfg)
    root_client.sys.create_or_update_policy(
        name="aws-app", policy='path "secret/data/aws/*" { capabilities = ["read"] }')
    root_client.secrets.kv.v2.create_or_update_secret(path="aws/db", secret={"pw": "aw"})
    root_client.auth.aws.create_role(
        role="dev", auth_type="iam", policies=["aws-app"], ttl="15m",
        bound_iam_principal_arn=["arn:aws:iam::123456789012:user/hvac-*", "arn:aws:iam::123456789012:role/HvacRole"])
    assert root_client.auth.aws.read_role(role="dev")["auth_type"] == "iam"
    assert root_client.auth.aws.list_roles()["keys"] == ["dev"]
    with pytest.raises(exceptions.InvalidRequest):
        root_client.auth.aws.create_role(role="ec2", auth_type="ec2", bound_ami_id=["ami-1"])

    client = hvac.Client(url=server.addr)
    resp = client.auth.aws.iam_login(key["AccessKeyId"], key["SecretAccessKey"],
                                     header_value="hushd.compat", role="dev")
    assert client.token == resp["auth"]["client_token"]
    assert resp["auth"]["policies"] == ["aws-app", "default"]
    assert resp["auth"]["lease_duration"] == 900
    assert resp["auth"]["metadata"]["canonical_arn"] == "arn:aws:iam::123456789012:user/hvac-user"
    assert client.secrets.kv.v2.read_secret_version(path="aws/db", raise_on_deleted_version=True)["data"]["data"] == {"pw": "aw"}
    with pytest.raises(exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(path="app/db", raise_on_deleted_version=True)

    # An assumed role with a session token, signed for another region.
    resp = hvac.Client(url=server.addr).auth.aws.iam_login(
        temp["AccessKeyId"], temp["SecretAccessKey"], session_token=temp["SessionToken"],
        header_value="hushd.compat", role="dev", region="eu-west-1")
    assert resp["auth"]["metadata"]["client_arn"] == "arn:aws:sts::123456789012:assumed-role/HvacRole/s1"
    assert resp["auth"]["metadata"]["canonical_arn"] == "arn:aws:iam::123456789012:role/HvacRole"

    # The server-id header missing, or meant for another server.
    for header_value in (None, "other-vault"):
        with pytest.raises(exceptions.InvalidRequest) as err:
            hvac.Client(url=server.addr).auth.aws.iam_login(
                key["AccessKeyId"], key["SecretAccessKey"], header_value=header_value, role="dev")
        assert "X-Vault-AWS-IAM-Server-ID" in str(err.value)
    with pytest.raises(exceptions.InvalidRequest):
        hvac.Client(url=server.addr).auth.aws.iam_login(
            key["AccessKeyId"], key["SecretAccessKey"], header_value="hushd.compat", role="nobody")
    root_client.sys.disable_auth_method("aws")
def _new_token_lease(client, orphan=False, **create):
    """Create a token and return (token, its lease id): the one new lease of its path."""
    prefix = "auth/token/create-orphan/" if orphan else "auth/token/create/"
    def keys():
        try:
            return set(client.sys.list_leases(prefix=prefix)["data"]["keys"])
        except exceptions.InvalidPath:
            return set()
    before = keys()
    create_fn = client.auth.token.create_orphan if orphan else client.auth.token.create
    token = create_fn(**create)["auth"]["client_token"]
    new = keys() - before
    assert len(new) == 1, new
    return token, prefix + new.pop()


def test_sys_lease_helpers_on_token_leases(server, root_client):
    sys = root_client.sys
    token, lease_id = _new_token_lease(root_client, ttl="1h", policies=["default"])
    lease = sys.read_lease(lease_id=lease_id)["data"]
    assert lease["id"] == lease_id and lease["renewable"] is True
    assert 3500 < lease["ttl"] <= 3600
    renewed = sys.renew_lease(lease_id=lease_id, increment=7200)
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == 7200
    assert sys.read_lease(lease_id=lease_id)["data"]["last_renewal"]
    with pytest.raises(exceptions.InvalidRequest):
        sys.read_lease(lease_id="auth/token/create/does-not-exist")
    sys.revoke_lease(lease_id=lease_id)
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=server.addr, token=token).auth.token.lookup_self()
    with pytest.raises(exceptions.InvalidRequest):
        sys.renew_lease(lease_id=lease_id)
    # Prefixes (sudo): revoke-prefix asks the owner (the token store), revoke-force does not.
    a, _ = _new_token_lease(root_client, orphan=True, ttl="1h")
    sys.revoke_prefix(prefix="auth/token/create-orphan")
    b, _ = _new_token_lease(root_client, orphan=True, ttl="1h")
    sys.revoke_force(prefix="auth/token/create-orphan/")
    for t in (a, b):
        with pytest.raises(exceptions.Forbidden):
            hvac.Client(url=server.addr, token=t).auth.token.lookup_self()
    with pytest.raises(exceptions.InvalidPath):
        sys.list_leases(prefix="auth/token/create-orphan/")
    # Without sudo: refused.
    plain, _ = _new_token_lease(root_client, ttl="1h", policies=["default"])
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=server.addr, token=plain).sys.list_leases(prefix="auth/")
# ---- database secrets engine (hvac's secrets.database) against a real PostgreSQL ----

import glob
import os
import shutil
import socket
import tempfile
import time

PG_ROOT_USER, PG_ROOT_PW = "hush_root", "Hvac-Root-Pw-1"
PG_CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; "
             "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";")


class _Postgres:
    """initdb + postgres on a free loopback port in a temp dir, as the `postgres` OS user when
    run as root (PostgreSQL refuses root); the harness uses the Unix socket (trust)."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        if not found:
            pytest.skip("PostgreSQL is not installed (scripts/test installs it)")
        self.bin = os.path.dirname(found[-1])
        self.dir = tempfile.mkdtemp(prefix="hush-pg-")
        self.data, self.sock = os.path.join(self.dir, "data"), os.path.join(self.dir, "sock")
        os.mkdir(self.sock)
        self.as_pg = []
        if os.geteuid() == 0:
            self.as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        subprocess.run(self.as_pg + [f"{self.bin}/initdb", "--username=postgres", "--auth-local=trust",
                                     "--auth-host=scram-sha-256", "--no-sync", "-D", self.data],
                       check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.path.join(self.dir, "postgres.log"), "w")
        self.proc = subprocess.Popen(
            self.as_pg + [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port),
                          "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sock}",
                          "-c", "fsync=off"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while self.admin("SELECT 1", check=False).returncode != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("postgres did not start")
            time.sleep(0.05)
        self.admin(f"CREATE ROLE {PG_ROOT_USER} SUPERUSER LOGIN PASSWORD '{PG_ROOT_PW}'; "
                   "CREATE TABLE public.things (id int); INSERT INTO public.things VALUES (1), (2);")

    def admin(self, sql, check=True):
        return subprocess.run([f"{self.bin}/psql", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
                               "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                              capture_output=True, text=True, check=check)

    def login(self, user, password, sql="SELECT count(*) FROM public.things"):
        """Run `sql` over TCP as `user`; returns (exit code, output)."""
        r = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                            "-d", "postgres", "-w", "-tAc", sql],
                           capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password})
        return r.returncode, r.stdout.strip()

    def url(self):
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def stop(self):
        self.proc.send_signal(2)  # SIGINT: fast shutdown
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    pg = _Postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def database(root_client, postgres):
    """`database/` mounted and configured against the module's cluster."""
    root_client.sys.enable_secrets_engine("database", path="database")
    db = root_client.secrets.database
    db.configure(name="pg", plugin_name="postgresql-database-plugin", allowed_roles=["ro", "static-*"],
                 connection_url=postgres.url(), username=PG_ROOT_USER, password=PG_ROOT_PW)
    return db


def test_database_connection_config(database, postgres):
    conn = database.read_connection(name="pg")["data"]
    assert conn["plugin_name"] == "postgresql-database-plugin"
    assert conn["allowed_roles"] == ["ro", "static-*"]
    assert conn["connection_details"]["username"] == PG_ROOT_USER
    assert PG_ROOT_PW not in json.dumps(conn)
    assert database.list_connections()["data"]["keys"] == ["pg"]
    with pytest.raises(exceptions.InvalidRequest) as bad:
        database.configure(name="bad", plugin_name="postgresql-database-plugin", connection_url=postgres.url(),
                           username=PG_ROOT_USER, password="Not-The-Password")
    assert "Not-The-Password" not in str(bad.value)
    with pytest.raises(exceptions.InvalidRequest):
        database.configure(name="bad", plugin_name="mysql-database-plugin", connection_url=postgres.url())
    database.reset_connection(name="pg")


def test_database_dynamic_roles_and_creds(database, postgres):
    database.create_role(name="ro", db_name="pg", creation_statements=[PG_CREATE],
                         default_ttl="1h", max_ttl="24h")
    role = database.read_role(name="ro")["data"]
    assert role["db_name"] == "pg" and role["default_ttl"] == 3600 and role["max_ttl"] == 86400
    assert role["creation_statements"] == [PG_CREATE]
    assert "ro" in database.list_roles()["data"]["keys"]
    creds = database.generate_credentials(name="ro")["data"]
    assert postgres.login(creds["username"], creds["password"]) == (0, "2")
    assert postgres.login(creds["username"], "wrong")[0] != 0
    # A role the connection does not allow.
    database.create_role(name="other", db_name="pg", creation_statements=[PG_CREATE])
    with pytest.raises(exceptions.InvalidRequest):
        database.generate_credentials(name="other")
    database.delete_role(name="other")
    assert "other" not in database.list_roles()["data"]["keys"]
    with pytest.raises(exceptions.InvalidPath):
        database.read_role(name="other")


def test_database_rotate_root(database, postgres):
    assert postgres.login(PG_ROOT_USER, PG_ROOT_PW)[0] == 0
    database.rotate_root_credentials(name="pg")
    assert postgres.login(PG_ROOT_USER, PG_ROOT_PW)[0] != 0
    creds = database.generate_credentials(name="ro")["data"]
    assert postgres.login(creds["username"], creds["password"]) == (0, "2")


def test_database_static_roles(database, postgres):
    postgres.admin("CREATE ROLE app_static LOGIN PASSWORD 'Initial-Pw-1'; GRANT SELECT ON public.things TO app_static;")
    database.create_static_role(name="static-app", db_name="pg", username="app_static",
                                rotation_statements=[], rotation_period=3600)
    role = database.read_static_role(name="static-app")["data"]
    assert role["username"] == "app_static" and role["rotation_period"] == 3600
    assert "password" not in role
    assert database.list_static_roles()["data"]["keys"] == ["static-app"]
    first = database.get_static_credentials(name="static-app")["data"]
    assert first["username"] == "app_static" and 3500 < first["ttl"] <= 3600
    assert postgres.login("app_static", "Initial-Pw-1")[0] != 0
    assert postgres.login("app_static", first["password"]) == (0, "2")
    database.rotate_static_role_credentials(name="static-app")
    second = database.get_static_credentials(name="static-app")["data"]
    assert second["password"] != first["password"]
    assert postgres.login("app_static", first["password"])[0] != 0
    assert postgres.login("app_static", second["password"]) == (0, "2")
    with pytest.raises(exceptions.InvalidRequest):
        database.create_static_role(name="static-fast", db_name="pg", username="app_static",
                                    rotation_statements=[], rotation_period=2)
    database.delete_static_role(name="static-app")
    with pytest.raises(exceptions.InvalidPath):
        database.read_static_role(name="static-app")

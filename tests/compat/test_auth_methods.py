"""Compatibility (issue 12, items 5-9, 11, 16): kubernetes, gcp and jwt/oidc answers as Vault's,
with the real hvac client."""
import json
import time

import hvac
import pytest
import requests
from hvac import exceptions

from test_hvac import _RsaSigner, _self_signed_cert


def _k8s_claims(ns, sa):
    now = int(time.time())
    return {"iss": "https://kubernetes.default.svc", "aud": ["vault"],
            "sub": f"system:serviceaccount:{ns}:{sa}", "iat": now, "nbf": now, "exp": now + 600,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "u-1"}}}


def test_kubernetes_role_with_both_bindings_star(server, root_client):
    """Vault's plugin allows names and namespaces both "*" (since v0.6.0); hushd warns."""
    signer = _RsaSigner("k1")
    root_client.sys.enable_auth_method("kubernetes", path="k8s-star")
    root_client.auth.kubernetes.configure(kubernetes_host="", pem_keys=[_self_signed_cert(signer)],
                                          mount_point="k8s-star")
    resp = root_client.auth.kubernetes.create_role(
        name="any", bound_service_account_names="*", bound_service_account_namespaces="*",
        policies=["default"], mount_point="k8s-star")
    # hvac hands back the JSON body of a 200 (a 204 would be a Response object).
    assert any("any service account" in w for w in resp["warnings"])
    role = root_client.auth.kubernetes.read_role(name="any", mount_point="k8s-star")
    assert role["bound_service_account_names"] == ["*"]
    assert role["bound_service_account_namespaces"] == ["*"]
    login = hvac.Client(url=server.addr).auth.kubernetes.login(
        role="any", jwt=signer.sign(_k8s_claims("ns-a", "sa-b")), mount_point="k8s-star")
    assert login["auth"]["metadata"]["service_account_namespace"] == "ns-a"
    # "*" mixed with other values is refused, as in Vault.
    with pytest.raises(exceptions.InvalidRequest, match="can not mix"):
        root_client.auth.kubernetes.create_role(
            name="mixed", bound_service_account_names=["*", "web"],
            bound_service_account_namespaces="*", mount_point="k8s-star")
    root_client.sys.disable_auth_method("k8s-star")


def test_gcp_config_shows_the_public_fields_of_the_credentials(root_client):
    """Vault's GET config shows project_id, client_email, client_id and private_key_id of the
    stored key, never the private key."""
    root_client.sys.enable_auth_method("gcp", path="gcp-cfg")
    key = {"type": "service_account", "project_id": "proj-7", "private_key_id": "0a1b2c",
           "private_key": "-----BEGIN PRIVATE KEY-----\nnever-shown\n-----END PRIVATE KEY-----\n",
           "client_email": "vault@proj-7.iam.gserviceaccount.com", "client_id": "1234567890",
           "token_uri": "https://oauth2.googleapis.com/token"}
    root_client.auth.gcp.configure(credentials=json.dumps(key), mount_point="gcp-cfg")
    config = root_client.auth.gcp.read_config(mount_point="gcp-cfg")
    assert config["project_id"] == "proj-7"
    assert config["client_email"] == "vault@proj-7.iam.gserviceaccount.com"
    assert config["client_id"] == "1234567890"
    assert config["private_key_id"] == "0a1b2c"
    assert "never-shown" not in json.dumps(config) and "private_key" not in config
    # Credentials that are not a JSON object are refused (400), the key not echoed.
    with pytest.raises(exceptions.InvalidRequest) as e:
        root_client.auth.gcp.configure(credentials="never-shown", mount_point="gcp-cfg")
    assert "never-shown" not in str(e.value)
    root_client.sys.disable_auth_method("gcp-cfg")


def test_gcp_edit_service_accounts_with_nothing_to_do(root_client):
    """hvac's own integration test expects Vault's message."""
    root_client.sys.enable_auth_method("gcp", path="gcp-sa")
    root_client.auth.gcp.create_role(name="hvac", role_type="iam", project_id="proj",
                                     bound_service_accounts=["a@proj.iam.gserviceaccount.com"],
                                     mount_point="gcp-sa")
    with pytest.raises(exceptions.InvalidRequest,
                       match="must provide at least one value to add or remove"):
        root_client.auth.gcp.edit_service_accounts_on_iam_role(name="hvac", mount_point="gcp-sa")
    root_client.auth.gcp.edit_service_accounts_on_iam_role(
        name="hvac", add=["b@proj.iam.gserviceaccount.com"], mount_point="gcp-sa")
    assert root_client.auth.gcp.read_role(name="hvac", mount_point="gcp-sa")[
        "bound_service_accounts"] == ["a@proj.iam.gserviceaccount.com", "b@proj.iam.gserviceaccount.com"]
    root_client.sys.disable_auth_method("gcp-sa")


def _openssl_self_signed(tmp_path, name):
    """`openssl req -x509` as an operator runs it: a self-signed certificate that is also a CA
    (basicConstraints CA:TRUE, OpenSSL's default v3_ca section), for 127.0.0.1."""
    import subprocess
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(cert)],
                          check=True, capture_output=True, text=True).stdout
    assert "CA:TRUE" in text
    return cert, key


def _https_idp(cert_file, key_file, docs, reviews):
    """An HTTPS server with the given certificate: GET path -> JSON from `docs`, and the
    Kubernetes TokenReview endpoint answering from `reviews` (token -> service account)."""
    import http.server
    import ssl
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, status, body):
            body = body.encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            body = docs.get(self.path)
            self._send(200 if body else 404, body or "{}")

        def do_POST(self):
            spec = json.loads(self.rfile.read(int(self.headers["content-length"])))["spec"]
            who = reviews.get(spec["token"])
            status = {"authenticated": False}
            if who:
                status = {"authenticated": True, "audiences": spec.get("audiences", []),
                          "user": {"username": f"system:serviceaccount:{who[0]}:{who[1]}", "uid": "u-1"}}
            self._send(201, json.dumps({"kind": "TokenReview", "status": status}))

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"https://127.0.0.1:{httpd.server_address[1]}", httpd


def test_outbound_tls_trusts_a_self_signed_ca_certificate(server, root_client, tmp_path):
    """OIDC discovery, JWKS and TokenReview against a server whose certificate is the one
    given as CA PEM, made by `openssl req -x509` (CA:TRUE), as Vault accepts; a wrong CA
    answers an error that says what failed."""
    cert_file, key_file = _openssl_self_signed(tmp_path, "idp")
    ca_pem = cert_file.read_text()
    docs, reviews = {}, {}
    base, httpd = _https_idp(cert_file, key_file, docs, reviews)
    signer = _RsaSigner("idp-1")
    docs["/.well-known/openid-configuration"] = json.dumps({"issuer": base, "jwks_uri": base + "/keys"})
    docs["/keys"] = signer.jwks()
    now = int(time.time())
    claims = {"iss": base, "sub": "alice", "aud": "hush", "iat": now, "exp": now + 300}

    for path, config in [
        ("oidc-ss", {"oidc_discovery_url": base, "oidc_discovery_ca_pem": ca_pem}),
        ("jwks-ss", {"jwks_url": base + "/keys", "jwks_ca_pem": ca_pem, "bound_issuer": base}),
    ]:
        root_client.sys.enable_auth_method("jwt", path=path)
        root_client.auth.jwt.configure(path=path, **config)
        root_client.auth.jwt.create_role(name="r", role_type="jwt", user_claim="sub",
                                         bound_audiences=["hush"], allowed_redirect_uris=[],
                                         token_policies=["default"], path=path)
        resp = hvac.Client(url=server.addr).auth.jwt.jwt_login(role="r", jwt=signer.sign(claims), path=path)
        assert resp["auth"]["metadata"]["role"] == "r" and resp["auth"]["client_token"]

    # Kubernetes TokenReview against the same server.
    root_client.sys.enable_auth_method("kubernetes", path="k8s-ss")
    root_client.auth.kubernetes.configure(kubernetes_host=base, kubernetes_ca_cert=ca_pem,
                                          mount_point="k8s-ss")
    root_client.auth.kubernetes.create_role(
        name="web", bound_service_account_names=["web"], bound_service_account_namespaces=["prod"],
        policies=["default"], mount_point="k8s-ss")
    sa_jwt = signer.sign(_k8s_claims("prod", "web"))
    reviews[sa_jwt] = ("prod", "web")
    resp = hvac.Client(url=server.addr).auth.kubernetes.login(role="web", jwt=sa_jwt, mount_point="k8s-ss")
    assert resp["auth"]["metadata"]["service_account_name"] == "web"

    # Another self-signed certificate as the CA: refused, saying why (not "cannot connect").
    other_cert, _ = _openssl_self_signed(tmp_path, "other")
    with pytest.raises(exceptions.InvalidRequest) as e:
        root_client.auth.jwt.configure(oidc_discovery_url=base,
                                       oidc_discovery_ca_pem=other_cert.read_text(), path="oidc-ss")
    msg = str(e.value)
    assert "TLS handshake failed" in msg and "CA:TRUE" in msg, msg
    root_client.auth.kubernetes.configure(kubernetes_host=base, kubernetes_ca_cert=other_cert.read_text(),
                                          mount_point="k8s-ss")
    with pytest.raises(exceptions.VaultError) as e:
        hvac.Client(url=server.addr).auth.kubernetes.login(role="web", jwt=sa_jwt, mount_point="k8s-ss")
    assert "TLS handshake failed" in str(e.value), str(e.value)
    for path in ("oidc-ss", "jwks-ss", "k8s-ss"):
        root_client.sys.disable_auth_method(path)
    httpd.shutdown()


def test_config_pems_read_back_as_written(server, root_client, tmp_path):
    """kubernetes_ca_cert, jwks_ca_pem and oidc_discovery_ca_pem are Vault TypeString fields:
    read back exactly as written (a trimmed PEM would be a Terraform diff forever). pem_keys and
    jwt_validation_pubkeys are TypeCommaStringSlice in Vault, each entry TrimSpace'd: so here."""
    cert_file, key_file = _openssl_self_signed(tmp_path, "pem")
    ca_pem = cert_file.read_text()
    assert ca_pem.endswith("-----\n")
    docs = {}
    base, httpd = _https_idp(cert_file, key_file, docs, {})
    signer = _RsaSigner("p1")
    docs["/.well-known/openid-configuration"] = json.dumps({"issuer": base, "jwks_uri": base + "/keys"})
    docs["/keys"] = signer.jwks()

    root_client.sys.enable_auth_method("kubernetes", path="k8s-pem")
    key_pem = _self_signed_cert(signer)
    root_client.auth.kubernetes.configure(kubernetes_host=base, kubernetes_ca_cert=ca_pem,
                                          pem_keys=["\n" + key_pem + "\n"], mount_point="k8s-pem")
    config = root_client.auth.kubernetes.read_config(mount_point="k8s-pem")
    assert config["kubernetes_ca_cert"] == ca_pem
    assert config["pem_keys"] == [key_pem.strip()]

    for path, config in [("jwt-pem1", {"jwks_url": base + "/keys", "jwks_ca_pem": ca_pem}),
                         ("jwt-pem2", {"oidc_discovery_url": base, "oidc_discovery_ca_pem": ca_pem})]:
        root_client.sys.enable_auth_method("jwt", path=path)
        root_client.auth.jwt.configure(path=path, **config)
        read = root_client.auth.jwt.read_config(path=path)["data"]
        for k, v in config.items():
            assert read[k] == v, k
    root_client.sys.enable_auth_method("jwt", path="jwt-pem3")
    root_client.auth.jwt.configure(jwt_validation_pubkeys=[key_pem], path="jwt-pem3")
    assert root_client.auth.jwt.read_config(path="jwt-pem3")["data"]["jwt_validation_pubkeys"] == [key_pem.strip()]
    # A CA PEM that is not a string: 400 naming it.
    r = requests.post(server.addr + "/v1/auth/jwt-pem1/config", headers={"X-Vault-Token": root_client.token},
                      json={"jwks_url": base + "/keys", "jwks_ca_pem": 5})
    assert r.status_code == 400 and "jwks_ca_pem must be a string" in r.json()["errors"][0]
    for path in ("k8s-pem", "jwt-pem1", "jwt-pem2", "jwt-pem3"):
        root_client.sys.disable_auth_method(path)
    httpd.shutdown()


def test_jwt_role_keeps_redirect_uris_and_scopes(root_client):
    root_client.sys.enable_auth_method("jwt", path="jwt-role")
    root_client.auth.jwt.configure(jwt_validation_pubkeys=[_self_signed_cert(_RsaSigner("r1"))], path="jwt-role")
    uris = ["https://vault.example/ui/vault/auth/oidc/oidc/callback", "http://localhost:8250/oidc/callback"]
    root_client.auth.jwt.create_role(name="r", role_type="jwt", user_claim="sub", bound_audiences=["hush"],
                                     allowed_redirect_uris=uris, oidc_scopes=["profile", "email"],
                                     path="jwt-role")
    role = root_client.auth.jwt.read_role(name="r", path="jwt-role")["data"]
    assert role["allowed_redirect_uris"] == uris
    assert role["oidc_scopes"] == ["profile", "email"]
    # Updating another field keeps them.
    root_client.adapter.post("/v1/auth/jwt-role/role/r", json={"user_claim": "email"})
    role = root_client.auth.jwt.read_role(name="r", path="jwt-role")["data"]
    assert role["user_claim"] == "email" and role["oidc_scopes"] == ["profile", "email"]
    with pytest.raises(exceptions.InvalidRequest, match="oidc_scopes"):
        root_client.adapter.post("/v1/auth/jwt-role/role/r", json={"oidc_scopes": {"a": 1}})
    root_client.sys.disable_auth_method("jwt-role")

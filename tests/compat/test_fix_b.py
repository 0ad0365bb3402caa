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

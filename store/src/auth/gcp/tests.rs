//! Route and login tests of the `gcp` method over a real barrier, with a local HTTPS "Google"
//! (a CA made in the test) serving the key documents of keys made in the test.

use std::sync::Arc;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::GcpBackend;
use crate::auth::jws::tests::{b64_json, es256, rsa_a, rsa_b, TestKey};
use crate::auth::jws::tests_remote::{start, Server};
use crate::auth::jws::unix_now;
use crate::barrier::BarrierView;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

const SA: &str = "web@proj.iam.gserviceaccount.com";
const VM_SA: &str = "vm-sa@proj.iam.gserviceaccount.com";
const SA_PATH: &str = "/service_accounts/v1/metadata/jwk/web@proj.iam.gserviceaccount.com";
const CERTS: &str = "/oauth2/v3/certs";

fn jwks(key: &TestKey, kid: &str) -> String {
    json!({"keys": [key.jwk_with(kid)]}).to_string()
}

/// Google signs with an RSA key (`g1`); the service account with its own EC key (`sa1`).
fn google_key() -> &'static TestKey {
    rsa_a()
}
fn sa_key() -> &'static TestKey {
    es256()
}

async fn call(
    b: &GcpBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    b.handle(&Request::new(op, path).with_data(body)).await
}

async fn ok(b: &GcpBackend, path: &str, body: Value) {
    call(b, Operation::Update, path, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
}

async fn backend() -> GcpBackend {
    let storage = Arc::new(crate::storage::MemoryBackend::new());
    let barrier = Arc::new(crate::barrier::Barrier::new(storage));
    barrier
        .initialize(&crate::barrier::KeyBytes::random())
        .await
        .unwrap();
    GcpBackend::new(BarrierView::new(barrier, "auth/gcp/"))
        .await
        .unwrap()
}

/// A server with both documents, and a backend pointed at it with roles:
/// `web` (iam, SA, project proj), `vm` (gce, proj, zone us-central1-a, VM_SA),
/// `regional` (gce, region us-central1), `strict` (iam VM_SA, no gce inference),
/// `inferred` (iam VM_SA, gce inference).
async fn ready() -> (Server, GcpBackend) {
    let srv = start().await;
    srv.set(CERTS, jwks(google_key(), "g1"));
    srv.set(SA_PATH, jwks(sa_key(), "sa1"));
    let b = backend().await;
    ok(
        &b,
        "config",
        json!({"custom_endpoint": {"api": srv.url("")}, "custom_endpoint_ca_pem": srv.ca_pem,
               "credentials": "{\"private_key\": \"very-secret-key\"}"}),
    )
    .await;
    ok(
        &b,
        "role/web",
        json!({"type": "iam", "bound_service_accounts": [SA], "bound_projects": "proj",
               "token_policies": "app", "token_ttl": "10m"}),
    )
    .await;
    ok(
        &b,
        "role/vm",
        json!({"type": "gce", "bound_projects": ["proj"], "bound_zones": "us-central1-a",
               "bound_service_accounts": VM_SA, "policies": ["vm"]}),
    )
    .await;
    ok(
        &b,
        "role/regional",
        json!({"type": "gce", "bound_regions": "us-central1"}),
    )
    .await;
    ok(
        &b,
        "role/strict",
        json!({"type": "iam", "bound_service_accounts": VM_SA, "allow_gce_inference": false}),
    )
    .await;
    ok(
        &b,
        "role/inferred",
        json!({"type": "iam", "bound_service_accounts": "*", "bound_projects": "proj"}),
    )
    .await;
    (srv, b)
}

fn iam_claims(role: &str) -> Value {
    let now = unix_now();
    json!({"sub": SA, "aud": format!("vault/{role}"), "exp": now + 600, "iat": now - 5})
}

fn gce_claims(role: &str) -> Value {
    let now = unix_now();
    json!({"iss": "https://accounts.google.com", "aud": format!("http://vault/{role}"),
           "azp": "1122", "sub": "1122", "email": VM_SA, "email_verified": true,
           "exp": now + 3600, "iat": now - 5,
           "google": {"compute_engine": {"project_id": "proj", "project_number": 4455,
               "zone": "us-central1-a", "instance_id": "987", "instance_name": "vm-1",
               "instance_creation_timestamp": 1_700_000_000u64}}})
}

fn with(mut c: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn iam_token(claims: &Value) -> String {
    sa_key().sign(Some("sa1"), claims)
}

fn gce_token(claims: &Value) -> String {
    google_key().sign(Some("g1"), claims)
}

async fn login(b: &GcpBackend, role: &str, jwt: &str) -> Result<Response, LogicalError> {
    call(
        b,
        Operation::Update,
        "login",
        json!({"role": role, "jwt": jwt}),
    )
    .await
}

async fn refused(b: &GcpBackend, what: &str, role: &str, jwt: &str, want: &str) {
    let e = login(b, role, jwt)
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: accepted"));
    let msg = e.to_string();
    assert_eq!(e.status(), 400, "{what}: {msg}");
    assert!(msg.contains(want), "{what}: {msg}");
    assert!(!msg.contains(jwt), "{what}: token echoed");
}

#[tokio::test]
async fn iam_login_grants_the_role() {
    let (srv, b) = ready().await;
    let r = login(&b, "web", &iam_token(&iam_claims("web")))
        .await
        .unwrap();
    let g = r.login.expect("a login");
    assert_eq!(g.policies, vec!["app"]);
    assert_eq!(g.ttl, 600);
    assert_eq!(g.display_name, SA);
    assert_eq!(g.metadata["service_account_email"], SA);
    assert_eq!(g.metadata["project_id"], "proj");
    assert_eq!(g.metadata["role"], "web");
    // Both audience forms; the keys are cached per account.
    let https = with(iam_claims("web"), json!({"aud": "https://vault/web"}));
    login(&b, "web", &iam_token(&https)).await.unwrap();
    assert_eq!(srv.hits(SA_PATH), 1);
}

#[tokio::test]
async fn gce_login_grants_the_role_with_instance_metadata() {
    let (srv, b) = ready().await;
    let g = login(&b, "vm", &gce_token(&gce_claims("vm")))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(g.policies, vec!["vm"]);
    assert_eq!(g.display_name, "vm-1");
    for (k, v) in [
        ("instance_id", "987"),
        ("instance_name", "vm-1"),
        ("project_id", "proj"),
        ("project_number", "4455"),
        ("zone", "us-central1-a"),
        ("service_account_id", "1122"),
        ("service_account_email", VM_SA),
        ("role", "vm"),
    ] {
        assert_eq!(g.metadata[k], v, "{k}");
    }
    let iss = with(
        gce_claims("regional"),
        json!({"iss": "accounts.google.com"}),
    );
    login(&b, "regional", &gce_token(&iss)).await.unwrap();
    // A GCE token at an iam role that allows inference: checked as its service account.
    let g = login(&b, "inferred", &gce_token(&gce_claims("inferred")))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(
        (g.display_name.as_str(), g.metadata.get("zone")),
        (VM_SA, None)
    );
    assert_eq!(srv.hits(CERTS), 1);
}

#[tokio::test]
async fn the_config_chooses_the_token_metadata() {
    let (_srv, b) = ready().await;
    ok(
        &b,
        "config",
        json!({"iam_metadata": ["role"], "gce_metadata": ["zone", "instance_name"]}),
    )
    .await;
    let keys = |g: &crate::logical::LoginGrant| g.metadata.keys().cloned().collect::<Vec<_>>();
    let iam = login(&b, "web", &iam_token(&iam_claims("web")))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(keys(&iam), ["role"]);
    let gce = login(&b, "vm", &gce_token(&gce_claims("vm")))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(keys(&gce), ["instance_name", "zone"]);
    assert_eq!(gce.metadata["zone"], "us-central1-a");
    // Back to every field.
    ok(&b, "config", json!({"iam_metadata": ["default"]})).await;
    let iam = login(&b, "web", &iam_token(&iam_claims("web")))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(iam.metadata.len(), 4, "{:?}", iam.metadata);
}

#[tokio::test]
async fn bad_times_and_audiences_are_refused() {
    let (_srv, b) = ready().await;
    let now = unix_now();
    let iam = |p: Value| iam_token(&with(iam_claims("web"), p));
    let gce = |p: Value| gce_token(&with(gce_claims("vm"), p));
    refused(
        &b,
        "iam expired",
        "web",
        &iam(json!({"exp": now - 600})),
        "expired",
    )
    .await;
    refused(
        &b,
        "gce expired",
        "vm",
        &gce(json!({"exp": now - 600})),
        "expired",
    )
    .await;
    refused(
        &b,
        "iam nbf",
        "web",
        &iam(json!({"nbf": now + 600})),
        "not yet valid",
    )
    .await;
    refused(
        &b,
        "gce iat",
        "vm",
        &gce(json!({"iat": now + 600})),
        "not yet valid",
    )
    .await;
    refused(&b, "iam no exp", "web", &iam(json!({"exp": null})), "exp").await;
    refused(
        &b,
        "exp too far",
        "web",
        &iam(json!({"exp": now + 3600})),
        "must expire within",
    )
    .await;
    refused(
        &b,
        "iam aud",
        "web",
        &iam(json!({"aud": "vault/vm"})),
        "audience",
    )
    .await;
    refused(
        &b,
        "iam no aud",
        "web",
        &iam(json!({"aud": null})),
        "audience",
    )
    .await;
    refused(
        &b,
        "gce aud",
        "vm",
        &gce(json!({"aud": "https://evilvault/vm"})),
        "audience",
    )
    .await;
    refused(
        &b,
        "gce issuer",
        "vm",
        &gce(json!({"iss": "https://evil.test"})),
        "issuer",
    )
    .await;
    // max_jwt_exp can be raised.
    ok(&b, "role/web", json!({"max_jwt_exp": "2h"})).await;
    login(&b, "web", &iam(json!({"exp": now + 3600})))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_bindings_are_refused() {
    let (srv, b) = ready().await;
    let gce = |p: Value| gce_token(&with(gce_claims("vm"), p));
    let ce = |patch: Value| {
        let mut c = gce_claims("vm");
        for (k, v) in patch.as_object().unwrap() {
            c["google"]["compute_engine"][k] = v.clone();
        }
        gce_token(&c)
    };
    let other = "other@proj.iam.gserviceaccount.com";
    let iam_other = iam_token(&with(iam_claims("web"), json!({"sub": other})));
    refused(&b, "iam account", "web", &iam_other, "not authorized").await;
    let foreign_project = "web@elsewhere.iam.gserviceaccount.com";
    let t = iam_token(&with(
        iam_claims("inferred"),
        json!({"sub": foreign_project}),
    ));
    refused(&b, "iam project", "inferred", &t, "bound_projects").await;
    let t = iam_token(&with(iam_claims("web"), json!({"sub": "web"})));
    refused(&b, "iam sub", "web", &t, "sub claim").await;
    // Refused before any key fetch for the unbound accounts.
    assert_eq!(
        srv.hits(&format!("/service_accounts/v1/metadata/jwk/{other}")),
        0
    );
    refused(
        &b,
        "gce account",
        "vm",
        &gce(json!({"email": other})),
        "not authorized",
    )
    .await;
    refused(
        &b,
        "gce project",
        "vm",
        &ce(json!({"project_id": "nope"})),
        "bound_projects",
    )
    .await;
    refused(
        &b,
        "gce zone",
        "vm",
        &ce(json!({"zone": "us-east1-b"})),
        "bound_zones",
    )
    .await;
    let t = gce_token(&with(gce_claims("regional"), json!({})));
    login(&b, "regional", &t).await.unwrap();
    let mut c = gce_claims("regional");
    c["google"]["compute_engine"]["zone"] = json!("europe-west1-b");
    refused(
        &b,
        "gce region",
        "regional",
        &gce_token(&c),
        "bound_regions",
    )
    .await;
    let mut c = gce_claims("vm");
    c["google"]["compute_engine"]
        .as_object_mut()
        .unwrap()
        .remove("zone");
    refused(&b, "gce no zone", "vm", &gce_token(&c), "zone").await;
    refused(
        &b,
        "gce token at iam",
        "strict",
        &gce_token(&gce_claims("strict")),
        "allow_gce_inference",
    )
    .await;
    refused(
        &b,
        "iam token at gce",
        "vm",
        &iam_token(&iam_claims("vm")),
        "compute_engine",
    )
    .await;
    refused(
        &b,
        "unknown role",
        "nope",
        &iam_token(&iam_claims("nope")),
        "role \"nope\" not found",
    )
    .await;
}

#[tokio::test]
async fn bad_keys_and_algorithms_are_refused() {
    let (_srv, b) = ready().await;
    let claims = iam_claims("web");
    refused(
        &b,
        "foreign iam key",
        "web",
        &rsa_b().sign(Some("sa1"), &claims),
        "no key",
    )
    .await;
    let es_foreign = crate::auth::jws::tests::es256_other();
    refused(
        &b,
        "foreign iam key, same kind",
        "web",
        &es_foreign.sign(Some("sa1"), &claims),
        "signature",
    )
    .await;
    refused(
        &b,
        "foreign gce key",
        "vm",
        &rsa_b().sign(Some("g1"), &gce_claims("vm")),
        "signature",
    )
    .await;
    // A service account's key cannot sign a GCE token, nor Google's key an iam one.
    refused(
        &b,
        "gce token, SA key",
        "vm",
        &sa_key().sign(Some("sa1"), &gce_claims("vm")),
        "no key",
    )
    .await;
    let none = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none"})),
        b64_json(&claims)
    );
    refused(&b, "alg none", "web", &none, "algorithm").await;
    let hs = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(sa_key().public_pem.as_bytes()),
    )
    .unwrap();
    refused(&b, "HS256 with the public key", "web", &hs, "algorithm").await;
    refused(&b, "garbage", "web", "a.b", "malformed").await;
    let e = call(&b, Operation::Update, "login", json!({"role": "web"}))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "jwt is required");
}

#[tokio::test]
async fn routes_config_and_roles() {
    let b = backend().await;
    let read = |p: &'static str| call(&b, Operation::Read, p, json!({}));
    assert_eq!(read("config").await.unwrap_err().status(), 404);
    assert_eq!(
        call(&b, Operation::List, "roles", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    ok(
        &b,
        "config",
        json!({"credentials": "{\"private_key\": \"very-secret-key\"}",
                            "google_certs_endpoint": "https://www.googleapis.com/oauth2/v3/certs"}),
    )
    .await;
    let c = read("config").await.unwrap().data.unwrap();
    assert!(!Value::Object(c.clone())
        .to_string()
        .contains("very-secret-key"));
    assert_eq!(c["iam_alias"], "role_id");
    let e = call(
        &b,
        Operation::Update,
        "config",
        json!({"custom_endpoint_ca_pem": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400, "{e}");
    ok(&b, "role/a", json!({"type": "gce", "project_id": "p"})).await;
    ok(
        &b,
        "role/b",
        json!({"type": "iam", "bound_service_accounts": SA}),
    )
    .await;
    for p in ["role", "roles"] {
        let keys = call(&b, Operation::List, p, json!({}))
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(keys["keys"], json!(["a", "b"]));
    }
    let r = read("role/a").await.unwrap().data.unwrap();
    assert_eq!(
        (r["role_type"].as_str(), r["bound_projects"].clone()),
        (Some("gce"), json!(["p"]))
    );
    let e = call(&b, Operation::Update, "role/a", json!({"type": "iam"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot be changed"), "{e}");
    let e = call(&b, Operation::Update, "role/a/b", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404, "{e}");
    call(&b, Operation::Delete, "role/a", json!({}))
        .await
        .unwrap();
    assert_eq!(read("role/a").await.unwrap_err().status(), 404);
    assert_eq!(
        read("role/b").await.unwrap().data.unwrap()["max_jwt_exp"],
        900
    );
}

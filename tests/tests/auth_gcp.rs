//! The `gcp` auth method end to end against a real `hushd --dev` over HTTP: enable it, point
//! `custom_endpoint.api` at a local HTTPS "Google" (test CA given as `custom_endpoint_ca_pem`)
//! serving key documents of keys made in the test, log in with an iam JWT and a GCE identity
//! token, use the token (allowed and refused), and refuse bad tokens with a 400 that does not
//! echo them.
//!
//! hushd refuses logins after 10 failures per minute from one address, so the negative cases
//! are spread over two servers.

mod gcp_support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gcp_support::{now, FakeGoogle, Key, CERTS, SA, VM_SA};
use hush_tests::login::{assert_jwt_refused, jwt_login};
use hush_tests::Hushd;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

async fn login(h: &Hushd, role: &str, jwt: &str) -> (u16, Value) {
    jwt_login(h, "gcp", role, jwt).await
}

async fn refused(h: &Hushd, what: &str, role: &str, jwt: &str, want: &str) {
    assert_jwt_refused(h, "gcp", what, role, jwt, want).await
}

/// Log in, check the grant, and use the token on an allowed and a refused path.
async fn login_and_use(h: &Hushd, role: &str, jwt: &str, display: &str) -> Value {
    let (s, b) = login(h, role, jwt).await;
    assert_eq!(s, 200, "{role}: {b}");
    let auth = b["auth"].clone();
    assert_eq!(auth["policies"], json!(["app", "default"]));
    let token = auth["client_token"].as_str().unwrap().to_string();
    let (s, b) = h
        .call_as(Some(&token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "p");
    let (s, _) = h
        .call_as(Some(&token), "GET", "secret/data/other", None)
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["path"], "auth/gcp/login");
    let name = b["data"]["display_name"].as_str().unwrap();
    assert!(name.contains(display), "{name}");
    auth
}

#[tokio::test]
async fn iam_and_gce_logins_get_the_roles_policies() {
    let g = FakeGoogle::start().await;
    let h = Hushd::dev().await;
    g.setup(&h).await;
    h.kv_put("app/db", json!({"password": "p"})).await;
    let (s, b) = h.call("GET", "sys/auth", None).await;
    assert_eq!((s, b["data"]["gcp/"]["type"].as_str()), (200, Some("gcp")));
    let (s, b) = h.call("GET", "auth/gcp/config", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["custom_endpoint"]["api"], g.server.base);
    assert!(!b.to_string().contains("never-shown"), "{b}");
    let (s, b) = h.call("LIST", "auth/gcp/roles", None).await;
    assert_eq!((s, b["data"]["keys"].clone()), (200, json!(["vm", "web"])));

    let auth = login_and_use(&h, "web", &g.iam_token("web", json!({})), SA).await;
    assert_eq!(auth["lease_duration"], 900);
    assert_eq!(auth["metadata"]["service_account_email"], SA);
    assert_eq!(auth["metadata"]["project_id"], "proj");
    assert_eq!(auth["metadata"]["role"], "web");

    let auth = login_and_use(&h, "vm", &g.gce_token("vm", json!({})), "vm-1").await;
    assert_eq!(auth["metadata"]["instance_name"], "vm-1");
    assert_eq!(auth["metadata"]["zone"], "us-central1-a");
    assert_eq!(auth["metadata"]["service_account_email"], VM_SA);
    assert_eq!(g.server.hits(CERTS), 1);

    // Roles read back with Vault's fields; bindings hushd cannot check are refused.
    let (s, b) = h.call("GET", "auth/gcp/role/web", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["max_jwt_exp"], 900);
    assert_eq!(b["data"]["bound_service_accounts"], json!([SA]));
    let (s, b) = h
        .call(
            "POST",
            "auth/gcp/role/labels",
            Some(json!({"type": "gce", "bound_projects": "proj", "bound_labels": "env:prod"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0].as_str().unwrap().contains("bound_labels"),
        "{b}"
    );
}

#[tokio::test]
async fn expired_audience_and_time_windows_are_refused() {
    let g = FakeGoogle::start().await;
    let h = Hushd::dev().await;
    g.setup(&h).await;
    let now = now();
    let cases = [
        (
            "iam expired",
            "web",
            g.iam_token("web", json!({"exp": now - 600})),
            "expired",
        ),
        (
            "gce expired",
            "vm",
            g.gce_token("vm", json!({"exp": now - 600})),
            "expired",
        ),
        (
            "iam not yet valid",
            "web",
            g.iam_token("web", json!({"nbf": now + 600})),
            "not yet valid",
        ),
        (
            "iam exp too far",
            "web",
            g.iam_token("web", json!({"exp": now + 7200})),
            "must expire within",
        ),
        (
            "iam audience",
            "web",
            g.iam_token("web", json!({"aud": "vault/vm"})),
            "audience",
        ),
        (
            "gce audience",
            "vm",
            g.gce_token("vm", json!({"aud": "http://vault/web"})),
            "audience",
        ),
        (
            "gce issuer",
            "vm",
            g.gce_token("vm", json!({"iss": "https://evil.test"})),
            "issuer",
        ),
        (
            "gce token at iam",
            "web",
            g.gce_token("web", json!({"email": "x@proj.iam.gserviceaccount.com"})),
            "not authorized",
        ),
        (
            "unknown role",
            "nope",
            g.iam_token("nope", json!({})),
            "role \"nope\" not found",
        ),
    ];
    for (what, role, jwt, want) in &cases {
        refused(&h, what, role, jwt, want).await;
    }
    let (s, b) = login(&h, "web", &g.iam_token("web", json!({}))).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn foreign_keys_and_algorithms_are_refused() {
    let g = FakeGoogle::start().await;
    let h = Hushd::dev().await;
    g.setup(&h).await;
    let foreign = Key::new();
    let iam_claims = json!({"sub": SA, "aud": "vault/web", "exp": now() + 600});
    refused(
        &h,
        "iam foreign key",
        "web",
        &foreign.sign("sa1", &iam_claims),
        "signature",
    )
    .await;
    let gce_claims = FakeGoogle::gce_claims("http://vault/vm");
    refused(
        &h,
        "gce foreign key",
        "vm",
        &foreign.sign("g1", &gce_claims),
        "signature",
    )
    .await;
    // The service account's own key cannot make a GCE token.
    refused(
        &h,
        "gce token, SA key",
        "vm",
        &g.sa.sign("g1", &gce_claims),
        "signature",
    )
    .await;
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&iam_claims));
    refused(&h, "alg none", "web", &none, "algorithm").await;
    let hs = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &iam_claims,
        &EncodingKey::from_secret(g.sa.public_pem.as_bytes()),
    )
    .unwrap();
    refused(&h, "HS256 with the public key", "web", &hs, "algorithm").await;
    refused(
        &h,
        "iam token at gce",
        "vm",
        &g.iam_token("vm", json!({})),
        "compute_engine",
    )
    .await;
    let (s, b) = login(&h, "vm", &g.gce_token("vm", json!({}))).await;
    assert_eq!(s, 200, "{b}");
}

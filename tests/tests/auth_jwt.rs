//! The `jwt` auth method end to end against a real `hushd --dev` over HTTP: enable it through
//! `sys/auth`, configure keys made in the test (PEM public keys, or a JWKS served by a local
//! HTTPS server with a test CA), make a role, log in, use the token (allowed and refused), and
//! refuse every kind of bad token with a 400 that does not echo it.
//!
//! hushd refuses logins after 10 failures per minute from one address, so the negative cases
//! are spread over two servers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hush_tests::https::JsonServer;
use hush_tests::login::{assert_jwt_refused, jwt_login};
use hush_tests::Hushd;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.test";

struct Key {
    alg: jsonwebtoken::Algorithm,
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(alg: jsonwebtoken::Algorithm) -> Key {
    let (rc_alg, crv) = match alg {
        jsonwebtoken::Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "P-256"),
        _ => (&rcgen::PKCS_ED25519, "Ed25519"),
    };
    let kp = rcgen::KeyPair::generate_for(rc_alg).unwrap();
    let raw = kp.public_key_raw();
    let jwk = if crv == "Ed25519" {
        json!({"kty": "OKP", "crv": crv, "x": b64(raw), "kid": "k1"})
    } else {
        let len = (raw.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "x": b64(&raw[1..1 + len]), "y": b64(&raw[1 + len..]), "kid": "k1"})
    };
    Key {
        alg,
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
        jwk,
    }
}

impl Key {
    fn sign_kid(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_string);
        let key = match self.alg {
            jsonwebtoken::Algorithm::EdDSA => EncodingKey::from_ed_pem(self.private_pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(self.private_pem.as_bytes()),
        }
        .unwrap();
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_kid(None, claims)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "sub": "ci-runner", "aud": "hush", "exp": now + 300, "iat": now - 5,
           "nbf": now - 5, "project": "web", "env": "prod-eu"})
}

fn with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Enable `jwt`, write `config`, a policy `app` and two roles: `ci` (string bound claim)
/// and `globbed` (glob bound claim).
async fn setup(h: &Hushd, config: Value) {
    let (s, b) = h
        .call("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("POST", "auth/jwt/config", Some(config)).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["hush"],
        "bound_subject": "ci-runner", "bound_claims": {"project": "web"},
        "claim_mappings": {"project": "project"}, "token_policies": ["app"],
        "token_ttl": "15m", "token_max_ttl": "1h"});
    let (s, b) = h.call("POST", "auth/jwt/role/ci", Some(role)).await;
    assert_eq!(s, 204, "{b}");
    let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "hush",
        "bound_claims": {"env": "prod-*"}, "bound_claims_type": "glob",
        "token_policies": "app"});
    let (s, b) = h.call("POST", "auth/jwt/role/globbed", Some(role)).await;
    assert_eq!(s, 204, "{b}");
}

async fn login(h: &Hushd, role: &str, jwt: &str) -> (u16, Value) {
    jwt_login(h, "jwt", role, jwt).await
}

async fn refused(h: &Hushd, what: &str, role: &str, jwt: &str, want: &str) {
    assert_jwt_refused(h, "jwt", what, role, jwt, want).await
}

fn pem_config(k: &Key) -> Value {
    json!({"jwt_validation_pubkeys": [k.public_pem], "bound_issuer": ISSUER})
}

#[tokio::test]
async fn login_and_use_the_token() {
    let h = Hushd::dev().await;
    let k = key(jsonwebtoken::Algorithm::ES256);
    setup(&h, pem_config(&k)).await;
    let (s, b) = h.call("GET", "sys/auth", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["jwt/"]["type"], "jwt");
    let (s, b) = h.call("GET", "auth/jwt/config", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["bound_issuer"], ISSUER);
    let (s, b) = h.call("LIST", "auth/jwt/role", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["ci", "globbed"]));
    let (s, b) = h
        .call(
            "PUT",
            "secret/data/app/db",
            Some(json!({"data": {"password": "p"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = login(&h, "ci", &k.sign(&claims())).await;
    assert_eq!(s, 200, "{b}");
    let auth = &b["auth"];
    let token = auth["client_token"].as_str().unwrap().to_string();
    assert_eq!(auth["policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 900);
    assert_eq!(auth["metadata"]["role"], "ci");
    assert_eq!(auth["metadata"]["project"], "web");

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
    assert_eq!(b["data"]["path"], "auth/jwt/login");
    assert!(
        b["data"]["display_name"]
            .as_str()
            .unwrap()
            .contains("ci-runner"),
        "{b}"
    );

    // The glob role.
    let (s, b) = login(&h, "globbed", &k.sign(&claims())).await;
    assert_eq!(s, 200, "{b}");

    // Bad configuration writes are refused and keep the old one.
    for bad in [
        json!({"jwt_validation_pubkeys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}),
        json!({"jwks_url": format!("https://127.0.0.1:{}/keys", hush_tests::free_port())}),
        json!({}),
    ] {
        let (s, b) = h.call("POST", "auth/jwt/config", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["errors"][0].is_string(), "{b}");
    }
    let (s, _) = login(&h, "ci", &k.sign(&claims())).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn bad_tokens_time_issuer_audience_subject_claims() {
    let h = Hushd::dev().await;
    let k = key(jsonwebtoken::Algorithm::ES256);
    setup(&h, pem_config(&k)).await;
    let now = now();
    refused(
        &h,
        "expired",
        "ci",
        &k.sign(&with(json!({"exp": now - 1000}))),
        "expired",
    )
    .await;
    refused(
        &h,
        "not yet valid",
        "ci",
        &k.sign(&with(json!({"nbf": now + 1000}))),
        "not yet valid",
    )
    .await;
    refused(
        &h,
        "issuer",
        "ci",
        &k.sign(&with(json!({"iss": "https://evil.test"}))),
        "issuer",
    )
    .await;
    refused(
        &h,
        "audience",
        "ci",
        &k.sign(&with(json!({"aud": ["other"]}))),
        "audience",
    )
    .await;
    refused(
        &h,
        "subject",
        "ci",
        &k.sign(&with(json!({"sub": "someone"}))),
        "sub",
    )
    .await;
    refused(
        &h,
        "bound claim",
        "ci",
        &k.sign(&with(json!({"project": "api"}))),
        "project",
    )
    .await;
    refused(
        &h,
        "glob claim",
        "globbed",
        &k.sign(&with(json!({"env": "dev-eu"}))),
        "env",
    )
    .await;
}

#[tokio::test]
async fn bad_tokens_keys_algorithms_roles() {
    let h = Hushd::dev().await;
    let k = key(jsonwebtoken::Algorithm::ES256);
    setup(&h, pem_config(&k)).await;
    let foreign = key(jsonwebtoken::Algorithm::ES256);
    refused(
        &h,
        "foreign key",
        "ci",
        &foreign.sign(&claims()),
        "signature",
    )
    .await;
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims().to_string().as_bytes())
    );
    refused(&h, "alg none", "ci", &none, "algorithm").await;
    let hs = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(k.public_pem.as_bytes()),
    )
    .unwrap();
    refused(&h, "HS256 with the public key", "ci", &hs, "algorithm").await;
    refused(
        &h,
        "unknown role",
        "nope",
        &k.sign(&claims()),
        "could not be found",
    )
    .await;
    // The good token still works (fewer than 10 failures so far).
    let (s, b) = login(&h, "ci", &k.sign(&claims())).await;
    assert_eq!(s, 200, "{b}");
}

/// A local HTTPS server (test CA) serving `body` at `/keys` and an OIDC discovery document
/// naming it at `/.well-known/openid-configuration`.
async fn jwks_server(body: String) -> JsonServer {
    let srv = JsonServer::start().await;
    srv.set("/keys", body);
    let discovery = json!({"issuer": srv.base, "jwks_uri": srv.url("/keys")}).to_string();
    srv.set("/.well-known/openid-configuration", discovery);
    srv
}

#[tokio::test]
async fn jwks_url_over_https_with_a_test_ca() {
    let k = key(jsonwebtoken::Algorithm::EdDSA);
    let srv = jwks_server(json!({"keys": [k.jwk]}).to_string()).await;
    let (url, ca_pem) = (srv.url("/keys"), srv.ca_pem.clone());
    let h = Hushd::dev().await;
    // Without the CA the server's certificate is not trusted: 400 at config time.
    let (s, b) = h
        .call("POST", "sys/auth/jwt", Some(json!({"type": "jwt"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call("POST", "auth/jwt/config", Some(json!({"jwks_url": url})))
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("jwks_url"), "{b}");
    let (s, b) = h.call("DELETE", "sys/auth/jwt", None).await;
    assert_eq!(s, 204, "{b}");

    setup(
        &h,
        json!({"jwks_url": url, "jwks_ca_pem": ca_pem, "bound_issuer": ISSUER}),
    )
    .await;
    let (s, b) = login(&h, "ci", &k.sign_kid(Some("k1"), &claims())).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["auth"]["policies"], json!(["app", "default"]));
    let token = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _) = h
        .call_as(Some(&token), "GET", "secret/data/other", None)
        .await;
    assert_eq!(s, 403);
    let foreign = key(jsonwebtoken::Algorithm::EdDSA);
    refused(
        &h,
        "foreign key",
        "ci",
        &foreign.sign_kid(Some("k1"), &claims()),
        "signature",
    )
    .await;
}

#[tokio::test]
async fn oidc_discovery_over_https_with_a_test_ca() {
    let k = key(jsonwebtoken::Algorithm::ES256);
    let srv = jwks_server(json!({"keys": [k.jwk]}).to_string()).await;
    let (base, ca_pem) = (srv.base.clone(), srv.ca_pem.clone());
    let h = Hushd::dev().await;
    // No bound_issuer: the discovered issuer (the discovery URL) is required.
    setup(
        &h,
        json!({"oidc_discovery_url": base, "oidc_discovery_ca_pem": ca_pem}),
    )
    .await;
    let (s, b) = login(
        &h,
        "ci",
        &k.sign_kid(Some("k1"), &with(json!({"iss": base}))),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    refused(
        &h,
        "issuer",
        "ci",
        &k.sign_kid(Some("k1"), &claims()),
        "issuer",
    )
    .await;
}

//! Route tests of the `jwt` method over a real barrier, with keys made at test time (rcgen).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::JwtBackend;
use crate::auth::jws::unix_now;
use crate::barrier::BarrierView;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

struct Key {
    private_pem: String,
    public_pem: String,
}

fn es256() -> Key {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    Key {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    }
}

impl Key {
    /// A self-signed certificate for this key.
    fn cert(&self) -> String {
        let kp = rcgen::KeyPair::from_pem(&self.private_pem).unwrap();
        let params = rcgen::CertificateParams::new(vec!["issuer.test".into()]).unwrap();
        params.self_signed(&kp).unwrap().pem()
    }

    fn sign(&self, claims: &Value) -> String {
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), claims, &key).unwrap()
    }
}

fn claims() -> Value {
    let now = unix_now();
    json!({"iss": "https://issuer.test", "sub": "alice", "aud": "hush", "exp": now + 300,
           "iat": now - 10, "email": "alice@example.com", "groups": ["dev", "ops"],
           "env": "prod-eu"})
}

async fn backend() -> JwtBackend {
    let backend = Arc::new(crate::storage::MemoryBackend::new());
    let barrier = Arc::new(crate::barrier::Barrier::new(backend));
    barrier
        .initialize(&crate::barrier::KeyBytes::random())
        .await
        .unwrap();
    JwtBackend::new(BarrierView::new(barrier, "auth/test/"))
        .await
        .unwrap()
}

async fn call(
    b: &JwtBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    b.handle(&Request::new(op, path).with_data(body)).await
}

/// The data of a successful read of `path`.
async fn read(b: &JwtBackend, path: &str) -> crate::logical::Data {
    call(b, Operation::Read, path, json!({}))
        .await
        .unwrap()
        .data
        .unwrap()
}

/// A backend configured with `key` and a role `r`.
async fn ready(key: &Key, role: Value) -> JwtBackend {
    let b = backend().await;
    call(
        &b,
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [key.public_pem], "bound_issuer": "https://issuer.test"}),
    )
    .await
    .unwrap();
    call(&b, Operation::Update, "role/r", role).await.unwrap();
    b
}

fn base_role() -> Value {
    json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["hush"],
           "token_policies": ["app"], "token_ttl": "10m", "token_max_ttl": "1h",
           "claim_mappings": {"email": "email"}})
}

async fn login(b: &JwtBackend, jwt: &str) -> Result<Response, LogicalError> {
    call(
        b,
        Operation::Update,
        "login",
        json!({"role": "r", "jwt": jwt}),
    )
    .await
}

fn err_text(r: Result<Response, LogicalError>) -> (u16, String) {
    let Err(e) = r else {
        panic!("expected an error")
    };
    (e.status(), e.to_string())
}

#[tokio::test]
async fn config_read_write_and_validation() {
    let b = backend().await;
    assert_eq!(
        call(&b, Operation::Read, "config", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    let k = es256();
    call(
        &b,
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [k.public_pem], "bound_issuer": "x"}),
    )
    .await
    .unwrap();
    let d = read(&b, "config").await;
    assert_eq!(d["jwt_validation_pubkeys"][0], json!(k.public_pem.trim()));
    assert_eq!(d["bound_issuer"], "x");

    for (bad, want) in [
        (json!({}), "exactly one of"),
        (
            json!({"jwt_validation_pubkeys": [k.public_pem], "jwks_url": "https://x.test/k"}),
            "exactly one of",
        ),
        (
            json!({"jwt_validation_pubkeys": ["not a key"]}),
            "jwt_validation_pubkeys",
        ),
        (json!({"jwks_url": "http://127.0.0.1:1/keys"}), "jwks_url"),
        (json!({"jwks_url": "https://127.0.0.1:1/keys"}), "jwks_url"),
        (
            json!({"oidc_discovery_url": "https://127.0.0.1:1"}),
            "oidc_discovery_url",
        ),
        (
            json!({"jwt_validation_pubkeys": [k.public_pem], "jwks_ca_pem": "x"}),
            "jwks_ca_pem",
        ),
        (
            json!({"jwt_validation_pubkeys": [k.public_pem], "jwt_supported_algs": ["HS256"]}),
            "HS256",
        ),
    ] {
        let (status, msg) = err_text(call(&b, Operation::Update, "config", bad.clone()).await);
        assert_eq!(status, 400, "{bad}");
        assert!(msg.contains(want), "{bad}: {msg}");
    }
    // The good config survived the bad writes.
    let d = read(&b, "config").await;
    assert_eq!(d["bound_issuer"], "x");
}

#[tokio::test]
async fn ca_pems_read_back_as_written() {
    use crate::auth::jws::tests::rsa_a;
    use crate::auth::jws::tests_remote::{jwks, start};
    let srv = start().await;
    srv.set("/keys", jwks(&[(rsa_a(), "a")]));
    srv.set(
        "/.well-known/openid-configuration",
        json!({"issuer": srv.url(""), "jwks_uri": srv.url("/keys")}).to_string(),
    );
    let ca = format!("{}\n", srv.ca_pem.trim_end());
    for (field, url_field, url) in [
        ("jwks_ca_pem", "jwks_url", srv.url("/keys")),
        ("oidc_discovery_ca_pem", "oidc_discovery_url", srv.url("")),
    ] {
        let b = backend().await;
        call(
            &b,
            Operation::Update,
            "config",
            json!({url_field: url, field: ca}),
        )
        .await
        .unwrap();
        let d = read(&b, "config").await;
        assert_eq!(d[field], ca.as_str(), "{field}: final newline kept");
    }
}

#[tokio::test]
async fn role_crud_and_validation() {
    let b = backend().await;
    assert_eq!(
        call(&b, Operation::List, "role", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    call(&b, Operation::Update, "role/r", base_role())
        .await
        .unwrap();
    call(&b, Operation::Update, "role/r", json!({"bound_claims": {"env": "prod-*"}, "bound_claims_type": "glob", "clock_skew_leeway": -1}))
        .await
        .unwrap();
    let d = read(&b, "role/r").await;
    assert_eq!(d["role_type"], "jwt");
    assert_eq!(d["user_claim"], "sub");
    assert_eq!(d["token_policies"], json!(["app"]));
    assert_eq!(d["token_ttl"], 600);
    assert_eq!(d["bound_claims"], json!({"env": "prod-*"}));
    assert_eq!(d["bound_claims_type"], "glob");
    assert_eq!(d["clock_skew_leeway"], -1);
    assert_eq!(d["allowed_redirect_uris"], Value::Null, "unset, as Vault");
    call(&b, Operation::Update, "role/r", json!({"allowed_redirect_uris": "https://a.test/cb,http://localhost:8250/oidc/callback", "oidc_scopes": ["profile", "email"]}))
        .await
        .unwrap();
    let d = read(&b, "role/r").await;
    assert_eq!(
        d["allowed_redirect_uris"],
        json!(["https://a.test/cb", "http://localhost:8250/oidc/callback"])
    );
    assert_eq!(d["oidc_scopes"], json!(["profile", "email"]));
    assert_eq!(d["bound_claims_type"], "glob", "the rest kept");
    // A role stored before these fields existed still reads.
    let old: super::JwtRole =
        serde_json::from_value(json!({"bound_audiences": ["a"], "user_claim": "sub", "bound_subject": "",
            "bound_claims": {}, "bound_claims_type": "", "claim_mappings": {}, "clock_skew_leeway": 0,
            "expiration_leeway": 0, "not_before_leeway": 0}))
        .unwrap();
    assert_eq!(old.oidc_scopes, None);
    let l = call(&b, Operation::List, "role", json!({})).await.unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["r"]));

    for bad in [
        json!({"role_type": "oidc", "user_claim": "sub", "bound_audiences": ["a"]}),
        json!({"bound_audiences": ["a"]}),
        json!({"user_claim": "sub"}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "bound_claims_type": "regex"}),
        json!({"user_claim": "sub", "bound_claims": {"n": 1}, "bound_claims_type": "glob"}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "claim_mappings": {"x": "role"}}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "token_ttl": 100, "token_max_ttl": 10}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "token_bound_cidrs": ["10.0.0.0/40"]}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "oidc_scopes": 5}),
        json!({"user_claim": "sub", "bound_audiences": ["a"], "allowed_redirect_uris": [1]}),
    ] {
        let r = call(&b, Operation::Update, "role/new", bad.clone()).await;
        assert_eq!(r.unwrap_err().status(), 400, "{bad}");
    }
    assert_eq!(
        call(&b, Operation::Update, "role/a%2Fb", base_role())
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        call(&b, Operation::Read, "role/new", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );

    call(&b, Operation::Delete, "role/r", json!({}))
        .await
        .unwrap();
    assert_eq!(
        call(&b, Operation::Read, "role/r", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    assert_eq!(
        call(&b, Operation::Read, "nope", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
}

#[tokio::test]
async fn good_login_makes_a_grant() {
    let k = es256();
    let b = ready(&k, base_role()).await;
    let r = login(&b, &k.sign(&claims())).await.unwrap();
    let g = r.login.expect("a login grant");
    assert_eq!(g.policies, vec!["app"]);
    assert_eq!(g.display_name, "alice");
    assert_eq!(g.ttl, 600);
    assert_eq!(g.max_ttl, 3600);
    assert_eq!(g.metadata.get("role").map(String::as_str), Some("r"));
    assert_eq!(
        g.metadata.get("email").map(String::as_str),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn a_certificate_in_jwt_validation_pubkeys_verifies_with_its_key() {
    let (k, other) = (es256(), es256());
    let b = backend().await;
    let cert = k.cert();
    call(
        &b,
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [cert], "bound_issuer": "https://issuer.test"}),
    )
    .await
    .unwrap();
    let r = call(&b, Operation::Read, "config", json!({})).await;
    assert_eq!(
        r.unwrap().data.unwrap()["jwt_validation_pubkeys"],
        json!([cert.trim()])
    );
    call(&b, Operation::Update, "role/r", base_role())
        .await
        .unwrap();
    login(&b, &k.sign(&claims())).await.unwrap();
    let (status, msg) = err_text(login(&b, &other.sign(&claims())).await);
    assert_eq!(status, 400, "{msg}");
}

#[tokio::test]
async fn bad_logins_are_400_without_the_token() {
    let k = es256();
    let other = es256();
    let mut role = base_role();
    role["bound_subject"] = json!("alice");
    role["bound_claims"] = json!({"groups": "ops"});
    let b = ready(&k, role).await;
    let now = unix_now();
    let with = |patch: Value| {
        let mut c = claims();
        for (key, v) in patch.as_object().unwrap() {
            c[key] = v.clone();
        }
        c
    };
    let pem_b64 = URL_SAFE_NO_PAD.encode(b"{\"alg\":\"none\",\"typ\":\"JWT\"}");
    let none = format!(
        "{pem_b64}.{}.",
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let hs = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(k.public_pem.as_bytes()),
    )
    .unwrap();
    let cases = [
        (
            "expired",
            k.sign(&with(json!({"exp": now - 1000}))),
            "expired",
        ),
        (
            "nbf",
            k.sign(&with(json!({"nbf": now + 1000}))),
            "not yet valid",
        ),
        (
            "issuer",
            k.sign(&with(json!({"iss": "https://evil.test"}))),
            "issuer",
        ),
        (
            "audience",
            k.sign(&with(json!({"aud": "other"}))),
            "audience",
        ),
        ("subject", k.sign(&with(json!({"sub": "bob"}))), "sub claim"),
        ("claim", k.sign(&with(json!({"groups": ["dev"]}))), "groups"),
        ("foreign key", other.sign(&claims()), "signature"),
        ("none", none, "algorithm"),
        ("hs256", hs, "algorithm"),
        ("garbage", "a.b".to_string(), "malformed"),
    ];
    for (what, jwt, want) in cases {
        let (status, msg) = err_text(login(&b, &jwt).await);
        assert_eq!(status, 400, "{what}: {msg}");
        assert!(msg.contains(want), "{what}: {msg}");
        assert!(!msg.contains(&jwt), "{what}: token echoed");
    }
    let good = k.sign(&claims());
    let (s, m) = err_text(
        call(
            &b,
            Operation::Update,
            "login",
            json!({"role": "nope", "jwt": good}),
        )
        .await,
    );
    assert_eq!(s, 400);
    assert!(m.contains("could not be found"), "{m}");
    let (s, _) = err_text(call(&b, Operation::Update, "login", json!({"role": "r"})).await);
    assert_eq!(s, 400);
    let (s, _) = err_text(call(&b, Operation::Update, "login", json!({"jwt": good})).await);
    assert_eq!(s, 400);
    assert_eq!(
        call(&b, Operation::Read, "login", json!({}))
            .await
            .unwrap_err()
            .status(),
        405
    );
    login(&b, &good).await.unwrap();
}

#[tokio::test]
async fn audience_on_token_needs_bound_audiences_and_glob_claims() {
    let k = es256();
    let b = ready(&k, json!({"user_claim": "email", "bound_claims": {"env": ["prod-*", "stage"]}, "bound_claims_type": "glob"})).await;
    // The token has `aud` but the role binds none: refused, as Vault does.
    let (s, m) = err_text(login(&b, &k.sign(&claims())).await);
    assert_eq!(s, 400);
    assert!(m.contains("audience"), "{m}");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    let g = login(&b, &k.sign(&c)).await.unwrap().login.unwrap();
    assert_eq!(g.display_name, "alice@example.com");
    c["env"] = json!("dev-eu");
    let (s, m) = err_text(login(&b, &k.sign(&c)).await);
    assert_eq!(s, 400);
    assert!(m.contains("env"), "{m}");
    // A missing user claim is refused.
    c["env"] = json!("stage");
    c.as_object_mut().unwrap().remove("email");
    let (s, m) = err_text(login(&b, &k.sign(&c)).await);
    assert_eq!(s, 400);
    assert!(m.contains("email"), "{m}");
}

#[tokio::test]
async fn login_without_config_and_default_role() {
    let b = backend().await;
    let k = es256();
    let (s, _) = err_text(
        call(
            &b,
            Operation::Update,
            "login",
            json!({"role": "r", "jwt": "a.b.c"}),
        )
        .await,
    );
    assert_eq!(s, 400);
    call(
        &b,
        Operation::Update,
        "config",
        json!({"jwt_validation_pubkeys": [k.public_pem], "default_role": "r"}),
    )
    .await
    .unwrap();
    call(&b, Operation::Update, "role/r", base_role())
        .await
        .unwrap();
    let r = call(
        &b,
        Operation::Update,
        "login",
        json!({"jwt": k.sign(&claims())}),
    )
    .await
    .unwrap();
    assert_eq!(r.login.unwrap().metadata["role"], "r");
}

#[tokio::test]
async fn token_bound_cidrs_are_checked_at_login() {
    let k = es256();
    let mut role = base_role();
    role["token_bound_cidrs"] = json!(["10.0.0.0/8"]);
    let b = ready(&k, role).await;
    let mut req = Request::new(Operation::Update, "login")
        .with_data(json!({"role": "r", "jwt": k.sign(&claims())}));
    req.remote_addr = Some("192.168.1.1".parse().unwrap());
    assert_eq!(b.handle(&req).await.unwrap_err().status(), 400);
    req.remote_addr = Some("10.1.2.3".parse().unwrap());
    let g = b.handle(&req).await.unwrap().login.unwrap();
    assert_eq!(g.bound_cidrs, vec!["10.0.0.0/8"]);
}

//! Unit tests of the kubernetes method over a real barrier view, with EC keys made at test
//! time (rcgen) and tokens signed by jsonwebtoken.

use std::sync::OnceLock;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::review::{parse_response, ReviewError};
use super::KubernetesBackend;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

const NOW: u64 = 1_700_000_000;

struct Key {
    private_pem: String,
    public_pem: String,
}

fn make_key() -> Key {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    Key {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    }
}

fn key_a() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(make_key)
}

fn key_b() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(make_key)
}

/// A self-signed certificate for `key` (what hvac's `pem_keys` check lets through).
fn cert_for(key: &Key) -> String {
    let kp = rcgen::KeyPair::from_pem(&key.private_pem).unwrap();
    let params = rcgen::CertificateParams::new(vec!["kubernetes.test".into()]).unwrap();
    params.self_signed(&kp).unwrap().pem()
}

fn sign(key: &Key, claims: &Value) -> String {
    let enc = EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), claims, &enc).unwrap()
}

fn projected(ns: &str, sa: &str) -> Value {
    json!({
        "iss": "https://kubernetes.default.svc",
        "aud": ["vault"],
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "exp": NOW + 600, "iat": NOW - 10, "nbf": NOW - 10,
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": sa, "uid": "sa-uid-1"},
            "pod": {"name": "web-0", "uid": "pod-uid-1"},
        },
    })
}

fn legacy(ns: &str, sa: &str, iss: &str) -> Value {
    json!({
        "iss": iss,
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/service-account.name": sa,
        "kubernetes.io/serviceaccount/service-account.uid": "sa-uid-2",
        "kubernetes.io/serviceaccount/secret.name": format!("{sa}-token-abc"),
    })
}

async fn backend() -> KubernetesBackend {
    let storage = std::sync::Arc::new(crate::storage::MemoryBackend::new());
    let barrier = std::sync::Arc::new(crate::barrier::Barrier::new(storage));
    barrier
        .initialize(&crate::barrier::KeyBytes::random())
        .await
        .unwrap();
    let view = crate::barrier::BarrierView::new(barrier, "auth/k8s/");
    KubernetesBackend::with_clock(view, || NOW)
}

async fn call(
    b: &KubernetesBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    b.handle(&Request::new(op, path).with_data(body)).await
}

async fn configured() -> KubernetesBackend {
    let b = backend().await;
    call(
        &b,
        Operation::Update,
        "config",
        json!({"pem_keys": [key_a().public_pem]}),
    )
    .await
    .unwrap();
    call(
        &b,
        Operation::Update,
        "role/web",
        json!({"bound_service_account_names": "web*",
               "bound_service_account_namespaces": ["prod", "stage-*"],
               "audience": "vault", "token_policies": "App,db", "token_ttl": "10m"}),
    )
    .await
    .unwrap();
    b
}

async fn login(b: &KubernetesBackend, role: &str, jwt: &str) -> Result<Response, LogicalError> {
    call(
        b,
        Operation::Update,
        "login",
        json!({"role": role, "jwt": jwt}),
    )
    .await
}

async fn read_config(b: &KubernetesBackend) -> serde_json::Map<String, Value> {
    let r = call(b, Operation::Read, "config", json!({})).await;
    r.unwrap().data.unwrap()
}

fn err_msg(r: Result<Response, LogicalError>) -> (u16, String) {
    let e = r.unwrap_err();
    (e.status(), e.to_string())
}

#[tokio::test]
async fn config_read_write_hides_the_reviewer_jwt() {
    let b = backend().await;
    let ca = format!("{}\n", cert_for(key_a()).trim_end());
    assert_eq!(
        call(&b, Operation::Read, "config", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    call(
        &b,
        Operation::Update,
        "config",
        json!({"kubernetes_host": "https://k8s.example:6443/", "token_reviewer_jwt": "reviewer-secret",
               "issuer": "https://kubernetes.default.svc", "kubernetes_ca_cert": ca,
               "pem_keys": [format!("\n{}\n\n", key_a().public_pem.trim())]}),
    )
    .await
    .unwrap();
    let r = call(&b, Operation::Read, "config", json!({}))
        .await
        .unwrap();
    let d = Value::Object(r.data.unwrap());
    assert_eq!(d["kubernetes_host"], "https://k8s.example:6443");
    assert_eq!(d["token_reviewer_jwt_set"], true);
    assert_eq!(d["issuer"], "https://kubernetes.default.svc");
    assert!(!d.to_string().contains("reviewer-secret"));
    // The CA reads back as written (final newline kept); pem_keys is Vault's
    // TypeCommaStringSlice, each entry TrimSpace'd.
    assert_eq!(d["kubernetes_ca_cert"], ca.as_str());
    assert_eq!(d["pem_keys"], json!([key_a().public_pem.trim()]));
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let b = backend().await;
    for bad in [
        json!({}),
        json!({"kubernetes_host": "http://k8s.example"}),
        json!({"kubernetes_host": "not a url"}),
        json!({"pem_keys": ["not a key"]}),
        json!({"kubernetes_host": "https://k8s.example", "kubernetes_ca_cert": "junk"}),
        json!({"pem_keys": 5}),
    ] {
        let r = call(&b, Operation::Update, "config", bad.clone()).await;
        assert_eq!(r.unwrap_err().status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn role_crud_and_list() {
    let b = configured().await;
    let r = call(&b, Operation::Read, "role/web", json!({}))
        .await
        .unwrap();
    let d = Value::Object(r.data.unwrap());
    assert_eq!(d["bound_service_account_names"], json!(["web*"]));
    assert_eq!(d["token_policies"], json!(["app", "db"]));
    assert_eq!(d["token_ttl"], 600);
    assert_eq!(d["audience"], "vault");
    let r = call(&b, Operation::List, "role", json!({})).await.unwrap();
    assert_eq!(Value::Object(r.data.unwrap())["keys"], json!(["web"]));
    call(&b, Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    let r = call(&b, Operation::Read, "role/web", json!({})).await;
    assert_eq!(r.unwrap_err().status(), 404);
    let r = call(&b, Operation::List, "role", json!({})).await;
    assert_eq!(r.unwrap_err().status(), 404);
}

#[tokio::test]
async fn bad_roles_are_refused() {
    let b = backend().await;
    for bad in [
        json!({"bound_service_account_namespaces": ["a"]}),
        json!({"bound_service_account_names": ["a"]}),
        json!({"bound_service_account_names": ["*", "a"], "bound_service_account_namespaces": "b"}),
        json!({"bound_service_account_names": "a", "bound_service_account_namespaces": ["b", "*"]}),
        json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b",
               "token_ttl": 100, "token_max_ttl": 10}),
        json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b",
               "audience": 3}),
        json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b",
               "token_type": "batch"}),
    ] {
        let r = call(&b, Operation::Update, "role/x", bad.clone()).await;
        assert_eq!(r.unwrap_err().status(), 400, "{bad}");
    }
    let r = call(&b, Operation::Update, "role/a%b", json!({})).await;
    assert_eq!(r.unwrap_err().status(), 400);
}

#[tokio::test]
async fn both_bindings_star_are_allowed_with_a_warning() {
    let b = configured().await;
    let both = json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"});
    let r = call(&b, Operation::Update, "role/any", both).await.unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("any service account"));
    login(&b, "any", &sign(key_a(), &projected("ns-9", "whoever")))
        .await
        .unwrap();
    // One binding "*" alone is not warned about.
    let one = json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "a"});
    let r = call(&b, Operation::Update, "role/one", one).await.unwrap();
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn local_login_grants_the_role() {
    let b = configured().await;
    let r = login(&b, "web", &sign(key_a(), &projected("stage-1", "web-api")))
        .await
        .unwrap();
    let g = r.login.unwrap();
    assert_eq!(g.policies, vec!["app", "db"]);
    assert_eq!(g.ttl, 600);
    assert_eq!(g.display_name, "stage-1-web-api");
    assert_eq!(g.metadata["role"], "web");
    assert_eq!(g.metadata["service_account_name"], "web-api");
    assert_eq!(g.metadata["service_account_namespace"], "stage-1");
    assert_eq!(g.metadata["service_account_uid"], "sa-uid-1");
    assert_eq!(g.metadata["service_account_pod_name"], "web-0");
    assert_eq!(g.metadata["service_account_secret_name"], "");
}

#[tokio::test]
async fn a_certificate_in_pem_keys_verifies_with_its_key() {
    let b = backend().await;
    let cert = cert_for(key_a());
    call(
        &b,
        Operation::Update,
        "config",
        json!({"kubernetes_host": "", "pem_keys": [cert]}),
    )
    .await
    .unwrap();
    assert_eq!(read_config(&b).await["pem_keys"], json!([cert.trim()]));
    call(
        &b,
        Operation::Update,
        "role/web",
        json!({"bound_service_account_names": "web",
               "bound_service_account_namespaces": "prod"}),
    )
    .await
    .unwrap();
    login(&b, "web", &sign(key_a(), &projected("prod", "web")))
        .await
        .unwrap();
    let (status, msg) = err_msg(login(&b, "web", &sign(key_b(), &projected("prod", "web"))).await);
    assert_eq!(status, 400, "{msg}");
    // One string holding a certificate and a public key is two entries.
    let both = format!("{}{}", cert_for(key_b()), key_a().public_pem);
    call(&b, Operation::Update, "config", json!({"pem_keys": both}))
        .await
        .unwrap();
    assert_eq!(
        read_config(&b).await["pem_keys"].as_array().unwrap().len(),
        2
    );
    for k in [key_a(), key_b()] {
        login(&b, "web", &sign(k, &projected("prod", "web")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn legacy_tokens_need_the_legacy_issuer() {
    let b = configured().await;
    call(
        &b,
        Operation::Update,
        "role/legacy",
        json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod"}),
    )
    .await
    .unwrap();
    let good = sign(key_a(), &legacy("prod", "web", super::LEGACY_ISSUER));
    let g = login(&b, "legacy", &good).await.unwrap().login.unwrap();
    assert_eq!(g.metadata["service_account_secret_name"], "web-token-abc");
    let bad = sign(key_a(), &legacy("prod", "web", "someone-else"));
    assert_eq!(err_msg(login(&b, "legacy", &bad).await).0, 400);
}

#[tokio::test]
async fn configured_issuer_is_enforced() {
    let b = configured().await;
    call(
        &b,
        Operation::Update,
        "config",
        json!({"issuer": "https://kubernetes.default.svc"}),
    )
    .await
    .unwrap();
    let good = sign(key_a(), &projected("prod", "web"));
    login(&b, "web", &good).await.unwrap();
    let mut c = projected("prod", "web");
    c["iss"] = json!("https://evil");
    let (s, m) = err_msg(login(&b, "web", &sign(key_a(), &c)).await);
    assert_eq!(s, 400);
    assert!(m.contains("issuer"), "{m}");
}

#[tokio::test]
async fn bad_logins_are_400_without_the_token() {
    let b = configured().await;
    let mut expired = projected("prod", "web");
    expired["exp"] = json!(NOW - 3600);
    let mut early = projected("prod", "web");
    early["nbf"] = json!(NOW + 3600);
    early["iat"] = json!(NOW + 3600);
    let mut aud = projected("prod", "web");
    aud["aud"] = json!(["other"]);
    let cases = [
        ("web", sign(key_a(), &expired), "expired"),
        ("web", sign(key_a(), &early), "not yet valid"),
        ("web", sign(key_a(), &aud), "audience"),
        (
            "web",
            sign(key_a(), &projected("dev", "web")),
            "namespace not authorized",
        ),
        (
            "web",
            sign(key_a(), &projected("prod", "db")),
            "service account name not authorized",
        ),
        ("web", sign(key_b(), &projected("prod", "web")), "signature"),
        (
            "nope",
            sign(key_a(), &projected("prod", "web")),
            "invalid role name",
        ),
        ("web", "not.a.jwt".to_string(), "malformed"),
    ];
    for (role, jwt, want) in cases {
        let (s, m) = err_msg(login(&b, role, &jwt).await);
        assert_eq!(s, 400, "{want}: {m}");
        assert!(m.contains(want), "{want}: {m}");
        assert!(!m.contains(&jwt), "message leaks the token");
    }
    let (s, m) = err_msg(call(&b, Operation::Update, "login", json!({"role": "web"})).await);
    assert_eq!((s, m.as_str()), (400, "missing jwt"));
    let (s, m) = err_msg(call(&b, Operation::Update, "login", json!({"jwt": "x"})).await);
    assert_eq!((s, m.as_str()), (400, "missing role"));
}

#[tokio::test]
async fn review_mode_unreachable_host_is_a_server_error() {
    let b = configured().await;
    call(
        &b,
        Operation::Update,
        "config",
        json!({"kubernetes_host": "https://127.0.0.1:1", "token_reviewer_jwt": "r"}),
    )
    .await
    .unwrap();
    let jwt = sign(key_a(), &projected("prod", "web"));
    let (s, m) = err_msg(login(&b, "web", &jwt).await);
    assert_eq!(s, 500, "{m}");
    assert!(!m.contains(&jwt));
    // A token that is not even a service-account JWT is refused before any request.
    let (s, _) = err_msg(login(&b, "web", "a.b.c").await);
    assert_eq!(s, 400);
}

#[test]
fn review_responses_are_parsed() {
    let ok = json!({"status": {"authenticated": true, "audiences": ["vault"],
        "user": {"username": "system:serviceaccount:prod:web", "uid": "u1",
                 "extra": {"authentication.kubernetes.io/pod-name": ["web-0"]}}}});
    let r = parse_response(ok.to_string().as_bytes()).unwrap();
    assert_eq!(
        (r.namespace.as_str(), r.service_account.as_str()),
        ("prod", "web")
    );
    assert_eq!(r.uid, "u1");
    assert_eq!(r.pod_name.as_deref(), Some("web-0"));
    assert_eq!(r.audiences, vec!["vault"]);

    let denied = json!({"status": {"authenticated": false, "error": "bad"}});
    assert!(matches!(
        parse_response(denied.to_string().as_bytes()),
        Err(ReviewError::Denied(_))
    ));
    let user = json!({"status": {"authenticated": true, "user": {"username": "alice"}}});
    assert!(matches!(
        parse_response(user.to_string().as_bytes()),
        Err(ReviewError::Denied(_))
    ));
    assert!(matches!(
        parse_response(b"<html>"),
        Err(ReviewError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_new_config_takes_effect_at_the_next_login() {
    let b = configured().await;
    let by_a = sign(key_a(), &projected("prod", "web"));
    let by_b = sign(key_b(), &projected("prod", "web"));
    assert!(login(&b, "web", &by_a).await.is_ok());
    assert_eq!(err_msg(login(&b, "web", &by_b).await).0, 400);
    // The parsed keys are cached between logins; a config write must replace them.
    call(
        &b,
        Operation::Update,
        "config",
        json!({"pem_keys": [key_b().public_pem]}),
    )
    .await
    .unwrap();
    assert!(login(&b, "web", &by_b).await.is_ok());
    assert_eq!(err_msg(login(&b, "web", &by_a).await).0, 400);
}

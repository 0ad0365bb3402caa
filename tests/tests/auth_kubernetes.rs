//! The kubernetes auth method end to end against a real `hushd --dev` over HTTP.
//!
//! Local mode: keys are made in the test (rcgen, ES256), the mount is configured with
//! `pem_keys`, and projected-style service-account tokens log in (or are refused).
//! TokenReview mode: a small HTTPS server in the test (tokio-rustls, rcgen CA) plays the
//! Kubernetes API server, checks the reviewer bearer token and answers TokenReviews.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hush_tests::Hushd;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

fn sign(key: &Key, claims: &Value) -> String {
    let enc = EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), claims, &enc).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A projected service-account token's claims (audience `vault`).
fn projected(ns: &str, sa: &str) -> Value {
    let t = now();
    json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": ["vault"],
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "exp": t + 600, "iat": t - 5, "nbf": t - 5,
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": sa, "uid": "3f1c-sa-uid"},
            "pod": {"name": "web-7d9f", "uid": "9a2b-pod-uid"},
        },
    })
}

/// Enable the method, a policy `app` (read secret/data/app/*), two secrets and role `web`.
async fn setup(h: &Hushd, config: Value) {
    let (s, b) = h
        .call(
            "POST",
            "sys/auth/kubernetes",
            Some(json!({"type": "kubernetes"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("POST", "auth/kubernetes/config", Some(config)).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    for path in ["secret/data/app/db", "secret/data/other/db"] {
        let (s, b) = h
            .call("PUT", path, Some(json!({"data": {"password": "p"}})))
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = h
        .call(
            "POST",
            "auth/kubernetes/role/web",
            Some(json!({
                "bound_service_account_names": ["web", "web-*"],
                "bound_service_account_namespaces": "prod",
                "audience": "vault",
                "token_policies": ["app"],
                "token_ttl": "15m",
            })),
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

async fn login(h: &Hushd, role: &str, jwt: &str) -> (u16, Value) {
    h.call_as(
        None,
        "POST",
        "auth/kubernetes/login",
        Some(json!({"role": role, "jwt": jwt})),
    )
    .await
}

/// Log in, then check the token reads the allowed secret and not the other one.
async fn login_and_use(h: &Hushd, jwt: &str) -> Value {
    let (s, b) = login(h, "web", jwt).await;
    assert_eq!(s, 200, "{b}");
    let auth = b["auth"].clone();
    assert_eq!(auth["policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 900);
    assert_eq!(auth["metadata"]["role"], "web");
    assert_eq!(auth["metadata"]["service_account_name"], "web");
    assert_eq!(auth["metadata"]["service_account_namespace"], "prod");
    assert_eq!(auth["metadata"]["service_account_uid"], "3f1c-sa-uid");
    let token = auth["client_token"].as_str().unwrap();
    let (s, b) = h
        .call_as(Some(token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "p");
    let (s, _) = h
        .call_as(Some(token), "GET", "secret/data/other/db", None)
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call_as(Some(token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["display_name"], "kubernetes-prod-web");
    auth
}

/// Expect a 400 whose message contains `what` and does not echo the token.
async fn refused(h: &Hushd, role: &str, jwt: &str, what: &str) {
    let (s, b) = login(h, role, jwt).await;
    assert_eq!(s, 400, "{what}: {b}");
    let msg = b["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains(what), "want {what:?}, got {msg:?}");
    assert!(
        !b.to_string().contains(jwt),
        "{what}: the error echoes the token"
    );
}

#[tokio::test]
async fn local_login_reads_the_allowed_secret_only() {
    let key = make_key();
    let h = Hushd::dev().await;
    setup(
        &h,
        json!({"pem_keys": [key.public_pem], "issuer": "https://kubernetes.default.svc.cluster.local"}),
    )
    .await;
    let auth = login_and_use(&h, &sign(&key, &projected("prod", "web"))).await;
    assert_eq!(auth["metadata"]["service_account_pod_name"], "web-7d9f");

    let (s, b) = h.call("GET", "auth/kubernetes/config", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["pem_keys"][0], key.public_pem.trim());
    let (s, b) = h.call("LIST", "auth/kubernetes/role", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["web"]));

    // Bad claims (five failures: below the failed-login limit).
    let mut c = projected("prod", "web");
    c["exp"] = json!(now() - 3600);
    refused(&h, "web", &sign(&key, &c), "expired").await;
    let mut c = projected("prod", "web");
    c["nbf"] = json!(now() + 3600);
    refused(&h, "web", &sign(&key, &c), "not yet valid").await;
    let mut c = projected("prod", "web");
    c["iss"] = json!("https://evil.example");
    refused(&h, "web", &sign(&key, &c), "issuer").await;
    let mut c = projected("prod", "web");
    c["aud"] = json!(["not-vault"]);
    refused(&h, "web", &sign(&key, &c), "audience").await;
    refused(
        &h,
        "nope",
        &sign(&key, &projected("prod", "web")),
        "invalid role name",
    )
    .await;
}

#[tokio::test]
async fn local_login_refuses_wrong_accounts_and_forged_tokens() {
    let key = make_key();
    let foreign = make_key();
    let h = Hushd::dev().await;
    setup(&h, json!({"pem_keys": key.public_pem})).await;
    refused(
        &h,
        "web",
        &sign(&key, &projected("dev", "web")),
        "namespace not authorized",
    )
    .await;
    refused(
        &h,
        "web",
        &sign(&key, &projected("prod", "db")),
        "service account name not authorized",
    )
    .await;
    refused(
        &h,
        "web",
        &sign(&foreign, &projected("prod", "web")),
        "signature",
    )
    .await;

    let claims = URL_SAFE_NO_PAD.encode(projected("prod", "web").to_string());
    let none = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    refused(&h, "web", &none, "algorithm").await;
    let hs = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &projected("prod", "web"),
        &EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .unwrap();
    refused(&h, "web", &hs, "algorithm").await;
    // Still fine afterwards.
    login_and_use(&h, &sign(&key, &projected("prod", "web"))).await;
}

#[tokio::test]
async fn a_broken_pod_locks_out_its_own_service_account_not_its_neighbours() {
    let key = make_key();
    let foreign = make_key();
    let h = Hushd::dev().await;
    setup(&h, json!({"pem_keys": key.public_pem})).await;
    // 20 forged logins from 127.0.0.1: a broken pod (service account `web-broken`) signing
    // with a key the store does not know.
    let forged = sign(&foreign, &projected("prod", "web-broken"));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(login(&h, "web", &forged).await.0);
    }
    // Its own identity is locked after 5 (Vault's lockout default), and says for how long.
    assert_eq!(statuses[..5], [400; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let resp = h
        .client
        .post(format!("{}/v1/auth/kubernetes/login", h.addr))
        .json(&json!({"role": "web", "jwt": forged}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // A valid login from the same address, for another service account, succeeds at once.
    login_and_use(&h, &sign(&key, &projected("prod", "web"))).await;
    // Even the broken pod's account is locked out with a valid token, until the lock ends.
    let (s, b) = login(&h, "web", &sign(&key, &projected("prod", "web-broken"))).await;
    assert_eq!(s, 429, "{b}");
}

/// What the fake API server saw: the bearer tokens of the reviews it answered.
type Seen = Arc<Mutex<Vec<String>>>;

/// A fake Kubernetes API server over HTTPS: it authenticates the tokens in `good` (all as
/// `prod:web`), and
/// only requests with bearer `reviewer` (when set; else the token itself) are reviewed.
async fn fake_apiserver(
    dir: &std::path::Path,
    good: Vec<String>,
    reviewer: Option<String>,
) -> (String, String, Seen) {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    hush_tests::install_crypto();
    let (ca, cert, key) = hush_tests::write_ca_signed_cert(dir, "apiserver");
    let certs = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let cfg = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, good, reviewer, seen) = (
                acceptor.clone(),
                good.clone(),
                reviewer.clone(),
                seen2.clone(),
            );
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head, body) = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        break (head, buf[i + 4..i + 4 + len].to_vec());
                    }
                };
                let bearer = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().strip_prefix("Bearer ").map(str::to_string))?
                    })
                    .unwrap_or_default();
                seen.lock().unwrap().push(bearer.clone());
                let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let token = review["spec"]["token"].as_str().unwrap_or("").to_string();
                let path_ok = head.starts_with("POST /apis/authentication.k8s.io/v1/tokenreviews ");
                let want_bearer = reviewer.unwrap_or_else(|| token.clone());
                let (code, answer) = if !path_ok {
                    ("404 Not Found", json!({}))
                } else if bearer != want_bearer {
                    ("401 Unauthorized", json!({"kind": "Status", "code": 401}))
                } else if good.contains(&token) {
                    let aud = review["spec"]["audiences"].clone();
                    (
                        "201 Created",
                        json!({"kind": "TokenReview", "status": {
                            "authenticated": true,
                            "audiences": aud,
                            "user": {"username": "system:serviceaccount:prod:web",
                                     "uid": "3f1c-sa-uid",
                                     "extra": {"authentication.kubernetes.io/pod-name": ["web-7d9f"]}},
                        }}),
                    )
                } else {
                    (
                        "201 Created",
                        json!({"kind": "TokenReview", "status": {
                        "authenticated": false, "error": "invalid bearer token"}}),
                    )
                };
                let body = answer.to_string();
                let resp = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let ca_pem = std::fs::read_to_string(ca).unwrap();
    (format!("https://127.0.0.1:{port}"), ca_pem, seen)
}

#[tokio::test]
async fn token_review_with_a_reviewer_jwt() {
    let dir = tempfile::tempdir().unwrap();
    // The cluster's signing key is unknown to hushd: only the API server can vouch.
    let cluster = make_key();
    let good = sign(&cluster, &projected("prod", "web"));
    let revoked = {
        let mut c = projected("prod", "web");
        c["jti"] = json!("deleted-account");
        sign(&cluster, &c)
    };
    let mismatch = sign(&cluster, &projected("prod", "web-2"));
    let (host, ca, seen) = fake_apiserver(
        dir.path(),
        vec![good.clone(), mismatch.clone()],
        Some("reviewer-jwt".into()),
    )
    .await;
    let h = Hushd::dev().await;
    setup(
        &h,
        json!({"kubernetes_host": host, "kubernetes_ca_cert": ca,
               "token_reviewer_jwt": "reviewer-jwt"}),
    )
    .await;
    let (s, b) = h.call("GET", "auth/kubernetes/config", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["token_reviewer_jwt_set"], true);
    assert!(!b.to_string().contains("reviewer-jwt"));

    let auth = login_and_use(&h, &good).await;
    assert_eq!(auth["metadata"]["service_account_pod_name"], "web-7d9f");
    refused(&h, "web", &revoked, "lookup failed").await;
    // The review names prod:web; a token claiming another account is refused.
    refused(&h, "web", &mismatch, "not the same").await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|b| b == "reviewer-jwt"), "{seen:?}");
}

#[tokio::test]
async fn token_review_without_a_reviewer_uses_the_client_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = make_key();
    let good = sign(&cluster, &projected("prod", "web"));
    let (host, ca, seen) = fake_apiserver(dir.path(), vec![good.clone()], None).await;
    let h = Hushd::dev().await;
    setup(
        &h,
        json!({"kubernetes_host": host, "kubernetes_ca_cert": ca}),
    )
    .await;
    login_and_use(&h, &good).await;
    assert_eq!(seen.lock().unwrap().clone(), vec![good.clone()]);

    // A server whose certificate is not signed by the configured CA is not trusted.
    let other = tempfile::tempdir().unwrap();
    let (_, other_ca, _) = fake_apiserver(other.path(), vec![good.clone()], None).await;
    let (s, b) = h
        .call(
            "POST",
            "auth/kubernetes/config",
            Some(json!({"kubernetes_ca_cert": other_ca})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = login(&h, "web", &good).await;
    assert_eq!(s, 500, "{b}");
    assert!(!b.to_string().contains(&good));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

//! Tests of JWKS fetching and OIDC discovery against a real local HTTPS server whose
//! certificate is signed by a CA made in the test. [`start`] serves other methods' tests too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::tests::{claims, rsa_a, rsa_b, NOW};
use super::*;

/// A tiny HTTPS server: path -> JSON body, with a hit counter per path.
pub(crate) struct Server {
    base: String,
    pub(crate) ca_pem: String,
    bodies: Arc<Mutex<HashMap<String, String>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub(crate) fn set(&self, path: &str, body: String) {
        self.bodies.lock().insert(path.to_string(), body);
    }

    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits.lock().get(path).copied().unwrap_or(0)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub(crate) fn make_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "hush test CA");
    (p.self_signed(&key).unwrap(), key)
}

pub(crate) async fn start() -> Server {
    let (ca, ca_key) = make_ca();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([
        127, 0, 0, 1,
    ]))];
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    serve(cert.der().clone(), &key, ca.pem()).await
}

/// A server whose certificate is self-signed (what `openssl req -x509` makes: `CA:TRUE` when
/// `is_ca`), for `san`, valid now unless `expired` (then in 2020 only); its `ca_pem` is the
/// certificate itself.
pub(crate) async fn start_self_signed(is_ca: bool, san: rcgen::SanType, expired: bool) -> Server {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "self-signed idp");
    p.subject_alt_names = vec![san];
    if is_ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let cert = p.self_signed(&key).unwrap();
    serve(cert.der().clone(), &key, cert.pem()).await
}

async fn serve(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: &rcgen::KeyPair,
    ca_pem: String,
) -> Server {
    hush_api::install_crypto_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (b, h) = (bodies.clone(), hits.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, b, h) = (acceptor.clone(), b.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split(' ').nth(1).unwrap_or("").to_string();
                *h.lock().entry(path.clone()).or_default() += 1;
                let body = b.lock().get(&path).cloned();
                let (status, body) = match body {
                    Some(body) => ("200 OK", body),
                    None => ("404 Not Found", "{}".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Server {
        base,
        ca_pem,
        bodies,
        hits,
        task,
    }
}

pub(crate) fn jwks(keys: &[(&super::tests::TestKey, &str)]) -> String {
    json!({ "keys": keys.iter().map(|(k, kid)| k.jwk_with(kid)).collect::<Vec<_>>() }).to_string()
}

#[tokio::test]
async fn remote_jwks_verifies_and_caches() {
    let srv = start().await;
    srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
    let remote = RemoteKeySet::new(&srv.url("/jwks"), Some(&srv.ca_pem)).unwrap();
    let v = Validation::default();
    let t = rsa_a().sign(Some("a"), &claims());
    assert_eq!(remote.verify(&t, &v, NOW).await.unwrap()["sub"], "alice");
    remote.verify(&t, &v, NOW).await.unwrap();
    assert_eq!(srv.hits("/jwks"), 1, "second verify uses the cache");
    // A foreign signature with a known kid does not trigger a refetch.
    let foreign = rsa_b().sign(Some("a"), &claims());
    assert_eq!(
        remote.verify(&foreign, &v, NOW).await,
        Err(JwtError::BadSignature)
    );
    // `alg: none` is refused before anything is fetched.
    let none = format!(
        "{}.e30.",
        super::tests::b64_json(&json!({"alg": "none", "kid": "zz"}))
    );
    assert_eq!(
        remote.verify(&none, &v, NOW).await,
        Err(JwtError::Algorithm)
    );
    assert_eq!(srv.hits("/jwks"), 1);
    // One-shot fetch.
    let ks = KeySet::from_jwks_url(&srv.url("/jwks"), Some(&srv.ca_pem))
        .await
        .unwrap();
    assert!(ks.has_kid("a"));
}

#[tokio::test]
async fn unknown_kid_refetches_rate_limited() {
    let srv = start().await;
    srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
    let v = Validation::default();
    let rotated = rsa_b().sign(Some("b"), &claims());

    // Rate limit holds: the key rotated within min_refetch, so no second fetch.
    let limited = RemoteKeySet::new(&srv.url("/jwks"), Some(&srv.ca_pem))
        .unwrap()
        .with_intervals(Duration::from_secs(3600), Duration::from_secs(3600));
    limited
        .verify(&rsa_a().sign(Some("a"), &claims()), &v, NOW)
        .await
        .unwrap();
    srv.set("/jwks", jwks(&[(rsa_a(), "a"), (rsa_b(), "b")]));
    assert_eq!(
        limited.verify(&rotated, &v, NOW).await,
        Err(JwtError::NoMatchingKey)
    );
    assert_eq!(srv.hits("/jwks"), 1);

    // Without the limit, the unknown kid triggers one refetch and then verifies.
    let eager = RemoteKeySet::new(&srv.url("/jwks"), Some(&srv.ca_pem))
        .unwrap()
        .with_intervals(Duration::from_secs(3600), Duration::ZERO);
    srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
    eager
        .verify(&rsa_a().sign(Some("a"), &claims()), &v, NOW)
        .await
        .unwrap();
    assert_eq!(srv.hits("/jwks"), 2);
    srv.set("/jwks", jwks(&[(rsa_a(), "a"), (rsa_b(), "b")]));
    eager.verify(&rotated, &v, NOW).await.unwrap();
    assert_eq!(srv.hits("/jwks"), 3);
    // Still unknown after a refetch: refused.
    let ghost = rsa_b().sign(Some("ghost"), &claims());
    assert_eq!(
        eager.verify(&ghost, &v, NOW).await,
        Err(JwtError::NoMatchingKey)
    );
    assert_eq!(srv.hits("/jwks"), 4);
    // A failed refetch keeps the cached keys.
    srv.bodies.lock().remove("/jwks");
    assert_eq!(
        eager.verify(&ghost, &v, NOW).await,
        Err(JwtError::NoMatchingKey)
    );
    eager.verify(&rotated, &v, NOW).await.unwrap();
}

#[tokio::test]
async fn fetch_failures() {
    let srv = start().await;
    srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
    let t = rsa_a().sign(Some("a"), &claims());
    let v = Validation::default();
    // Another CA, and the system roots: the TLS handshake fails.
    let other_ca = make_ca().0.pem();
    for ca in [Some(other_ca.as_str()), None] {
        let r = RemoteKeySet::new(&srv.url("/jwks"), ca).unwrap();
        assert!(matches!(
            r.verify(&t, &v, NOW).await,
            Err(JwtError::Fetch(_))
        ));
    }
    assert_eq!(srv.hits("/jwks"), 0);
    // 404 and a document without keys.
    let r = RemoteKeySet::new(&srv.url("/missing"), Some(&srv.ca_pem)).unwrap();
    let err = r.verify(&t, &v, NOW).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    srv.set("/empty", r#"{"keys": []}"#.into());
    let r = RemoteKeySet::new(&srv.url("/empty"), Some(&srv.ca_pem)).unwrap();
    assert!(matches!(r.verify(&t, &v, NOW).await, Err(JwtError::Key(_))));
    // Only https URLs, and a CA bundle must hold certificates.
    assert!(matches!(
        RemoteKeySet::new("http://127.0.0.1:1/jwks", None),
        Err(JwtError::Key(_))
    ));
    assert!(matches!(
        RemoteKeySet::new(&srv.url("/jwks"), Some("garbage")),
        Err(JwtError::Key(_))
    ));
}

#[tokio::test]
async fn oidc_discovery() {
    let srv = start().await;
    let issuer = srv.url("/realm");
    srv.set(
        "/realm/.well-known/openid-configuration",
        json!({"issuer": issuer, "jwks_uri": srv.url("/realm/certs")}).to_string(),
    );
    let d = discover(&format!("{issuer}/"), Some(&srv.ca_pem))
        .await
        .unwrap();
    assert_eq!(d.issuer, issuer);
    assert_eq!(d.jwks_uri, srv.url("/realm/certs"));

    srv.set(
        "/evil/.well-known/openid-configuration",
        json!({"issuer": "https://elsewhere.test", "jwks_uri": srv.url("/realm/certs")})
            .to_string(),
    );
    let err = discover(&srv.url("/evil"), Some(&srv.ca_pem))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not the discovery URL"),
        "{err}"
    );
    srv.set(
        "/plain/.well-known/openid-configuration",
        json!({"issuer": srv.url("/plain"), "jwks_uri": "http://127.0.0.1/certs"}).to_string(),
    );
    assert!(matches!(
        discover(&srv.url("/plain"), Some(&srv.ca_pem)).await,
        Err(JwtError::Key(_))
    ));
}

fn loopback() -> rcgen::SanType {
    rcgen::SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))
}

#[tokio::test]
async fn a_self_signed_server_certificate_given_as_the_ca_is_trusted() {
    // CA:TRUE (what `openssl req -x509` makes) and a plain self-signed leaf, as Vault accepts.
    for is_ca in [true, false] {
        let srv = start_self_signed(is_ca, loopback(), false).await;
        srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
        let ks = KeySet::from_jwks_url(&srv.url("/jwks"), Some(&srv.ca_pem))
            .await
            .unwrap_or_else(|e| panic!("is_ca {is_ca}: {e}"));
        assert!(ks.has_kid("a"));
        // With the final newline dropped or another certificate before it, still trusted.
        let bundle = format!("{}{}", make_ca().0.pem(), srv.ca_pem.trim_end());
        KeySet::from_jwks_url(&srv.url("/jwks"), Some(&bundle))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_pinned_certificate_must_name_the_host_and_be_valid_now() {
    let dns = rcgen::SanType::DnsName("idp.example".try_into().unwrap());
    for (srv, want) in [
        (
            start_self_signed(true, dns, false).await,
            "not valid for name",
        ),
        (start_self_signed(true, loopback(), true).await, "xpired"),
    ] {
        srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
        let err = KeySet::from_jwks_url(&srv.url("/jwks"), Some(&srv.ca_pem))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("TLS handshake failed") && msg.contains(want),
            "{msg}"
        );
        assert_eq!(srv.hits("/jwks"), 0);
    }
}

#[tokio::test]
async fn failed_requests_say_what_failed() {
    let srv = start_self_signed(true, loopback(), false).await;
    srv.set("/jwks", jwks(&[(rsa_a(), "a")]));
    // Another self-signed certificate: the server's is not trusted, and the error says why.
    let other = start_self_signed(true, loopback(), false).await;
    let err = KeySet::from_jwks_url(&srv.url("/jwks"), Some(&other.ca_pem))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TLS handshake failed") && err.contains("CA:TRUE"),
        "{err}"
    );
    // A CA-signed server and another CA.
    let signed = start().await;
    let err = KeySet::from_jwks_url(&signed.url("/jwks"), Some(&other.ca_pem))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not signed by a trusted CA"), "{err}");
    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = KeySet::from_jwks_url(&format!("https://127.0.0.1:{port}/jwks"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connection refused"), "{err}");
}

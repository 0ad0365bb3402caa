//! Client tests against a small in-process HTTP server that records what it receives and
//! answers what the test tells it to.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as AxMethod, StatusCode, Uri};
use axum::response::IntoResponse;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::*;
use crate::wire::kv::KvMetadataUpdate;
use crate::wire::sys::InitRequest;
use crate::wire::token::TokenCreateRequest;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    token: Option<String>,
    content_type: Option<String>,
    body: Option<Value>,
}

type Answer = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
}

async fn handler(
    State(mock): State<Mock>,
    method: AxMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let seen = Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        token: header("x-vault-token"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).ok(),
    };
    let (status, text) = (mock.answer)(&seen);
    mock.seen.lock().unwrap().push(seen);
    let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// Start a server answering with `answer`; returns its base URL and the request log.
async fn serve(
    answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mock = Mock {
        seen: seen.clone(),
        answer: Arc::new(answer),
    };
    let app = axum::Router::new().fallback(handler).with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn envelope(data: Value) -> String {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": data, "wrap_info": null, "warnings": null, "auth": null})
    .to_string()
}

fn client(base: &str) -> Client {
    Client::new(base, None, Some(SecretString::from("hvs.test-token"))).unwrap()
}

fn last(seen: &Arc<Mutex<Vec<Seen>>>) -> Seen {
    seen.lock().unwrap().last().cloned().unwrap()
}

#[tokio::test]
async fn read_sends_token_header_and_parses_envelope() {
    let (base, seen) = serve(|_| (200, envelope(json!({"k": "v"})))).await;
    let resp = client(&base)
        .read("secret/data/app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.data.unwrap()["k"], "v");
    let s = last(&seen);
    assert_eq!(s.method, "GET");
    assert_eq!(s.uri, "/v1/secret/data/app");
    assert_eq!(s.token.as_deref(), Some("hvs.test-token"));
}

#[tokio::test]
async fn no_token_sends_no_header() {
    let (base, seen) = serve(|_| (200, envelope(json!({})))).await;
    let c = Client::new(&base, None, None).unwrap();
    c.read("sys/x").await.unwrap();
    assert!(last(&seen).token.is_none());
    assert!(!c.has_token());
}

#[tokio::test]
async fn read_404_without_data_is_none_and_with_errors_is_an_error() {
    let (base, _) = serve(|s| {
        if s.uri.contains("missing") {
            (404, r#"{"errors":[]}"#.into())
        } else {
            (404, r#"{"errors":["unsupported path"]}"#.into())
        }
    })
    .await;
    let c = client(&base);
    assert!(c.read("secret/data/missing").await.unwrap().is_none());
    let err = c.read("nope/x").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.errors(), ["unsupported path"]);
}

#[tokio::test]
async fn errors_keep_status_and_messages_but_not_the_token() {
    let (base, _) = serve(|_| (403, r#"{"errors":["permission denied"]}"#.into())).await;
    let c = client(&base);
    let err = c
        .write("secret/data/x", &json!({"data": {}}))
        .await
        .unwrap_err();
    assert!(err.is_permission_denied());
    let text = format!("{err} {err:?} {c:?}");
    assert!(!text.contains("hvs.test-token"), "{text}");
    assert!(text.contains("permission denied"));
}

#[tokio::test]
async fn non_json_error_body_is_kept_short() {
    let (base, _) = serve(|_| (502, "bad gateway from proxy".into())).await;
    let err = client(&base).read("x").await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.errors(), ["bad gateway from proxy"]);
}

#[tokio::test]
async fn list_uses_the_list_method() {
    let (base, seen) = serve(|_| (200, envelope(json!({"keys": ["a", "b/"]})))).await;
    let keys = client(&base)
        .kv_list("secret", "dir")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys, ["a", "b/"]);
    let s = last(&seen);
    assert_eq!(s.method, "LIST");
    assert_eq!(s.uri, "/v1/secret/metadata/dir");
}

#[tokio::test]
async fn kv_helpers_use_vault_paths_and_bodies() {
    let (base, seen) = serve(|s| {
        let meta = json!({"created_time": "t", "deletion_time": "", "destroyed": false,
                          "version": 3, "custom_metadata": null});
        match s.method.as_str() {
            "GET" if s.uri.starts_with("/v1/secret/metadata") => {
                (200, envelope(json!({"current_version": 3, "versions": {}})))
            }
            "GET" => (
                200,
                envelope(json!({"data": {"pw": "x"}, "metadata": meta})),
            ),
            "PUT" | "PATCH" if s.uri == "/v1/secret/data/app" => (200, envelope(meta)),
            _ => (204, String::new()),
        }
    })
    .await;
    let c = client(&base);
    let secret = c.kv_get("secret", "app", Some(2)).await.unwrap().unwrap();
    assert_eq!(secret.data.unwrap()["pw"], "x");
    assert_eq!(last(&seen).uri, "/v1/secret/data/app?version=2");

    let mut data = crate::wire::Data::new();
    data.insert("pw".into(), "y".into());
    let meta = c
        .kv_put("secret", "app", data.clone(), Some(2))
        .await
        .unwrap();
    assert_eq!(meta.version, 3);
    let s = last(&seen);
    assert_eq!(
        (s.method.as_str(), s.content_type.as_deref()),
        ("PUT", Some("application/json"))
    );
    assert_eq!(
        s.body.unwrap(),
        json!({"data": {"pw": "y"}, "options": {"cas": 2}})
    );

    c.kv_patch("secret", "app", data, None).await.unwrap();
    let s = last(&seen);
    assert_eq!(s.method, "PATCH");
    assert_eq!(s.content_type.as_deref(), Some(MERGE_PATCH));

    c.kv_delete("secret", "app").await.unwrap();
    assert_eq!(
        (last(&seen).method, last(&seen).uri),
        ("DELETE".into(), "/v1/secret/data/app".into())
    );
    c.kv_delete_versions("secret", "app", &[1, 2])
        .await
        .unwrap();
    let s = last(&seen);
    assert_eq!(
        (s.uri.as_str(), s.body.unwrap()),
        ("/v1/secret/delete/app", json!({"versions": [1, 2]}))
    );
    c.kv_undelete("secret", "app", &[1]).await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/secret/undelete/app");
    c.kv_destroy("secret", "app", &[1]).await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/secret/destroy/app");

    let m = c.kv_metadata_get("secret", "app").await.unwrap().unwrap();
    assert_eq!(m.current_version, 3);
    let update = KvMetadataUpdate {
        max_versions: Some(5),
        ..Default::default()
    };
    c.kv_metadata_put("secret", "app", &update).await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"max_versions": 5}));
    c.kv_metadata_delete("secret", "app").await.unwrap();
    assert_eq!(last(&seen).method, "DELETE");
    assert_eq!(last(&seen).uri, "/v1/secret/metadata/app");
}

#[tokio::test]
async fn kv_get_of_deleted_version_returns_metadata() {
    let body = json!({"data": {"data": null, "metadata": {"deletion_time": "t", "version": 2}}});
    let (base, _) = serve(move |_| (404, body.to_string())).await;
    let secret = client(&base)
        .kv_get("secret", "app", None)
        .await
        .unwrap()
        .unwrap();
    assert!(secret.data.is_none());
    assert_eq!(secret.metadata.deletion_time, "t");
}

#[tokio::test]
async fn sys_helpers_read_top_level_or_data() {
    let (base, seen) = serve(|s| match s.uri.as_str() {
        "/v1/sys/init" if s.method == "PUT" => (
            200,
            json!({"keys": ["ab"], "keys_base64": ["qw=="], "root_token": "hvs.r"}).to_string(),
        ),
        "/v1/sys/init" => (200, json!({"initialized": true}).to_string()),
        "/v1/sys/seal-status" | "/v1/sys/unseal" => (
            200,
            json!({"type": "shamir", "sealed": false, "t": 3, "n": 5}).to_string(),
        ),
        "/v1/sys/key-status" => (
            200,
            json!({"term": 2, "install_time": "x", "data": {"term": 2, "install_time": "x"}})
                .to_string(),
        ),
        _ => (204, String::new()),
    })
    .await;
    let c = client(&base);
    let init = c
        .init(&InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(init.root_token.expose_secret(), "hvs.r");
    assert_eq!(
        last(&seen).body.unwrap(),
        json!({"secret_shares": 1, "secret_threshold": 1})
    );
    assert!(c.init_status().await.unwrap());
    assert!(!c.seal_status().await.unwrap().sealed);
    let status = c.unseal(SecretString::from("share-1")).await.unwrap();
    assert_eq!(status.t, 3);
    assert_eq!(last(&seen).body.unwrap(), json!({"key": "share-1"}));
    c.unseal_reset().await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"reset": true}));
    assert_eq!(c.key_status().await.unwrap().term, 2);
    c.seal().await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/sys/seal");
    c.rotate().await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/sys/rotate");
}

#[tokio::test]
async fn policy_helpers() {
    let (base, seen) = serve(|s| match s.method.as_str() {
        "GET" if s.uri.ends_with("/missing") => (404, r#"{"errors":[]}"#.into()),
        "GET" => (
            200,
            envelope(json!({"name": "app", "policy": "path \"x\" {}"})),
        ),
        "LIST" => (200, envelope(json!({"keys": ["app", "default"]}))),
        _ => (204, String::new()),
    })
    .await;
    let c = client(&base);
    c.policy_write("app", "path \"x\" {}").await.unwrap();
    let s = last(&seen);
    assert_eq!(s.uri, "/v1/sys/policies/acl/app");
    assert_eq!(s.body.unwrap(), json!({"policy": "path \"x\" {}"}));
    assert_eq!(
        c.policy_read("app").await.unwrap().unwrap(),
        "path \"x\" {}"
    );
    assert!(c.policy_read("missing").await.unwrap().is_none());
    assert_eq!(c.policy_list().await.unwrap(), ["app", "default"]);
    c.policy_delete("app").await.unwrap();
    assert_eq!(last(&seen).method, "DELETE");
}

#[tokio::test]
async fn token_helpers() {
    let auth = json!({"client_token": "hvs.child", "accessor": "acc", "policies": ["app"],
                      "token_policies": ["app"], "lease_duration": 3600, "renewable": true});
    let (base, seen) = serve(move |s| {
        if s.uri.contains("lookup") {
            (
                200,
                envelope(
                    json!({"id": "hvs.child", "accessor": "acc", "ttl": 10, "type": "service"}),
                ),
            )
        } else if s.uri.contains("revoke") {
            (204, String::new())
        } else {
            (200, json!({"data": null, "auth": auth}).to_string())
        }
    })
    .await;
    let c = client(&base);
    let req = TokenCreateRequest {
        policies: vec!["app".into()],
        no_parent: true,
        ..Default::default()
    };
    let a = c.token_create(&req).await.unwrap();
    assert_eq!(a.client_token.expose_secret(), "hvs.child");
    assert_eq!(
        last(&seen).body.unwrap(),
        json!({"policies": ["app"], "no_parent": true})
    );

    assert_eq!(c.token_lookup_self().await.unwrap().accessor, "acc");
    assert_eq!(last(&seen).uri, "/v1/auth/token/lookup-self");
    let other = SecretString::from("hvs.other");
    c.token_lookup(&other).await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"token": "hvs.other"}));
    c.token_lookup_accessor("acc").await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/auth/token/lookup-accessor");

    c.token_renew_self(Some("1h")).await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"increment": "1h"}));
    c.token_renew(&other, None).await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"token": "hvs.other"}));
    c.token_renew_accessor("acc", Some("5m")).await.unwrap();
    assert_eq!(
        last(&seen).body.unwrap(),
        json!({"accessor": "acc", "increment": "5m"})
    );

    c.token_revoke_self().await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/auth/token/revoke-self");
    c.token_revoke(&other).await.unwrap();
    assert_eq!(last(&seen).uri, "/v1/auth/token/revoke");
    c.token_revoke_accessor("acc").await.unwrap();
    assert_eq!(last(&seen).body.unwrap(), json!({"accessor": "acc"}));
}

#[tokio::test]
async fn missing_auth_or_data_is_a_decode_error() {
    let (base, _) = serve(|_| (200, envelope(Value::Null))).await;
    let c = client(&base);
    let err = c
        .token_create(&TokenCreateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err}");
    let err = c.token_lookup_self().await.unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err}");
}

#[tokio::test]
async fn decode_errors_do_not_echo_values() {
    let (base, _) = serve(|_| (200, envelope(json!({"term": "hunter2", "install_time": 1})))).await;
    let err = client(&base).key_status().await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn base_url_prefix_and_escaping() {
    let (base, seen) = serve(|_| (200, envelope(json!({})))).await;
    let c = client(&format!("{base}/prefix/"));
    c.read("secret/data/a b").await.unwrap();
    assert_eq!(last(&seen).uri, "/prefix/v1/secret/data/a%20b");
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(&format!("http://{addr}"))
        .read("x")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn bad_addresses_and_ca_files_are_rejected() {
    for addr in ["127.0.0.1:8200", "ftp://h", "not a url", "http://h/?q=1"] {
        let err = Client::new(addr, None, None).unwrap_err();
        assert!(matches!(err, ClientError::Address { .. }), "{addr}: {err}");
    }
    let err = Client::new("https://h", Some(Path::new("/nonexistent/ca.pem")), None).unwrap_err();
    assert!(matches!(err, ClientError::CaCertRead { .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("ca.pem");
    std::fs::write(&empty, "no pem here").unwrap();
    let err = Client::new("https://h", Some(&empty), None).unwrap_err();
    assert!(matches!(err, ClientError::CaCert { .. }), "{err}");
}

#[test]
fn debug_hides_the_token() {
    let c = Client::new("https://h:8200", None, Some("hvs.sekret".into())).unwrap();
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("hvs.sekret") && dbg.contains("h:8200"),
        "{dbg}"
    );
    let c2 = c.with_token(None);
    assert!(!c2.has_token());
}

/// A one-shot HTTPS server with a leaf certificate for `localhost` signed by a fresh CA.
/// Returns the CA's PEM and the port.
async fn tls_server() -> (String, u16) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    install_crypto_provider();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = envelope(json!({"over": "tls"}));
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (ca.pem(), port)
}

#[tokio::test]
async fn custom_ca_is_trusted_and_another_is_not() {
    let (ca_pem, port) = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let addr = format!("https://localhost:{port}");
    let c = Client::new(&addr, Some(&ca_file), None).unwrap();
    let resp = c.read("sys/health").await.unwrap().unwrap();
    assert_eq!(resp.data.unwrap()["over"], "tls");

    let (other_ca, _) = tls_server().await;
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let c = Client::new(&addr, Some(&other_file), None).unwrap();
    let err = c.read("sys/health").await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
}

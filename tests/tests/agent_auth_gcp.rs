//! hush-agent logs in by itself with `--auth gcp` against a real `hushd --dev`: a local GCE
//! metadata server (plain HTTP, as on an instance) mints identity tokens signed by a local
//! HTTPS "Google" whose certificates hushd trusts through `custom_endpoint_ca_pem`. The agent
//! renders a secret its role's policy allows on a real tmpfs, and with `--once` fails naming a
//! secret the policy does not allow.

mod gcp_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gcp_support::FakeGoogle;
use hush_tests::{Agent, Hushd, Tmpfs};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The metadata server: answers the identity path with a token for the asked audience when
/// the `Metadata-Flavor: Google` header is there (403 otherwise, as GCE does). Counts the
/// tokens it gave.
async fn metadata_server(google: Arc<FakeGoogle>, given: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (google, given) = (google.clone(), given.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let target = text.split(' ').nth(1).unwrap_or("");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let audience = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("audience="))
                    .map(|a| a.replace("%3A", ":").replace("%2F", "/"));
                let flavored = text
                    .to_lowercase()
                    .contains("\r\nmetadata-flavor: google\r\n");
                let (status, body) = match audience {
                    Some(aud)
                        if flavored
                            && path
                                == "/computeMetadata/v1/instance/service-accounts/default/identity"
                            && query.contains("format=full") =>
                    {
                        given.fetch_add(1, Ordering::SeqCst);
                        let claims = FakeGoogle::gce_claims(&aud);
                        ("200 OK", google.google.sign("g1", &claims))
                    }
                    _ => (
                        "403 Forbidden",
                        "missing Metadata-Flavor or bad request".into(),
                    ),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/text\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    host
}

async fn run_once(args: &[String]) -> (Option<i32>, String) {
    let mut agent = Agent::spawn(args);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    (status.code(), agent.stderr())
}

#[tokio::test]
async fn gcp_login_renders_allowed_and_names_denied() {
    let google = Arc::new(FakeGoogle::start().await);
    let h = Hushd::dev().await;
    google.setup(&h).await;
    h.kv_put("app/db", json!({"password": "allowed-pw"})).await;
    h.kv_put("other/db", json!({"password": "denied-pw"})).await;
    let given = Arc::new(AtomicUsize::new(0));
    let host = metadata_server(google.clone(), given.clone()).await;

    let args = |dest: &Path, secret: &str| -> Vec<String> {
        [
            "--addr",
            &h.addr,
            "--auth",
            "gcp",
            "--role",
            "vm",
            "--gcp-metadata-host",
            &host,
            "--dest",
            &s(dest),
            "--secret",
            secret,
            "--once",
        ]
        .map(String::from)
        .to_vec()
    };
    let tmpfs = Tmpfs::new();
    let (code, err) = run_once(&args(&tmpfs.path, "pw=secret/data/app/db#password")).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(),
        "allowed-pw"
    );
    assert!(err.contains("logged in") && err.contains("gcp"), "{err}");
    assert_eq!(given.load(Ordering::SeqCst), 1);

    let other = Tmpfs::new();
    let (code, err) = run_once(&args(&other.path, "o=secret/data/other/db#password")).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("secret \"secret/data/other/db\""), "{err}");
    assert_eq!(given.load(Ordering::SeqCst), 2, "a fresh token per login");

    // A role the instance's token is not good for: the login itself fails, clearly.
    let (s2, b) = h
        .call(
            "POST",
            "auth/gcp/role/elsewhere",
            Some(json!({"type": "gce", "bound_zones": "europe-west1-b", "token_policies": "app"})),
        )
        .await;
    assert_eq!(s2, 204, "{b}");
    let mut a = args(&other.path, "pw=secret/data/app/db#password");
    let i = a.iter().position(|x| x == "vm").unwrap();
    a[i] = "elsewhere".into();
    let (code, err) = run_once(&a).await;
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("auth/gcp/login") && err.contains("bound_zones"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_metadata_server_fails_once_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_once(
        &[
            "--addr",
            "http://127.0.0.1:9",
            "--auth",
            "gcp",
            "--role",
            "vm",
            "--gcp-metadata-host",
            "127.0.0.1:9",
            "--dest",
            &s(dir.path()),
            "--allow-disk",
            "--secret",
            "x=secret/data/x#y",
            "--once",
        ]
        .map(String::from),
    )
    .await;
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("could not get a GCE identity token from http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/identity"),
        "{err}"
    );
}

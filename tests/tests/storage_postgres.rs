//! The PostgreSQL storage backend against a real cluster (initdb + postgres on a free loopback
//! port, `hush_tests::pg`): the conformance checks every backend passes, group commit, the
//! schema version, TLS, errors that never show the password; then a real hushd on it that
//! loses no acknowledged write to `kill -9`, and refuses bad or unreachable URLs at start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_store::storage::postgres::{PostgresBackend, PostgresUrl, SCHEMA_VERSION};
use hush_store::storage::{conformance, Backend, Op, StorageError};
use hush_tests::pg::{Postgres, STORAGE_PASSWORD, STORAGE_PASSWORD_URL, STORAGE_USER};
use hush_tests::{bin, free_port, http_client, Hushd};
use serde_json::json;

async fn connect(url: &str) -> Result<PostgresBackend, StorageError> {
    PostgresBackend::connect(&PostgresUrl::parse(url).unwrap()).await
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

/// The message never holds the password, as written in the URL or decoded.
fn assert_no_password(msg: &str) {
    assert!(!msg.contains(STORAGE_PASSWORD), "{msg}");
    assert!(!msg.contains(STORAGE_PASSWORD_URL), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_real_cluster() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("conformance", "sslmode=disable").await;
    let b = connect(&url).await.unwrap();
    assert_eq!(b.kind(), "postgresql");
    conformance::check(&b).await;
    // The same through the read cache hushd puts in front.
    let cached = hush_store::storage::cache::CachedBackend::new(
        Arc::new(
            connect(&pg.storage_url("cached", "sslmode=disable").await)
                .await
                .unwrap(),
        ),
        1000,
    );
    conformance::check(&cached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_survive_a_reconnect() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("grouped", "sslmode=disable").await;
    let b = Arc::new(connect(&url).await.unwrap());
    let before = b.commits();
    let writes = (0..256).map(|i| {
        let b = b.clone();
        tokio::spawn(async move {
            b.write(vec![put(&format!("g/{i:03}"), format!("v{i}").as_bytes())])
                .await
        })
    });
    for w in futures_util::future::join_all(writes).await {
        w.unwrap().unwrap();
    }
    let commits = b.commits() - before;
    assert!(
        commits < 256,
        "256 concurrent writes took {commits} commits"
    );
    assert_eq!(b.count_prefix("g/").await.unwrap(), 256);
    drop(b);

    // Another connection (a restarted hushd) sees every acknowledged write, and the schema
    // is found, not made again.
    let b = connect(&url).await.unwrap();
    assert_eq!(b.scan_prefix("g/").await.unwrap().len(), 256);
    assert_eq!(b.get("g/255").await.unwrap().as_deref(), Some(&b"v255"[..]));
    let admin = pg.admin_on("grouped").await;
    let version: i32 = admin
        .query_one("SELECT version FROM hush_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM hush_store", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_and_synchronous_commit_off_are_refused() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("newer", "sslmode=disable").await;
    drop(connect(&url).await.unwrap());
    pg.admin_on("newer")
        .await
        .batch_execute("UPDATE hush_schema SET version = version + 1")
        .await
        .unwrap();
    let err = connect(&url).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "holds Hush storage schema version {}, newer than this hushd's ({SCHEMA_VERSION})",
            SCHEMA_VERSION + 1
        )),
        "{err}"
    );

    let url = pg.storage_url("nosync", "sslmode=disable").await;
    pg.admin()
        .await
        .batch_execute("ALTER DATABASE nosync SET synchronous_commit = off")
        .await
        .unwrap();
    let err = connect(&url).await.unwrap_err().to_string();
    assert!(err.contains("synchronous_commit is off"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_the_server_never_the_password() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("errs", "sslmode=disable").await;
    let parsed = PostgresUrl::parse(&url).unwrap();
    for shown in [parsed.to_string(), format!("{parsed:?}")] {
        assert_no_password(&shown);
        assert!(
            shown.contains(&format!("127.0.0.1:{}/errs", pg.port)),
            "{shown}"
        );
    }

    // Wrong password: the server refuses the login.
    let wrong = url.replace(STORAGE_PASSWORD_URL, "Not-The-Pw-1");
    let err = connect(&wrong).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{} (database \"errs\", user \"{STORAGE_USER}\")",
            pg.port
        )),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("Not-The-Pw-1"), "{err}");

    // Nobody listening.
    let port = free_port();
    let down = format!(
        "postgres://{STORAGE_USER}:{STORAGE_PASSWORD_URL}@127.0.0.1:{port}/errs?sslmode=disable"
    );
    let err = connect(&down).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}")),
        "{err}"
    );
    assert_no_password(&err);

    // No such database.
    let err = connect(&url.replace("/errs?", "/nope?"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("database \"nope\" does not exist"), "{err}");
    assert_no_password(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_verify_full_against_the_cluster_ca() {
    let pg = Postgres::start_tls().await;
    let ca = pg.ca.clone().unwrap();
    let url = pg
        .storage_url(
            "tls",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )
        .await;
    let b = connect(&url).await.unwrap();
    b.write(vec![put("over/tls", b"ciphertext")]).await.unwrap();
    assert_eq!(
        b.get("over/tls").await.unwrap().as_deref(),
        Some(&b"ciphertext"[..])
    );
    // The cluster takes TCP logins over TLS only.
    let plain = url.split('?').next().unwrap().to_string() + "?sslmode=disable";
    let err = connect(&plain).await.unwrap_err().to_string();
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    // A CA that did not sign the server's certificate.
    let dir = tempfile::tempdir().unwrap();
    let (other_ca, _) = hush_tests::write_cert(dir.path(), "other");
    let wrong_ca = url.replace(&ca.display().to_string(), &other_ca.display().to_string());
    let err = connect(&wrong_ca).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert_no_password(&err);
    // verify-ca: the chain is checked (the wrong CA refused), the host name is not.
    let chain = url.replace("sslmode=verify-full", "sslmode=verify-ca");
    let b = connect(&chain).await.unwrap();
    assert!(b.get("over/tls").await.unwrap().is_some());
    let err = connect(&wrong_ca.replace("sslmode=verify-full", "sslmode=verify-ca"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    // require without a root certificate: encrypted, any certificate (the handshake's
    // signatures still checked).
    let require = plain.replace("sslmode=disable", "sslmode=require");
    let b = connect(&require).await.unwrap();
    assert!(b.get("over/tls").await.unwrap().is_some());
}

async fn start_hushd(args: &[&str]) -> Hushd {
    let mut all = args.to_vec();
    all.push("--insecure-no-tls");
    Hushd::start(&all, "http", http_client()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hushd_on_postgres_keeps_acknowledged_writes_across_kill_9() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("hushd", "sslmode=disable").await;
    let mut h = start_hushd(&["--storage", &url]).await;
    assert_no_password(&h.stderr());
    let key = h.init_unseal().await;
    let token = h.token.clone().unwrap();
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!((s, &b["storage_type"]), (200, &json!("postgresql")), "{b}");
    let (s, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");

    let acked: Arc<Mutex<BTreeMap<String, (u64, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (client, addr, token, acked, stop) = (
            h.client.clone(),
            h.addr.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = format!("crash/w{w}/k{}", i % 3);
                let v = format!("value-{w}-{i}");
                let Ok(r) = client
                    .post(format!("{addr}/v1/secret/data/{k}"))
                    .header("X-Vault-Token", &token)
                    .json(&json!({"data": {"v": v}}))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 200 {
                    if let Ok(b) = r.json::<serde_json::Value>().await {
                        let ver = b["data"]["version"].as_u64().unwrap();
                        acked.lock().unwrap().insert(k, (ver, v));
                    }
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 16,
        "too few writes before the kill: {}",
        acked.len()
    );

    // PostgreSQL holds only ciphertext.
    let admin = pg.admin_on("hushd").await;
    let rows = admin
        .query("SELECT value FROM hush_store", &[])
        .await
        .unwrap();
    assert!(rows.len() > acked.len());
    for row in rows {
        let value: Vec<u8> = row.get(0);
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("value-"), "plaintext in hush_store");
    }

    // Restart from a TOML config file naming the same storage.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hushd.toml");
    std::fs::write(&config, format!("storage = \"{url}\"\n")).unwrap();
    // At debug level: tokio-postgres would log every statement's parameters; hushd caps it.
    let mut h2 = start_hushd(&["--config", config.to_str().unwrap(), "--log-level", "debug"]).await;
    h2.unseal(&key).await;
    h2.token = Some(token);
    for (k, (ver, v)) in &acked {
        let (s, b) = h2.call("GET", &format!("secret/data/{k}"), None).await;
        assert_eq!(s, 200, "{k}: {b}");
        let got = b["data"]["metadata"]["version"].as_u64().unwrap();
        // A later write may have landed without its answer arriving before the kill.
        assert!(got >= *ver, "{k}: version {got} < acknowledged {ver}");
        let (_, m) = h2
            .call("GET", &format!("secret/data/{k}?version={ver}"), None)
            .await;
        assert_eq!(m["data"]["data"]["v"], json!(v), "{k} v{ver}");
    }
    let log = h2.stderr();
    assert_no_password(&log);
    assert!(log.contains("postgresql storage ready"), "{log}");
    assert!(
        !log.contains("with parameters"),
        "statement parameters logged"
    );
}

/// Run hushd to its exit; (exit code, stderr).
fn hushd_exit(args: &[&str]) -> (Option<i32>, String) {
    let port = free_port();
    let out = std::process::Command::new(bin("hushd"))
        .args(args)
        .args([
            "--insecure-no-tls",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hushd_refuses_unreachable_and_bad_urls_at_start() {
    let port = free_port();
    let down = format!(
        "postgres://{STORAGE_USER}:{STORAGE_PASSWORD_URL}@127.0.0.1:{port}/hush?sslmode=disable"
    );
    let (code, err) = hushd_exit(&["--storage", &down]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "hushd: cannot open storage: cannot connect to PostgreSQL at 127.0.0.1:{port} \
             (database \"hush\", user \"{STORAGE_USER}\")"
        )),
        "{err}"
    );
    assert_no_password(&err);

    let bad = format!(
        "postgres://{STORAGE_USER}:{STORAGE_PASSWORD_URL}@127.0.0.1:{port}/hush?sslmode=maybe"
    );
    let (code, err) = hushd_exit(&["--storage", &bad]);
    assert_eq!(code, Some(64), "{err}");
    assert_eq!(
        err.trim(),
        "hushd: invalid configuration: invalid storage: invalid sslmode \"maybe\": use disable, \
         prefer, require, verify-ca or verify-full"
    );
}

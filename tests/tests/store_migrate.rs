//! `hushd migrate` end to end: a real hushd on SQLite filled over HTTP, stopped, migrated into
//! a real PostgreSQL (the harness's cluster), then a hushd on PostgreSQL unsealed with the same
//! key serves the same secrets, versions, policies and tokens; and back from PostgreSQL into a
//! new SQLite file. A non-empty destination is refused (with how to start over), an
//! interrupted migration (kill -9) leaves a destination that is not an initialised store and
//! is refused until emptied, and bad URLs are refused with exact messages, never the password.
//!
//! `HUSH_MIGRATE_PUTS` (default 50000) sets how many KV writes fill the store; each adds two
//! storage entries, so the default migrates ~100k entries each way (about 70 s in a debug build
//! on 2 cores, most of it filling the store over HTTP); docs/BENCHMARKS.md records the rates.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hush_tests::pg::{Postgres, STORAGE_PASSWORD, STORAGE_PASSWORD_URL};
use hush_tests::{bin, http_client, Hushd};
use serde_json::{json, Value};

fn puts() -> usize {
    std::env::var("HUSH_MIGRATE_PUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

async fn start(storage: &str) -> Hushd {
    Hushd::start(
        &["--storage", storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await
}

fn migrate(args: &[&str]) -> Output {
    Command::new(bin("hushd"))
        .arg("migrate")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hushd migrate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_password(out: &Output) {
    for s in [text(&out.stdout), text(&out.stderr)] {
        assert!(!s.contains(STORAGE_PASSWORD), "{s}");
        assert!(!s.contains(STORAGE_PASSWORD_URL), "{s}");
    }
}

/// Rows of a SQLite store file, read directly.
fn sqlite_count(path: &std::path::Path) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT count(*) FROM kv", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

async fn pg_count(pg: &Postgres, db: &str) -> u64 {
    let n: i64 = pg
        .admin_on(db)
        .await
        .query_one("SELECT count(*) FROM hush_store", &[])
        .await
        .unwrap()
        .get(0);
    n as u64
}

/// What the test reads back from each store: secrets with their versions, a policy, a token.
#[derive(Debug, PartialEq)]
struct Seen {
    secrets: Vec<Value>,
    versions: Value,
    policy: Value,
    token_policies: Value,
    bulk_sample: Vec<Value>,
}

async fn fill(h: &Hushd, n: usize) -> String {
    let ok = |(s, b): (u16, Value)| assert!(s == 200 || s == 204, "{s} {b}");
    ok(h.call(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await);
    for v in 1..=3 {
        h.kv_put(
            "app/db",
            json!({"password": format!("pw-{v}"), "user": "app"}),
        )
        .await;
    }
    h.kv_put("app/api", json!({"key": "k-1"})).await;
    ok(h.call(
        "PUT",
        "sys/policies/acl/app-read",
        Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
    )
    .await);
    let token = h
        .create_token(json!({"policies": ["app-read"], "ttl": "24h"}))
        .await;
    // The bulk: n writes, 32 at a time.
    let started = Instant::now();
    let client = h.client.clone();
    let base = h.addr.clone();
    let root = h.token.clone().unwrap();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, base, root) = (client.clone(), base.clone(), root.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/secret/data/bulk/{i:06}"))
                .header("X-Vault-Token", root)
                .json(&json!({"data": {"n": i, "pad": "x".repeat(64)}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("filled {n} KV writes in {:.1?}", started.elapsed());
    token
}

async fn seen(h: &Hushd, token: &str, n: usize) -> Seen {
    let read = |path: String| async move {
        let (s, b) = h.call("GET", &path, None).await;
        assert_eq!(s, 200, "{path}: {b}");
        b["data"].clone()
    };
    let mut secrets = Vec::new();
    for v in 1..=3 {
        secrets.push(read(format!("secret/data/app/db?version={v}")).await["data"].clone());
    }
    secrets.push(read("secret/data/app/api".into()).await["data"].clone());
    let versions = read("secret/metadata/app/db".into()).await["current_version"].clone();
    let policy = read("sys/policies/acl/app-read".into()).await["policy"].clone();
    // The token made before the migration still works, with its policy.
    let (s, b) = h
        .call_as(Some(token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, look) = h
        .call_as(Some(token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "{look}");
    let mut bulk_sample = Vec::new();
    for i in [0, n / 2, n - 1] {
        bulk_sample.push(read(format!("secret/data/bulk/{i:06}")).await["data"].clone());
    }
    Seen {
        secrets,
        versions,
        policy,
        token_policies: look["data"]["policies"].clone(),
        bulk_sample,
    }
}

/// The summary line: `migrated and verified N entries (B bytes), SHA-256 H, in S s (R entries/s)`.
fn summary(out: &Output) -> (u64, String, f64) {
    let stdout = text(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(line.starts_with("migrated and verified "), "{stdout}");
    let entries: u64 = words[3].parse().unwrap();
    let sha = words[8].trim_end_matches(',').to_string();
    let rate: f64 = words[12].trim_start_matches('(').parse().unwrap();
    (entries, sha, rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_serves_the_same_data() {
    let n = puts();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("hush.db");
    let sqlite_url = format!("sqlite://{}", sqlite.display());
    let mut h = start(&sqlite_url).await;
    let key = h.init_unseal().await;
    let root = h.token.clone().unwrap();
    let token = fill(&h, n).await;
    let before = seen(&h, &token, n).await;
    drop(h); // stopped: migration is offline
    let entries = sqlite_count(&sqlite);
    assert!(entries as usize > 2 * n, "{entries} entries for {n} writes");

    // SQLite -> PostgreSQL.
    let pg = Postgres::start().await;
    let pg_url = pg.storage_url("migrated", "sslmode=disable").await;
    let out = migrate(&["--from", &sqlite_url, "--to", &pg_url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_password(&out);
    let (copied, sha, rate) = summary(&out);
    eprintln!(
        "sqlite -> postgresql: {copied} entries, {rate} entries/s: {}",
        text(&out.stdout)
    );
    assert_eq!(copied, entries);
    assert_eq!(pg_count(&pg, "migrated").await, entries);
    // Not a terminal: JSON lines, each phase ending with its total, then "done".
    let lines: Vec<Value> = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for phase in ["copy", "verify"] {
        let end = lines
            .iter()
            .find(|l| l["phase"] == phase && l["phase_done"] == true)
            .unwrap_or_else(|| panic!("no end of {phase}: {lines:?}"));
        assert_eq!(end["entries"], json!(entries), "{end}");
    }
    let done = lines.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["sha256"], json!(sha));

    // hushd on PostgreSQL: sealed, unsealed with the same key, the same data.
    let mut h = start(&pg_url).await;
    h.unseal(&key).await;
    h.token = Some(root.clone());
    let on_pg = seen(&h, &token, n).await;
    assert_eq!(on_pg, before);
    h.kv_put("app/db", json!({"password": "pw-4", "user": "app"}))
        .await;
    drop(h);

    // A non-empty destination is refused, and nothing in it changes.
    let out = migrate(&["--from", &sqlite_url, "--to", &pg_url]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_password(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the destination postgres://hush_storage:***@127.0.0.1:{}/migrated?sslmode=disable is not empty ({} entries; it is an initialised Hush store): migrate only copies into an empty store. To start over, run `DELETE FROM hush_store;` in database \"migrated\" (or drop and create the database), then run hushd migrate again",
            pg.port,
            entries + 1,
        )),
        "{stderr}"
    );
    assert_eq!(pg_count(&pg, "migrated").await, entries + 1);

    // PostgreSQL -> a new SQLite file.
    let back = dir.path().join("back.db");
    let back_url = format!("sqlite://{}", back.display());
    let out = migrate(&["--from", &pg_url, "--to", &back_url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_no_password(&out);
    let (copied, _, rate) = summary(&out);
    eprintln!("postgresql -> sqlite: {copied} entries, {rate} entries/s");
    assert_eq!(copied, entries + 1);
    assert_eq!(sqlite_count(&back), entries + 1);
    let mut h = start(&back_url).await;
    h.unseal(&key).await;
    h.token = Some(root);
    let on_back = seen(&h, &token, n).await;
    assert_eq!(on_back.versions, json!(4));
    assert_eq!(on_back.policy, before.policy);
    assert_eq!(on_back.bulk_sample, before.bulk_sample);
    let (s, b) = h.call("GET", "secret/data/app/db", None).await;
    assert_eq!((s, &b["data"]["data"]["password"]), (200, &json!("pw-4")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_is_not_a_store_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let src_url = format!("sqlite://{}", src.display());
    let mut h = start(&src_url).await;
    let key = h.init_unseal().await;
    fill(&h, 600).await;
    drop(h);
    let total = sqlite_count(&src);

    // One entry per batch (a commit each) so the copy is slow enough to kill mid-way.
    let dst = dir.path().join("dst.db");
    let dst_url = format!("sqlite://{}", dst.display());
    let mut child = Command::new(bin("hushd"))
        .args([
            "migrate", "--batch", "1", "--from", &src_url, "--to", &dst_url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied = if dst.exists() {
            rusqlite::Connection::open(&dst)
                .and_then(|c| c.query_row("SELECT count(*) FROM kv", [], |r| r.get::<_, i64>(0)))
                .unwrap_or(0)
        } else {
            0
        };
        if copied >= 50 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the copy did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = sqlite_count(&dst);
    assert!(partial > 0 && partial < total, "{partial} of {total}");

    // hushd on the partial copy: not initialised, so nothing half-copied is ever served.
    let h = start(&dst_url).await;
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!((s, &b["initialized"]), (200, &json!(false)), "{b}");
    drop(h);

    // Rerun: refused, with how to start over.
    let out = migrate(&["--from", &src_url, "--to", &dst_url]);
    assert_eq!(out.status.code(), Some(1));
    let d = dst.display();
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "hushd migrate: the destination sqlite://{d} is not empty ({partial} entries; no seal configuration, so most likely an interrupted migration): migrate only copies into an empty store. To start over, delete {d} (and {d}-wal, {d}-shm if present), then run hushd migrate again"
        )
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{d}{suffix}"));
    }
    let out = migrate(&["--from", &src_url, "--to", &dst_url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out).0, total);
    let h = start(&dst_url).await;
    h.unseal(&key).await;
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!((s, &b["sealed"]), (200, &json!(false)), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_refused_with_one_exact_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let src = dir.path().join("a.db");
    rusqlite::Connection::open(&src).unwrap();
    let a = format!("sqlite://{d}/a.db");
    let same = format!("sqlite://{d}/./a.db");
    let pw = format!("postgres://hush_storage:{STORAGE_PASSWORD_URL}@127.0.0.1:1/x");
    let bad_mode = format!("{pw}?sslmode=sometimes");
    let none = format!("sqlite://{d}/none.db");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--from", "inmem", "--to", &a],
            64,
            "--from: inmem keeps nothing: migrate copies between sqlite://PATH and postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        ),
        (
            vec!["--from", &none, "--to", &a],
            64,
            format!("--from: {d}/none.db does not exist"),
        ),
        (
            vec!["--from", &a, "--to", "sqlite:///no/such/dir/b.db"],
            64,
            "--to: storage directory /no/such/dir does not exist: create it first".into(),
        ),
        (
            vec!["--from", &a, "--to", "mysql://u:pw@h/db"],
            64,
            "--to: unsupported storage \"mysql://...\": use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE (or inmem for throw-away tests)".into(),
        ),
        (
            vec!["--from", &a, "--to", &bad_mode],
            64,
            "--to: invalid storage: invalid sslmode \"sometimes\": use disable, prefer, require, verify-ca or verify-full".into(),
        ),
        (
            vec!["--from", &a, "--to", &same],
            64,
            format!("--from and --to are the same store (sqlite://{d}/a.db): give another destination"),
        ),
    ];
    for (args, code, want) in cases {
        let out = migrate(&args);
        assert_no_password(&out);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr).trim_end(),
            format!("hushd migrate: {want}"),
            "{args:?}"
        );
    }
    // Nothing listens on port 1: the unreachable server is named, not its password.
    let out = migrate(&["--from", &a, "--to", &format!("{pw}?sslmode=disable")]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("hushd migrate: --to: cannot open postgres://hush_storage:***@127.0.0.1:1/x?sslmode=disable: cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{stderr}"
    );
}

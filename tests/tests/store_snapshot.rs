//! Snapshots against real hushd processes on real SQLite files and a real PostgreSQL
//! (`hush_tests::pg`), through the real `hush` CLI and raw HTTP:
//!
//! - a store with many entries (`HUSH_SNAPSHOT_ENTRIES`, default 100 000, made through
//!   `sys/raw` 64 at a time) is saved; a flipped byte, a removed entry and two swapped entries
//!   are each refused by `inspect`, by `restore` and by the server itself;
//! - the untouched file restores into a fresh SQLite and a fresh PostgreSQL store with other
//!   keys (`-force`; refused without, saying so); each is sealed, unseals with the snapshot's
//!   key and root token and reads the same secrets, versions and policies back (also through
//!   hvac);
//! - `inspect` authenticates against a store holding the keys, and fails against another;
//! - a restore interrupted by `kill -9` leaves the old store intact, on SQLite and PostgreSQL;
//! - bad inputs: not root 403, sealed 503, garbage and truncated 400, over the limit 413.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hush_tests::pg::Postgres;
use hush_tests::{http_client, run_hush, Hushd};
use serde_json::{json, Value};

/// Entries made in the big store.
fn entries() -> usize {
    std::env::var("HUSH_SNAPSHOT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

async fn sqlite_store(dir: &Path, name: &str, extra: &[&str]) -> (Hushd, String) {
    let storage = format!("sqlite://{}", dir.join(name).display());
    let mut args = vec!["--storage", &storage, "--insecure-no-tls"];
    args.extend_from_slice(extra);
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    (h, key)
}

/// kv v2 at secret/, two versions of secret/app, a policy.
async fn write_known_data(h: &Hushd) {
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    h.kv_put("app", json!({"password": "one"})).await;
    h.kv_put("app", json!({"password": "two"})).await;
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/reader",
            Some(json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

/// The data of [`write_known_data`] reads back.
async fn check_known_data(h: &Hushd) {
    let (s, b) = h.call("GET", "secret/data/app", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "two");
    assert_eq!(b["data"]["metadata"]["version"], 2);
    let (s, b) = h.call("GET", "secret/data/app?version=1", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "one");
    let (s, b) = h.call("GET", "secret/metadata/app", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["current_version"], 2);
    let (s, b) = h.call("GET", "sys/policies/acl/reader", None).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("secret/data/*"));
}

/// [`check_known_data`] through the real hvac client (installed by scripts/test).
fn check_known_data_with_hvac(h: &Hushd) {
    const SCRIPT: &str = r#"
import sys, hvac
c = hvac.Client(url=sys.argv[1], token=sys.argv[2])
kv = c.secrets.kv.v2
got = kv.read_secret_version(path="app", raise_on_deleted_version=True)
assert got["data"]["data"] == {"password": "two"}, got
assert got["data"]["metadata"]["version"] == 2, got
old = kv.read_secret_version(path="app", version=1, raise_on_deleted_version=True)
assert old["data"]["data"] == {"password": "one"}, old
assert kv.read_secret_metadata(path="app")["data"]["current_version"] == 2
assert "secret/data/*" in c.sys.read_acl_policy("reader")["data"]["policy"]
print("hvac read the restored data")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, &h.addr, h.token.as_deref().unwrap()])
        .output()
        .expect("python3 with hvac (scripts/test installs it)");
    assert!(
        out.status.success(),
        "hvac on the restored store: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` entries under `bulk/` through `sys/raw`, 64 requests at a time.
async fn fill(h: &Hushd, n: usize) {
    let started = Instant::now();
    let client = http_client();
    let token = h.token.clone().unwrap();
    let addr = h.addr.clone();
    let results: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|i| {
            let (client, token, addr) = (client.clone(), token.clone(), addr.clone());
            async move {
                client
                    .put(format!("{addr}/v1/sys/raw/bulk/{:03}/{i:06}", i % 997))
                    .header("X-Vault-Token", token)
                    .json(&json!({"value": format!("entry {i} {}", "x".repeat(64))}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(results.iter().all(|s| *s == 204), "a bulk write failed");
    eprintln!("filled {n} entries in {:?}", started.elapsed());
}

/// Run `hush` off the async threads.
async fn hush(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_hush(&args, &env, None)
    })
    .await
    .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(addr, token)` env of `h` for the CLI.
fn env_of(h: &Hushd) -> [(&'static str, String); 2] {
    [
        ("HUSH_ADDR", h.addr.clone()),
        ("HUSH_TOKEN", h.token.clone().unwrap()),
    ]
}

async fn hush_on(h: &Hushd, args: &[&str]) -> std::process::Output {
    let env = env_of(h);
    hush(args, &[(env[0].0, &env[0].1), (env[1].0, &env[1].1)]).await
}

/// Byte ranges of the entry records of a snapshot file.
fn records(file: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 8;
    while file[at] == b'E' {
        let klen = u32::from_be_bytes(file[at + 1..at + 5].try_into().unwrap()) as usize;
        let v = at + 5 + klen;
        let vlen = u32::from_be_bytes(file[v..v + 4].try_into().unwrap()) as usize;
        out.push(at..v + 4 + vlen);
        at = v + 4 + vlen;
    }
    out
}

/// The three damaged copies: a flipped byte, a removed entry, two swapped entries.
fn damaged(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let recs = records(good);
    let mid = recs.len() / 2;
    let mut flipped = good.to_vec();
    let last = recs[mid].end - 1;
    flipped[last] ^= 0x01;
    let mut removed = good[..recs[mid].start].to_vec();
    removed.extend_from_slice(&good[recs[mid].end..]);
    let (a, b) = (recs[mid].clone(), recs[mid + 1].clone());
    let mut swapped = good[..a.start].to_vec();
    swapped.extend_from_slice(&good[b.clone()]);
    swapped.extend_from_slice(&good[a]);
    swapped.extend_from_slice(&good[b.end..]);
    assert_eq!(swapped.len(), good.len());
    vec![
        ("flipped", flipped),
        ("removed", removed),
        ("swapped", swapped),
    ]
}

/// POST `body` to the restore route as `h`'s token.
async fn post_snapshot(h: &Hushd, path: &str, body: Vec<u8>) -> (u16, Value) {
    h.call_body(
        h.token.as_deref(),
        "POST",
        path,
        Some("application/octet-stream"),
        body,
    )
    .await
}

fn errors(b: &Value) -> String {
    b["errors"].to_string()
}

async fn restore_elsewhere(
    target: &mut Hushd,
    file: &str,
    source_key: &str,
    source_token: &str,
    count: usize,
) {
    // Other keys: refused without -force, saying so.
    let out = hush_on(target, &["operator", "snapshot", "restore", file]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("-force"), "{}", text(&out));
    let (s, _) = target.call("GET", "sys/seal-status", None).await;
    assert_eq!(s, 200);
    let started = Instant::now();
    let out = hush_on(target, &["operator", "snapshot", "restore", "-force", file]).await;
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("restored {count} entries in {:?}", started.elapsed());
    let (_, b) = target.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["sealed"], true, "sealed after a restore: {b}");
    target.unseal(source_key).await;
    target.token = Some(source_token.to_string());
    check_known_data(target).await;
    check_known_data_with_hvac(target);
    let (s, b) = target.call("LIST", "sys/raw/bulk/000/", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["keys"].as_array().unwrap().len(),
        count.div_ceil(997),
        "bulk entries restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_save_damage_and_restore_into_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let count = entries();
    let (a, key_a) = sqlite_store(dir.path(), "a.db", &["--raw-storage-endpoint"]).await;
    write_known_data(&a).await;
    fill(&a, count).await;
    let token_a = a.token.clone().unwrap();

    // Save through the CLI: JSON progress lines (stderr is not a terminal), then the answer.
    let file = dir.path().join("a.snap");
    let file_s = file.to_str().unwrap().to_string();
    let started = Instant::now();
    let out = hush_on(&a, &["operator", "snapshot", "save", &file_s]).await;
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("saved {count} entries in {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["finished"], true, "{stderr}");
    let good = std::fs::read(&file).unwrap();
    assert!(records(&good).len() > count, "every entry is in the file");

    // Offline inspect passes; with the keys' store it also authenticates.
    let out = hush(&["operator", "snapshot", "inspect", &file_s], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not checked"), "{}", text(&out));
    let out = hush_on(&a, &["operator", "snapshot", "inspect", &file_s]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("verified with the keys"),
        "{}",
        text(&out)
    );

    // Each damage is refused by inspect, by restore, and by the server itself; nothing
    // changes in the store.
    for (what, bytes) in damaged(&good) {
        let bad = dir.path().join(format!("{what}.snap"));
        std::fs::write(&bad, &bytes).unwrap();
        let bad_s = bad.to_str().unwrap();
        let out = hush(&["operator", "snapshot", "inspect", bad_s], &[]).await;
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let out = hush_on(&a, &["operator", "snapshot", "restore", bad_s]).await;
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let (s, b) = post_snapshot(&a, "sys/storage/snapshot", bytes.clone()).await;
        assert_eq!(s, 400, "{what}: {b}");
        assert!(errors(&b).contains("invalid snapshot"), "{what}: {b}");
        let (s, b) = post_snapshot(&a, "sys/storage/snapshot-force", bytes).await;
        assert_eq!(s, 400, "{what} (force): {b}");
        let (_, b) = a.call("GET", "sys/seal-status", None).await;
        assert_eq!(
            b["sealed"], false,
            "{what}: a refused snapshot seals nothing"
        );
    }
    check_known_data(&a).await;

    // A fresh SQLite store with its own keys.
    let (mut b_store, _) = sqlite_store(dir.path(), "b.db", &["--raw-storage-endpoint"]).await;
    restore_elsewhere(&mut b_store, &file_s, &key_a, &token_a, count).await;

    // A fresh PostgreSQL store with its own keys; inspect against it fails first (other keys).
    let pg = Postgres::start().await;
    let url = pg.storage_url("restored", "sslmode=disable").await;
    let mut c = Hushd::start(
        &[
            "--storage",
            &url,
            "--insecure-no-tls",
            "--raw-storage-endpoint",
        ],
        "http",
        http_client(),
    )
    .await;
    c.init_unseal().await;
    let out = hush_on(&c, &["operator", "snapshot", "inspect", &file_s]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("other keys"), "{}", text(&out));
    restore_elsewhere(&mut c, &file_s, &key_a, &token_a, count).await;

    // A snapshot of the PostgreSQL store restores back into the first (same keys: no force).
    let pg_file = dir.path().join("c.snap");
    let pg_file_s = pg_file.to_str().unwrap();
    let out = hush_on(&c, &["operator", "snapshot", "save", pg_file_s]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = hush_on(&a, &["operator", "snapshot", "restore", pg_file_s]).await;
    assert!(out.status.success(), "{}", text(&out));
    a.unseal(&key_a).await;
    check_known_data(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_midway_leaves_the_old_store() {
    let dir = tempfile::tempdir().unwrap();
    let count = entries();
    let (mut a, key_a) = sqlite_store(dir.path(), "a.db", &["--raw-storage-endpoint"]).await;
    write_known_data(&a).await;
    fill(&a, count).await;
    let file = dir.path().join("a.snap");
    let out = hush_on(
        &a,
        &["operator", "snapshot", "save", file.to_str().unwrap()],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // Written after the snapshot: still there if the restore did not happen.
    a.kv_put("after", json!({"v": "old store"})).await;

    let body = std::fs::read(&file).unwrap();
    let url = format!("{}/v1/sys/storage/snapshot", a.addr);
    let token = a.token.clone().unwrap();
    let upload = tokio::spawn(async move {
        http_client()
            .post(url)
            .header("X-Vault-Token", token)
            .body(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
    });
    // Kill as soon as storage is being replaced.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !a.stderr().contains("sealed for a snapshot restore") {
        assert!(
            Instant::now() < deadline,
            "the restore never began: {}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.kill9();
    assert!(
        !a.stderr().contains("snapshot restored"),
        "the restore finished before the kill: use more entries"
    );
    assert!(upload.await.unwrap().is_err(), "the upload saw the kill");

    let storage = format!("sqlite://{}", dir.path().join("a.db").display());
    let mut again = Hushd::start(
        &[
            "--storage",
            &storage,
            "--insecure-no-tls",
            "--raw-storage-endpoint",
        ],
        "http",
        http_client(),
    )
    .await;
    again.token = a.token.clone();
    again.unseal(&key_a).await;
    check_known_data(&again).await;
    let (s, b) = again.call("GET", "secret/data/after", None).await;
    assert_eq!(s, 200, "the old store, untouched: {b}");
    assert_eq!(b["data"]["data"]["v"], "old store");
    let (s, b) = again.call("LIST", "sys/raw/bulk/000/", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["keys"].as_array().unwrap().len(),
        count.div_ceil(997)
    );
    drop(again);

    // The same on PostgreSQL: a store with other keys, the same file forced into it, hushd
    // killed while its one transaction replaces the table; the server rolls it back.
    let pg = Postgres::start().await;
    let url = pg.storage_url("killed", "sslmode=disable").await;
    let args = ["--storage", url.as_str(), "--insecure-no-tls"];
    let mut b = Hushd::start(&args, "http", http_client()).await;
    let key_b = b.init_unseal().await;
    let (s, body) = b
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{body}");
    b.kv_put("mine", json!({"v": "the postgres store"})).await;
    let token_b = b.token.clone().unwrap();
    let body = std::fs::read(&file).unwrap();
    let url_force = format!("{}/v1/sys/storage/snapshot-force", b.addr);
    let upload = tokio::spawn(async move {
        http_client()
            .post(url_force)
            .header("X-Vault-Token", token_b)
            .body(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !b.stderr().contains("sealed for a snapshot restore") {
        assert!(
            Instant::now() < deadline,
            "the restore never began: {}",
            b.stderr()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    b.kill9();
    assert!(
        !b.stderr().contains("snapshot restored"),
        "the restore finished before the kill: use more entries"
    );
    assert!(upload.await.unwrap().is_err(), "the upload saw the kill");
    let mut b2 = Hushd::start(&args, "http", http_client()).await;
    b2.token = b.token.clone();
    b2.unseal(&key_b).await;
    let (s, body) = b2.call("GET", "secret/data/mine", None).await;
    assert_eq!(s, 200, "the old PostgreSQL store, untouched: {body}");
    assert_eq!(body["data"]["data"]["v"], "the postgres store");
    let rows: i64 = pg
        .admin_on("killed")
        .await
        .query_one("SELECT count(*) FROM hush_store", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rows < 1000, "{rows} rows: part of the snapshot landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshot_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hushd.toml");
    std::fs::write(&config, "max_snapshot_bytes = 65536\n").unwrap();
    let config_s = config.to_str().unwrap();
    let (mut a, key_a) = sqlite_store(dir.path(), "a.db", &["--config", config_s]).await;
    write_known_data(&a).await;
    let resp = http_client()
        .get(format!("{}/v1/sys/storage/snapshot", a.addr))
        .header("X-Vault-Token", a.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let good = resp.bytes().await.unwrap().to_vec();

    // Not root: 403 on every route, before any byte moves.
    let reader = a
        .token_with_policy(
            "kv-reader",
            "path \"secret/*\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, b) = a
        .call_as(Some(&reader), "GET", "sys/storage/snapshot", None)
        .await;
    assert_eq!(s, 403, "{b}");
    for path in ["sys/storage/snapshot", "sys/storage/snapshot-force"] {
        let (s, b) = a
            .call_body(Some(&reader), "POST", path, None, good.clone())
            .await;
        assert_eq!(s, 403, "{path}: {b}");
    }
    let (s, b) = a
        .call_as(
            Some(&reader),
            "POST",
            "sys/storage/snapshot/verify",
            Some(json!({"manifest": "", "mac": ""})),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    // No token at all.
    let (s, _) = a.call_as(None, "GET", "sys/storage/snapshot", None).await;
    assert_eq!(s, 403);
    // A policy with sudo on the path is enough, as in Vault.
    let sudo = a
        .token_with_policy(
            "snapshotter",
            "path \"sys/storage/snapshot\" { capabilities = [\"read\", \"update\", \"sudo\"] }",
        )
        .await;
    let (s, _) = a
        .call_as(Some(&sudo), "GET", "sys/storage/snapshot", None)
        .await;
    assert_eq!(s, 200);

    // Garbage and truncated files: 400 with the reason; the store is unchanged.
    let (s, b) = post_snapshot(
        &a,
        "sys/storage/snapshot",
        b"not a snapshot at all".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(errors(&b).contains("not a Hush snapshot"), "{b}");
    let (s, b) = post_snapshot(&a, "sys/storage/snapshot", good[..good.len() / 2].to_vec()).await;
    assert_eq!(s, 400, "{b}");
    assert!(errors(&b).contains("truncated"), "{b}");
    let (s, b) = post_snapshot(&a, "sys/storage/snapshot", Vec::new()).await;
    assert_eq!(s, 400, "{b}");
    check_known_data(&a).await;

    // Over the limit: 413, declared or streamed.
    let (s, body) = a.oversize("POST", "sys/storage/snapshot", 65536).await;
    assert_eq!(s, 413, "{body}");
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![0u8; 8192])));
    let resp = http_client()
        .post(format!("{}/v1/sys/storage/snapshot", a.addr))
        .header("X-Vault-Token", a.token.as_deref().unwrap())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
    // The JSON routes keep their own limit and paths: the verify endpoint needs its fields.
    let (s, b) = a
        .call("POST", "sys/storage/snapshot/verify", Some(json!({})))
        .await;
    assert_eq!(s, 400, "{b}");
    // Unsupported methods: 405 in Vault's shape.
    let (s, b) = a.call("DELETE", "sys/storage/snapshot", None).await;
    assert_eq!(s, 405, "{b}");

    // Other keys without force: 400 saying to use -force.
    let (other, _) = sqlite_store(dir.path(), "other.db", &[]).await;
    let (s, b) = post_snapshot(&other, "sys/storage/snapshot", good.clone()).await;
    assert_eq!(s, 400, "{b}");
    assert!(errors(&b).contains("-force"), "{b}");
    let (_, b) = other.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["sealed"], false);

    // Sealed: 503.
    let (s, _) = a.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    let (s, b) = a.call("GET", "sys/storage/snapshot", None).await;
    assert_eq!(s, 503, "{b}");
    let (s, b) = post_snapshot(&a, "sys/storage/snapshot", good.clone()).await;
    assert_eq!(s, 503, "{b}");
    a.unseal(&key_a).await;

    // The good one restores into its own store without force; sealed afterwards.
    let (s, b) = post_snapshot(&a, "sys/storage/snapshot", good).await;
    assert_eq!(s, 204, "{b}");
    let (_, b) = a.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["sealed"], true);
    a.unseal(&key_a).await;
    check_known_data(&a).await;
    a.kill9();
}

//! The rewrap after `sys/rotate` on a real hushd, over SQLite and over a real PostgreSQL: the
//! background task moves every entry to the newest key term (checked in the stored bytes, not
//! only in `sys/key-status`), survives `kill -9` mid-way (restart + unseal resumes the same
//! walk and finishes), loses no client write made while it runs, and the values still read
//! back. Older terms end up retired; `sys/key-status` keeps Vault's fields.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_tests::pg::Postgres;
use hush_tests::{http_client, Hushd};
use serde_json::{json, Value};

/// KV writes that fill the store (two storage entries each).
const PUTS: usize = 3000;
/// Keys written over and over while the rewrap runs.
const RACERS: usize = 4;

/// Where the stored bytes are read from.
enum Raw<'a> {
    Sqlite(std::path::PathBuf),
    Postgres(&'a Postgres, &'static str),
}

impl Raw<'_> {
    /// Every stored (key, value).
    async fn entries(&self) -> Vec<(String, Vec<u8>)> {
        match self {
            Raw::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                let mut stmt = c.prepare("SELECT key, value FROM kv ORDER BY key").unwrap();
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rows
            }
            Raw::Postgres(pg, db) => pg
                .admin_on(db)
                .await
                .query("SELECT key, value FROM hush_store ORDER BY key", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        String::from_utf8(r.get::<_, Vec<u8>>(0)).unwrap(),
                        r.get::<_, Vec<u8>>(1),
                    )
                })
                .collect(),
        }
    }

    /// How many barrier entries are under each term (the seal's own entries left out).
    async fn terms(&self) -> std::collections::BTreeMap<u32, usize> {
        let mut out = std::collections::BTreeMap::new();
        for (key, value) in self.entries().await {
            if key == "core/keyring" || key.starts_with("core/seal/") {
                continue;
            }
            assert_eq!(value[0], 1, "{key}: entry format version");
            let term = u32::from_be_bytes(value[1..5].try_into().unwrap());
            *out.entry(term).or_default() += 1;
        }
        out
    }
}

async fn start(storage: &str) -> Hushd {
    Hushd::start(
        &["--storage", storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await
}

async fn key_status(h: &Hushd) -> Value {
    let (s, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn rotate(h: &Hushd) {
    let (s, b) = h.call("PUT", "sys/rotate", None).await;
    assert_eq!(s, 204, "{b}");
}

/// Wait until the rewrap to `term` is complete; returns the key status.
async fn wait_complete(h: &Hushd, term: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = key_status(h).await;
        if st["rewrap"]["target_term"] == json!(term) && st["rewrap"]["complete"] == json!(true) {
            return st;
        }
        assert!(Instant::now() < deadline, "rewrap to {term} not done: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(h: &Hushd) {
    let ok = |(s, b): (u16, Value)| assert!(s == 200 || s == 204, "{s} {b}");
    ok(h.call(
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await);
    ok(h.call(
        "PUT",
        "sys/policies/acl/app-read",
        Some(json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
    )
    .await);
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..PUTS {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, base, root) = (h.client.clone(), h.addr.clone(), h.token.clone().unwrap());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/secret/data/bulk/{i:05}"))
                .header("X-Vault-Token", root)
                .json(&json!({"data": {"n": i}}))
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
}

/// Write each racer key over and over until `stop`; returns the last acknowledged value of
/// each.
async fn race(
    client: hush_tests::reqwest::Client,
    base: String,
    root: String,
    stop: Arc<AtomicBool>,
) -> Vec<u64> {
    let mut tasks = Vec::new();
    for k in 0..RACERS {
        let (client, base, root) = (client.clone(), base.clone(), root.clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for n in 1.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let r = client
                    .post(format!("{base}/v1/secret/data/race/{k}"))
                    .header("X-Vault-Token", &root)
                    .json(&json!({"data": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                last = n;
            }
            last
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn rotate_rewrap_kill_resume(storage: &str, raw: Raw<'_>) {
    let mut h = start(storage).await;
    let key = h.init_unseal().await;
    let root = h.token.clone().unwrap();
    fill(&h).await;
    let st = key_status(&h).await;
    assert_eq!(
        (&st["term"], &st["oldest_term"]),
        (&json!(1), &json!(1)),
        "{st}"
    );
    assert!(st["encryptions"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(
        raw.terms().await.keys().copied().collect::<Vec<_>>(),
        vec![1]
    );

    // Rotate, and kill -9 while the rewrap is part-way.
    rotate(&h).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let before_kill = loop {
        let st = key_status(&h).await;
        let w = &st["rewrap"];
        if w["target_term"] == json!(2) && w["entries_scanned"].as_u64().unwrap_or(0) >= 600 {
            assert_eq!(
                w["complete"],
                json!(false),
                "finished before it could be killed: {st}"
            );
            break st;
        }
        assert!(Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    h.kill9();
    let on_disk = raw.terms().await;
    assert!(on_disk[&1] > 0 && on_disk[&2] > 0, "part-way: {on_disk:?}");
    eprintln!(
        "killed part-way: {on_disk:?} (terms -> entries), {}",
        before_kill["rewrap"]
    );

    // Restart + unseal: the same walk resumes and finishes.
    let mut h = start(storage).await;
    h.unseal(&key).await;
    h.token = Some(root.clone());
    let first = key_status(&h).await;
    let started = Instant::now();
    let done = wait_complete(&h, 2).await;
    eprintln!(
        "resumed from {} scanned, finished in {:.1?}: {}",
        first["rewrap"]["entries_scanned"],
        started.elapsed(),
        done["rewrap"]
    );
    assert_eq!(
        done["rewrap"]["started_time"], before_kill["rewrap"]["started_time"],
        "the walk resumed, not restarted"
    );
    assert!(
        first["rewrap"]["entries_scanned"].as_u64().unwrap()
            >= before_kill["rewrap"]["entries_scanned"].as_u64().unwrap()
    );
    assert_eq!(done["oldest_term"], json!(2), "{done}");
    assert_eq!(done["rewrap"]["entries_unreadable"], json!(0), "{done}");
    assert!(done["terms"][0]["retired_time"].is_string(), "{done}");
    assert_eq!(
        raw.terms().await.keys().copied().collect::<Vec<_>>(),
        vec![2]
    );

    // Again with writes racing the rewrap: none is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let racing = tokio::spawn(race(
        h.client.clone(),
        h.addr.clone(),
        root.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    rotate(&h).await;
    let done = wait_complete(&h, 3).await;
    stop.store(true, Ordering::SeqCst);
    let last = racing.await.unwrap();
    eprintln!(
        "racing writes acknowledged per key: {last:?}; {}",
        done["rewrap"]
    );
    assert!(last.iter().all(|n| *n > 0));
    for (k, n) in last.iter().enumerate() {
        let (s, b) = h.call("GET", &format!("secret/data/race/{k}"), None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["data"]["n"], json!(n), "race/{k}: {b}");
        assert_eq!(b["data"]["metadata"]["version"], json!(n), "race/{k}: {b}");
    }

    // Every entry on the newest term, Vault's fields unchanged, older terms retired.
    let st = key_status(&h).await;
    assert_eq!(st["term"], json!(3), "{st}");
    assert_eq!(st["oldest_term"], json!(3), "{st}");
    assert!(
        st["install_time"].is_string() && st["encryptions"].is_u64(),
        "{st}"
    );
    assert_eq!(st["data"]["term"], json!(3), "{st}");
    let retired: Vec<bool> = st["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["retired_time"].is_string())
        .collect();
    assert_eq!(retired, vec![true, true, false], "{st}");
    // The values read back (a bulk sample, a policy, versions).
    for i in [0, PUTS / 2, PUTS - 1] {
        let (s, b) = h
            .call("GET", &format!("secret/data/bulk/{i:05}"), None)
            .await;
        assert_eq!((s, &b["data"]["data"]["n"]), (200, &json!(i)), "{b}");
    }
    let (s, b) = h.call("GET", "sys/policies/acl/app-read", None).await;
    assert_eq!(s, 200, "{b}");
    drop(h);
    let on_disk = raw.terms().await;
    assert_eq!(
        on_disk.keys().copied().collect::<Vec<_>>(),
        vec![3],
        "{on_disk:?}"
    );
    eprintln!("after rotate + rewrap: {on_disk:?} (terms -> entries)");

    // A restart keeps it: the keyring loads with its retired terms; nothing left to do.
    let mut h = start(storage).await;
    h.unseal(&key).await;
    h.token = Some(root.clone());
    let st = wait_complete(&h, 3).await;
    assert_eq!(st["oldest_term"], json!(3), "{st}");
    let (s, b) = h.call("GET", "secret/data/race/0", None).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_on_sqlite_resumes_after_kill9_and_loses_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hush.db");
    let storage = format!("sqlite://{}", db.display());
    rotate_rewrap_kill_resume(&storage, Raw::Sqlite(db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_on_postgres_resumes_after_kill9_and_loses_no_write() {
    let pg = Postgres::start().await;
    let storage = pg.storage_url("rewrap", "sslmode=disable").await;
    rotate_rewrap_kill_resume(&storage, Raw::Postgres(&pg, "rewrap")).await;
}

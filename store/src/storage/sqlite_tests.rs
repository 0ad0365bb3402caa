//! Tests of the SQLite backend: shared semantics, atomic batches, group commit, durability
//! (reopen and `kill -9`), and that only ciphertext reaches the files.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::barrier::{Barrier, BarrierError, KeyBytes};
use crate::storage::conformance;

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

fn open_tmp() -> (tempfile::TempDir, PathBuf, SqliteBackend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    let b = SqliteBackend::open(&path).unwrap();
    (dir, path, b)
}

/// Make SQLite refuse inserts of keys starting with `bad` (a statement-level error that
/// leaves the enclosing transaction open, like a constraint violation).
fn add_reject_trigger(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TRIGGER reject_bad BEFORE INSERT ON kv WHEN NEW.key LIKE 'bad%'
         BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END;",
    )
    .unwrap();
}

/// Wait (without asserting on time) until `cond` holds; panic after a generous deadline.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("gave up waiting until {what}");
}

fn queued(b: &SqliteBackend) -> usize {
    b.stats.queued.load(Ordering::SeqCst)
}

fn taken(b: &SqliteBackend) -> u64 {
    b.stats.taken.load(Ordering::SeqCst)
}

#[test]
fn upper_bound_is_the_next_string_after_the_prefix() {
    assert_eq!(prefix_upper_bound(""), None);
    assert_eq!(prefix_upper_bound("a/").as_deref(), Some("a0"));
    assert_eq!(prefix_upper_bound("a\u{7F}").as_deref(), Some("a\u{80}"));
    assert_eq!(
        prefix_upper_bound("a\u{D7FF}").as_deref(),
        Some("a\u{E000}")
    );
    assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend_conforms() {
    let (_dir, _path, b) = open_tmp();
    conformance::check(&b).await;
    assert_eq!(b.kind(), "sqlite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_lands_not_at_all() {
    let (_dir, path, b) = open_tmp();
    add_reject_trigger(&path);
    let err = b
        .write(vec![put("good", b"1"), put("bad", b"2")])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err}");
    assert_eq!(
        b.get("good").await.unwrap(),
        None,
        "first op of a failed batch must not land"
    );
    b.write(vec![put("good", b"1"), put("fine", b"2")])
        .await
        .unwrap();
    assert_eq!(b.scan_prefix("").await.unwrap(), vec!["fine", "good"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the gate across awaits is the point: the writer thread waits on it.
#[allow(clippy::await_holding_lock)]
async fn concurrent_writers_share_one_commit() {
    let (_dir, _path, b) = open_tmp();
    let metrics = crate::metrics::Metrics::new();
    b.observe(metrics.storage());
    let b = Arc::new(b);
    let before = b.commits();
    let gate = b.gate.lock();
    // The writer takes the first request, then waits at the gate…
    let first = tokio::spawn({
        let b = b.clone();
        async move { b.write(vec![put("w/first", b"x")]).await }
    });
    wait_until("the writer took the first request", || taken(&b) == 1).await;
    assert!(!first.is_finished(), "held at the gate");
    // …while 64 more queue up behind it.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.write(vec![put(&format!("w/{i}"), b"x")]).await
        }));
    }
    wait_until("64 requests are queued", || queued(&b) == 64).await;
    drop(gate);
    first.await.unwrap().unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(b.commits() - before, 1, "65 writes, one transaction");
    assert_eq!(b.scan_prefix("w/").await.unwrap().len(), 65);
    // The metrics saw that one transaction and its batch of 65.
    let text = metrics.encode_prometheus(false);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    assert_eq!(value("hush_storage_commit_batch_size_count "), 1.0);
    assert_eq!(value("hush_storage_commit_batch_size_sum "), 65.0);
    assert_eq!(value("hush_storage_commit_duration_seconds_count "), 1.0);
    assert!(value("hush_storage_commit_duration_seconds_sum ") > 0.0);
    assert_eq!(b.count_prefix("w/").await.unwrap(), 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the gate across awaits is the point: the writer thread waits on it.
#[allow(clippy::await_holding_lock)]
async fn one_bad_request_does_not_poison_its_group() {
    let (_dir, path, b) = open_tmp();
    add_reject_trigger(&path);
    let b = Arc::new(b);
    let before = b.commits();
    let gate = b.gate.lock();
    let spawn = |ops: Vec<Op>| {
        let b = b.clone();
        tokio::spawn(async move { b.write(ops).await })
    };
    let first = spawn(vec![put("g/0", b"x")]);
    wait_until("the writer took the first request", || taken(&b) == 1).await;
    let good1 = spawn(vec![put("g/1", b"x"), put("g/1b", b"x")]);
    let bad = spawn(vec![put("g/bad-sibling", b"x"), put("bad", b"x")]);
    let good2 = spawn(vec![put("g/2", b"x")]);
    wait_until("three requests are queued", || queued(&b) == 3).await;
    drop(gate);
    first.await.unwrap().unwrap();
    good1.await.unwrap().unwrap();
    good2.await.unwrap().unwrap();
    assert!(bad.await.unwrap().is_err());
    assert_eq!(
        b.scan_prefix("g/").await.unwrap(),
        vec!["g/0", "g/1", "g/1b", "g/2"]
    );
    // The group was rolled back as a whole, then each good request committed on its own.
    assert_eq!(
        b.commits() - before,
        3,
        "one commit per good request after the group failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopen() {
    let (_dir, path, b) = open_tmp();
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let key = format!("d/{t}/{i}");
                b.write(vec![put(&key, key.as_bytes())]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(b.commits() <= 320);
    drop(Arc::into_inner(b).expect("sole owner"));

    let b = SqliteBackend::open(&path).unwrap();
    let keys = b.scan_prefix("d/").await.unwrap();
    assert_eq!(keys.len(), 320);
    for key in keys {
        assert_eq!(b.get(&key).await.unwrap().unwrap(), key.as_bytes());
    }
    let c = Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_truncates_the_wal() {
    let (_dir, path, b) = open_tmp();
    b.write(vec![put("k", b"v")]).await.unwrap();
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    b.checkpoint().await.unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[cfg(unix)]
#[test]
fn database_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, _b) = open_tmp();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

const KILL_ENV: &str = "HUSH_SQLITE_KILL9_DB";

/// Child half of `kill9_keeps_acknowledged_writes`: writes forever, printing each key only
/// after its write returned Ok. Does nothing unless started by that test.
#[test]
#[ignore = "child process of kill9_keeps_acknowledged_writes"]
fn kill9_child() {
    let Ok(path) = std::env::var(KILL_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let b = Arc::new(SqliteBackend::open(Path::new(&path)).unwrap());
        let mut tasks = Vec::new();
        for t in 0..16 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let key = format!("k/{t}/{i}");
                    b.write(vec![put(&key, key.as_bytes())]).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn kill9_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "storage::sqlite::tests::kill9_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 400 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child stopped early");
        if let Some(key) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ack ")) {
            acked.push(key.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL
                           // Lines the child printed before it died were acknowledged too.
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(key) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ack ")) {
            acked.push(key.to_string());
        }
    }
    child.wait().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = SqliteBackend::open(&path).unwrap();
        for key in &acked {
            assert_eq!(
                b.get(key).await.unwrap().as_deref(),
                Some(key.as_bytes()),
                "{key} lost"
            );
        }
    });
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn db_files(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    ["db", "db-wal", "db-shm"]
        .iter()
        .map(|ext| path.with_extension(ext))
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ciphertext_on_disk_and_tampering_is_detected() {
    const PLAIN: &[u8] = b"canary-plaintext-7f3a9c-do-not-store";
    let (_dir, path, b) = open_tmp();
    let b = Arc::new(b);
    let root = KeyBytes::random();
    let barrier = Barrier::new(b.clone());
    barrier.initialize(&root).await.unwrap();
    barrier.put("secret/canary", PLAIN.to_vec()).await.unwrap();
    barrier
        .put("secret/other", b"other".to_vec())
        .await
        .unwrap();

    let files = db_files(&path);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("hush.db-wal")),
        "WAL present before checkpoint"
    );
    for (p, bytes) in &files {
        assert!(
            find(bytes, PLAIN).is_empty(),
            "plaintext in {}",
            p.display()
        );
    }
    b.checkpoint().await.unwrap();
    for (p, bytes) in &db_files(&path) {
        assert!(
            find(bytes, PLAIN).is_empty(),
            "plaintext in {} after checkpoint",
            p.display()
        );
    }

    let stored = b.get("secret/canary").await.unwrap().unwrap();
    drop(barrier);
    drop(Arc::into_inner(b).expect("sole owner"));

    let mut db = std::fs::read(&path).unwrap();
    let at = find(&db, &stored);
    assert_eq!(at.len(), 1, "the ciphertext sits once in the db file");
    db[at[0] + stored.len() - 1] ^= 0x01; // a byte of the GCM tag
    std::fs::write(&path, &db).unwrap();

    let b = Arc::new(SqliteBackend::open(&path).unwrap());
    let barrier = Barrier::new(b.clone());
    barrier.unseal(&root).await.unwrap();
    let err = barrier.get("secret/canary").await.unwrap_err();
    assert!(matches!(err, BarrierError::Integrity { .. }), "{err}");
    assert_eq!(
        barrier
            .get("secret/other")
            .await
            .unwrap()
            .unwrap()
            .as_slice(),
        b"other"
    );
}

/// Compares the cost per `get` of the dedicated reader threads (what `get` uses) with a pool
/// of connections used through `spawn_blocking`.
/// Run: `cargo test -p hush-store --lib read_path_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn read_path_cost() {
    const N: usize = 20_000;
    const TASKS: usize = 8;
    let (_dir, path, b) = open_tmp();
    let b = Arc::new(b);
    let ops = (0..1000)
        .map(|i| put(&format!("r/{i}"), &[7u8; 100]))
        .collect();
    b.write(ops).await.unwrap();

    let t = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..N / TASKS {
                let key = format!("r/{}", (i * 7 + t) % 1000);
                assert!(b.get(&key).await.unwrap().is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let threads_time = t.elapsed();

    let pool: Vec<Connection> = (0..READERS)
        .map(|_| Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap())
        .collect();
    let pool = Arc::new(Mutex::new(pool));
    let permits = Arc::new(tokio::sync::Semaphore::new(READERS));
    let t = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (pool, permits) = (pool.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..N / TASKS {
                let key = format!("r/{}", (i * 7 + t) % 1000);
                let permit = permits.clone().acquire_owned().await.unwrap();
                let pool = pool.clone();
                let v: Option<Vec<u8>> = tokio::task::spawn_blocking(move || {
                    let c = pool.lock().pop().unwrap();
                    let v = c
                        .prepare_cached(SQL_GET)
                        .unwrap()
                        .query_row([&key], |r| r.get(0))
                        .optional()
                        .unwrap();
                    pool.lock().push(c);
                    drop(permit);
                    v
                })
                .await
                .unwrap();
                assert!(v.is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let pool_time = t.elapsed();
    println!(
        "per get: dedicated reader threads {:?}, spawn_blocking pool {:?}",
        threads_time / N as u32,
        pool_time / N as u32
    );

    // Natural grouping under load, without the test gate.
    let before = b.commits();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.write(vec![put(&format!("n/{i}"), b"x")]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    println!("64 concurrent writes took {} commits", b.commits() - before);
}

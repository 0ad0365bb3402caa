//! Full disks: hushd's SQLite storage, its file audit device and the agent's destination each
//! on a small real tmpfs the test fills with a filler file. While full: writes fail with a
//! clear error (never a panic), reads keep working, nothing acknowledged is lost or torn; when
//! the filler is deleted, everything resumes by itself. Times are printed (`--nocapture`) and
//! recorded in docs/TESTING.md.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hush_tests::{free_port, http_client, wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::{json, Value};

/// A tmpfs of `size` on a fresh temp directory; the directory outlives the mount.
fn small_tmpfs(size: &str) -> (tempfile::TempDir, Tmpfs) {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount_at(dir.path().join("disk"), &format!("size={size},mode=0755"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    (dir, tmpfs)
}

/// An agent writing `a` and `b` of `secret/app/pair` into `dest`, polling every 100 ms and
/// retrying within 300 ms, with `more` arguments.
fn pair_agent(h: &Hushd, token: &Path, dest: &Path, more: &[&str]) -> Agent {
    let mut args = vec![
        "--addr".to_string(),
        h.addr.clone(),
        "--token-file".into(),
        s(token),
        "--dest".into(),
        s(dest),
        "--secret".into(),
        "a=secret/data/app/pair#a".into(),
        "--secret".into(),
        "b=secret/data/app/pair#b".into(),
        "--refresh-interval".into(),
        "100ms".into(),
        "--backoff-max".into(),
        "300ms".into(),
    ];
    args.extend(more.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::spawn(&args)
}

/// Fill the filesystem of `dir` with `dir/filler` until the write fails with ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 16 * 1024];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // The last few bytes too.
    while let Ok(1) = f.write(&[0x5a]) {}
    path
}

fn error_text(b: &Value) -> String {
    b["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not Vault-shaped: {b}"))
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn put(h: &Hushd, key: &str, v: &str) -> (u16, Value) {
    h.call(
        "POST",
        &format!("secret/data/{key}"),
        Some(json!({"data": {"v": v}})),
    )
    .await
}

/// Every acknowledged write reads back: the latest version with its value.
async fn check_acked(h: &Hushd, acked: &BTreeMap<String, (u64, String)>) {
    for (k, (ver, v)) in acked {
        let (s, b) = h.call("GET", &format!("secret/data/{k}"), None).await;
        assert_eq!(s, 200, "{k}: {b}");
        assert_eq!(b["data"]["metadata"]["version"], json!(ver), "{k}: {b}");
        assert_eq!(b["data"]["data"]["v"], json!(v), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_refuses_writes_keeps_reads_and_resumes() {
    let (_dir, disk) = small_tmpfs("3m");
    let storage = format!("sqlite://{}/hush.db", disk.path.display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    let (s, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let mut acked = BTreeMap::new();
    let pad = "p".repeat(4000);
    for i in 0..20 {
        let (k, v) = (format!("before/k{i}"), format!("{i}-{pad}"));
        let (s, b) = put(&h, &k, &v).await;
        assert_eq!(s, 200, "{b}");
        acked.insert(k, (b["data"]["version"].as_u64().unwrap(), v));
    }

    let filler = fill(&disk.path);
    // Writes go on into what SQLite already holds (its WAL), then fail: 507, Vault-shaped,
    // saying the storage is full and what to do.
    let mut refused = None;
    let mut tried = Vec::new();
    for i in 0..2000 {
        let (k, v) = (format!("during/k{}", i % 50), format!("{i}-{pad}"));
        let (s, b) = put(&h, &k, &v).await;
        match s {
            200 => {
                acked.insert(k, (b["data"]["version"].as_u64().unwrap(), v));
            }
            _ => {
                tried.push(k);
                refused = Some((s, b, i));
                break;
            }
        }
    }
    let (s, b, after) = refused.expect("2000 writes of 4 KB fit on a full 3 MB disk");
    println!(
        "full disk: {after} writes went into SQLite's existing pages before the first refusal"
    );
    assert_eq!(s, 507, "{b}");
    let msg = error_text(&b);
    assert!(msg.contains("storage is full"), "{msg}");
    assert!(msg.contains("Free space"), "{msg}");
    // Still refused (not a one-off), other writes too; never a generic 500.
    for i in 0..5 {
        let (s, b) = put(&h, &format!("during/again{i}"), &pad).await;
        assert_eq!(s, 507, "{b}");
        tried.push(format!("during/again{i}"));
    }
    // A small write may still fit in WAL space a refused one left allocated; else it is a 507
    // too, never anything else.
    let (s, b) = h.call("POST", "auth/token/create", Some(json!({}))).await;
    assert!(s == 200 || s == 507, "{s} {b}");
    // Reads keep working, and nothing acknowledged is torn.
    check_acked(&h, &acked).await;
    for k in &tried {
        let (s, b) = h.call("GET", &format!("secret/data/{k}"), None).await;
        if let Some((ver, v)) = acked.get(k) {
            assert_eq!((s, &b["data"]["metadata"]["version"]), (200, &json!(ver)));
            assert_eq!(b["data"]["data"]["v"], json!(v));
        } else {
            assert_eq!(s, 404, "a refused write must not show: {k}: {b}");
        }
    }
    let (s, _) = h.call("GET", "sys/health", None).await;
    assert_eq!(s, 200);

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        let (s, b) = put(&h, "after/first", "back").await;
        if s == 200 {
            acked.insert(
                "after/first".into(),
                (b["data"]["version"].as_u64().unwrap(), "back".into()),
            );
            break;
        }
        assert_eq!(s, 507, "{b}");
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "writes did not resume: {b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "full disk: writes resumed {:?} after the space returned",
        freed.elapsed()
    );
    for i in 0..20 {
        let (k, v) = (format!("after/k{i}"), format!("{i}-{pad}"));
        let (s, b) = put(&h, &k, &v).await;
        assert_eq!(s, 200, "{b}");
        acked.insert(k, (b["data"]["version"].as_u64().unwrap(), v));
    }
    check_acked(&h, &acked).await;
    let stderr = h.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let token = h.token.clone().unwrap();
    h.kill9();

    // SQLite's own check finds nothing wrong, and every acknowledged write survives a restart.
    {
        let conn = rusqlite::Connection::open(disk.path.join("hush.db")).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
    let mut h = Hushd::start(&args, "http", http_client()).await;
    h.unseal(&key).await;
    h.token = Some(token);
    check_acked(&h, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_refuses_requests_until_space_returns() {
    let (_dir, disk) = small_tmpfs("1m");
    let h = Hushd::dev().await;
    let log = disk.path.join("audit.log");
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    h.kv_put("app/before", json!({"v": 1})).await;

    let filler = fill(&disk.path);
    // The first entries that do not fit: the request is refused, saying why.
    let mut refused = None;
    for i in 0..200 {
        let (s, b) = h.call("GET", "secret/data/app/before", None).await;
        if s != 200 {
            refused = Some((s, b, i));
            break;
        }
    }
    let (s, b, _) = refused.expect("requests refused once the audit disk is full");
    assert_eq!(s, 500, "{b}");
    let msg = error_text(&b);
    assert!(msg.contains("no audit device could record"), "{msg}");
    assert!(msg.contains("no space left"), "{msg}");
    // Writes too: not applied behind the audit log's back.
    let (s, b) = h
        .call(
            "POST",
            "secret/data/app/during",
            Some(json!({"data": {"v": 2}})),
        )
        .await;
    assert_eq!(s, 500, "{b}");
    assert!(error_text(&b).contains("no space left"), "{b}");

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        let (s, b) = h.call("GET", "secret/data/app/before", None).await;
        if s == 200 {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "still refused: {b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "full audit disk: requests served again {:?} after the space returned",
        freed.elapsed()
    );
    h.kv_put("app/after", json!({"v": 3})).await;
    // The chain verifies: a line torn by the full disk was cut when the file was reopened.
    let file = std::fs::File::open(&log).unwrap();
    let summary = hush_api::audit::verify(std::io::BufReader::new(file))
        .unwrap_or_else(|e| panic!("audit chain broken after the full disk: {e}"));
    assert!(summary.lines > 4, "{summary:?}");
    assert!(!h.stderr().contains("panicked"));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The files `a` and `b` (KV fields of `app/pair`): the version marker before `:` of each.
fn read_set(dest: &Path) -> (String, String) {
    let read = |n: &str| std::fs::read_to_string(dest.join(n)).unwrap();
    (read("a"), read("b"))
}

fn marker(content: &str) -> &str {
    content.split(':').next().unwrap()
}

/// Generation directories (`..2026_...`) and leftovers in the destination.
fn generation_dirs(dest: &Path) -> Vec<String> {
    std::fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != "..data")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_on_a_full_tmpfs_keeps_the_last_set_reports_and_recovers() {
    let h = Hushd::dev().await;
    let pad = "x".repeat(20_000);
    let value = |n: u32| format!("v{n}:{pad}");
    h.kv_put("app/pair", json!({"a": value(1), "b": value(1)}))
        .await;
    let (_dir, disk) = small_tmpfs("256k");
    let tokens = tempfile::tempdir().unwrap();
    let token = write_token(tokens.path(), "root");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut agent = pair_agent(&h, &token, &disk.path, &["--metrics-listen", &listen]);
    let get = |path: &'static str| {
        let url = format!("http://{listen}{path}");
        async move {
            match http_client().get(&url).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        }
    };
    wait_for(Duration::from_secs(30), "the first set", || {
        disk.path.join("b").exists()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "{}", agent.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let filler = fill(&disk.path);
    h.kv_put("app/pair", json!({"a": value(2), "b": value(2)}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = get("/metrics").await;
        let failed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hush_write_errors_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if failed >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write error counted:\n{metrics}\n{}",
            agent.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last good set stays, complete and of one version; the agent says why; still ready.
    let (a, b) = read_set(&disk.path);
    assert_eq!(
        (a.as_str(), b.as_str()),
        (value(1).as_str(), value(1).as_str())
    );
    let log = agent.stderr();
    assert!(log.contains("could not write the files"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains(&pad), "no value in the log");
    assert_eq!(get("/readyz").await.0, 200);
    assert!(agent.running());
    // No half-written generation left behind taking space: only the current one (and no
    // previous yet: one set was written).
    assert_eq!(
        generation_dirs(&disk.path).len(),
        1,
        "{:?}",
        generation_dirs(&disk.path)
    );

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the new set after the space returned",
        || marker(&read_set(&disk.path).0) == "v2",
    )
    .await;
    println!(
        "full agent tmpfs: new set written {:?} after the space returned",
        freed.elapsed()
    );
    let (a, b) = read_set(&disk.path);
    assert_eq!((a, b), (value(2), value(2)));
    assert!(agent.running());
}

/// Regression (a generation left behind): with the tmpfs out of inodes exactly when the
/// `..data_tmp` link is made, the new generation was built but could not be swapped in, and
/// stayed on the tmpfs until some later write succeeded. Now it is removed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_out_of_inodes_at_the_swap_leaves_no_half_built_generation() {
    let h = Hushd::dev().await;
    h.kv_put("app/pair", json!({"a": "v1:a", "b": "v1:b"}))
        .await;
    let (_dir, disk) = small_tmpfs("4m,nr_inodes=64");
    let tokens = tempfile::tempdir().unwrap();
    let token = write_token(tokens.path(), "root");
    let mut agent = pair_agent(&h, &token, &disk.path, &[]);
    wait_for(Duration::from_secs(30), "the first set", || {
        disk.path.join("b").exists()
    })
    .await;
    // Use up every inode, then give back exactly what a new generation takes (its directory,
    // `a`, `b`, `.generation`): the `..data_tmp` link finds none.
    let fillers = disk.path.join("fillers");
    std::fs::create_dir(&fillers).unwrap();
    let mut made = Vec::new();
    loop {
        let p = fillers.join(made.len().to_string());
        match std::fs::File::create(&p) {
            Ok(_) => made.push(p),
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("{e}"),
        }
    }
    for p in made.drain(made.len() - 4..) {
        std::fs::remove_file(p).unwrap();
    }
    h.kv_put("app/pair", json!({"a": "v2:a", "b": "v2:b"}))
        .await;
    wait_for(Duration::from_secs(20), "a failed swap", || {
        agent.stderr().contains("create link")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_set(&disk.path), ("v1:a".into(), "v1:b".into()));
    assert!(
        std::fs::symlink_metadata(disk.path.join("..data_tmp")).is_err(),
        "a dangling ..data_tmp stays"
    );
    assert_eq!(
        generation_dirs(&disk.path).len(),
        1,
        "{:?}",
        generation_dirs(&disk.path)
    );
    std::fs::remove_dir_all(&fillers).unwrap();
    wait_for(Duration::from_secs(10), "the new set", || {
        read_set(&disk.path) == ("v2:a".into(), "v2:b".into())
    })
    .await;
    assert!(agent.running());
}

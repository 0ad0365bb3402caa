//! Crash durability and tamper evidence against a real hushd on SQLite.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_tests::{http_client, Hushd};
use serde_json::json;

async fn sqlite_store(dir: &std::path::Path) -> (Hushd, String, String) {
    let storage = format!("sqlite://{}/hush.db", dir.display());
    let mut h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    let key = h.init_unseal().await;
    let (s, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");
    (h, storage, key)
}

/// Start hushd again on `storage`, unseal it with `key` and call it with `token`.
async fn reopen(storage: &str, key: &str, token: String) -> Hushd {
    let mut h = Hushd::start(
        &["--storage", storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    h.unseal(key).await;
    h.token = Some(token);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, storage, key) = sqlite_store(dir.path()).await;
    let token = h.token.clone().unwrap();
    let acked: Arc<Mutex<BTreeMap<String, (u64, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..32 {
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
                // Each writer rewrites a few keys so versions matter too.
                let k = format!("crash/w{w}/k{}", i % 5);
                let v = format!("value-{w}-{i}");
                let r = client
                    .post(format!("{addr}/v1/secret/data/{k}"))
                    .header("X-Vault-Token", &token)
                    .json(&json!({"data": {"v": v}}))
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status() == 200 {
                        if let Ok(b) = r.json::<serde_json::Value>().await {
                            let ver = b["data"]["version"].as_u64().unwrap();
                            acked.lock().unwrap().insert(k, (ver, v));
                        }
                    }
                } else {
                    break;
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
        acked.len() > 50,
        "too few writes landed before the kill: {}",
        acked.len()
    );

    let h2 = reopen(&storage, &key, token).await;
    for (k, (ver, v)) in &acked {
        let (s, b) = h2.call("GET", &format!("secret/data/{k}"), None).await;
        assert_eq!(s, 200, "{k}: {b}");
        let got = b["data"]["metadata"]["version"].as_u64().unwrap();
        // A later write may have landed but not been acknowledged before the kill.
        assert!(got >= *ver, "{k}: version {got} < acknowledged {ver}");
        if got == *ver {
            assert_eq!(b["data"]["data"]["v"], json!(v), "{k}");
        }
        let (_, m) = h2
            .call("GET", &format!("secret/data/{k}?version={ver}"), None)
            .await;
        assert_eq!(m["data"]["data"]["v"], json!(v), "{k} v{ver}");
    }
}

#[tokio::test]
async fn flipped_byte_on_disk_is_an_integrity_error_and_no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, storage, key) = sqlite_store(dir.path()).await;
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    let (s, _) = h
        .call(
            "POST",
            "secret/data/tamper",
            Some(json!({"data": {"password": marker}})),
        )
        .await;
    assert_eq!(s, 200);
    let token = h.token.clone().unwrap();
    h.kill9();

    let db = dir.path().join("hush.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext on disk"
        );
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token on disk"
        );
    }
    // Find the stored version blob and flip one byte of it in the file.
    let blob: Vec<u8> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT key, value FROM kv WHERE key LIKE 'logical/%/versions/%'")
            .unwrap();
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "one version stored: {:?}",
            rows.iter().map(|r| &r.0).collect::<Vec<_>>()
        );
        rows[0].1.clone()
    };
    let mut file = std::fs::read(&db).unwrap();
    let at = file
        .windows(blob.len())
        .position(|w| w == blob.as_slice())
        .expect("blob in file");
    file[at + blob.len() / 2] ^= 0x01;
    std::fs::write(&db, &file).unwrap();

    let h2 = reopen(&storage, &key, token).await;
    let (s, b) = h2.call("GET", "secret/data/tamper", None).await;
    assert_eq!(s, 500, "{b}");
    let msg = b["errors"][0].as_str().unwrap();
    assert!(msg.contains("integrity"), "{msg}");
    assert!(!b.to_string().contains(marker));
}

/// KV version 1 data, and its upgrade to version 2, survive a kill -9 and restart: the mount
/// table says version 2 and every secret reads as version 1 of a versioned secret.
#[tokio::test]
async fn a_kv_v1_mount_and_its_upgrade_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, storage, key) = sqlite_store(dir.path()).await;
    let (s, b) = h
        .call("POST", "sys/mounts/old", Some(json!({"type": "kv"})))
        .await;
    assert_eq!(s, 204, "{b}");
    for i in 0..20 {
        let (s, b) = h
            .call("POST", &format!("old/app/k{i}"), Some(json!({"i": i})))
            .await;
        assert_eq!(s, 204, "{b}");
    }
    let token = h.token.clone().unwrap();
    h.kill9();
    let mut h = reopen(&storage, &key, token.clone()).await;
    let (s, b) = h.call("GET", "old/app/k7", None).await;
    assert_eq!((s, &b["data"]), (200, &json!({"i": 7})), "{b}");

    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/old/tune",
            Some(json!({"options": {"version": "2"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["warnings"][0]
        .as_str()
        .unwrap()
        .contains("Upgrading mount from version 0 to version 2"));
    h.kill9();
    let h = reopen(&storage, &key, token).await;
    let (_, b) = h.call("GET", "sys/mounts/old", None).await;
    assert_eq!(b["data"]["options"]["version"], "2", "{b}");
    for i in 0..20 {
        let (s, b) = h.call("GET", &format!("old/data/app/k{i}"), None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["data"], json!({"i": i}), "{b}");
        assert_eq!(b["data"]["metadata"]["version"], 1, "{b}");
    }
}

//! `sys/agents` against a real hushd on SQLite over HTTP: a report with the `default` policy
//! only, a retried batch stored once, each bad report a 400 naming its field, accesses by path
//! and `since`, `agent-access` entries in the file audit log (whose chain `hush audit verify`
//! still verifies), a full audit device failing the report until it can write, the index
//! after a restart and after kill -9, `stale` once a new KV version is written, 403 without
//! the fleet policy, and retention pruning.

use std::time::Duration;

use hush_tests::{http_client, run_hush, Hushd, Tmpfs};
use serde_json::{json, Value};

/// The sudo-free policy the README documents for reading the fleet view.
const FLEET_READER: &str = r#"
path "sys/agents" { capabilities = ["list"] }
path "sys/agents/*" { capabilities = ["read", "list"] }
"#;

async fn sqlite_hushd(storage: &str, extra: &[&str]) -> Hushd {
    let mut args = vec!["--storage", storage, "--insecure-no-tls"];
    args.extend_from_slice(extra);
    Hushd::start(&args, "http", http_client()).await
}

/// A fresh SQLite hushd, initialised and unsealed, KV v2 at `secret/`. Returns it, its
/// storage URL and the unseal key.
async fn fresh(dir: &std::path::Path, extra: &[&str]) -> (Hushd, String, String) {
    let storage = format!("sqlite://{}/hush.db", dir.display());
    let mut h = sqlite_hushd(&storage, extra).await;
    let key = h.init_unseal().await;
    let (s, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");
    (h, storage, key)
}

async fn enable_file_audit(h: &Hushd, log: &std::path::Path) {
    let options = json!({"file_path": log.display().to_string()});
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": options})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

/// A token with the built-in `default` policy only (what an agent's login gives).
async fn default_token(h: &Hushd) -> String {
    h.create_token(json!({"policies": ["default"], "display_name": "agent-a"}))
        .await
}

fn time_ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn access(time: &str, path: &str, pid: u32) -> Value {
    json!({
        "time": time, "event": "open", "file": "db.password", "paths": [path],
        "version": 1, "generation": 1, "pid": pid, "uid": 1000, "gid": 1000,
        "exe": "/usr/bin/cat", "container": "c0ffee", "result": "allowed",
    })
}

fn report(batch: &str, agent: &str, accesses: Vec<Value>, state: Option<Value>) -> Value {
    let mut r = json!({
        "batch_id": batch,
        "agent": {"id": agent, "host": "node-1", "pod": "ns/web-0", "destination": "/secrets",
                  "version": "0.1.0", "instance": "i-1"},
        "accesses": accesses,
        "dropped_total": 3,
    });
    if let Some(s) = state {
        r["state"] = s;
    }
    r
}

fn holds(path: &str, version: u64) -> Value {
    json!({"files": [{"file": "db.password", "paths": [path], "generation": 1}],
           "sources": [{"path": path, "version": version}]})
}

async fn put_report(h: &Hushd, token: &str, body: Value) -> (u16, Value) {
    h.call_as(Some(token), "PUT", "sys/agents/report", Some(body))
        .await
}

async fn accesses(h: &Hushd, token: Option<&str>, query: &str) -> (u16, Value) {
    h.call_as(
        token.or(h.token.as_deref()),
        "GET",
        &format!("sys/agents/access?{query}"),
        None,
    )
    .await
}

/// The `agent_access` bodies of the audit file.
fn audit_accesses(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "agent-access")
        .collect()
}

#[tokio::test]
async fn reports_are_stored_once_audited_in_clear_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &[]).await;
    let log = dir.path().join("audit.log");
    enable_file_audit(&h, &log).await;
    let agent = default_token(&h).await;

    let body = report(
        "batch-1",
        "ns/web-0",
        vec![
            access(&time_ago(7200), "secret/data/a/x", 41),
            access(&time_ago(600), "secret/data/a/x", 42),
        ],
        None,
    );
    let (s, b) = put_report(&h, &agent, body.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"],
        json!({"batch_id": "batch-1", "stored": true, "accesses": 2})
    );
    // The retry of the same batch adds nothing: no rows, no audit entries.
    let (s, b) = put_report(&h, &agent, body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"],
        json!({"batch_id": "batch-1", "stored": false, "accesses": 0})
    );

    let (s, b) = accesses(&h, None, "path=secret/data/a/x").await;
    assert_eq!(s, 200, "{b}");
    let list = b["data"]["accesses"].as_array().unwrap();
    assert_eq!(list.len(), 2, "default since 24h: {b}");
    assert_eq!(list[0]["pid"], 41, "oldest first: {b}");
    assert_eq!(list[1]["pid"], 42);
    assert_eq!(list[1]["exe"], "/usr/bin/cat");
    assert_eq!(list[1]["uid"], 1000);
    assert_eq!(list[1]["agent_id"], "ns/web-0");
    assert_eq!(list[1]["pod"], "ns/web-0");
    assert_eq!(list[1]["path"], "secret/data/a/x");
    assert_eq!(list[1]["result"], "allowed");
    let (_, b) = accesses(&h, None, "path=secret/data/a/x&since=1h").await;
    assert_eq!(b["data"]["accesses"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["data"]["accesses"][0]["pid"], 42);
    let since = urlencode(&time_ago(3 * 3600));
    let (_, b) = accesses(&h, None, &format!("path=secret/data/a/x&since={since}")).await;
    assert_eq!(b["data"]["accesses"].as_array().unwrap().len(), 2, "{b}");
    // Another path, or a prefix of this one: an empty list, not 404.
    for other in ["secret/data/a", "secret/data/a/xy", "secret/data/b"] {
        let (s, b) = accesses(&h, None, &format!("path={other}")).await;
        assert_eq!(s, 200, "{other}: {b}");
        assert_eq!(b["data"]["accesses"], json!([]), "{other}");
    }
    for (query, want) in [
        ("path=secret/data/a/x&since=yesterday", "since"),
        ("since=1h", "missing path"),
        ("path=../etc&since=1h", "path"),
    ] {
        let (s, b) = accesses(&h, None, query).await;
        assert_eq!(s, 400, "{query}: {b}");
        assert!(
            b["errors"][0].as_str().unwrap().contains(want),
            "{query}: {b}"
        );
    }

    // One audit entry per access, in clear, with the sender's display name; the chain verifies.
    let entries = audit_accesses(&log);
    assert_eq!(entries.len(), 2, "a retry must add no audit entry");
    let e = &entries[1]["agent_access"];
    assert_eq!(e["pid"], 42, "{e}");
    assert_eq!(e["uid"], 1000);
    assert_eq!(e["gid"], 1000);
    assert_eq!(e["exe"], "/usr/bin/cat");
    assert_eq!(e["file"], "db.password");
    assert_eq!(e["paths"], json!(["secret/data/a/x"]));
    assert_eq!(e["container"], "c0ffee");
    assert_eq!(e["batch_id"], "batch-1");
    assert_eq!(e["agent_id"], "ns/web-0");
    assert_eq!(entries[1]["auth"]["display_name"], "token-agent-a");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&agent),
        "the agent's token is never in the log"
    );
    let out = run_hush(&["audit", "verify", &log.display().to_string()], &[], None);
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The metrics count outcomes and stored accesses.
    let (s, text) = h.raw_get("/v1/sys/metrics?format=prometheus").await;
    assert_eq!(s, 200);
    for line in [
        "hush_agent_reports_total{outcome=\"stored\"} 1",
        "hush_agent_reports_total{outcome=\"duplicate\"} 1",
        "hush_agent_accesses_stored_total 2",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn each_bad_report_is_a_400_naming_its_field_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &[]).await;
    let agent = default_token(&h).await;
    let ok = || {
        report(
            "b",
            "ns/web-0",
            vec![access(&time_ago(1), "secret/data/a", 1)],
            None,
        )
    };
    let many: Vec<Value> = (0..1001)
        .map(|i| access(&time_ago(1), "secret/data/a", i))
        .collect();
    let cases: Vec<(&str, Value)> = vec![
        ("batch_id: empty", {
            let mut r = ok();
            r["batch_id"] = json!("");
            r
        }),
        ("batch_id: longer than 128", {
            let mut r = ok();
            r["batch_id"] = json!("x".repeat(129));
            r
        }),
        ("agent.id: empty", {
            let mut r = ok();
            r["agent"]["id"] = json!("");
            r
        }),
        ("agent.id: holds whitespace", {
            let mut r = ok();
            r["agent"]["id"] = json!("web 0");
            r
        }),
        ("agent.id: longer than 253", {
            let mut r = ok();
            r["agent"]["id"] = json!("a".repeat(254));
            r
        }),
        ("accesses: 1001 events", report("b", "ns/web-0", many, None)),
        ("accesses[0].time", {
            let mut r = ok();
            r["accesses"][0]["time"] = json!("last tuesday");
            r
        }),
        ("accesses[0].result", {
            let mut r = ok();
            r["accesses"][0]["result"] = json!("maybe");
            r
        }),
        ("accesses[0].file: longer", {
            let mut r = ok();
            r["accesses"][0]["file"] = json!("f".repeat(5000));
            r
        }),
        ("accesses[0].paths[0]", {
            let mut r = ok();
            r["accesses"][0]["paths"] = json!(["/abs"]);
            r
        }),
        ("invalid report", {
            let mut r = ok();
            r["accesses"][0]["pid"] = json!("forty-two");
            r
        }),
        ("invalid report", json!({"agent": {"id": "x"}})),
    ];
    for (want, body) in cases {
        let (s, b) = put_report(&h, &agent, body).await;
        assert_eq!(s, 400, "{want}: {b}");
        let msg = b["errors"][0].as_str().unwrap_or_default();
        assert!(msg.starts_with(want), "want {want:?}, got {b}");
    }
    let (s, b) = accesses(&h, None, "path=secret/data/a&since=1h").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["accesses"],
        json!([]),
        "bad reports store nothing"
    );
    let (s, _) = h.call("LIST", "sys/agents", None).await;
    assert_eq!(s, 404, "no agent was recorded");
    // Without a token: 403.
    let (s, _) = h
        .call_as(None, "PUT", "sys/agents/report", Some(ok()))
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn a_report_no_audit_device_can_record_fails_and_is_stored_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &[]).await;
    let small = Tmpfs::mount_at(dir.path().join("small"), "size=1m").expect("tmpfs (root)");
    enable_file_audit(&h, &small.path.join("audit.log")).await;
    let agent = default_token(&h).await;
    // Fill the device (the write stops when it is full): no entry fits any more.
    let filler = small.path.join("filler");
    let _ = std::fs::write(&filler, vec![b'x'; 1024 * 1024]);
    let accesses_batch: Vec<Value> = (0..200)
        .map(|i| access(&time_ago(5), "secret/data/full", i))
        .collect();
    let body = report("batch-full", "ns/web-0", accesses_batch, None);
    let (s, b) = put_report(&h, &agent, body.clone()).await;
    assert!(s >= 500, "a report no device recorded must fail: {s} {b}");
    // Space again (every request is audited, the query too): nothing was stored, and the
    // agent's retry of the same batch is stored, once.
    std::fs::remove_file(&filler).unwrap();
    let (_, b) = accesses(&h, None, "path=secret/data/full").await;
    assert_eq!(b["data"]["accesses"], json!([]), "nothing stored: {b}");
    let (s, b) = put_report(&h, &agent, body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["stored"], true);
    let (_, b) = accesses(&h, None, "path=secret/data/full").await;
    assert_eq!(b["data"]["accesses"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn the_index_survives_restart_and_kill_9_and_dedup_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (h, storage, key) = fresh(dir.path(), &[]).await;
    let root = h.token.clone().unwrap();
    let agent = default_token(&h).await;
    let first = report(
        "batch-r1",
        "ns/web-0",
        vec![access(&time_ago(60), "secret/data/d", 7)],
        Some(holds("secret/data/d", 1)),
    );
    assert_eq!(put_report(&h, &agent, first.clone()).await.0, 200);
    // A clean restart.
    drop(h);
    let mut h = sqlite_hushd(&storage, &[]).await;
    h.unseal(&key).await;
    h.token = Some(root.clone());
    let (_, b) = accesses(&h, None, "path=secret/data/d").await;
    assert_eq!(b["data"]["accesses"].as_array().unwrap().len(), 1, "{b}");
    // Acknowledged, then kill -9.
    let second = report(
        "batch-r2",
        "ns/web-0",
        vec![access(&time_ago(30), "secret/data/d", 8)],
        None,
    );
    let (s, b) = put_report(&h, &agent, second.clone()).await;
    assert_eq!((s, &b["data"]["stored"]), (200, &json!(true)), "{b}");
    h.kill9();
    let mut h = sqlite_hushd(&storage, &[]).await;
    h.unseal(&key).await;
    h.token = Some(root);
    let (_, b) = accesses(&h, None, "path=secret/data/d").await;
    let pids: Vec<u64> = b["data"]["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, vec![7, 8], "{b}");
    for batch in [first, second] {
        let (s, b) = put_report(&h, &agent, batch).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["data"]["stored"], false, "dedup survives restarts: {b}");
    }
    let (s, b) = h.call("GET", "sys/agents/ns/web-0", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["state"]["sources"][0]["version"], 1, "{b}");
}

#[tokio::test]
async fn stale_agents_and_the_fleet_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &[]).await;
    let agent = default_token(&h).await;
    assert_eq!(h.kv_put("app/db", json!({"pw": "one"})).await, 1);
    let (s, b) = put_report(
        &h,
        &agent,
        report(
            "s1",
            "ns/web-0",
            vec![],
            Some(holds("secret/data/app/db", 1)),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // A second agent that also holds version 1 and then stops reporting.
    let (s, _) = put_report(
        &h,
        &agent,
        report(
            "s2",
            "node-2:/secrets",
            vec![],
            Some(holds("secret/data/app/db", 1)),
        ),
    )
    .await;
    assert_eq!(s, 200);

    let (s, b) = h.call("LIST", "sys/agents", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["node-2:/secrets", "ns/web-0"]));
    let info = &b["data"]["key_info"]["ns/web-0"];
    assert_eq!(info["stale"], false, "{b}");
    assert_eq!(info["host"], "node-1");
    assert_eq!(info["pod"], "ns/web-0");
    assert_eq!(info["destination"], "/secrets");
    assert!(info["last_seen"].as_str().unwrap().ends_with('Z'), "{b}");
    let (_, b) = h
        .call("GET", "sys/agents/stale?path=secret/data/app/db", None)
        .await;
    assert_eq!(b["data"]["current_version"], 1);
    assert_eq!(b["data"]["agents"], json!([]), "{b}");

    // A new version: both are stale until they report it.
    assert_eq!(h.kv_put("app/db", json!({"pw": "two"})).await, 2);
    let (_, b) = h.call("LIST", "sys/agents", None).await;
    for id in ["ns/web-0", "node-2:/secrets"] {
        let info = &b["data"]["key_info"][id];
        assert_eq!(info["stale"], true, "{id}: {b}");
        assert_eq!(info["stale_paths"], json!(["secret/data/app/db"]), "{id}");
    }
    let (s, b) = put_report(
        &h,
        &agent,
        report(
            "s3",
            "ns/web-0",
            vec![],
            Some(holds("secret/data/app/db", 2)),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = h
        .call("GET", "sys/agents/stale?path=secret/data/app/db", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["current_version"], 2);
    let stale = b["data"]["agents"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{b}");
    assert_eq!(stale[0]["id"], "node-2:/secrets");
    assert_eq!(stale[0]["held_version"], 1);
    let (s, b) = h.call("GET", "sys/agents/ns/web-0", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["stale"], false);
    assert_eq!(b["data"]["dropped_total"], 3);
    assert_eq!(b["data"]["token_display_name"], "token-agent-a");
    assert!(!b["data"]["token_accessor"].as_str().unwrap().is_empty());
    assert_eq!(b["data"]["state"]["sources"][0]["version"], 2);
    let (s, b) = h.call("GET", "sys/agents/node-2:/secrets", None).await;
    assert_eq!((s, &b["data"]["stale"]), (200, &json!(true)), "{b}");
    let (s, b) = h.call("GET", "sys/agents/no-such-agent", None).await;
    assert_eq!((s, b), (404, json!({"errors": []})));

    // The agent's own token may report but not read; the fleet policy may read, not report.
    let reader = h.token_with_policy("fleet-reader", FLEET_READER).await;
    let reads = [
        ("LIST", "sys/agents"),
        ("GET", "sys/agents/ns/web-0"),
        ("GET", "sys/agents/access?path=secret/data/app/db"),
        ("GET", "sys/agents/stale?path=secret/data/app/db"),
    ];
    for (method, path) in reads {
        let (s, b) = h.call_as(Some(&agent), method, path, None).await;
        assert_eq!(s, 403, "{method} {path} with default only: {b}");
        let (s, b) = h.call_as(Some(&reader), method, path, None).await;
        assert_eq!(s, 200, "{method} {path} as fleet-reader: {b}");
    }
    let (s, _) = put_report(&h, &reader, report("s4", "ns/web-0", vec![], None)).await;
    assert_eq!(s, 200, "fleet-reader also has default, which may report");
    let (s, _) = h.call("DELETE", "sys/agents/ns/web-0", None).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn retention_prunes_accesses_and_their_batch_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &["--agent-access-retention", "2s"]).await;
    let agent = default_token(&h).await;
    let body = report(
        "old",
        "ns/web-0",
        vec![access(&time_ago(1), "secret/data/p", 5)],
        Some(holds("secret/data/p", 1)),
    );
    assert_eq!(put_report(&h, &agent, body).await.0, 200);
    let (_, b) = accesses(&h, None, "path=secret/data/p").await;
    assert_eq!(b["data"]["accesses"].as_array().unwrap().len(), 1);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, b) = accesses(&h, None, "path=secret/data/p").await;
        if b["data"]["accesses"] == json!([]) {
            gone = true;
            break;
        }
    }
    assert!(gone, "retention 2s did not prune within 10s");
    // The agent itself stays (its last state is what `stale` needs).
    let (s, _) = h.call("GET", "sys/agents/ns/web-0", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_bad_retention_setting_stops_hushd_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(hush_tests::bin("hushd"))
        .args([
            "--storage",
            &format!("sqlite://{}/hush.db", dir.path().display()),
            "--insecure-no-tls",
            "--agent-access-retention",
            "forever",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "invalid agent_access_retention \"forever\": use a duration such as 720h, 30d or 90m"
        ),
        "{err}"
    );
}

/// `sys/agents/stats`: the fleet's accesses counted per path and by agent + uid, with the
/// `hush audit stats` shape; `path` a prefix, `since` a duration or RFC 3339 time.
#[tokio::test]
async fn stats_count_allowed_and_denied_accesses_per_path_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _, _) = fresh(dir.path(), &[]).await;
    let token = default_token(&h).await;
    let denied = |time: &str, path: &str, uid: u32| {
        let mut a = access(time, path, 7);
        a["result"] = json!("denied");
        a["reason"] = json!("uid not allowed");
        a["uid"] = json!(uid);
        a
    };
    let recent = time_ago(60);
    let old = time_ago(3 * 3600);
    let (s, b) = put_report(
        &h,
        &token,
        report(
            "b-1",
            "web-1",
            vec![
                access(&recent, "secret/data/app/db", 1),
                access(&recent, "secret/data/app/db", 2),
                denied(&recent, "secret/data/app/db", 0),
                access(&old, "secret/data/app/api", 3),
                access(&recent, "secret/data/other/x", 4),
            ],
            None,
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = put_report(
        &h,
        &token,
        report(
            "b-2",
            "web-2",
            vec![access(&recent, "secret/data/app/db", 9)],
            None,
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let stats = |query: &str| {
        let h = &h;
        let query = query.to_string();
        async move {
            let (s, b) = h
                .call("GET", &format!("sys/agents/stats?{query}"), None)
                .await;
            assert_eq!(s, 200, "{query}: {b}");
            b["data"].clone()
        }
    };
    let c = |t: u64, ok: u64, bad: u64| json!({"total": t, "successful": ok, "failed": bad});
    assert_eq!(
        stats("path=secret/data/app/&since=5h").await,
        json!({
            "secret/data/app/db": {
                "total": 4, "successful": 3, "failed": 1,
                "by_identity": {
                    "web-1 uid=0": c(1, 0, 1),
                    "web-1 uid=1000": c(2, 2, 0),
                    "web-2 uid=1000": c(1, 1, 0),
                },
            },
            "secret/data/app/api": {
                "total": 1, "successful": 1, "failed": 0,
                "by_identity": {"web-1 uid=1000": c(1, 1, 0)},
            },
        })
    );
    // The default since (24h) and no path: everything; 1h leaves the old access out.
    let all = stats("").await;
    assert_eq!(all.as_object().unwrap().len(), 3);
    let hour = stats(&format!("since=1h&path={}", urlencode("secret/data/app"))).await;
    assert!(hour.get("secret/data/app/api").is_none(), "{hour}");
    assert_eq!(hour["secret/data/app/db"]["total"], 4);
    assert_eq!(stats("path=nothing/").await, json!({}));
    // A bad since is a 400; "stats" is no agent id; the fleet policy reads it, default does not.
    let (s, b) = h
        .call("GET", "sys/agents/stats?since=yesterday", None)
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = put_report(&h, &token, report("b-3", "stats", vec![], None)).await;
    assert_eq!(s, 400);
    let (s, _) = h
        .call_as(Some(&token), "GET", "sys/agents/stats", None)
        .await;
    assert_eq!(s, 403);
    let reader = h.token_with_policy("fleet-reader", FLEET_READER).await;
    let (s, b) = h
        .call_as(Some(&reader), "GET", "sys/agents/stats?since=5h", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["secret/data/app/db"]["failed"], 1);
}

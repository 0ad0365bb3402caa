//! `GET /v1/sys/metrics?format=prometheus` against a real hushd: every family is there, the
//! counters follow requests, logins, commits and a failed audit write, reading needs `read` on
//! `sys/metrics` unless `unauthenticated_metrics_access` is set, and a thousand distinct KV
//! paths add no series.

use std::collections::BTreeMap;
use std::time::Duration;

use hush_tests::{http_client, wait_for, Hushd};
use serde_json::json;

const FAMILIES: &[&str] = &[
    "hush_requests_total",
    "hush_request_duration_seconds",
    "hush_storage_commit_duration_seconds",
    "hush_storage_commit_batch_size",
    "hush_audit_write_failures_total",
    "hush_leases",
    "hush_tokens",
    "hush_logins_total",
    "hush_event_subscribers",
    "hush_events_dropped_total",
    "hush_sealed",
    "hush_process_resident_memory_bytes",
    "hush_process_cpu_seconds_total",
];

/// `GET sys/metrics` as `token` with `query`: (status, content type, body).
async fn scrape(h: &Hushd, token: Option<&str>, query: &str) -> (u16, String, String) {
    let mut rb = h.client.get(format!("{}/v1/sys/metrics{query}", h.addr));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    let resp = rb.send().await.expect("scrape");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.text().await.unwrap())
}

/// Every sample line: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// Scrape as root (the harness token) and return the samples.
async fn metrics(h: &Hushd) -> BTreeMap<String, f64> {
    let (s, ct, text) = scrape(h, h.token.as_deref(), "?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    samples(&text)
}

fn get(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// A durable hushd (SQLite, so group commit is measured), initialised, unsealed, kv v2 at
/// `secret/`, AppRole at `auth/approle/` with role `app`.
async fn sqlite_hushd(dir: &std::path::Path) -> Hushd {
    let storage = format!("sqlite://{}/hush.db", dir.display());
    let mut h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    h.init_unseal().await;
    for (path, body) in [
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/auth/approle", json!({"type": "approle"})),
        (
            "auth/approle/role/app",
            json!({"token_policies": ["default"]}),
        ),
    ] {
        let (s, b) = h.call("POST", path, Some(body)).await;
        assert!(s == 200 || s == 204, "{path}: {s} {b}");
    }
    h
}

#[tokio::test]
async fn families_are_present_and_counters_follow_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let h = sqlite_hushd(dir.path()).await;
    let (s, _, text) = scrape(&h, h.token.as_deref(), "?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing in\n{text}"
        );
    }
    assert!(
        !text.contains("# EOF"),
        "classic text format, not OpenMetrics"
    );
    let before = samples(&text);
    assert_eq!(get(&before, "hush_sealed"), 0.0);
    assert!(get(&before, "hush_process_resident_memory_bytes") > 1e6);

    // KV writes and reads, a login that works and one that does not.
    for i in 0..5 {
        h.kv_put(&format!("app/{i}"), json!({"pw": "s3cret"})).await;
        let (s, _) = h.call("GET", &format!("secret/data/app/{i}"), None).await;
        assert_eq!(s, 200);
    }
    let (role_id, secret_id) = h.approle_credentials("approle", "app").await;
    let (s, b) = h
        .call_as(
            None,
            "POST",
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": secret_id})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = h
        .call_as(
            None,
            "POST",
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": "wrong"})),
        )
        .await;
    assert_eq!(s, 400);
    // Tokens with a TTL, so leases too.
    for _ in 0..3 {
        h.create_token(json!({"ttl": "1h", "policies": ["default"]}))
            .await;
    }

    let after = metrics(&h).await;
    let moved = |series: &str| get(&after, series) - get(&before, series);
    assert_eq!(
        moved("hush_requests_total{group=\"kv\",operation=\"update\",status=\"2xx\"}"),
        5.0
    );
    assert_eq!(
        moved("hush_requests_total{group=\"kv\",operation=\"read\",status=\"2xx\"}"),
        5.0
    );
    assert!(moved("hush_request_duration_seconds_count{group=\"kv\"}") >= 10.0);
    assert_eq!(
        moved("hush_logins_total{method=\"approle\",outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        moved("hush_logins_total{method=\"approle\",outcome=\"denied\"}"),
        1.0
    );
    assert_eq!(
        moved("hush_requests_total{group=\"auth/approle\",operation=\"update\",status=\"4xx\"}"),
        1.0
    );
    assert!(
        moved("hush_requests_total{group=\"auth/token\",operation=\"update\",status=\"2xx\"}")
            >= 3.0
    );
    // Each KV write is at least one durable transaction.
    assert!(moved("hush_storage_commit_duration_seconds_count") >= 5.0);
    assert!(moved("hush_storage_commit_batch_size_sum") >= 5.0);
    assert!(get(&after, "hush_storage_commit_duration_seconds_sum") > 0.0);

    // The lease and token gauges come from a periodic count (every 15 s): wait for it.
    let mut last = after;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        // root + the login's token + 3 created; the 4 with a TTL have leases.
        if get(&last, "hush_tokens") >= 5.0 && get(&last, "hush_leases{state=\"active\"}") >= 4.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lease/token gauges never counted: tokens {} leases {}",
            get(&last, "hush_tokens"),
            get(&last, "hush_leases{state=\"active\"}")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = metrics(&h).await;
    }
    assert_eq!(get(&last, "hush_leases{state=\"irrevocable\"}"), 0.0);
}

#[tokio::test]
async fn a_failed_audit_write_is_counted() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    let bad = dir.path().join("bad.log");
    for (name, path) in [("good", &good), ("bad", &bad)] {
        let (s, b) = h
            .call(
                "PUT",
                &format!("sys/audit/{name}"),
                Some(json!({"type": "file", "options": {"file_path": path}})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
    }
    let before = get(&metrics(&h).await, "hush_audit_write_failures_total");
    assert_eq!(before, 0.0);
    // Replace bad.log by a directory and have hushd reopen its files: that device now fails
    // every write, the other still records, so requests go on.
    std::fs::remove_file(&bad).unwrap();
    std::fs::create_dir(&bad).unwrap();
    let pid = h.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(
        Duration::from_secs(10),
        "hushd reopened its audit files",
        || {
            std::fs::read_to_string(&h.stderr_path)
                .unwrap_or_default()
                .contains("audit files reopened")
        },
    )
    .await;
    let (s, _) = h.call("GET", "sys/mounts", None).await;
    assert_eq!(s, 200, "one device still writes");
    let failures = get(&metrics(&h).await, "hush_audit_write_failures_total");
    // The sys/mounts request and response, and the scrape's own request, at least.
    assert!(failures >= 3.0, "{failures}");
}

#[tokio::test]
async fn reading_needs_read_on_sys_metrics() {
    let h = Hushd::dev().await;
    let (s, _, body) = scrape(&h, None, "?format=prometheus").await;
    assert_eq!(s, 403, "no token: {body}");
    let plain = h.create_token(json!({"policies": ["default"]})).await;
    let (s, _, body) = scrape(&h, Some(&plain), "?format=prometheus").await;
    assert_eq!(s, 403, "default policy only: {body}");
    let reader = h
        .token_with_policy(
            "metrics-reader",
            "path \"sys/metrics\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, ct, text) = scrape(&h, Some(&reader), "?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(text.contains("# TYPE hush_requests_total counter"));
    // The reader may read metrics and nothing else.
    let (s, _) = h.call_as(Some(&reader), "GET", "sys/mounts", None).await;
    assert_eq!(s, 403);
    // No JSON form: a 400 that says what to ask for.
    let (s, _, body) = scrape(&h, Some(&reader), "").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("format=prometheus"), "{body}");
}

#[tokio::test]
async fn unauthenticated_when_configured_even_while_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hushd.toml");
    std::fs::write(
        &config,
        "storage = \"inmem\"\ninsecure_no_tls = true\nunauthenticated_metrics_access = true\n",
    )
    .unwrap();
    let h = Hushd::start(
        &["--config", config.to_str().unwrap()],
        "http",
        http_client(),
    )
    .await;
    let (s, _, text) = scrape(&h, None, "?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(get(&samples(&text), "hush_sealed"), 1.0);
    let (s, _, body) = scrape(&h, None, "?format=json").await;
    assert_eq!(s, 400, "{body}");
    drop(h);
    // The flag does the same.
    let h = Hushd::start(
        &["--dev", "--unauthenticated-metrics-access"],
        "http",
        http_client(),
    )
    .await;
    let (s, _, text) = scrape(&h, None, "?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(get(&samples(&text), "hush_sealed"), 0.0);
}

#[tokio::test]
async fn distinct_paths_add_no_series() {
    let h = Hushd::dev().await;
    // Create the KV series once, then count.
    h.kv_put("warm", json!({"v": "1"})).await;
    let (s, _) = h.call("GET", "secret/data/warm", None).await;
    assert_eq!(s, 200);
    let (s, _) = h.call("GET", "secret/data/missing", None).await;
    assert_eq!(s, 404);
    let before = metrics(&h).await;
    for i in 0..200 {
        let path = format!("tenant-{i}/db-password-{i}");
        h.kv_put(&path, json!({"password": format!("value-{i}")}))
            .await;
        let (s, _) = h.call("GET", &format!("secret/data/{path}"), None).await;
        assert_eq!(s, 200);
        let (s, _) = h
            .call("GET", &format!("secret/data/missing-{i}"), None)
            .await;
        assert_eq!(s, 404);
    }
    let (_, _, text) = scrape(&h, Some("root"), "?format=prometheus").await;
    let after = samples(&text);
    let keys = |m: &BTreeMap<String, f64>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&before), keys(&after), "no new series");
    for leak in [
        "tenant-",
        "db-password",
        "value-",
        "missing-",
        "root",
        "hvs.",
    ] {
        assert!(!text.contains(leak), "{leak} in the metrics:\n{text}");
    }
    assert_eq!(
        get(
            &after,
            "hush_requests_total{group=\"kv\",operation=\"update\",status=\"2xx\"}"
        ) - get(
            &before,
            "hush_requests_total{group=\"kv\",operation=\"update\",status=\"2xx\"}"
        ),
        200.0
    );
}

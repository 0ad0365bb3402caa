//! Scheduled rotation end to end: a real hushd (its rotation clock moved forward through
//! `sys/internal/test/clock`, no sleeps for the schedule), a real webhook receiver that runs
//! the steps, and a real hush-agent following the secret with push (refresh at an hour, so
//! only the rotation's finish can change its file).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_tests::push::{file_name, Fleet, FleetSpec};
use hush_tests::webhook::{unix_now, verify_recorded, Receiver, Recorded};
use hush_tests::{http_client, Hushd};
use serde_json::{json, Value};

const HMAC_SECRET: &str = "rotation-hook-secret";
const LIMIT: Duration = Duration::from_secs(30);

async fn dev_with_clock() -> Hushd {
    let mut h = Hushd::start(
        &["--dev", "--dev-root-token", "root", "--test-clock-endpoint"],
        "http",
        http_client(),
    )
    .await;
    h.token = Some("root".into());
    h
}

async fn ok(h: &Hushd, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = h.call(method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

async fn webhook(h: &Hushd, r: &Receiver) {
    ok(
        h,
        "POST",
        "sys/webhooks/rotator",
        Some(json!({
            "url": r.url(),
            "events": ["rotation.succeeded", "rotation.failed"],
            "secret": HMAC_SECRET,
        })),
    )
    .await;
}

fn agent(h: &Hushd) -> Fleet {
    Fleet::start(
        &h.addr,
        &FleetSpec {
            agents: 1,
            paths: vec!["app/db".into()],
            refresh: "1h".into(),
            push: true,
            token: "root".into(),
            program: None,
            log: "info".into(),
            ca_cert: None,
        },
    )
    .unwrap()
}

fn file(fleet: &Fleet) -> String {
    std::fs::read_to_string(fleet.dests[0].join(file_name(0))).unwrap_or_default()
}

fn steps(seen: &[Recorded]) -> Vec<String> {
    seen.iter()
        .filter_map(|r| r.json()["step"].as_str().map(str::to_string))
        .collect()
}

fn events(seen: &[Recorded], kind: &str) -> usize {
    seen.iter().filter(|r| r.json()["type"] == kind).count()
}

async fn status(h: &Hushd) -> Value {
    ok(h, "GET", "sys/rotation/status/secret/app/db", None).await["data"].clone()
}

/// A handler that records the agent's file as each step arrives, fails `fail_step` (if any)
/// with a 500, and answers 200 otherwise.
fn recording(
    dest: std::path::PathBuf,
    fail_step: Arc<Mutex<Option<&'static str>>>,
    seen_files: Arc<Mutex<Vec<(String, String)>>>,
) -> hush_tests::webhook::Handler {
    Arc::new(move |r: &Recorded| {
        let body = r.json();
        let Some(step) = body["step"].as_str() else {
            return (200, json!({}));
        };
        let now = std::fs::read_to_string(dest.join(file_name(0))).unwrap_or_default();
        seen_files.lock().unwrap().push((step.to_string(), now));
        if *fail_step.lock().unwrap() == Some(step) {
            (500, json!({"error": "target refused"}))
        } else {
            (200, json!({}))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_rotation_runs_the_four_steps_when_the_clock_passes_midnight() {
    let h = dev_with_clock().await;
    h.kv_put("app/db", json!({"v": "v0", "user": "app"})).await;
    let r = Receiver::start().await;
    webhook(&h, &r).await;
    let mut fleet = agent(&h);
    fleet
        .wait_value(0, "v0", Instant::now(), LIMIT)
        .await
        .unwrap();
    let (fail, files) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(Vec::new())));
    r.set_handler(recording(
        fleet.dests[0].clone(),
        fail.clone(),
        files.clone(),
    ));

    ok(
        &h,
        "POST",
        "sys/rotation/config/secret/app/db",
        Some(json!({"schedule": "daily", "generate": {"v": {"length": 24}}, "webhook": "rotator"})),
    )
    .await;
    let before = status(&h).await;
    assert_eq!(before["last_run"], Value::Null);
    let next: chrono::DateTime<chrono::Utc> = before["next_run"].as_str().unwrap().parse().unwrap();
    let now: chrono::DateTime<chrono::Utc> = before["now"].as_str().unwrap().parse().unwrap();
    assert!(
        next > now && next - now <= chrono::TimeDelta::days(1),
        "{before}"
    );
    assert_eq!(next.format("%H:%M:%S").to_string(), "00:00:00");

    // Nothing runs before the schedule: the receiver has heard nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(r.requests().is_empty());

    ok(
        &h,
        "POST",
        "sys/internal/test/clock",
        Some(json!({"advance": "25h"})),
    )
    .await;
    let seen = r
        .wait_until(LIMIT, "the four steps and rotation.succeeded", |s| {
            events(s, "rotation.succeeded") == 1
        })
        .await;
    assert_eq!(steps(&seen), ["create", "set", "test", "finish"]);
    // Each step signed with the webhook's secret, checked the documented way.
    for req in &seen {
        verify_recorded(HMAC_SECRET.as_bytes(), req, unix_now()).unwrap();
    }
    // set and test carry the pending value; create and finish do not.
    let by_step = |name: &str| {
        seen.iter()
            .find(|q| q.json()["step"] == name)
            .unwrap()
            .json()
    };
    let new_value = by_step("set")["value"]["v"].as_str().unwrap().to_string();
    assert_eq!(new_value.len(), 24);
    assert_eq!(
        by_step("set")["value"]["user"],
        "app",
        "other fields are kept"
    );
    assert_eq!(by_step("test")["value"]["v"], new_value.as_str());
    assert_eq!(by_step("create").get("value"), None);
    assert_eq!(by_step("finish").get("value"), None);
    assert_eq!(by_step("finish")["version"], 2);
    assert_eq!(by_step("finish")["path"], "secret/data/app/db");

    // The agent's file changed only after finish: every step saw the old value.
    let files = files.lock().unwrap().clone();
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|(_, f)| f == "v0"), "{files:?}");
    fleet
        .wait_value(0, &new_value, Instant::now(), LIMIT)
        .await
        .unwrap();

    let s = status(&h).await;
    assert_eq!(s["last_outcome"], "succeeded", "{s}");
    assert_eq!(s["current_version"], 2);
    assert_eq!(s["previous_version"], 1);
    assert_eq!(s["in_progress"], false);
    let next2: chrono::DateTime<chrono::Utc> = s["next_run"].as_str().unwrap().parse().unwrap();
    // The next run is the first midnight after the (moved) clock: one day after `next`, or two
    // when the test started in the last hour of a day and the 25 h crossed two midnights.
    let now: chrono::DateTime<chrono::Utc> = s["now"].as_str().unwrap().parse().unwrap();
    assert!(
        next2 > now && next2 - now <= chrono::TimeDelta::days(1),
        "{s}"
    );
    assert_eq!(next2.time(), chrono::NaiveTime::MIN, "{s}");
    assert!(next2 > next, "{s}");
    let meta = ok(&h, "GET", "secret/metadata/app/db", None).await;
    assert_eq!(
        meta["data"]["labels"],
        json!({"current": 2, "previous": 1, "pending": null})
    );
    let prev = ok(&h, "GET", "secret/data/app/db?label=previous", None).await;
    assert_eq!(prev["data"]["data"]["v"], "v0");
    // No secret in hushd's log.
    assert!(!h.stderr().contains(&new_value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_step_keeps_the_current_value_and_the_retry_succeeds() {
    let h = dev_with_clock().await;
    h.kv_put("app/db", json!({"v": "v0"})).await;
    let r = Receiver::start().await;
    webhook(&h, &r).await;
    let mut fleet = agent(&h);
    fleet
        .wait_value(0, "v0", Instant::now(), LIMIT)
        .await
        .unwrap();
    let (fail, files) = (
        Arc::new(Mutex::new(Some("test"))),
        Arc::new(Mutex::new(Vec::new())),
    );
    r.set_handler(recording(
        fleet.dests[0].clone(),
        fail.clone(),
        files.clone(),
    ));
    ok(
        &h,
        "POST",
        "sys/rotation/config/secret/app/db",
        Some(json!({"schedule": "daily", "generate": {"v": {"length": 16}}, "webhook": "rotator"})),
    )
    .await;
    ok(
        &h,
        "POST",
        "sys/internal/test/clock",
        Some(json!({"advance": "25h"})),
    )
    .await;
    let seen = r
        .wait_until(LIMIT, "rotation.failed", |s| {
            events(s, "rotation.failed") == 1
        })
        .await;
    assert_eq!(
        steps(&seen),
        ["create", "set", "test"],
        "no finish after a failed test"
    );
    let failed = seen
        .iter()
        .find(|q| q.json()["type"] == "rotation.failed")
        .unwrap()
        .json();
    assert!(failed.to_string().contains("test"), "{failed}");
    let pending_value = seen[1].json()["value"]["v"].as_str().unwrap().to_string();
    assert!(
        !failed.to_string().contains(&pending_value),
        "no value in the event"
    );

    // Current untouched, the pending version marked failed, the agent's file unchanged.
    let cur = ok(&h, "GET", "secret/data/app/db", None).await;
    assert_eq!(cur["data"]["data"]["v"], "v0");
    let meta = ok(&h, "GET", "secret/metadata/app/db", None).await;
    assert_eq!(meta["data"]["current_version"], 1);
    assert_eq!(meta["data"]["versions"]["2"]["rotation_failed"], true);
    let s = status(&h).await;
    assert_eq!(s["last_outcome"], "failed");
    assert_eq!(s["failures"], 1);
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .starts_with("test: webhook rotator"),
        "{s}"
    );
    assert!(!s.to_string().contains(&pending_value));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(file(&fleet), "v0");

    // The retry is due 30 s later (the backoff): the receiver now accepts.
    *fail.lock().unwrap() = None;
    ok(
        &h,
        "POST",
        "sys/internal/test/clock",
        Some(json!({"advance": "31s"})),
    )
    .await;
    let seen = r
        .wait_until(LIMIT, "rotation.succeeded", |s| {
            events(s, "rotation.succeeded") == 1
        })
        .await;
    let set = seen
        .iter()
        .rev()
        .find(|q| q.json()["step"] == "set")
        .unwrap()
        .json();
    assert_eq!(set["version"], 3, "the retry writes a new pending version");
    let new_value = set["value"]["v"].as_str().unwrap().to_string();
    fleet
        .wait_value(0, &new_value, Instant::now(), LIMIT)
        .await
        .unwrap();
    assert_eq!(status(&h).await["failures"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hushd_killed_between_set_and_finish_resumes_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    ok(
        &h,
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv-v2"})),
    )
    .await;
    h.kv_put("app/db", json!({"v": "v0"})).await;
    let r = Receiver::start().await;
    webhook(&h, &r).await;
    // The test step is held (the receiver's thread sleeps) while the test kills hushd.
    let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let held2 = held.clone();
    r.set_handler(Arc::new(move |q: &Recorded| {
        if q.json()["step"] == "test" && held2.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(3));
        }
        (200, json!({}))
    }));
    ok(
        &h,
        "POST",
        "sys/rotation/config/secret/app/db",
        Some(json!({"schedule": "@every 24h", "generate": {"v": {"length": 20}}, "webhook": "rotator"})),
    )
    .await;
    let (code, v) = h
        .call("POST", "sys/rotation/rotate/secret/app/db", None)
        .await;
    assert_eq!(code, 202, "{v}");
    let seen = r
        .wait_until(LIMIT, "the test step", |s| {
            steps(s).contains(&"test".to_string())
        })
        .await;
    h.kill9();
    let value = seen[1].json()["value"]["v"].as_str().unwrap().to_string();
    assert_eq!(steps(&seen), ["create", "set", "test"]);

    let (port, token) = (h.port, h.token.clone());
    drop(h);
    let mut h = Hushd::start_on(port, &args, "http", http_client()).await;
    h.token = token;
    h.unseal(&key).await;
    let seen = r
        .wait_until(LIMIT, "rotation.succeeded after the restart", |s| {
            events(s, "rotation.succeeded") == 1
        })
        .await;
    // Resumed at the stored step (test again, then finish), same pending version.
    assert_eq!(steps(&seen), ["create", "set", "test", "test", "finish"]);
    assert!(seen
        .iter()
        .filter(|q| q.json()["step"].is_string())
        .all(|q| q.json()["version"] == 2));
    let cur = ok(&h, "GET", "secret/data/app/db", None).await;
    assert_eq!(cur["data"]["data"]["v"], value.as_str());
    assert_eq!(cur["data"]["metadata"]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_access_rotates_after_n_reads_and_bad_configs_are_refused() {
    let h = dev_with_clock().await;
    h.kv_put("app/db", json!({"v": "v0"})).await;
    let r = Receiver::start().await;
    webhook(&h, &r).await;
    let path = "sys/rotation/config/secret/app/db";
    for (body, want) in [
        (
            json!({"generate": {"v": {"length": 8}}, "webhook": "rotator"}),
            "schedule, on_access",
        ),
        (
            json!({"schedule": "daily", "generate": {"v": {"length": 8}}, "webhook": "nope"}),
            "no webhook named \"nope\"",
        ),
        (
            json!({"schedule": "now and then", "generate": {"v": {"length": 8}}, "webhook": "rotator"}),
            "is not a schedule",
        ),
        (
            json!({"schedule": "daily", "generate": {"v": {"policy": ""}}, "webhook": "rotator"}),
            "generate.v",
        ),
    ] {
        let (code, v) = h.call("POST", path, Some(body)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["errors"][0].as_str().unwrap().contains(want), "{v}");
    }
    let (code, v) = h
        .call("POST", "sys/rotation/config/cubbyhole/x", Some(json!({"schedule": "daily", "generate": {"v": {"length": 8}}, "webhook": "rotator"})))
        .await;
    assert_eq!(code, 400, "{v}");
    let (code, _) = h
        .call("POST", "sys/rotation/rotate/secret/none", None)
        .await;
    assert_eq!(code, 404);
    let (code, _) = h.call("GET", "sys/rotation/status/secret/none", None).await;
    assert_eq!(code, 404);

    // Values from a named password policy (sys/policies/password).
    let pin = "length = 6\nrule \"charset\" {\n  charset = \"0123456789\"\n}\n";
    ok(
        &h,
        "PUT",
        "sys/policies/password/pin",
        Some(json!({"policy": pin})),
    )
    .await;
    ok(
        &h,
        "POST",
        path,
        Some(json!({"on_access": 3, "generate": {"v": {"policy": "pin"}}, "webhook": "rotator"})),
    )
    .await;
    let listed = ok(&h, "LIST", "sys/rotation/config", None).await;
    assert_eq!(listed["data"]["keys"], json!(["secret/app/db"]));
    for _ in 0..2 {
        ok(&h, "GET", "secret/data/app/db", None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        r.requests().is_empty(),
        "two reads of three: no rotation yet"
    );
    ok(&h, "GET", "secret/data/app/db", None).await;
    r.wait_until(LIMIT, "rotation.succeeded", |s| {
        events(s, "rotation.succeeded") == 1
    })
    .await;
    let s = status(&h).await;
    assert_eq!(s["current_version"], 2);
    let cur = ok(&h, "GET", "secret/data/app/db", None).await;
    let v = cur["data"]["data"]["v"].as_str().unwrap();
    assert!(v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()), "{v}");

    // Without the config flag the test clock is not served.
    let plain = Hushd::dev().await;
    let (code, _) = plain
        .call(
            "POST",
            "sys/internal/test/clock",
            Some(json!({"advance": "1h"})),
        )
        .await;
    assert_eq!(code, 404);
    ok(&h, "DELETE", path, None).await;
    let (code, _) = h.call("GET", path, None).await;
    assert_eq!(code, 404);
}

//! `sys/webhooks` against a real hushd and a real HTTP(S) receiver started by the test
//! (`hush_tests::webhook`): deliveries verify with the HMAC secret by the documented check (a
//! forged or replayed one does not), event and path filters, the secret never read back,
//! every bad input a 400 with its message, the ACL; a receiver down for a while gets every
//! delivery once it is back (deduplicated by id), also across a kill -9 of hushd; seal and
//! unseal events; TLS with the webhook's own CA.

use std::collections::BTreeSet;
use std::time::Duration;

use hush_tests::webhook::{unix_now, verify, verify_recorded, Receiver, Recorded, Refused};
use hush_tests::{http_client, Hushd};
use serde_json::{json, Value};

const SECRET: &str = "whsec-0123456789abcdef-test";
const WAIT: Duration = Duration::from_secs(30);

/// Each request verifies with `SECRET` now, and its body holds no secret value.
fn all_verify(seen: &[Recorded]) {
    for r in seen {
        assert_eq!(
            verify_recorded(SECRET.as_bytes(), r, unix_now()),
            Ok(()),
            "{:?}",
            r.json()
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("s3cr3t-value"),
            "a secret value in a payload: {body}"
        );
        assert_eq!(r.header("content-type"), "application/json");
    }
}

/// The deliveries as `sys/webhooks/:name/deliveries` reads them.
async fn deliveries(h: &Hushd, name: &str) -> Value {
    let (s, b) = h
        .call("GET", &format!("sys/webhooks/{name}/deliveries"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b["data"].clone()
}

/// Wait until the deliveries of `name` satisfy `pred`.
async fn wait_deliveries(
    h: &Hushd,
    name: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let d = deliveries(h, name).await;
        if pred(&d) {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn write(h: &Hushd, path: &str, body: Value) {
    let (s, b) = h.call("POST", path, Some(body)).await;
    assert!(s == 200 || s == 204, "{path}: {s} {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_filters_apply_and_the_secret_is_never_read_back() {
    let h = Hushd::dev().await;
    let rx = Receiver::start().await;
    let deletes = Receiver::start().await;
    // A plain reqwest client writes the configuration.
    write(
        &h,
        "sys/webhooks/app",
        json!({"url": rx.url(), "events": ["kv.write", "kv.delete", "kv.destroy", "login.failed"],
               "paths": ["secret/data/app/*", "auth/approle/login"], "secret": SECRET}),
    )
    .await;
    write(
        &h,
        "sys/webhooks/deletes",
        json!({"url": deletes.url(), "events": "kv.delete", "secret": SECRET}),
    )
    .await;

    let (s, b) = h.call("GET", "sys/webhooks/app", None).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        !b.to_string().contains(SECRET),
        "the secret was read back: {b}"
    );
    assert_eq!(b["data"]["secret_set"], true);
    assert!(b["data"].get("secret").is_none());
    assert_eq!(
        b["data"]["paths"],
        json!(["secret/data/app/*", "auth/approle/login"])
    );
    assert_eq!(b["data"]["max_attempts"], 10);
    let (s, b) = h.call("LIST", "sys/webhooks", None).await;
    assert_eq!((s, &b["data"]["keys"]), (200, &json!(["app", "deletes"])));

    write(
        &h,
        "secret/data/app/db",
        json!({"data": {"password": "s3cr3t-value"}}),
    )
    .await;
    write(
        &h,
        "secret/data/other/x",
        json!({"data": {"password": "s3cr3t-value"}}),
    )
    .await;
    let (s, _) = h.call("DELETE", "secret/data/other/x", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("DELETE", "secret/data/app/db", None).await;
    assert_eq!(s, 204);
    write(&h, "secret/destroy/app/db", json!({"versions": [1]})).await;

    // A failed login: one event for two failures of one identity (rate-limited), and nothing
    // of what it sent.
    write(&h, "sys/auth/approle", json!({"type": "approle"})).await;
    for _ in 0..2 {
        let (s, _) = h
            .call_as(
                None,
                "POST",
                "auth/approle/login",
                Some(json!({"role_id": "rid-guess-42", "secret_id": "sid-guess-42"})),
            )
            .await;
        assert_eq!(s, 400);
    }

    rx.wait_ids(4, WAIT).await;
    // Anything else would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = rx.requests();
    all_verify(&seen);
    let ids: BTreeSet<&str> = seen.iter().map(Recorded::delivery_id).collect();
    assert_eq!(
        ids.len(),
        4,
        "{:?}",
        seen.iter().map(Recorded::json).collect::<Vec<_>>()
    );
    let mut kinds: Vec<(String, String)> = seen
        .iter()
        .map(|r| {
            let b = r.json();
            assert_eq!(b["id"], r.delivery_id());
            assert!(b["time"].is_string());
            (
                b["type"].as_str().unwrap().into(),
                b["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        vec![
            ("kv.delete".into(), "secret/data/app/db".into()),
            ("kv.destroy".into(), "secret/data/app/db".into()),
            ("kv.write".into(), "secret/data/app/db".into()),
            ("login.failed".into(), "auth/approle/login".into()),
        ]
    );
    let write_event = seen
        .iter()
        .map(Recorded::json)
        .find(|b| b["type"] == "kv.write")
        .unwrap();
    assert_eq!(write_event["data"]["current_version"], 1);
    assert_eq!(write_event["data"]["mount"], "secret/");
    let login = seen
        .iter()
        .map(Recorded::json)
        .find(|b| b["type"] == "login.failed")
        .unwrap();
    assert_eq!(login["data"]["mount"], "auth/approle/");
    assert_eq!(login["data"]["suppressed"], 0);
    let text = login.to_string();
    assert!(
        !text.contains("rid-guess-42") && !text.contains("sid-guess-42"),
        "{text}"
    );

    // The kv.delete-only webhook heard both deletes and nothing else.
    let d = deletes.wait_ids(2, WAIT).await;
    all_verify(&d);
    let paths: BTreeSet<String> = d
        .iter()
        .map(|r| {
            let b = r.json();
            assert_eq!(b["type"], "kv.delete");
            b["path"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "secret/data/app/db".to_string(),
            "secret/data/other/x".to_string()
        ])
    );

    // The documented check refuses a forged body, a wrong secret and a replay.
    let r = &seen[0];
    let (ts, sig) = (r.header("x-hush-timestamp"), r.header("x-hush-signature"));
    let now = unix_now();
    let five_min = Duration::from_secs(300);
    assert_eq!(
        verify(SECRET.as_bytes(), ts, sig, &r.body, now, five_min),
        Ok(())
    );
    let mut forged = r.body.clone();
    forged.extend_from_slice(b" ");
    assert_eq!(
        verify(SECRET.as_bytes(), ts, sig, &forged, now, five_min),
        Err(Refused::Mismatch)
    );
    assert_eq!(
        verify(b"another-secret-xxxxxx", ts, sig, &r.body, now, five_min),
        Err(Refused::Mismatch)
    );
    // The same request replayed six minutes later; and a fresh timestamp put on it without
    // the secret cannot carry the old signature.
    assert_eq!(
        verify(SECRET.as_bytes(), ts, sig, &r.body, now + 360, five_min),
        Err(Refused::Stale)
    );
    let fresh = (now + 360).to_string();
    assert_eq!(
        verify(SECRET.as_bytes(), &fresh, sig, &r.body, now + 360, five_min),
        Err(Refused::Mismatch)
    );
    assert_eq!(
        verify(SECRET.as_bytes(), ts, "sha1=00", &r.body, now, five_min),
        Err(Refused::BadSignature)
    );

    // The deliveries list: each with its fields, delivered at the first attempt.
    let list = wait_deliveries(&h, "app", "4 delivered", |d| {
        d["deliveries"]
            .as_array()
            .is_some_and(|l| l.len() == 4 && l.iter().all(|x| x["status"] == "delivered"))
    })
    .await;
    assert_eq!(list["pending"], 0);
    assert_eq!(list["dropped"], 0);
    for x in list["deliveries"].as_array().unwrap() {
        assert!(ids.contains(x["id"].as_str().unwrap()), "{x}");
        assert_eq!(x["attempts"], 1);
        assert!(x["last_error"].is_null() && x["next_attempt"].is_null());
        for f in ["type", "path", "created", "last_attempt", "finished"] {
            assert!(x[f].is_string(), "{f} in {x}");
        }
    }
    let (s, b) = h.call("LIST", "sys/webhooks/app/deliveries", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"].as_array().unwrap().len(), 4);

    // Metrics count them.
    let (s, text) = h.raw_get("/v1/sys/metrics?format=prometheus").await;
    assert_eq!(s, 200);
    assert!(
        text.contains("hush_webhook_deliveries_total{outcome=\"delivered\"}"),
        "{text}"
    );
    assert!(text.contains("hush_webhook_queue_depth 0"), "{text}");

    // Delete: gone from the list, its deliveries too.
    let (s, _) = h.call("DELETE", "sys/webhooks/deletes", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "sys/webhooks/deletes", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("GET", "sys/webhooks/deletes/deliveries", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_inputs_are_400s_with_their_message_and_the_acl_applies() {
    let h = Hushd::dev().await;
    let ok =
        || json!({"url": "https://hooks.example.com/x", "events": ["kv.write"], "secret": SECRET});
    let with = |k: &str, v: Value| {
        let mut b = ok();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for (name, body, want) in [
        ("a", with("events", json!(["kv.wrte"])), "events: unknown event type \"kv.wrte\" (one of kv.write, kv.delete, kv.destroy, kv.rollback, rotation.succeeded, rotation.failed, lease.revoked, lease.expired, login.failed, seal, unseal, audit.failed, agent.stale, or *)"),
        ("a", with("events", json!([])), "events: empty (a list of event types, or [\"*\"] for all)"),
        ("a", with("url", json!("ftp://x/y")), "url: \"ftp://x/y\" is not an http:// or https:// URL"),
        ("a", with("url", json!("hooks.example.com")), "url: \"hooks.example.com\" is not a URL (relative URL without a base)"),
        ("a", with("url", json!("https://user:pw@h.example/")), "url: \"https://user:pw@h.example/\" holds user info: put credentials in the secret or the receiver, not the URL"),
        ("a", with("ca_pem", json!("not pem")), "ca_pem: no CERTIFICATE block (-----BEGIN CERTIFICATE-----)"),
        ("a", with("ca_pem", json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), "ca_pem: certificate 1 is not an X.509 certificate"),
        ("a", with("paths", json!(["secret/data/[ab]"])), "paths: \"secret/data/[ab]\" uses ? [ ] { }: only * is a wildcard (a glob over API paths such as secret/data/app/*)"),
        ("a", with("paths", json!(["/secret/*"])), "paths: \"/secret/*\" starts with / (a glob over API paths such as secret/data/app/*)"),
        ("a", with("secret", json!("short")), "secret: at least 16 bytes"),
        ("a", with("secret", json!("x".repeat(1025))), "secret: at most 1024 bytes"),
        ("a", with("max_attempts", json!(0)), "max_attempts: 0 is out of range (1 to 50)"),
        ("a", with("max_attempts", json!("many")), "max_attempts must be a non-negative integer"),
        ("a", with("max_pending", json!(100_001)), "max_pending: 100001 is out of range (1 to 100000)"),
        ("a", with("colour", json!("red")), "unknown field \"colour\" (fields: url, ca_pem, events, paths, secret, max_attempts, max_pending)"),
        ("a", without("secret"), "missing secret (the HMAC key deliveries are signed with, at least 16 bytes)"),
        ("a", without("url"), "missing url (an http:// or https:// URL)"),
        ("a", without("events"), "missing events (a list of event types, or [\"*\"] for all)"),
        ("a", with("url", json!(format!("https://h.example/{}", "x".repeat(2048)))), "url: longer than 2048 bytes"),
        ("a@b", ok(), "invalid webhook name \"a@b\": use 1-64 letters, digits, '-', '_' or '.'"),
    ] {
        let (s, b) = h.call("POST", &format!("sys/webhooks/{name}"), Some(body)).await;
        assert_eq!(s, 400, "{want}: {b}");
        assert_eq!(b["errors"], json!([want]), "{b}");
    }
    let (s, b) = h
        .call(
            "POST",
            "sys/webhooks/plain",
            Some(
                with("url", json!("http://h.example/"))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert(
                            "ca_pem".into(),
                            json!(hush_tests::https::make_ca("x").0.pem()),
                        );
                        Value::Object(o)
                    })
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(
        (s, &b["errors"][0]),
        (
            400,
            &json!("ca_pem: given for an http:// url (a CA applies to https:// only)")
        )
    );
    // Nothing was stored by any of them.
    let (s, _) = h.call("LIST", "sys/webhooks", None).await;
    assert_eq!(s, 404);
    let (s, b) = h
        .call("GET", "sys/webhooks/none/deliveries?limit=0", None)
        .await;
    assert_eq!(
        (s, &b["errors"][0]),
        (400, &json!("limit: 0 is out of range (1 to 1000)"))
    );
    let (s, _) = h.call("GET", "sys/webhooks/none", None).await;
    assert_eq!(s, 404);

    // An ACL grant is needed, sudo is not.
    let none = h
        .token_with_policy("nothing", "path \"secret/*\" { capabilities = [\"read\"] }")
        .await;
    let (s, _) = h
        .call_as(Some(&none), "POST", "sys/webhooks/x", Some(ok()))
        .await;
    assert_eq!(s, 403);
    let ops = h
        .token_with_policy(
            "webhook-admin",
            "path \"sys/webhooks\" { capabilities = [\"list\"] }\n\
             path \"sys/webhooks/*\" { capabilities = [\"create\", \"update\", \"read\", \"list\", \"delete\"] }",
        )
        .await;
    let (s, b) = h
        .call_as(Some(&ops), "POST", "sys/webhooks/x", Some(ok()))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call_as(Some(&ops), "LIST", "sys/webhooks", None).await;
    assert_eq!((s, &b["data"]["keys"]), (200, &json!(["x"])));
    // An update keeps the secret (not given) and changes what it names.
    let (s, _) = h
        .call_as(
            Some(&ops),
            "POST",
            "sys/webhooks/x",
            Some(json!({"max_attempts": 3})),
        )
        .await;
    assert_eq!(s, 204);
    let (_, b) = h.call_as(Some(&ops), "GET", "sys/webhooks/x", None).await;
    assert_eq!(
        (&b["data"]["max_attempts"], &b["data"]["secret_set"]),
        (&json!(3), &json!(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_delivery_once_back() {
    let h = Hushd::dev().await;
    let rx = Receiver::start().await;
    write(
        &h,
        "sys/webhooks/down",
        json!({"url": rx.url(), "events": ["kv.write"], "secret": SECRET}),
    )
    .await;
    rx.down();
    for i in 0..5 {
        write(
            &h,
            &format!("secret/data/k{i}"),
            json!({"data": {"v": "s3cr3t-value"}}),
        )
        .await;
    }
    // Tried and failing: pending, with the error and the next attempt.
    let d = wait_deliveries(&h, "down", "5 failed attempts", |d| {
        d["deliveries"]
            .as_array()
            .is_some_and(|l| l.len() == 5 && l.iter().all(|x| x["attempts"].as_u64() >= Some(1)))
    })
    .await;
    assert_eq!(d["pending"], 5);
    for x in d["deliveries"].as_array().unwrap() {
        assert_eq!(x["status"], "pending", "{x}");
        assert_eq!(x["last_error"], "connection refused", "{x}");
        assert!(x["next_attempt"].is_string(), "{x}");
    }
    // Then it answers 500 for a while: still retried.
    rx.answer_status(500);
    rx.up().await;
    rx.wait_ids(5, WAIT).await;
    let d = wait_deliveries(&h, "down", "a 500 recorded", |d| {
        d["deliveries"].as_array().is_some_and(|l| {
            l.iter()
                .all(|x| x["last_error"] == "the receiver answered HTTP 500")
        })
    })
    .await;
    assert_eq!(d["pending"], 5);
    let before = rx.requests().len();
    rx.answer_ok();
    wait_deliveries(&h, "down", "all delivered", |d| {
        d["pending"] == 0
            && d["deliveries"]
                .as_array()
                .is_some_and(|l| l.iter().all(|x| x["status"] == "delivered"))
    })
    .await;
    let seen = rx.requests();
    assert!(seen.len() > before);
    all_verify(&seen);
    // Deduplicated by id: five events, each id the same on all its attempts.
    let bodies: BTreeSet<(String, String)> = seen
        .iter()
        .map(|r| {
            (
                r.delivery_id().to_string(),
                String::from_utf8_lossy(&r.body).to_string(),
            )
        })
        .collect();
    assert_eq!(rx.ids().len(), 5);
    assert_eq!(bodies.len(), 5, "one body per id across retries");
    let paths: BTreeSet<String> = bodies
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(paths.len(), 5);
}

async fn sqlite_hushd(storage: &str) -> Hushd {
    Hushd::start(
        &["--storage", storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_kill_9_and_seal_and_unseal_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let mut h = sqlite_hushd(&storage).await;
    let key = h.init_unseal().await;
    let token = h.token.clone().unwrap();
    write(&h, "sys/mounts/secret", json!({"type": "kv-v2"})).await;
    let rx = Receiver::start().await;
    let life = Receiver::start().await;
    write(
        &h,
        "sys/webhooks/kv",
        json!({"url": rx.url(), "events": ["kv.write"], "secret": SECRET}),
    )
    .await;
    write(
        &h,
        "sys/webhooks/life",
        json!({"url": life.url(), "events": ["seal", "unseal"], "secret": SECRET}),
    )
    .await;
    rx.down();
    for i in 0..4 {
        write(
            &h,
            &format!("secret/data/p{i}"),
            json!({"data": {"v": "s3cr3t-value"}}),
        )
        .await;
    }
    wait_deliveries(&h, "kv", "4 pending after a failed attempt", |d| {
        d["deliveries"]
            .as_array()
            .is_some_and(|l| l.len() == 4 && l.iter().all(|x| x["attempts"].as_u64() >= Some(1)))
    })
    .await;
    h.kill9();
    rx.up().await;
    assert!(rx.requests().is_empty());

    let mut h = sqlite_hushd(&storage).await;
    h.unseal(&key).await;
    h.token = Some(token);
    let seen = rx.wait_ids(4, WAIT).await;
    all_verify(&seen);
    let paths: BTreeSet<String> = seen
        .iter()
        .map(|r| r.json()["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        (0..4)
            .map(|i| format!("secret/data/p{i}"))
            .collect::<BTreeSet<_>>()
    );
    wait_deliveries(&h, "kv", "all delivered after the restart", |d| {
        d["pending"] == 0 && d["deliveries"].as_array().is_some_and(|l| l.len() == 4)
    })
    .await;

    // The unseal after the restart was told; a seal is told at once, and again (same id)
    // after the next unseal.
    let seen = life
        .wait_until(WAIT, "an unseal event", |s| {
            s.iter().any(|r| r.json()["type"] == "unseal")
        })
        .await;
    all_verify(&seen);
    let (s, _) = h.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    let seen = life
        .wait_until(WAIT, "a seal event", |s| {
            s.iter().any(|r| r.json()["type"] == "seal")
        })
        .await;
    all_verify(&seen);
    let seal_id = seen
        .iter()
        .find(|r| r.json()["type"] == "seal")
        .unwrap()
        .delivery_id()
        .to_string();
    h.unseal(&key).await;
    let seen = life
        .wait_until(WAIT, "the seal again and a second unseal", |s| {
            s.iter().filter(|r| r.json()["type"] == "unseal").count() >= 2
                && s.iter().filter(|r| r.delivery_id() == seal_id).count() >= 2
        })
        .await;
    all_verify(&seen);
    let seal_ids: BTreeSet<&str> = seen
        .iter()
        .filter(|r| r.json()["type"] == "seal")
        .map(Recorded::delivery_id)
        .collect();
    assert_eq!(seal_ids.len(), 1, "one seal event, deduplicated by id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_trusted_through_the_webhooks_ca_only() {
    let h = Hushd::dev().await;
    let rx = Receiver::start_tls().await;
    let ca = rx.ca_pem.clone().unwrap();
    write(
        &h,
        "sys/webhooks/tls",
        json!({"url": rx.url(), "ca_pem": ca, "events": ["kv.write"], "secret": SECRET}),
    )
    .await;
    write(
        &h,
        "sys/webhooks/untrusted",
        json!({"url": rx.url(), "events": ["kv.write"], "secret": SECRET, "max_attempts": 1}),
    )
    .await;
    let (_, b) = h.call("GET", "sys/webhooks/tls", None).await;
    assert_eq!(b["data"]["ca_pem"], ca.as_str());
    write(
        &h,
        "secret/data/tls",
        json!({"data": {"v": "s3cr3t-value"}}),
    )
    .await;
    let seen = rx.wait_ids(1, WAIT).await;
    all_verify(&seen);
    let d = wait_deliveries(&h, "untrusted", "failed on the certificate", |d| {
        d["deliveries"][0]["status"] == "failed"
    })
    .await;
    let err = d["deliveries"][0]["last_error"].as_str().unwrap();
    assert!(err.starts_with("TLS handshake failed"), "{err}");
    assert!(!err.contains("127.0.0.1"), "no URL in the error: {err}");
}

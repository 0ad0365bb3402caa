//! Webhooks over an in-memory store against a small real HTTP receiver on loopback.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::barrier::KeyBytes;

/// A request: headers (names lowercased), body.
type Seen = (HashMap<String, String>, Vec<u8>);

/// Records each request; answers with `status`.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        r.status.store(200, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                        .collect();
                    me.seen
                        .lock()
                        .unwrap()
                        .push((headers, buf[head_end..head_end + len].to_vec()));
                    let status = me.status.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{{\"ok\":true}}"
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        (r, url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn webhooks() -> (Arc<Webhooks>, crate::metrics::Metrics) {
    let barrier = Arc::new(Barrier::new(Arc::new(crate::storage::MemoryBackend::new())));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let metrics = crate::metrics::Metrics::new();
    let view = BarrierView::new(barrier.clone(), "sys/webhooks/");
    let hooks = Webhooks::open(barrier, view, metrics.webhooks())
        .await
        .unwrap();
    (hooks, metrics)
}

fn data(v: Value) -> Data {
    v.as_object().unwrap().clone()
}

const SECRET: &str = "a-secret-of-32-bytes-for-hmac!!!";

#[tokio::test]
async fn a_delivery_is_signed_retried_with_the_same_id_and_recorded() {
    let (rx, url) = Receiver::start().await;
    let (hooks, metrics) = webhooks().await;
    hooks
        .write(
            "h",
            &data(
                json!({"url": url, "events": ["kv.write"], "paths": ["secret/data/app/*"],
                "secret": SECRET, "max_attempts": 3}),
            ),
        )
        .await
        .unwrap();
    // Filtered out: another type, another path.
    assert_eq!(
        hooks
            .emit("kv.delete", "secret/data/app/x", Map::new())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        hooks
            .emit("kv.write", "secret/data/other", Map::new())
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        hooks.emit("kv.nope", "x", Map::new()).await,
        Err(WebhookError::UnknownEventType(_))
    ));
    let mut big = Map::new();
    big.insert("x".into(), "y".repeat(MAX_BODY).into());
    assert!(matches!(
        hooks.emit("kv.write", "secret/data/app/x", big).await,
        Err(WebhookError::TooLarge(_))
    ));
    let mut meta = Map::new();
    meta.insert("current_version".into(), 3.into());
    assert_eq!(
        hooks
            .emit("kv.write", "secret/data/app/db", meta)
            .await
            .unwrap(),
        1
    );

    // The first attempt fails (500), the second, once due, succeeds.
    rx.status.store(500, Ordering::SeqCst);
    assert_eq!(hooks.deliver_due().await.unwrap(), None);
    let listed = hooks.deliveries("h", 10).await.unwrap();
    let d = &listed["deliveries"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_u64()),
        (Some("pending"), Some(1))
    );
    assert_eq!(d["last_error"], "the receiver answered HTTP 500");
    assert!(d["next_attempt"].is_string());
    assert_eq!(listed["pending"], 1);
    // Not due yet: the pass only says how long to wait (the first retry within 5 s).
    let wait = hooks.deliver_due().await.unwrap().unwrap();
    assert!(wait <= Duration::from_secs(5), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    rx.status.store(200, Ordering::SeqCst);
    assert_eq!(hooks.deliver_due().await.unwrap(), None);
    let listed = hooks.deliveries("h", 10).await.unwrap();
    assert_eq!(listed["deliveries"][0]["status"], "delivered");
    assert_eq!(listed["pending"], 0);

    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, seen[1].1, "the same body on every attempt");
    let id = &seen[0].0["x-hush-delivery"];
    assert_eq!(id, &seen[1].0["x-hush-delivery"]);
    for (headers, body) in &seen {
        let ts: i64 = headers["x-hush-timestamp"].parse().unwrap();
        assert_eq!(
            headers["x-hush-signature"],
            sign(SECRET.as_bytes(), ts, body)
        );
    }
    let body: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["type"], "kv.write");
    assert_eq!(body["path"], "secret/data/app/db");
    assert_eq!(body["data"]["current_version"], 3);
    let text = metrics.encode_prometheus(false);
    assert!(
        text.contains("hush_webhook_deliveries_total{outcome=\"retry\"} 1"),
        "{text}"
    );
    assert!(text.contains("hush_webhook_deliveries_total{outcome=\"delivered\"} 1"));
}

#[tokio::test]
async fn after_max_attempts_a_delivery_fails_and_a_full_queue_counts_drops() {
    let (rx, url) = Receiver::start().await;
    rx.status.store(503, Ordering::SeqCst);
    let (hooks, metrics) = webhooks().await;
    hooks
        .write(
            "h",
            &data(
                json!({"url": url, "events": "*", "secret": SECRET, "max_attempts": 1,
                "max_pending": 2}),
            ),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        hooks.emit("seal", "sys/seal", Map::new()).await.unwrap();
    }
    let listed = hooks.deliveries("h", 10).await.unwrap();
    assert_eq!(
        (listed["pending"].as_u64(), listed["dropped"].as_u64()),
        (Some(2), Some(1))
    );
    hooks.deliver_due().await.unwrap();
    let listed = hooks.deliveries("h", 10).await.unwrap();
    assert_eq!(listed["pending"], 0);
    for d in listed["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "failed");
        assert!(d["next_attempt"].is_null());
    }
    assert!(hooks.queue.head(10).await.unwrap().is_empty());
    let text = metrics.encode_prometheus(false);
    assert!(
        text.contains("hush_webhook_dropped_total{reason=\"overflow\"} 1"),
        "{text}"
    );
    assert!(text.contains("hush_webhook_queue_depth 0"));
    // A delete takes its deliveries with it.
    assert!(hooks.delete("h").await.unwrap());
    assert!(hooks
        .queue
        .view()
        .scan_prefix("delivery/")
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        hooks.deliveries("h", 10).await,
        Err(WebhookError::UnknownWebhook(_))
    ));
}

#[tokio::test]
async fn call_posts_once_signed_and_reports_the_status() {
    let (rx, url) = Receiver::start().await;
    let (hooks, _) = webhooks().await;
    hooks
        .write(
            "rot",
            &data(json!({"url": url, "events": ["rotation.failed"], "secret": SECRET})),
        )
        .await
        .unwrap();
    let answer = hooks.call("rot", &json!({"step": "test"})).await.unwrap();
    assert_eq!(answer, json!({"ok": true}));
    rx.status.store(500, Ordering::SeqCst);
    let err = hooks
        .call("rot", &json!({"step": "test"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WebhookError::Send {
                error: SendError::Status(500),
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        hooks.call("nope", &json!({})).await,
        Err(WebhookError::UnknownWebhook(_))
    ));
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0].0["x-hush-delivery"], seen[1].0["x-hush-delivery"]);
    // Nothing queued.
    assert!(hooks.queue.head(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn login_failures_are_rate_limited_per_identity_and_counted() {
    let (_rx, url) = Receiver::start().await;
    let (hooks, metrics) = webhooks().await;
    hooks
        .write(
            "h",
            &data(json!({"url": url, "events": ["login.failed"], "secret": SECRET})),
        )
        .await
        .unwrap();
    for _ in 0..5 {
        hooks.emit_limited(1, "login.failed", "auth/approle/login".into(), Map::new());
    }
    hooks.emit_limited(2, "login.failed", "auth/approle/login".into(), Map::new());
    // Queued in the background.
    let mut queued = 0;
    for _ in 0..100 {
        queued = hooks.queue.head(10).await.unwrap().len();
        if queued == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(queued, 2);
    let text = metrics.encode_prometheus(false);
    assert!(
        text.contains("hush_webhook_dropped_total{reason=\"rate_limited\"} 4"),
        "{text}"
    );
}

#[test]
fn kv_events_map_to_webhook_types_without_values() {
    use crate::logical::events::{Event, PluginInfo};
    let e = |t: &str| Event {
        id: "x".into(),
        event_type: t.into(),
        path: "secret/destroy/app".into(),
        data_path: Some("secret/data/app".into()),
        metadata: vec![
            ("modified".into(), "true".into()),
            ("current_version".into(), "4".into()),
        ],
        plugin: PluginInfo {
            mount_path: "secret/".into(),
            ..Default::default()
        },
        time: Utc::now(),
    };
    let (t, data) = worker::kv_event(&e("kv-v2/destroy")).unwrap();
    assert_eq!(t, "kv.destroy");
    assert_eq!(data["current_version"], 4);
    assert_eq!(data["api_path"], "secret/destroy/app");
    assert!(!data.contains_key("modified"));
    assert_eq!(
        worker::kv_event(&e("kv-v2/data-patch")).unwrap().0,
        "kv.write"
    );
    assert_eq!(
        worker::kv_event(&e("kv-v2/metadata-delete")).unwrap().0,
        "kv.delete"
    );
    assert!(worker::kv_event(&e("kv-v2/metadata-write")).is_none());
    assert!(worker::kv_event(&e("database/rotate")).is_none());
}

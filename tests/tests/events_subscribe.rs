//! `sys/events/subscribe` against a real hushd with a real WebSocket client (tokio-tungstenite):
//! Vault's CloudEvents shape field by field, the access rules (a token that cannot read a
//! path hears nothing about it), a stalled subscriber closed while hushd's memory stays flat,
//! and a revoked token's stream closed.

use std::time::Duration;

use futures_util::StreamExt;
use hush_tests::Hushd;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Subscribe to `event_type` as `token` (sent as X-Vault-Token).
async fn subscribe(h: &Hushd, token: &str, event_type: &str) -> Ws {
    let url = format!(
        "ws://127.0.0.1:{}/v1/sys/events/subscribe/{event_type}?json=true",
        h.port
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Vault-Token", token.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the subscription is accepted");
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// The next event frame as JSON, within `limit`; `None` when nothing came.
async fn next_event(ws: &mut Ws, limit: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(limit, ws.next()).await.ok()??;
        match msg.expect("a frame") {
            Message::Text(text) => {
                assert!(text.ends_with('\n'), "Vault ends each event with a newline");
                return Some(serde_json::from_str(&text).expect("CloudEvents JSON"));
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Read until the server closes; returns the events read and the close frame's code and reason.
async fn read_to_close(ws: &mut Ws, limit: Duration) -> (usize, Option<(CloseCode, String)>) {
    let mut events = 0;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("not closed within {limit:?} ({events} events read)"),
            Ok(None) | Ok(Some(Err(_))) => return (events, None),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(_) => events += 1,
            Message::Close(frame) => {
                return (
                    events,
                    frame.map(|f| (f.code, f.reason.as_str().to_string())),
                )
            }
            _ => {}
        }
    }
}

fn assert_event(e: &Value, event_type: &str, path: &str, version: &str) {
    assert_eq!(e["specversion"], "1.0", "{e}");
    assert_eq!(e["type"], "*", "{e}");
    assert_eq!(e["source"], "https://vaultproject.io/", "{e}");
    assert_eq!(e["datacontenttype"], "application/cloudevents", "{e}");
    let id = e["id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let time = e["time"].as_str().expect("time");
    chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339 time");
    let data = &e["data"];
    assert_eq!(data["event_type"], event_type, "{e}");
    assert_eq!(data["event"]["id"], id, "{e}");
    let m = &data["event"]["metadata"];
    assert_eq!(m["path"], path, "{e}");
    assert_eq!(m["data_path"], "secret/data/app/db", "{e}");
    assert_eq!(m["current_version"], version, "{e}");
    assert_eq!(m["oldest_version"], "0", "{e}");
    assert_eq!(m["modified"], "true", "{e}");
    assert_eq!(
        m["operation"],
        event_type.strip_prefix("kv-v2/").unwrap(),
        "{e}"
    );
    let plugin = &data["plugin_info"];
    assert_eq!(plugin["mount_class"], "secret", "{e}");
    assert_eq!(plugin["mount_path"], "secret/", "{e}");
    assert_eq!(plugin["plugin"], "kv", "{e}");
    assert!(
        plugin["mount_accessor"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{e}"
    );
}

#[tokio::test]
async fn kv_v2_write_patch_and_delete_arrive_as_vaults_cloudevents() {
    let h = Hushd::dev().await;
    let mut ws = subscribe(&h, "root", "kv-v2/data-*").await;
    let mut all = subscribe(&h, "root", "*").await;
    let (_, mounts) = h.call("GET", "sys/mounts", None).await;
    let accessor = mounts["secret/"]["accessor"].clone();

    h.kv_put("app/db", json!({"pw": "one"})).await;
    let (s, b) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/data/app/db",
            Some("application/merge-patch+json"),
            r#"{"data": {"user": "u"}}"#,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Not a data-* event: the glob leaves it out.
    let (s, _) = h
        .call(
            "POST",
            "secret/metadata/app/db",
            Some(json!({"max_versions": 5})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = h.call("DELETE", "secret/data/app/db", None).await;
    assert_eq!(s, 204);

    let wait = Duration::from_secs(5);
    let write = next_event(&mut ws, wait).await.expect("data-write");
    assert_event(&write, "kv-v2/data-write", "secret/data/app/db", "1");
    assert_eq!(write["data"]["plugin_info"]["mount_accessor"], accessor);
    let patch = next_event(&mut ws, wait).await.expect("data-patch");
    assert_event(&patch, "kv-v2/data-patch", "secret/data/app/db", "2");
    let delete = next_event(&mut ws, wait).await.expect("data-delete");
    assert_event(&delete, "kv-v2/data-delete", "secret/data/app/db", "2");
    assert_ne!(write["id"], patch["id"]);
    assert!(
        next_event(&mut ws, Duration::from_millis(300))
            .await
            .is_none(),
        "metadata-write does not match kv-v2/data-*"
    );

    // `*` hears all four, in commit order.
    let mut types = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut all, wait).await.expect("an event");
        types.push(e["data"]["event_type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        [
            "kv-v2/data-write",
            "kv-v2/data-patch",
            "kv-v2/metadata-write",
            "kv-v2/data-delete"
        ]
    );
}

#[tokio::test]
async fn requests_that_cannot_subscribe_get_vault_style_errors() {
    let h = Hushd::dev().await;
    // Not a WebSocket upgrade.
    let (s, b) = h
        .call("GET", "sys/events/subscribe/kv*?json=true", None)
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0].as_str().unwrap().contains("WebSocket"),
        "{b}"
    );
    // json missing or false: hushd speaks JSON only, and says so.
    for q in ["", "?json=false"] {
        let (s, b) = h
            .call("GET", &format!("sys/events/subscribe/kv*{q}"), None)
            .await;
        assert_eq!(s, 400, "{q}: {b}");
        assert!(
            b["errors"][0].as_str().unwrap().contains("json=true"),
            "{b}"
        );
    }
    let (s, b) = h
        .call("GET", "sys/events/subscribe/kv*?json=true&filter=x", None)
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = h.call("GET", "sys/events/subscribe/?json=true", None).await;
    assert_eq!(s, 400, "{b}");
    // No token, or a token without read on sys/events/subscribe/<type>.
    let (s, _) = h
        .call_as(None, "GET", "sys/events/subscribe/kv*?json=true", None)
        .await;
    assert_eq!(s, 403);
    let narrow = h
        .token_with_policy(
            "narrow",
            r#"path "secret/data/*" { capabilities = ["read"] }"#,
        )
        .await;
    let url = format!(
        "ws://127.0.0.1:{}/v1/sys/events/subscribe/kv*?json=true",
        h.port
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {narrow}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test]
async fn revoking_the_token_closes_the_stream() {
    let h = Hushd::dev().await;
    let token = h
        .token_with_policy(
            "listener",
            r#"
            path "sys/events/subscribe/*" { capabilities = ["read"] }
            path "secret/data/*" {
              capabilities = ["read", "subscribe"]
              subscribe_event_types = ["kv*"]
            }
            "#,
        )
        .await;
    let mut ws = subscribe(&h, &token, "kv*").await;
    h.kv_put("app/one", json!({"a": "1"})).await;
    let e = next_event(&mut ws, Duration::from_secs(5))
        .await
        .expect("an event before the revocation");
    assert_eq!(
        e["data"]["event"]["metadata"]["path"],
        "secret/data/app/one"
    );

    let (s, b) = h
        .call("POST", "auth/token/revoke", Some(json!({ "token": token })))
        .await;
    assert_eq!(s, 204, "{b}");
    let started = std::time::Instant::now();
    let (events, close) = read_to_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(events, 0);
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert!(reason.contains("revoked"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_token_that_cannot_read_b_hears_nothing_about_it() {
    let h = Hushd::dev().await;
    let token = h
        .token_with_policy(
            "only-a",
            r#"
            path "sys/events/subscribe/*" { capabilities = ["read"] }
            path "secret/data/a" {
              capabilities = ["read", "subscribe"]
              subscribe_event_types = ["kv-v2/*"]
            }
            path "secret/data/b" { capabilities = ["create", "update"] }
            "#,
        )
        .await;
    let mut ws = subscribe(&h, &token, "*").await;
    let mut root = subscribe(&h, "root", "*").await;
    // b first, in every way there is to change it; then a.
    h.kv_put("b", json!({"x": "1"})).await;
    h.kv_put("b", json!({"x": "2"})).await;
    for (method, path, body) in [
        (
            "POST",
            "secret/metadata/b",
            Some(json!({"max_versions": 3})),
        ),
        ("DELETE", "secret/data/b", None),
        ("POST", "secret/undelete/b", Some(json!({"versions": [2]}))),
        ("POST", "secret/destroy/b", Some(json!({"versions": [1]}))),
    ] {
        let (s, b) = h.call(method, path, body).await;
        assert_eq!(s, 204, "{path}: {b}");
    }
    h.kv_put("a", json!({"x": "1"})).await;
    h.kv_put("b", json!({"x": "3"})).await;
    h.kv_put("a", json!({"x": "2"})).await;

    let wait = Duration::from_secs(5);
    for version in ["1", "2"] {
        let e = next_event(&mut ws, wait).await.expect("an event about a");
        let text = e.to_string();
        assert!(!text.contains("secret/data/b"), "b leaked: {text}");
        assert_eq!(e["data"]["event"]["metadata"]["path"], "secret/data/a");
        assert_eq!(e["data"]["event"]["metadata"]["current_version"], version);
    }
    assert!(
        next_event(&mut ws, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing more"
    );
    // The root subscriber heard all nine (so b's events were published, and held back).
    for _ in 0..9 {
        next_event(&mut root, wait)
            .await
            .expect("root hears every event");
    }
}

/// hushd's resident memory in KiB, from /proc/<pid>/status.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Events written while the subscriber stalls.
const STALLED_WRITES: usize = 12_000;
/// What hushd's RSS may grow by while they are written: an unbounded queue of that many
/// events (about 2 KiB of JSON each here) would take ~25 MiB.
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

#[tokio::test]
async fn a_stalled_subscriber_is_closed_and_hushd_memory_stays_flat() {
    let h = Hushd::dev().await;
    let pid = h.child.id();
    // A subscriber that never reads, with a small receive window so the stall shows soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", h.port).parse().unwrap())
        .await
        .unwrap();
    let url = format!(
        "ws://127.0.0.1:{}/v1/sys/events/subscribe/kv-v2/data-write?json=true",
        h.port
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Vault-Token", "root".parse().unwrap());
    let (mut stalled, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
        .await
        .expect("subscribed");

    // Long paths make big events: a queue of them would show in RSS.
    let keys: Vec<String> = (0..16)
        .map(|i| format!("{i}/{}", "k".repeat(400)))
        .collect();
    let client = hush_tests::http_client();
    let write = |n: usize| {
        let (client, addr, key) = (client.clone(), h.addr.clone(), keys[n % keys.len()].clone());
        async move {
            let resp = client
                .post(format!("{addr}/v1/secret/data/{key}"))
                .header("X-Vault-Token", "root")
                .json(&json!({"data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        }
    };
    let batch = |from: usize, to: usize| {
        let write = &write;
        async move {
            let mut tasks = futures_util::stream::iter(from..to)
                .map(write)
                .buffer_unordered(4);
            while tasks.next().await.is_some() {}
        }
    };
    // Warm up: hushd's allocations for requests and the stalled socket's buffers settle.
    batch(0, 3000).await;
    let baseline = rss_kib(pid);
    let mut peak = baseline;
    for step in 0..(STALLED_WRITES / 1000) {
        batch(3000 + step * 1000, 4000 + step * 1000).await;
        peak = peak.max(rss_kib(pid));
    }
    let growth = peak - baseline;
    println!("hushd RSS: {baseline} KiB after warm-up, peak {peak} KiB (+{growth} KiB)");
    assert!(
        growth < RSS_GROWTH_LIMIT_KIB,
        "hushd grew by {growth} KiB while a subscriber stalled"
    );

    // Now read: what was in flight, then a clear close.
    let (events, close) = read_to_close(&mut stalled, Duration::from_secs(90)).await;
    let (code, reason) = close.expect("a close frame, not a dropped connection");
    println!("stalled subscriber: {events} events, then {code:?}: {reason}");
    assert_eq!(code, CloseCode::Again, "{reason}");
    assert!(
        reason.contains("stalled") || reason.contains("fell behind"),
        "{reason}"
    );
    assert!(events < 3000 + STALLED_WRITES, "{events} events");
    // hushd serves on, and a new subscriber hears new events.
    let mut fresh = subscribe(&h, "root", "kv-v2/data-write").await;
    h.kv_put("after", json!({"a": "1"})).await;
    let e = next_event(&mut fresh, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(e["data"]["event"]["metadata"]["path"], "secret/data/after");
    // sys/metrics counts what the stalled subscriber missed and the one subscriber left.
    let (s, text) = h.raw_get("/v1/sys/metrics?format=prometheus").await;
    assert_eq!(s, 200, "{text}");
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(sample("hush_events_dropped_total") >= 1.0, "{text}");
    assert_eq!(sample("hush_event_subscribers"), 1.0, "{text}");
}

#[tokio::test]
async fn a_subscriber_that_sends_a_huge_message_is_disconnected() {
    let h = Hushd::dev().await;
    let token = h.token.clone().unwrap();
    let mut ws = subscribe(&h, &token, "kv*").await;
    // A subscriber has nothing to send but control frames; 256 KiB is over the 64 KiB limit.
    futures_util::SinkExt::send(&mut ws, Message::text("x".repeat(256 * 1024)))
        .await
        .unwrap();
    let (events, _) = read_to_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(events, 0);
    // hushd is fine, and a well-behaved subscriber still hears writes.
    let mut ok = subscribe(&h, &token, "kv*").await;
    h.kv_put("app/after", json!({"a": "1"})).await;
    let e = next_event(&mut ok, Duration::from_secs(5))
        .await
        .expect("an event");
    assert_eq!(
        e["data"]["event"]["metadata"]["path"],
        "secret/data/app/after"
    );
}

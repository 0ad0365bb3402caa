//! `GET /v1/sys/events/subscribe/:eventType?json=true`: Vault's event subscription over a
//! WebSocket, each event one text frame of CloudEvents JSON.
//!
//! The request goes through [`Core::handle`] first (a read of `sys/events/subscribe/<type>`:
//! token, ACL, audit); the connection is upgraded only then. The bus receiver is taken before
//! the `101` answer, so every event committed after the handshake reaches the subscriber (or
//! the subscriber learns it fell behind). Each event is checked against the token
//! ([`Subscriber::allows`]) before it is sent.
//!
//! A subscriber that falls [`EVENT_BUFFER`] events behind, or whose socket takes no frame
//! for [`SEND_STALL`], is closed with 1013 and a reason; a token that is revoked or expires
//! closes it with 1008. Memory per subscriber is bounded: the shared ring, one frame in
//! flight and the socket's buffers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response as HttpResponse;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::http::{client_token, logical_error, normalize_path, parse_query};
use crate::core::events::EVENT_BUFFER;
use crate::core::subscribe::{Subscriber, RECHECK};
use crate::core::Core;
use crate::logical::events::Event;
use crate::logical::{LogicalError, Operation, Request};

/// The path prefix served here.
pub const PREFIX: &str = "/v1/sys/events/subscribe";

/// A frame the socket does not take within this marks the subscriber as stalled.
pub const SEND_STALL: Duration = Duration::from_secs(10);
/// How long a closed subscriber gets to read the rest and the close frame.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);
/// Pings keep idle connections open through proxies (Vault: every 30 s).
const PING_EVERY: u32 = 30;
/// Written to the socket before the sender waits for it to drain.
const WRITE_BUFFER: usize = 64 * 1024;
/// What one read from the socket takes: a subscriber only sends pings, pongs and the close, so
/// a small buffer is enough (the library's default, 128 KiB zero-filled per connection, was
/// most of an idle subscriber's memory; docs/BENCHMARKS.md).
const READ_BUFFER: usize = 4 * 1024;
/// The largest message or frame a subscriber may send (it has nothing to say but control
/// frames); more closes the connection.
const MAX_INCOMING: usize = 64 * 1024;

/// Go's `strconv.ParseBool`, as Vault reads `json`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The event-type glob of a subscription request, after its query was checked.
fn subscription(path: &str, query: Option<&str>) -> Result<String, LogicalError> {
    let pattern = path
        .strip_prefix("sys/events/subscribe")
        .unwrap_or_default()
        .trim_start_matches('/')
        .trim();
    if pattern.is_empty() {
        return Err(LogicalError::invalid(
            "did not specify eventType to subscribe to",
        ));
    }
    let query = parse_query(query);
    for unsupported in ["namespaces", "filter"] {
        if query.contains_key(unsupported) {
            return Err(LogicalError::invalid(format!(
                "the {unsupported:?} parameter is not supported by hushd (it has no namespaces \
                 and no filter expressions); subscribe without it"
            )));
        }
    }
    let json = query.get("json").and_then(Value::as_str).unwrap_or("");
    match parse_bool(json) {
        Some(true) => Ok(pattern.to_string()),
        Some(false) => Err(json_only()),
        None if json.is_empty() => Err(json_only()),
        None => Err(LogicalError::invalid(format!(
            "invalid parameter for JSON: {json}"
        ))),
    }
}

fn json_only() -> LogicalError {
    LogicalError::invalid(
        "hushd sends events as JSON only: add json=true (the protobuf format of json=false is \
         not supported)",
    )
}

/// Whether `path` (of a request URI) is served here.
pub fn is_subscription(path: &str) -> bool {
    path == PREFIX || path.starts_with(PREFIX) && path.as_bytes().get(PREFIX.len()) == Some(&b'/')
}

/// Serve a subscription request (`parts` of a GET under [`PREFIX`]).
pub(super) async fn subscribe(core: Arc<Core>, mut parts: Parts) -> HttpResponse {
    let path = match normalize_path(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return logical_error(&e),
    };
    let pattern = match subscription(&path, parts.uri.query()) {
        Ok(p) => p,
        Err(e) => return logical_error(&e),
    };
    let token = client_token(&parts.headers);
    let remote = parts
        .extensions
        .get::<super::http::RemoteAddr>()
        .map(|a| a.0.ip());
    let mut req = Request::new(Operation::Read, format!("sys/events/subscribe/{pattern}"));
    req.client_token = token.clone();
    req.remote_addr = remote;
    if let Err(e) = core.handle(req).await {
        return logical_error(&e);
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(_) => {
            return logical_error(&LogicalError::invalid(
                "sys/events/subscribe is served over a WebSocket: send the request with \
                 \"Connection: Upgrade\" and \"Upgrade: websocket\"",
            ))
        }
    };
    let Some(token) = token else {
        return logical_error(&LogicalError::PermissionDenied);
    };
    let rx = core.events().subscribe();
    let sub = Subscriber::new(token, remote, pattern);
    tracing::debug!(pattern = sub.pattern(), "event subscriber connected");
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER * 4)
        .on_upgrade(move |socket| serve(core, socket, rx, sub))
}

/// Why a subscription ends, as its close frame says.
fn close_for(err: &LogicalError) -> (u16, String) {
    match err {
        LogicalError::PermissionDenied => (
            close_code::POLICY,
            "permission denied: the token was revoked, expired or lost access".into(),
        ),
        LogicalError::Sealed => (close_code::AGAIN, "hushd is sealed".into()),
        other => (
            close_code::ERROR,
            truncate(format!("internal error: {other}")),
        ),
    }
}

/// Close reasons are at most 123 bytes.
fn truncate(mut s: String) -> String {
    if s.len() > 123 {
        let mut cut = 123;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn stalled() -> String {
    format!(
        "subscriber stalled: no frame taken for {}s; resubscribe and read the current versions",
        SEND_STALL.as_secs()
    )
}

fn fell_behind(dropped: u64) -> String {
    format!(
        "subscriber fell behind by more than {EVENT_BUFFER} events ({dropped} dropped); \
         resubscribe and read the current versions"
    )
}

fn frame(event: &Event) -> Message {
    // Vault ends each JSON event with a newline.
    let mut text = event.to_cloudevent().to_string();
    text.push('\n');
    Message::text(text)
}

async fn serve(
    core: Arc<Core>,
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    mut sub: Subscriber,
) {
    let counted = core.metrics().events();
    let subscribed = counted.subscribed();
    let mut tick = tokio::time::interval(RECHECK);
    let mut ticks: u32 = 0;
    let close = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                // The client closed (tungstenite answers its close frame) or went away.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            event = rx.recv() => match event {
                Ok(event) => match sub.allows(&core, &event).await {
                    Ok(true) => {
                        let sent = tokio::time::timeout(SEND_STALL, socket.send(frame(&event)));
                        match sent.await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return,
                            Err(_) => {
                                core.events().note_lagged();
                                // The event it would not take and those queued behind it.
                                counted.dropped(1 + rx.len() as u64);
                                break (close_code::AGAIN, stalled());
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => break close_for(&e),
                },
                Err(RecvError::Lagged(n)) => {
                    core.events().note_lagged();
                    counted.dropped(n + rx.len() as u64);
                    break (close_code::AGAIN, fell_behind(n));
                }
                Err(RecvError::Closed) => {
                    break (close_code::AWAY, "hushd is shutting down".into());
                }
            },
            _ = tick.tick() => {
                if let Err(e) = sub.check(&core, true).await {
                    break close_for(&e);
                }
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(PING_EVERY) {
                    let ping = socket.send(Message::Ping(Default::default()));
                    match tokio::time::timeout(SEND_STALL, ping).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => break (close_code::AGAIN, stalled()),
                    }
                }
            }
        }
    };
    // Let go of the ring (and stop counting it as a subscriber) at once; then give the
    // client a while to read the close frame.
    drop(rx);
    drop(subscribed);
    let (code, reason) = close;
    tracing::info!(pattern = sub.pattern(), code, reason = %reason, "closing event subscriber");
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: truncate(reason).into(),
    }));
    if let Ok(Ok(())) = tokio::time::timeout(CLOSE_DEADLINE, socket.send(frame)).await {
        // Wait for the client's close frame (or its going away), within the same deadline.
        let _ = tokio::time::timeout(CLOSE_DEADLINE, async {
            while let Some(Ok(msg)) = socket.recv().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_requests_are_checked_as_vault_does() {
        let ok = |p: &str, q: &str| subscription(p, Some(q));
        assert_eq!(ok("sys/events/subscribe/kv*", "json=true").unwrap(), "kv*");
        assert_eq!(
            ok("sys/events/subscribe/kv-v2/data-write", "json=1").unwrap(),
            "kv-v2/data-write"
        );
        for (path, q, says) in [
            (
                "sys/events/subscribe/",
                "json=true",
                "did not specify eventType",
            ),
            ("sys/events/subscribe/kv*", "", "json=true"),
            ("sys/events/subscribe/kv*", "json=false", "json=true"),
            (
                "sys/events/subscribe/kv*",
                "json=maybe",
                "invalid parameter for JSON: maybe",
            ),
            (
                "sys/events/subscribe/kv*",
                "json=true&namespaces=ns1",
                "\"namespaces\"",
            ),
            (
                "sys/events/subscribe/kv*",
                "json=true&filter=x",
                "\"filter\"",
            ),
        ] {
            let err = ok(path, q).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(says), "{q}: {err}");
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let cut = truncate(long);
        assert!(cut.len() <= 123 && cut.is_char_boundary(cut.len()));
        assert_eq!(close_for(&LogicalError::PermissionDenied).0, 1008);
        assert_eq!(close_for(&LogicalError::Sealed).0, 1013);
        assert!(stalled().len() <= 123 && fell_behind(u64::MAX).len() <= 123);
    }
}

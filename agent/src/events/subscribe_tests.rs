//! The subscriber against a WebSocket server made here (plain TCP): the request it sends, a
//! resync after each subscription, events into the inbox, a refusal counted as "no events".

// tungstenite's callback signature returns its (large) `ErrorResponse` by value.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{run, Settings};
use crate::auth::TokenSource;
use crate::events::Inbox;
use crate::telemetry::Metrics;

struct Fixture {
    _dir: tempfile::TempDir,
    tokens: Arc<TokenSource>,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "hvs.test-token\n").unwrap();
    Fixture {
        tokens: Arc::new(TokenSource::open(&path).unwrap()),
        _dir: dir,
        inbox: Arc::new(Inbox::default()),
        metrics: Arc::new(Metrics::new()),
        cancel: CancellationToken::new(),
    }
}

fn settings(addr: std::net::SocketAddr) -> Settings {
    Settings {
        addr: format!("http://{addr}"),
        ca_cert: None,
        retry_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(50),
    }
}

fn frame(path: &str) -> String {
    serde_json::json!({"id": "1", "specversion": "1.0", "type": "*",
        "data": {"event_type": "kv-v2/data-write",
                 "event": {"id": "1", "metadata": {"path": path, "current_version": "2"}}}})
    .to_string()
}

fn metric(metrics: &Metrics, name: &str) -> String {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn subscribes_with_the_token_resyncs_and_delivers_events() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let mut go_rx = Some(go_rx);
    let server = tokio::spawn(async move {
        // Two connections: the first is dropped after one event, the second is the resubscription.
        for round in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen_tx.clone();
            let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                let token = req
                    .headers()
                    .get("x-vault-token")
                    .map(|v| v.to_str().unwrap().to_string());
                seen.send((req.uri().to_string(), token)).unwrap();
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check)
                .await
                .unwrap();
            if round == 1 {
                // After the test saw the resubscription's full check.
                go_rx.take().unwrap().await.unwrap();
            }
            ws.send(Message::text(frame(&format!("secret/data/app/{round}"))))
                .await
                .unwrap();
            if round == 1 {
                // Stay open until the client goes.
                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
            }
        }
    });
    let task = tokio::spawn(run(
        settings(addr),
        f.tokens.clone(),
        f.inbox.clone(),
        f.metrics.clone(),
        f.cancel.clone(),
    ));
    let (uri, token) = seen_rx.recv().await.unwrap();
    assert_eq!(uri, "/v1/sys/events/subscribe/kv*?json=true");
    assert_eq!(token.as_deref(), Some("hvs.test-token"));
    // Each subscription asks for a full check (a path pending before it is covered by it);
    // the events follow.
    let mut resyncs = 0;
    let mut paths = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut go_tx = Some(go_tx);
    while !(resyncs >= 2 && paths.contains("secret/data/app/1")) {
        if resyncs >= 2 {
            if let Some(go) = go_tx.take() {
                go.send(()).unwrap();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resyncs {resyncs}, paths {paths:?}"
        );
        if let Ok(p) = tokio::time::timeout(Duration::from_millis(200), f.inbox.wait()).await {
            resyncs += usize::from(p.resync);
            paths.extend(p.paths);
        }
    }
    // The resubscription sent the same request.
    assert_eq!(seen_rx.recv().await.unwrap().0, uri);
    assert!(metric(&f.metrics, "hush_push_subscriptions_total").ends_with(" 2"));
    f.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    assert!(metric(&f.metrics, "hush_push_state").ends_with(" 0"));
    server.abort();
}

#[tokio::test]
async fn a_store_without_events_is_counted_and_retried() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let refuse = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
                let mut e = ErrorResponse::new(Some("{\"errors\":[]}".into()));
                *e.status_mut() = StatusCode::NOT_FOUND;
                Err(e)
            };
            let _ = tokio_tungstenite::accept_hdr_async(tcp, refuse).await;
        }
    });
    let task = tokio::spawn(run(
        settings(addr),
        f.tokens.clone(),
        f.inbox.clone(),
        f.metrics.clone(),
        f.cancel.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = metric(&f.metrics, "hush_push_unavailable_total");
        let n: u64 = n
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retries not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metric(&f.metrics, "hush_push_state").ends_with(" 3"));
    assert!(f.inbox.take().is_none(), "no resync without a subscription");
    f.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    server.abort();
}

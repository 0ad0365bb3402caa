//! The telemetry listener: `GET /healthz` (the process is up), `GET /readyz` (every file was
//! rendered at least once) and `GET /metrics` (OpenMetrics text). Anything else is 404.

use std::io;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Metrics, CONTENT_TYPE};

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
}

/// The routes, for tests and for embedding.
fn router(metrics: Arc<Metrics>, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(AppState { metrics, ready })
}

/// Serves until `shutdown` is cancelled, then stops accepting and lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "telemetry listening");
    }
    axum::serve(listener, router(metrics, ready))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.set_ready(*state.ready.borrow());
    let metrics = state.metrics.clone();
    // Refreshing process figures reads /proc: keep it off the async workers.
    let body = tokio::task::spawn_blocking(move || metrics.encode())
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request over a fresh connection: (status, headers, body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        conn.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    async fn start() -> (
        std::net::SocketAddr,
        Arc<Metrics>,
        watch::Sender<bool>,
        CancellationToken,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (ready_tx, ready_rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, metrics.clone(), ready_rx, shutdown.clone()));
        (addr, metrics, ready_tx, shutdown, task)
    }

    #[tokio::test]
    async fn health_readiness_and_404() {
        let (addr, _metrics, ready, shutdown, task) = start().await;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/healthz").await.2, "ok\n");
        assert_eq!(get(addr, "/readyz").await.0, 503);
        ready.send(true).unwrap();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/nope").await.0, 404);
        assert_eq!(get(addr, "/").await.0, 404);
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics() {
        let (addr, metrics, ready, shutdown, task) = start().await;
        metrics.render_ok("db/password", 7, std::time::SystemTime::now());
        let (status, head, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
        assert!(
            body.contains("hush_renders_total{file=\"db/password\"} 1"),
            "{body}"
        );
        assert!(body.contains("hush_ready 0"), "{body}");
        ready.send(true).unwrap();
        assert!(get(addr, "/metrics").await.2.contains("hush_ready 1"));
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}

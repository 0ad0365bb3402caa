//! The ceiling on requests in flight: beyond it hushd answers at once with 503, `Retry-After`
//! and Vault's `{"errors": [...]}` instead of queueing without bound. `sys/health` and
//! `sys/seal-status` never count and are always served, so load balancers and operators can
//! still tell a busy node from a dead one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

/// Seconds a refused client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Clone)]
struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// `app` with at most `limit` requests handled at once.
pub fn limit_in_flight(app: axum::Router, limit: usize) -> axum::Router {
    let state = InFlight {
        permits: Arc::new(Semaphore::new(limit)),
        limit,
    };
    app.layer(axum::middleware::from_fn_with_state(state, shed))
}

/// Paths served whatever the load: cheap, storage-free, and what health checks poll.
fn always_served(path: &str) -> bool {
    matches!(path, "/v1/sys/health" | "/v1/sys/seal-status")
}

async fn shed(State(state): State<InFlight>, req: Request, next: Next) -> Response {
    if always_served(req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        tracing::debug!(limit = state.limit, "request refused: too many in flight");
        return overloaded(state.limit);
    };
    next.run(req).await
}

fn overloaded(limit: usize) -> Response {
    let body = serde_json::json!({
        "errors": [format!(
            "hushd is overloaded: {limit} requests are in flight (max_in_flight_requests); \
             retry after {RETRY_AFTER_SECS}s"
        )]
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn beyond_the_ceiling_503_with_retry_after_and_health_still_served() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let held = gate.clone();
        let app = axum::Router::new().fallback(move || {
            let held = held.clone();
            async move {
                held.notified().await;
                "done"
            }
        });
        let app = limit_in_flight(app, 1);
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(app.clone().oneshot(get("/v1/secret/data/a")));
        tokio::task::yield_now().await;
        // Let the first request take its permit.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = app.clone().oneshot(get("/v1/secret/data/b")).await.unwrap();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["errors"][0].as_str().unwrap().contains("overloaded"),
            "{v}"
        );
        // Health is not held back (it waits on the gate too, so release it after checking it started).
        let health = tokio::spawn(app.clone().oneshot(get("/v1/sys/health")));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(health.await.unwrap().unwrap().status(), 200);
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        // The permit is back.
        let again = tokio::spawn(app.clone().oneshot(get("/v1/secret/data/c")));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(again.await.unwrap().unwrap().status(), 200);
    }
}

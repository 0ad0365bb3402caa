//! The webhook's HTTP side: `POST /mutate` over TLS ([`webhook_router`]) and the plain-HTTP
//! `/healthz`, `/readyz`, `/metrics` ([`metrics_router`]), both served by [`run`] with
//! [`hush_api::server::serve`] until shutdown.
//!
//! Errors are Vault-shaped (`{"errors": ["..."]}`) like everything else Hush serves: 400 for a
//! body that is not an AdmissionReview, 404/405 for other paths and methods, 413 over
//! [`MAX_BODY_BYTES`], 415 for a content type other than JSON.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hush_api::tls::{ReloadCounts, ReloadingCert};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::review::{review, Reviewed};
use crate::settings::Settings;

/// The largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The webhook's metrics, all named `hush_injector_*`.
pub struct Metrics {
    registry: Registry,
    reviews: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    tls_reloads: Family<ResultLabels, Counter>,
    /// The certificate's counts as last copied into `tls_reloads`.
    tls_seen: Mutex<ReloadCounts>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hush_injector");
        let reviews = Family::<OutcomeLabels, Counter>::default();
        // 50 µs .. ~1.6 s
        let latency = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reviews",
            "AdmissionReviews answered, by outcome (patched, unchanged, denied, bad_request)",
            reviews.clone(),
        );
        registry.register(
            "review_duration_seconds",
            "Time from a /mutate request's arrival to its answer (body read, decision, encoding)",
            latency.clone(),
        );
        registry.register(
            "tls_reloads",
            "Reloads of the webhook's certificate and key after their files changed, by result",
            tls_reloads.clone(),
        );
        for outcome in ["patched", "unchanged", "denied", "bad_request"] {
            let _ = reviews.get_or_create(&OutcomeLabels { outcome });
        }
        for result in ["ok", "error"] {
            let _ = tls_reloads.get_or_create(&ResultLabels { result });
        }
        Metrics {
            registry,
            reviews,
            latency,
            tls_reloads,
            tls_seen: Mutex::new(ReloadCounts::default()),
        }
    }

    fn answered(&self, outcome: &'static str, started: Instant) {
        self.reviews.get_or_create(&OutcomeLabels { outcome }).inc();
        self.latency.observe(started.elapsed().as_secs_f64());
    }

    /// Bring the reload counters up to `now` (the certificate counts by itself).
    fn sync_tls(&self, now: ReloadCounts) {
        let mut seen = self.tls_seen.lock().unwrap_or_else(|e| e.into_inner());
        let add = |result, before: u64, after: u64| {
            self.tls_reloads
                .get_or_create(&ResultLabels { result })
                .inc_by(after.saturating_sub(before));
        };
        add("ok", seen.reloaded, now.reloaded);
        add("error", seen.failed, now.failed);
        *seen = now;
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// A Vault-style error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errors": [message.into()] }))).into_response()
}

#[derive(Clone, Debug)]
struct WebhookState {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
}

/// `POST /mutate`; everything else 404 (other paths) or 405 (other methods).
pub fn webhook_router(settings: Arc<Settings>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/mutate",
            post(mutate).fallback(|| async {
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed: use POST /mutate",
                )
            }),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found: the webhook serves POST /mutate",
            )
        })
        .with_state(WebhookState { settings, metrics })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let length_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if length_limit {
                too_large()
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                )
            }
        })
}

async fn mutate(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let metrics = &state.metrics;
    if !is_json(&headers) {
        metrics.answered("bad_request", started);
        tracing::info!(
            outcome = "bad_request",
            reason = "content type",
            "review refused"
        );
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(resp) => {
            metrics.answered("bad_request", started);
            tracing::info!(
                outcome = "bad_request",
                status = resp.status().as_u16(),
                "review refused"
            );
            return resp;
        }
    };
    match review(&bytes, &state.settings) {
        Ok(reviewed) => {
            log_reviewed(&reviewed);
            let resp = Json(&reviewed.response).into_response();
            metrics.answered(reviewed.verdict.label(), started);
            resp
        }
        Err(bad) => {
            metrics.answered("bad_request", started);
            tracing::info!(outcome = "bad_request", error = %bad, "review refused");
            error(StatusCode::BAD_REQUEST, bad.to_string())
        }
    }
}

/// One line per review: who, what became of it and why; never an annotation's value.
fn log_reviewed(r: &Reviewed) {
    tracing::info!(
        uid = %r.response.response.uid,
        namespace = %r.namespace,
        pod = %r.pod,
        outcome = r.verdict.label(),
        reason = %r.reason,
        "review answered"
    );
}

#[derive(Clone, Debug)]
struct MetricsState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    cert: Option<Arc<ReloadingCert>>,
}

/// `GET /healthz` (the process is up), `/readyz` (the TLS listener is serving), `/metrics`.
pub fn metrics_router(
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    cert: Option<Arc<ReloadingCert>>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found: /healthz, /readyz, /metrics",
            )
        })
        .with_state(MetricsState {
            metrics,
            ready,
            cert,
        })
}

async fn readyz(State(state): State<MetricsState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(state): State<MetricsState>) -> impl IntoResponse {
    if let Some(cert) = &state.cert {
        state.metrics.sync_tls(cert.reload_counts());
    }
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

/// Serve the webhook on `webhook` (TLS with the reloading certificate of `config`) and the
/// metrics on `metrics_listener` until `shutdown`; then stop accepting, report not ready and
/// drain.
pub async fn run(
    config: &Config,
    webhook: TcpListener,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), hush_api::tls::TlsError> {
    let cert = ReloadingCert::new(&config.tls_cert, &config.tls_key)?;
    cert.clone()
        .watch(config.tls_reload_interval, shutdown.child_token());
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let metrics_app = metrics_router(metrics.clone(), ready.clone(), Some(cert.clone()));
    // The metrics listener outlives the webhook's drain, answering /readyz 503 meanwhile.
    let metrics_stop = CancellationToken::new();
    let metrics_task = tokio::spawn(hush_api::server::serve(
        metrics_listener,
        None,
        metrics_app,
        metrics_stop.clone(),
    ));
    let app = webhook_router(Arc::new(config.settings.clone()), metrics);
    let not_ready = ready.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        not_ready.store(false, Ordering::Release);
    });
    ready.store(true, Ordering::Release);
    let served = hush_api::server::serve(webhook, Some(cert.server_config()), app, shutdown).await;
    metrics_stop.cancel();
    let _ = metrics_task.await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "webhook listener failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn app() -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (
            webhook_router(Arc::new(Settings::default()), metrics.clone()),
            metrics,
        )
    }

    async fn send(app: Router, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
        Request::post(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap()
    }

    const REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
        "request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE",
        "namespace":"ns","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}}}"#;

    #[tokio::test]
    async fn mutate_answers_a_review_and_counts_it() {
        let (app, metrics) = app();
        let (status, body) = send(
            app,
            post("/mutate", "application/json; charset=utf-8", REVIEW),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["uid"], "u-1");
        assert_eq!(body["response"]["allowed"], true);
        let text = metrics.encode();
        assert!(
            text.contains("hush_injector_reviews_total{outcome=\"unchanged\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hush_injector_review_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn errors_have_vaults_shape_and_status() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let cases = [
            (
                post("/mutate", "application/json", "{"),
                StatusCode::BAD_REQUEST,
                "body is not a JSON AdmissionReview",
            ),
            (
                post("/mutate", "text/plain", REVIEW),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            (
                post("/mutate", "application/json", big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body over 4194304 bytes",
            ),
            (
                Request::get("/mutate").body(Body::empty()).unwrap(),
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ),
            (
                post("/validate", "application/json", REVIEW),
                StatusCode::NOT_FOUND,
                "not found",
            ),
        ];
        for (req, want_status, want_text) in cases {
            let (app, _) = app();
            let (status, body) = send(app, req).await;
            assert_eq!(status, want_status, "{body}");
            let errors = body["errors"].as_array().expect("errors");
            assert!(errors[0].as_str().unwrap().starts_with(want_text), "{body}");
        }
    }

    #[tokio::test]
    async fn metrics_router_reports_readiness() {
        let ready = Arc::new(AtomicBool::new(false));
        let router = metrics_router(Arc::new(Metrics::new()), ready.clone(), None);
        let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
        let status = |r: Router, p| async move { r.oneshot(get(p)).await.unwrap().status() };
        assert_eq!(status(router.clone(), "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(router.clone(), "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        ready.store(true, Ordering::Release);
        assert_eq!(status(router.clone(), "/readyz").await, StatusCode::OK);
        assert_eq!(status(router.clone(), "/nope").await, StatusCode::NOT_FOUND);
    }

    #[test]
    fn tls_reload_counts_are_copied_once() {
        let m = Metrics::new();
        m.sync_tls(ReloadCounts {
            reloaded: 2,
            failed: 1,
        });
        m.sync_tls(ReloadCounts {
            reloaded: 3,
            failed: 1,
        });
        let text = m.encode();
        assert!(
            text.contains("hush_injector_tls_reloads_total{result=\"ok\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("hush_injector_tls_reloads_total{result=\"error\"} 1"),
            "{text}"
        );
    }
}

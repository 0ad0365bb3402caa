//! The streamed snapshot routes, outside the JSON request path and its `max_request_bytes`:
//!
//! - `GET /v1/sys/storage/snapshot`: the snapshot, streamed as it is read from storage
//!   (`application/octet-stream`; `X-Hush-Snapshot-Entries-Estimate`: entries when it began);
//! - `POST|PUT /v1/sys/storage/snapshot`: restore (the body is the file), 204 when done;
//! - `POST|PUT /v1/sys/storage/snapshot-force`: restore a snapshot made under other keys.
//!
//! The same under `sys/storage/raft/` (Vault's raft paths, so hvac's `take_raft_snapshot`,
//! `restore_raft_snapshot` and `force_restore_raft_snapshot` work); the ACL is checked on the
//! `sys/storage/snapshot` paths either way.
//!
//! Each first asks the core with a bodiless request on the same path, so the token, the ACL
//! (these are sudo paths) and the audit log see it as any other request, and a sealed store
//! answers 503, before any byte of a snapshot moves. An upload is spooled to a temporary file
//! (in `TMPDIR`) up to `max_snapshot_bytes` (413 beyond), then restored from there
//! ([`crate::core::snapshot::restore`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::http::{client_token, logical_error};
use crate::core::snapshot;
use crate::core::Core;
use crate::logical::{LogicalError, Operation, Request};

/// Default largest snapshot a restore accepts: 64 GiB (`max_snapshot_bytes`).
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024 * 1024;

#[derive(Clone)]
struct SnapState {
    core: Arc<Core>,
    limit: u64,
}

/// The routes, to merge into the app.
pub fn routes(core: Arc<Core>, max_snapshot_bytes: u64) -> axum::Router {
    let state = SnapState {
        core,
        limit: max_snapshot_bytes,
    };
    let mut router = axum::Router::new();
    for prefix in ["/v1/sys/storage", "/v1/sys/storage/raft"] {
        router = router
            .route(
                &format!("{prefix}/snapshot"),
                get(save).post(restore).put(restore).fallback(unsupported),
            )
            .route(
                &format!("{prefix}/snapshot-force"),
                post(restore_force).put(restore_force).fallback(unsupported),
            );
    }
    router.with_state(state)
}

async fn unsupported() -> HttpResponse {
    logical_error(&LogicalError::UnsupportedOperation)
}

/// Ask the core about this request (token, ACL, audit, sealed).
async fn gate(
    core: &Core,
    parts: &axum::http::request::Parts,
    op: Operation,
    path: &str,
) -> Result<(), HttpResponse> {
    let mut req = Request::new(op, path.to_string());
    req.client_token = client_token(&parts.headers);
    req.remote_addr = parts
        .extensions
        .get::<super::http::RemoteAddr>()
        .map(|a| a.0.ip());
    core.handle(req).await.map(drop).map_err(|e| match e {
        // HA: a standby sends the client to the active node, as for every other request.
        e @ LogicalError::Standby { .. } => super::http::standby_response(&e, &parts.uri),
        e => logical_error(&e),
    })
}

async fn save(State(state): State<SnapState>, req: axum::extract::Request) -> HttpResponse {
    let started = std::time::Instant::now();
    let (parts, _) = req.into_parts();
    let resp = match gate(&state.core, &parts, Operation::Read, "sys/storage/snapshot").await {
        Err(resp) => resp,
        Ok(()) => match snapshot::save(&state.core).await {
            Err(e) => logical_error(&e),
            Ok(saving) => {
                let stream = futures_util::stream::unfold(saving.chunks, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                let mut resp = Body::from_stream(stream).into_response();
                let headers = resp.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(
                    "x-hush-snapshot-entries-estimate",
                    HeaderValue::from(saving.estimate),
                );
                resp
            }
        },
    };
    record(&state.core, "read", &resp, started);
    resp
}

async fn restore(State(state): State<SnapState>, req: axum::extract::Request) -> HttpResponse {
    restore_with(state, req, false).await
}

async fn restore_force(
    State(state): State<SnapState>,
    req: axum::extract::Request,
) -> HttpResponse {
    restore_with(state, req, true).await
}

async fn restore_with(state: SnapState, req: axum::extract::Request, force: bool) -> HttpResponse {
    let started = std::time::Instant::now();
    let resp = match restore_inner(&state, req, force).await {
        Ok(()) => (
            StatusCode::NO_CONTENT,
            [(header::CACHE_CONTROL, "no-store")],
        )
            .into_response(),
        Err(resp) => resp,
    };
    record(&state.core, "update", &resp, started);
    resp
}

fn too_large(limit: u64) -> HttpResponse {
    logical_error(&LogicalError::TooLarge(
        usize::try_from(limit).unwrap_or(usize::MAX),
    ))
}

async fn restore_inner(
    state: &SnapState,
    req: axum::extract::Request,
    force: bool,
) -> Result<(), HttpResponse> {
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.limit) {
        return Err(too_large(state.limit));
    }
    let path = if force {
        "sys/storage/snapshot-force"
    } else {
        "sys/storage/snapshot"
    };
    gate(&state.core, &parts, Operation::Update, path).await?;
    let internal = |what: &str, e: std::io::Error| {
        logical_error(&LogicalError::Internal(format!("{what}: {e}")))
    };
    let spool = tempfile::Builder::new()
        .prefix("hush-snapshot-")
        .suffix(".tmp")
        .tempfile()
        .map_err(|e| internal("cannot create the snapshot spool file", e))?;
    let file = spool
        .reopen()
        .map_err(|e| internal("cannot open the snapshot spool file", e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            logical_error(&match hush_api::server::body_stalled(&e) {
                Some(stall) => LogicalError::BodyTimeout(stall.as_secs()),
                None => LogicalError::invalid(
                    "failed to read the request body (the upload was cut short)",
                ),
            })
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > state.limit {
            return Err(too_large(state.limit));
        }
        out.write_all(&data)
            .await
            .map_err(|e| internal("cannot write the snapshot spool file", e))?;
    }
    out.flush()
        .await
        .map_err(|e| internal("cannot write the snapshot spool file", e))?;
    drop(out);
    tracing::info!(bytes = received, force, "snapshot received");
    snapshot::restore(&state.core, spool.path().to_path_buf(), force)
        .await
        .map(drop)
        .map_err(|e| logical_error(&e))
}

fn record(core: &Core, op: &'static str, resp: &HttpResponse, started: std::time::Instant) {
    core.metrics()
        .request("sys", op, resp.status().as_u16(), started.elapsed());
}

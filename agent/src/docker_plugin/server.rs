//! The plugin socket: HTTP/1.1 POSTs from dockerd, one route per VolumeDriver call. Every
//! answer is 200 with a JSON body; a failure is its `Err` field (what `docker volume create`
//! and `docker run` print).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    Activate, Capabilities, CapabilitiesResponse, CreateRequest, ErrOnly, GetResponse,
    ListResponse, MountRequest, MountpointResponse, NameRequest, VolumeInfo, CONTENT_TYPE,
};
use super::volumes::{Shown, Volumes};

type Shared = Arc<Volumes>;

fn reply<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an answer");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn err_only(err: String) -> Response {
    reply(&ErrOnly { err })
}

/// Parse a request body (dockerd sends `{}` or nothing where there is nothing to say).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

/// The routes over the volumes.
pub fn router(volumes: Shared) -> Router {
    Router::new()
        .route("/Plugin.Activate", post(activate))
        .route("/VolumeDriver.Create", post(create))
        .route("/VolumeDriver.Remove", post(remove))
        .route("/VolumeDriver.Mount", post(mount))
        .route("/VolumeDriver.Unmount", post(unmount))
        .route("/VolumeDriver.Path", post(path))
        .route("/VolumeDriver.Get", post(get))
        .route("/VolumeDriver.List", post(list))
        .route("/VolumeDriver.Capabilities", post(capabilities))
        .with_state(volumes)
}

/// Serve on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    volumes: Shared,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(volumes))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn activate() -> Response {
    reply(&Activate {
        implements: vec!["VolumeDriver"],
    })
}

async fn capabilities() -> Response {
    reply(&CapabilitiesResponse {
        capabilities: Capabilities { scope: "local" },
    })
}

async fn create(State(v): State<Shared>, body: Bytes) -> Response {
    let req: CreateRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.create(&req.name, req.opts.unwrap_or_default()) {
        Ok(()) => err_only(String::new()),
        Err(e) => {
            tracing::warn!(volume = %req.name, error = %e, "create refused");
            err_only(e.to_string())
        }
    }
}

async fn remove(State(v): State<Shared>, body: Bytes) -> Response {
    let req: NameRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.remove(&req.name).await {
        Ok(()) => err_only(String::new()),
        Err(e) => {
            tracing::warn!(volume = %req.name, error = %e, "remove refused");
            err_only(e.to_string())
        }
    }
}

async fn mount(State(v): State<Shared>, body: Bytes) -> Response {
    let req: MountRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.mount(&req.name, &req.id).await {
        Ok(p) => reply(&MountpointResponse {
            mountpoint: p.display().to_string(),
            err: String::new(),
        }),
        Err(e) => {
            tracing::warn!(volume = %req.name, error = %e, "mount failed");
            reply(&MountpointResponse {
                mountpoint: String::new(),
                err: e.to_string(),
            })
        }
    }
}

async fn unmount(State(v): State<Shared>, body: Bytes) -> Response {
    let req: MountRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.unmount(&req.name, &req.id).await {
        Ok(()) => err_only(String::new()),
        Err(e) => err_only(e.to_string()),
    }
}

async fn path(State(v): State<Shared>, body: Bytes) -> Response {
    let req: NameRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.path(&req.name).await {
        Ok(p) => reply(&MountpointResponse {
            mountpoint: p.map(|p| p.display().to_string()).unwrap_or_default(),
            err: String::new(),
        }),
        Err(e) => reply(&MountpointResponse {
            mountpoint: String::new(),
            err: e.to_string(),
        }),
    }
}

fn info(shown: Shown, status: bool) -> VolumeInfo {
    VolumeInfo {
        name: shown.name,
        mountpoint: shown
            .mountpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        status: status.then(|| {
            BTreeMap::from([
                ("options".to_string(), serde_json::json!(shown.opts)),
                ("mounts".to_string(), serde_json::json!(shown.mounts)),
            ])
        }),
    }
}

async fn get(State(v): State<Shared>, body: Bytes) -> Response {
    let req: NameRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err_only(e),
    };
    match v.get(&req.name).await {
        Ok(shown) => reply(&GetResponse {
            volume: Some(info(shown, true)),
            err: String::new(),
        }),
        Err(e) => reply(&GetResponse {
            volume: None,
            err: e.to_string(),
        }),
    }
}

async fn list(State(v): State<Shared>) -> Response {
    let volumes = v.list().await.into_iter().map(|s| info(s, false)).collect();
    reply(&ListResponse {
        volumes,
        err: String::new(),
    })
}

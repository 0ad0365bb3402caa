//! Tests of the KV engine (version 2, and version 1 in `v1`) over a real barrier and the in-memory backend.

mod concurrency;
mod config;
mod data;
mod events;
mod metadata;
mod rotation;
mod v1;
mod versions;

use std::sync::Arc;

use serde_json::{json, Value};

use super::KvBackend;
use crate::barrier::{Barrier, BarrierView, KeyBytes};
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};
use crate::storage::{Backend, MemoryBackend};

pub(super) struct Fixture {
    pub kv: Arc<KvBackend>,
    pub view: BarrierView,
}

pub(super) async fn setup() -> Fixture {
    setup_on(Arc::new(MemoryBackend::new())).await
}

pub(super) async fn setup_on(backend: Arc<dyn Backend>) -> Fixture {
    let barrier = Arc::new(Barrier::new(backend));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let view = BarrierView::new(barrier, "logical/test/");
    let kv = Arc::new(KvBackend::new(view.clone()).await.unwrap());
    Fixture { kv, view }
}

/// A request as the router hands it over: `path` is below the mount `secret/`.
pub(super) fn req(op: Operation, path: &str, body: Value) -> Request {
    let mut r = Request::new(op, format!("secret/{path}")).with_data(body);
    r.mount_point = "secret/".into();
    if op == Operation::Patch {
        r.content_type = Some("application/merge-patch+json".into());
    }
    r
}

pub(super) async fn call(
    kv: &KvBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    kv.handle(&req(op, path, body)).await
}

/// The response's `data` object as a JSON value (`null` when there is none).
pub(super) fn body(resp: &Response) -> Value {
    resp.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

/// Call and expect success; returns the `data` object.
pub(super) async fn ok(kv: &KvBackend, op: Operation, path: &str, b: Value) -> Value {
    match call(kv, op, path, b).await {
        Ok(resp) => {
            assert_eq!(resp.status, None, "unexpected status for {op:?} {path}");
            body(&resp)
        }
        Err(e) => panic!("{op:?} {path} failed: {e}"),
    }
}

/// Call and expect an error; returns its status and message.
pub(super) async fn fail(kv: &KvBackend, op: Operation, path: &str, b: Value) -> (u16, String) {
    match call(kv, op, path, b).await {
        Ok(resp) => panic!("{op:?} {path} unexpectedly succeeded: {resp:?}"),
        Err(e) => (e.status(), e.to_string()),
    }
}

pub(super) async fn put(kv: &KvBackend, path: &str, data: Value) -> Value {
    ok(
        kv,
        Operation::Update,
        &format!("data/{path}"),
        json!({ "data": data }),
    )
    .await
}

pub(super) async fn get(kv: &KvBackend, path: &str) -> Value {
    ok(kv, Operation::Read, &format!("data/{path}"), json!({})).await
}

pub(super) async fn meta(kv: &KvBackend, path: &str) -> Value {
    ok(kv, Operation::Read, &format!("metadata/{path}"), json!({})).await
}

/// Every storage key under the view (relative), sorted.
pub(super) async fn stored_keys(view: &BarrierView) -> Vec<String> {
    view.scan_prefix("").await.unwrap()
}

#[tokio::test]
async fn unknown_routes_and_operations() {
    let f = setup().await;
    for path in ["", "foo/bar", "data", "config/", "nope"] {
        let (status, msg) = fail(&f.kv, Operation::Read, path, json!({})).await;
        assert_eq!(
            (status, msg.as_str()),
            (404, "unsupported path"),
            "{path:?}"
        );
    }
    let (status, _) = fail(&f.kv, Operation::Delete, "config", json!({})).await;
    assert_eq!(status, 405);
    let (status, _) = fail(&f.kv, Operation::Read, "destroy/x", json!({})).await;
    assert_eq!(status, 405);
    let (status, _) = fail(&f.kv, Operation::Update, "subkeys/x", json!({})).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn exists_tells_create_from_update() {
    let f = setup().await;
    let r = req(Operation::Update, "data/app/db", json!({}));
    assert_eq!(f.kv.exists(&r).await.unwrap(), Some(false));
    let m = req(Operation::Update, "metadata/app/db", json!({}));
    assert_eq!(f.kv.exists(&m).await.unwrap(), Some(false));
    put(&f.kv, "app/db", json!({"a": 1})).await;
    assert_eq!(f.kv.exists(&r).await.unwrap(), Some(true));
    assert_eq!(f.kv.exists(&m).await.unwrap(), Some(true));
    for other in ["config", "delete/app/db", "destroy/app/db", "data/a//b"] {
        let o = req(Operation::Update, other, json!({}));
        assert_eq!(f.kv.exists(&o).await.unwrap(), None, "{other}");
    }
}

#[tokio::test]
async fn debug_output_shows_no_internals() {
    let f = setup().await;
    let dbg = format!("{:?}", f.kv);
    assert!(dbg.contains("logical/test/"));
    assert!(!dbg.contains("stripes"));
}

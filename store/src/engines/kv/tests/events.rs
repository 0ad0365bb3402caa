//! The events the engine publishes: after the committed write, in commit order, none for a
//! write that failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{call, ok, setup_on};
use crate::engines::kv::KvV1Backend;
use crate::logical::events::{Event, EventPublisher, EventSink, PluginInfo};
use crate::logical::{LogicalBackend, Operation};
use crate::storage::{Backend, MemoryBackend, Op, StorageError};

#[derive(Default)]
struct Collect(parking_lot::Mutex<Vec<Event>>);

impl EventSink for Collect {
    fn publish(&self, event: Event) {
        self.0.lock().push(event);
    }
}

impl Collect {
    /// (type, path, current_version) of what was published, and forget it.
    fn take(&self) -> Vec<(String, String, String)> {
        self.0
            .lock()
            .drain(..)
            .map(|e| {
                let version = e
                    .metadata
                    .iter()
                    .find(|(k, _)| k == "current_version")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (e.event_type, e.path, version)
            })
            .collect()
    }
}

/// Memory storage whose writes fail while `fail` is set.
#[derive(Default)]
struct Failing {
    inner: MemoryBackend,
    fail: AtomicBool,
}

#[async_trait]
impl Backend for Failing {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.scan_prefix(prefix).await
    }
    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected failure".into()));
        }
        self.inner.write(ops).await
    }
    fn kind(&self) -> &'static str {
        "failing"
    }
}

fn publisher(sink: &Arc<Collect>) -> EventPublisher {
    EventPublisher::new(
        sink.clone(),
        PluginInfo {
            mount_class: "secret".into(),
            mount_accessor: "kv_test".into(),
            mount_path: "secret/".into(),
            plugin: "kv".into(),
        },
    )
}

fn ev(t: &str, path: &str, version: &str) -> (String, String, String) {
    (t.into(), path.into(), version.into())
}

#[tokio::test]
async fn every_committed_kv_v2_change_is_published_in_order() {
    let storage = Arc::new(Failing::default());
    let f = setup_on(storage.clone()).await;
    let sink = Arc::new(Collect::default());
    let kv = Arc::into_inner(f.kv).unwrap().with_events(publisher(&sink));

    ok(
        &kv,
        Operation::Update,
        "data/a",
        json!({"data": {"k": "1"}}),
    )
    .await;
    ok(
        &kv,
        Operation::Update,
        "data/a",
        json!({"data": {"k": "2"}}),
    )
    .await;
    ok(&kv, Operation::Patch, "data/a", json!({"data": {"j": "3"}})).await;
    ok(&kv, Operation::Delete, "data/a", json!({})).await;
    ok(
        &kv,
        Operation::Update,
        "undelete/a",
        json!({"versions": [3]}),
    )
    .await;
    ok(&kv, Operation::Update, "delete/a", json!({"versions": [1]})).await;
    ok(
        &kv,
        Operation::Update,
        "destroy/a",
        json!({"versions": [2]}),
    )
    .await;
    ok(
        &kv,
        Operation::Update,
        "metadata/a",
        json!({"max_versions": 5}),
    )
    .await;
    ok(
        &kv,
        Operation::Patch,
        "metadata/a",
        json!({"custom_metadata": {"o": "x"}}),
    )
    .await;
    ok(&kv, Operation::Delete, "metadata/a", json!({})).await;
    assert_eq!(
        sink.take(),
        vec![
            ev("kv-v2/data-write", "secret/data/a", "1"),
            ev("kv-v2/data-write", "secret/data/a", "2"),
            ev("kv-v2/data-patch", "secret/data/a", "3"),
            ev("kv-v2/data-delete", "secret/data/a", "3"),
            ev("kv-v2/undelete", "secret/undelete/a", "3"),
            ev("kv-v2/delete", "secret/delete/a", "3"),
            ev("kv-v2/destroy", "secret/destroy/a", "3"),
            ev("kv-v2/metadata-write", "secret/metadata/a", "3"),
            ev("kv-v2/metadata-patch", "secret/metadata/a", "3"),
            ev("kv-v2/metadata-delete", "secret/metadata/a", ""),
        ]
    );

    // Refused writes publish nothing: a check-and-set mismatch, a patch of nothing.
    ok(
        &kv,
        Operation::Update,
        "data/b",
        json!({"data": {"k": "1"}}),
    )
    .await;
    sink.take();
    let cas = json!({"data": {"k": "2"}, "options": {"cas": 0}});
    assert!(call(&kv, Operation::Update, "data/b", cas).await.is_err());
    assert!(
        call(&kv, Operation::Patch, "data/none", json!({"data": {}}))
            .await
            .is_err()
    );
    // A write the storage refuses publishes nothing either.
    storage.fail.store(true, Ordering::SeqCst);
    for (op, path, body) in [
        (Operation::Update, "data/b", json!({"data": {"k": "3"}})),
        (Operation::Patch, "data/b", json!({"data": {"k": "3"}})),
        (Operation::Delete, "data/b", json!({})),
        (Operation::Update, "metadata/b", json!({"max_versions": 3})),
        (Operation::Update, "destroy/b", json!({"versions": [1]})),
        (Operation::Delete, "metadata/b", json!({})),
    ] {
        assert!(call(&kv, op, path, body).await.is_err(), "{path}");
    }
    assert_eq!(sink.take(), vec![]);
    storage.fail.store(false, Ordering::SeqCst);
    ok(
        &kv,
        Operation::Update,
        "data/b",
        json!({"data": {"k": "4"}}),
    )
    .await;
    assert_eq!(
        sink.take(),
        vec![ev("kv-v2/data-write", "secret/data/b", "2")]
    );
}

#[tokio::test]
async fn concurrent_writes_to_one_key_publish_versions_in_commit_order() {
    let f = setup_on(Arc::new(MemoryBackend::new())).await;
    let sink = Arc::new(Collect::default());
    let kv = Arc::new(Arc::into_inner(f.kv).unwrap().with_events(publisher(&sink)));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move {
                ok(&kv, Operation::Update, "data/c", json!({"data": {"i": i}})).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let versions: Vec<String> = sink.take().into_iter().map(|(_, _, v)| v).collect();
    let want: Vec<String> = (1..=40).map(|v| v.to_string()).collect();
    assert_eq!(versions, want);
}

#[tokio::test]
async fn kv_v1_writes_and_deletes_are_published() {
    let f = setup_on(Arc::new(MemoryBackend::new())).await;
    let sink = Arc::new(Collect::default());
    let kv = KvV1Backend::new(f.view.clone()).with_events(publisher(&sink));
    let mut req = super::req(Operation::Update, "app/x", json!({"k": "v"}));
    kv.handle(&req).await.unwrap();
    req.operation = Operation::Delete;
    kv.handle(&req).await.unwrap();
    let events = sink.0.lock();
    let got: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.path.as_str(),
                e.data_path.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("kv-v1/write", "secret/app/x", Some("secret/app/x")),
            ("kv-v1/delete", "secret/app/x", None),
        ]
    );
}

//! Concurrent writers to one key: no lost versions, one check-and-set winner.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use super::{call, meta, ok, setup_on, Fixture};
use crate::logical::Operation;
use crate::storage::{Backend, MemoryBackend, Op, StorageError};

/// The in-memory backend, but every call yields to the scheduler first, as real I/O does,
/// so that unserialised read-modify-writes really interleave.
struct YieldingBackend(MemoryBackend);

#[async_trait::async_trait]
impl Backend for YieldingBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        tokio::task::yield_now().await;
        self.0.scan_prefix(prefix).await
    }
    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.write(ops).await
    }
    fn kind(&self) -> &'static str {
        "yielding-memory"
    }
}

async fn setup() -> Fixture {
    setup_on(Arc::new(YieldingBackend(MemoryBackend::new()))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_make_sixty_four_versions() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "metadata/hot",
        json!({"max_versions": 100}),
    )
    .await;
    let start = Arc::new(Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let kv = f.kv.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let b = json!({"data": {"writer": i}});
            let resp = call(&kv, Operation::Update, "data/hot", b).await.unwrap();
            resp.data.unwrap()["version"].as_u64().unwrap()
        }));
    }
    let mut versions = BTreeSet::new();
    for t in tasks {
        versions.insert(t.await.unwrap());
    }
    assert_eq!(versions, (1..=64).collect::<BTreeSet<u64>>());
    let m = meta(&f.kv, "hot").await;
    assert_eq!(m["current_version"], 64);
    assert_eq!(m["versions"].as_object().unwrap().len(), 64);
    // Every writer's data landed in exactly one version.
    let mut writers = BTreeSet::new();
    for v in 1..=64 {
        let r = ok(&f.kv, Operation::Read, "data/hot", json!({ "version": v })).await;
        writers.insert(r["data"]["writer"].as_u64().unwrap());
    }
    assert_eq!(writers, (0..64).collect::<BTreeSet<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_writers_exactly_one_wins() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "data/race",
        json!({"data": {"v": 0}}),
    )
    .await;
    // Release all writers at once so their read-modify-writes overlap.
    let start = Arc::new(Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let kv = f.kv.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let b = json!({"data": {"winner": i}, "options": {"cas": 1}});
            call(&kv, Operation::Update, "data/race", b).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(resp) => {
                assert_eq!(resp.data.unwrap()["version"], 2);
                wins += 1;
            }
            Err(e) => {
                assert_eq!(e.status(), 400);
                assert!(e.to_string().contains("did not match"));
            }
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(meta(&f.kv, "race").await["current_version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_lose_no_field() {
    let f = setup().await;
    ok(&f.kv, Operation::Update, "data/merge", json!({"data": {}})).await;
    let start = Arc::new(Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let kv = f.kv.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let b = json!({"data": { format!("f{i}"): i }});
            call(&kv, Operation::Patch, "data/merge", b).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = ok(&f.kv, Operation::Read, "data/merge", json!({})).await;
    assert_eq!(r["data"].as_object().unwrap().len(), 16);
    assert_eq!(r["metadata"]["version"], 17);
}

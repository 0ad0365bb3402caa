//! `delete/`, `undelete/` and `destroy/`.

use serde_json::{json, Value};

use super::{body, call, fail, meta, ok, put, setup, stored_keys};
use crate::logical::Operation;

async fn three_versions(kv: &super::KvBackend, path: &str) {
    for i in 1..=3 {
        put(kv, path, json!({ "n": i })).await;
    }
}

fn deletion_times(m: &Value) -> Vec<bool> {
    (1..=3)
        .map(|v| m["versions"][v.to_string()]["deletion_time"] != "")
        .collect()
}

#[tokio::test]
async fn delete_chosen_versions() {
    let f = setup().await;
    three_versions(&f.kv, "k").await;
    let resp = call(
        &f.kv,
        Operation::Update,
        "delete/k",
        json!({"versions": [1, 3, 42]}),
    )
    .await
    .unwrap();
    assert!(resp.data.is_none() && resp.status.is_none());
    assert_eq!(
        deletion_times(&meta(&f.kv, "k").await),
        vec![true, false, true]
    );
    let resp = call(&f.kv, Operation::Read, "data/k", json!({"version": 1}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    let r = ok(&f.kv, Operation::Read, "data/k", json!({"version": 2})).await;
    assert_eq!(r["data"]["n"], 2);
}

#[tokio::test]
async fn version_lists_as_the_cli_sends_them() {
    let f = setup().await;
    three_versions(&f.kv, "k").await;
    ok(
        &f.kv,
        Operation::Update,
        "delete/k",
        json!({"versions": ["1", "2"]}),
    )
    .await;
    assert_eq!(
        deletion_times(&meta(&f.kv, "k").await),
        vec![true, true, false]
    );
    ok(
        &f.kv,
        Operation::Update,
        "undelete/k",
        json!({"versions": "1,2"}),
    )
    .await;
    assert_eq!(
        deletion_times(&meta(&f.kv, "k").await),
        vec![false, false, false]
    );
}

#[tokio::test]
async fn empty_or_bad_version_lists_are_400() {
    let f = setup().await;
    three_versions(&f.kv, "k").await;
    for (path, want) in [
        ("delete/k", "No version number provided"),
        ("undelete/k", "No version number provided"),
        ("destroy/k", "no version number provided"),
    ] {
        for b in [json!({}), json!({"versions": []})] {
            let (status, msg) = fail(&f.kv, Operation::Update, path, b).await;
            assert_eq!((status, msg.as_str()), (400, want));
        }
        let (status, _) = fail(&f.kv, Operation::Update, path, json!({"versions": ["x"]})).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn undelete_restores_data() {
    let f = setup().await;
    three_versions(&f.kv, "k").await;
    ok(&f.kv, Operation::Delete, "data/k", json!({})).await;
    assert_eq!(
        call(&f.kv, Operation::Read, "data/k", json!({}))
            .await
            .unwrap()
            .status,
        Some(404)
    );
    ok(
        &f.kv,
        Operation::Update,
        "undelete/k",
        json!({"versions": [3]}),
    )
    .await;
    let r = ok(&f.kv, Operation::Read, "data/k", json!({})).await;
    assert_eq!(r["data"]["n"], 3);
    assert_eq!(r["metadata"]["deletion_time"], "");
}

#[tokio::test]
async fn destroy_removes_data_and_undelete_cannot_bring_it_back() {
    let f = setup().await;
    three_versions(&f.kv, "k").await;
    assert_eq!(stored_keys(&f.view).await.len(), 4);
    ok(
        &f.kv,
        Operation::Update,
        "destroy/k",
        json!({"versions": [2]}),
    )
    .await;
    // The data of version 2 is gone from storage.
    assert_eq!(stored_keys(&f.view).await.len(), 3);
    assert!(!stored_keys(&f.view)
        .await
        .iter()
        .any(|k| k.ends_with("00000000000000000002")));

    let resp = call(&f.kv, Operation::Read, "data/k", json!({"version": 2}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    let b = body(&resp);
    assert_eq!(b["metadata"]["destroyed"], true);
    assert_eq!(b["data"], Value::Null);

    ok(
        &f.kv,
        Operation::Update,
        "undelete/k",
        json!({"versions": [2]}),
    )
    .await;
    let m = meta(&f.kv, "k").await;
    assert_eq!(m["versions"]["2"]["destroyed"], true);
    let resp = call(&f.kv, Operation::Read, "data/k", json!({"version": 2}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    // Soft delete of a destroyed version leaves it alone, and other versions still read.
    ok(
        &f.kv,
        Operation::Update,
        "delete/k",
        json!({"versions": [2]}),
    )
    .await;
    assert_eq!(meta(&f.kv, "k").await["versions"]["2"]["deletion_time"], "");
    assert_eq!(
        ok(&f.kv, Operation::Read, "data/k", json!({"version": 1})).await["data"]["n"],
        1
    );
}

#[tokio::test]
async fn version_ops_on_absent_keys_are_no_ops() {
    let f = setup().await;
    for path in ["delete/none", "undelete/none", "destroy/none"] {
        let resp = call(&f.kv, Operation::Update, path, json!({"versions": [1]}))
            .await
            .unwrap();
        assert!(resp.data.is_none());
    }
    assert!(stored_keys(&f.view).await.is_empty());
}

#[tokio::test]
async fn undelete_restarts_the_delete_after_clock() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    put(&f.kv, "t", json!({"a": 1})).await;
    f.kv.advance_clock(2 * 3600);
    let resp = call(&f.kv, Operation::Read, "data/t", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    // Soft delete of an expired version changes nothing.
    ok(&f.kv, Operation::Delete, "data/t", json!({})).await;
    ok(
        &f.kv,
        Operation::Update,
        "undelete/t",
        json!({"versions": [1]}),
    )
    .await;
    let r = ok(&f.kv, Operation::Read, "data/t", json!({})).await;
    assert_eq!(r["data"]["a"], 1);
    assert_ne!(r["metadata"]["deletion_time"], "");
    f.kv.advance_clock(3601);
    let resp = call(&f.kv, Operation::Read, "data/t", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
}

//! KV version 1 and its upgrade to version 2.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{body, req, setup};
use crate::engines::kv::{open, KvBackend, KvV1Backend};
use crate::logical::events::EventPublisher;
use crate::logical::{LogicalBackend, LogicalError, Operation, Response};

async fn call1(
    kv: &dyn LogicalBackend,
    op: Operation,
    path: &str,
    b: Value,
) -> Result<Response, LogicalError> {
    kv.handle(&req(op, path, b)).await
}

fn status(r: Result<Response, LogicalError>) -> u16 {
    match r {
        Ok(resp) => resp.status.unwrap_or(200),
        Err(e) => e.status(),
    }
}

#[tokio::test]
async fn a_write_replaces_the_whole_secret_and_reads_give_a_ttl_hint() {
    let f = setup().await;
    let kv = KvV1Backend::new(f.view.clone());
    call1(
        &kv,
        Operation::Create,
        "app/db",
        json!({"user": "a", "pw": "1", "n": {"x": 1}}),
    )
    .await
    .unwrap();
    call1(&kv, Operation::Update, "app/db", json!({"pw": "2"}))
        .await
        .unwrap();
    let resp = call1(&kv, Operation::Read, "app/db", json!({}))
        .await
        .unwrap();
    assert_eq!(
        body(&resp),
        json!({"pw": "2"}),
        "a write replaces, no merge"
    );
    let lease = resp.lease.unwrap();
    assert_eq!(
        (lease.lease_id.as_str(), lease.lease_duration),
        ("", 0),
        "0: mount default"
    );

    call1(
        &kv,
        Operation::Update,
        "app/tl",
        json!({"ttl": "1h", "v": 1}),
    )
    .await
    .unwrap();
    let resp = call1(&kv, Operation::Read, "app/tl", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.lease.as_ref().unwrap().lease_duration, 3600);
    assert_eq!(body(&resp)["ttl"], json!("1h"), "the ttl field is data too");
    call1(&kv, Operation::Update, "app/lease", json!({"lease": 90}))
        .await
        .unwrap();
    let resp = call1(&kv, Operation::Read, "app/lease", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.lease.unwrap().lease_duration, 90);
    call1(&kv, Operation::Update, "app/bad", json!({"ttl": "soon"}))
        .await
        .unwrap();
    let resp = call1(&kv, Operation::Read, "app/bad", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.lease.unwrap().lease_duration, 0, "unparsable: default");

    let list = call1(&kv, Operation::List, "app", json!({})).await.unwrap();
    assert_eq!(body(&list)["keys"], json!(["bad", "db", "lease", "tl"]));
    let root = call1(&kv, Operation::List, "", json!({})).await.unwrap();
    assert_eq!(body(&root)["keys"], json!(["app/"]));

    assert_eq!(
        kv.exists(&req(Operation::Update, "app/db", json!({})))
            .await
            .unwrap(),
        Some(true)
    );
    call1(&kv, Operation::Delete, "app/db", json!({}))
        .await
        .unwrap();
    assert_eq!(
        status(call1(&kv, Operation::Read, "app/db", json!({})).await),
        404
    );
    assert_eq!(
        kv.exists(&req(Operation::Update, "app/db", json!({})))
            .await
            .unwrap(),
        Some(false)
    );
    // Deleting what is not there is fine, as in Vault.
    assert_eq!(
        status(call1(&kv, Operation::Delete, "app/db", json!({})).await),
        200
    );
}

#[tokio::test]
async fn bad_requests_are_400s_naming_the_problem() {
    let f = setup().await;
    let kv = KvV1Backend::new(f.view.clone());
    let err = call1(&kv, Operation::Update, "a", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.to_string().as_str()),
        (400, "missing data fields")
    );
    let err = call1(&kv, Operation::Update, "a/../b", json!({"x": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let err = call1(&kv, Operation::Update, "a//b", json!({"x": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        status(call1(&kv, Operation::List, "none", json!({})).await),
        404
    );
    assert_eq!(
        status(call1(&kv, Operation::Patch, "a", json!({"x": 1})).await),
        405
    );
}

#[tokio::test]
async fn open_picks_the_version_and_v2_upgrades_v1_data() {
    let f = setup().await;
    let opts = |v: Value| match v {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    let v1 = open(f.view.clone(), opts(json!({})), EventPublisher::none())
        .await
        .unwrap();
    for (path, data) in [
        ("app/db", json!({"pw": "s3cret", "ttl": "30m"})),
        ("app/api", json!({"key": "k", "nested": {"a": [1, 2]}})),
        ("top", json!({"x": 1})),
    ] {
        call1(v1.as_ref(), Operation::Update, path, data)
            .await
            .unwrap();
    }
    // The mount is tuned to version 2: the old engine closes, then v2 opens over the view.
    v1.cleanup().await;
    let err = call1(v1.as_ref(), Operation::Read, "top", json!({}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("Upgrading from non-versioned"),
        "{err}"
    );

    let v2 = open(
        f.view.clone(),
        opts(json!({"version": "2"})),
        EventPublisher::none(),
    )
    .await
    .unwrap();
    let read = call1(v2.as_ref(), Operation::Read, "data/app/db", json!({}))
        .await
        .unwrap();
    let b = body(&read);
    assert_eq!(b["data"], json!({"pw": "s3cret", "ttl": "30m"}));
    assert_eq!(
        b["metadata"]["version"],
        json!(1),
        "old keys become version 1"
    );
    let nested = call1(v2.as_ref(), Operation::Read, "data/app/api", json!({}))
        .await
        .unwrap();
    assert_eq!(body(&nested)["data"]["nested"], json!({"a": [1, 2]}));
    let list = call1(v2.as_ref(), Operation::List, "metadata/", json!({}))
        .await
        .unwrap();
    assert_eq!(body(&list)["keys"], json!(["app/", "top"]));
    // Nothing of version 1 is left, and a write continues at version 2.
    assert!(f.view.scan_prefix("passthrough/").await.unwrap().is_empty());
    let w = call1(
        v2.as_ref(),
        Operation::Update,
        "data/top",
        json!({"data": {"x": 2}}),
    )
    .await
    .unwrap();
    assert_eq!(body(&w)["version"], json!(2));
    // Opening again (a restart) finds nothing to move.
    let again = KvBackend::new(f.view.clone()).await.unwrap();
    let meta = super::ok(&again, Operation::Read, "metadata/top", json!({})).await;
    assert_eq!(meta["current_version"], json!(2));

    assert!(open(
        f.view.clone(),
        opts(json!({"version": "3"})),
        EventPublisher::none()
    )
    .await
    .is_err());
}

#[tokio::test]
async fn an_upgrade_interrupted_part_way_resumes_at_the_next_start() {
    let f = setup().await;
    let v1 = Arc::new(KvV1Backend::new(f.view.clone()));
    for i in 0..5 {
        call1(
            v1.as_ref(),
            Operation::Update,
            &format!("k{i}"),
            json!({"i": i}),
        )
        .await
        .unwrap();
    }
    // As if a crash left k0 moved and the rest not: move k0 by hand, with the same ops.
    let raw = f.view.get("passthrough/k0").await.unwrap().unwrap();
    let only_k0 = f.view.sub_view("scratch/");
    only_k0.put("passthrough/k0", raw.to_vec()).await.unwrap();
    let moved = KvBackend::new(only_k0.clone()).await.unwrap();
    super::ok(&moved, Operation::Read, "data/k0", json!({})).await;
    f.view.delete("passthrough/k0").await.unwrap();
    for key in only_k0.scan_prefix("").await.unwrap() {
        let value = only_k0.get(&key).await.unwrap().unwrap();
        f.view.put(&key, value.to_vec()).await.unwrap();
    }
    let v2 = KvBackend::new(f.view.clone()).await.unwrap();
    for i in 0..5 {
        let b = super::ok(&v2, Operation::Read, &format!("data/k{i}"), json!({})).await;
        assert_eq!(b["data"], json!({"i": i}));
        assert_eq!(b["metadata"]["version"], json!(1));
    }
}

#[tokio::test]
async fn the_mount_root_lists_with_or_without_its_slash() {
    let f = setup().await;
    let kv = KvV1Backend::new(f.view.clone());
    call1(&kv, Operation::Update, "a", json!({"x": 1}))
        .await
        .unwrap();
    let mut bare = crate::logical::Request::new(Operation::List, "secret");
    bare.mount_point = "secret/".into();
    let resp = kv.handle(&bare).await.unwrap();
    assert_eq!(body(&resp)["keys"], json!(["a"]));
}

//! The engine's side of scheduled rotation: pending versions readers never see as current.

use serde_json::{json, Value};

use super::{body, call, setup};
use crate::logical::rotation::{Labels, Rotatable, SecretFields};
use crate::logical::Operation;

fn fields(v: Value) -> SecretFields {
    let Value::Object(m) = v else {
        panic!("not an object")
    };
    SecretFields(m)
}

async fn read(kv: &super::KvBackend, query: Value) -> Value {
    body(
        &call(kv, Operation::Read, "data/app/db", query)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn a_pending_version_is_current_only_once_promoted() {
    let f = setup().await;
    let kv = &*f.kv;
    call(
        kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"user": "app", "password": "old"}}),
    )
    .await
    .unwrap();
    let v = kv
        .create_pending(
            "app/db",
            1,
            &fields(json!({"user": "app", "password": "new"})),
        )
        .await
        .unwrap();
    assert_eq!(v, 2);
    // Readers, subkeys and the metadata keep the current version.
    let cur = read(kv, json!({})).await;
    assert_eq!(cur["data"]["password"], "old");
    assert_eq!(cur["metadata"]["version"], 1);
    let meta = body(
        &call(kv, Operation::Read, "metadata/app/db", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(meta["current_version"], 1);
    assert_eq!(
        meta["labels"],
        json!({"current": 1, "previous": null, "pending": 2})
    );
    // The pending one by number or label.
    assert_eq!(
        read(kv, json!({"version": 2})).await["data"]["password"],
        "new"
    );
    assert_eq!(
        read(kv, json!({"label": "pending"})).await["data"]["password"],
        "new"
    );
    assert_eq!(
        kv.labels("app/db").await.unwrap(),
        Some(Labels {
            current: 1,
            previous: None,
            pending: Some(2)
        })
    );

    kv.promote("app/db", 2, 1).await.unwrap();
    assert_eq!(read(kv, json!({})).await["data"]["password"], "new");
    assert_eq!(
        read(kv, json!({"label": "previous"})).await["data"]["password"],
        "old"
    );
    let meta = body(
        &call(kv, Operation::Read, "metadata/app/db", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(meta["current_version"], 2);
    assert_eq!(
        meta["labels"],
        json!({"current": 2, "previous": 1, "pending": null})
    );
    // A write after the rotation numbers on from the latest.
    let w = call(
        kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"password": "x"}}),
    )
    .await
    .unwrap();
    assert_eq!(body(&w)["version"], 3);
}

#[tokio::test]
async fn a_failed_version_never_becomes_current_and_a_write_wins_over_a_rotation() {
    let f = setup().await;
    let kv = &*f.kv;
    call(
        kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"password": "old"}}),
    )
    .await
    .unwrap();
    let v = kv
        .create_pending("app/db", 1, &fields(json!({"password": "p2"})))
        .await
        .unwrap();
    kv.fail("app/db", v).await.unwrap();
    let meta = body(
        &call(kv, Operation::Read, "metadata/app/db", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(meta["current_version"], 1);
    assert_eq!(meta["versions"]["2"]["rotation_failed"], true);
    assert!(
        kv.promote("app/db", v, 1).await.is_err(),
        "a failed version is not pending"
    );
    assert_eq!(read(kv, json!({})).await["data"]["password"], "old");

    // A rotation whose base was overtaken by a client's write is refused at finish.
    let v = kv
        .create_pending("app/db", 1, &fields(json!({"password": "p3"})))
        .await
        .unwrap();
    assert_eq!(v, 3);
    let w = call(
        kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"password": "client"}}),
    )
    .await
    .unwrap();
    assert_eq!(body(&w)["version"], 4);
    let err = kv.promote("app/db", 3, 1).await.unwrap_err();
    assert!(err.to_string().contains("current version changed"), "{err}");
    assert_eq!(read(kv, json!({})).await["data"]["password"], "client");
    // So is a create on a stale base.
    assert!(kv
        .create_pending("app/db", 1, &fields(json!({})))
        .await
        .is_err());
    // A second pending version fails the first.
    let a = kv
        .create_pending("app/db", 4, &fields(json!({"password": "a"})))
        .await
        .unwrap();
    let b = kv
        .create_pending("app/db", 4, &fields(json!({"password": "b"})))
        .await
        .unwrap();
    let meta = body(
        &call(kv, Operation::Read, "metadata/app/db", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(meta["versions"][a.to_string()]["rotation_failed"], true);
    assert_eq!(meta["labels"]["pending"], b);
}

#[tokio::test]
async fn labels_survive_a_small_version_window_and_bad_labels_are_refused() {
    let f = setup().await;
    let kv = &*f.kv;
    call(
        kv,
        Operation::Update,
        "metadata/app/db",
        json!({"max_versions": 1}),
    )
    .await
    .unwrap();
    call(
        kv,
        Operation::Update,
        "data/app/db",
        json!({"data": {"password": "old"}}),
    )
    .await
    .unwrap();
    let v = kv
        .create_pending("app/db", 1, &fields(json!({"password": "new"})))
        .await
        .unwrap();
    // The window of one would drop version 1, but it is current.
    assert_eq!(read(kv, json!({})).await["data"]["password"], "old");
    kv.promote("app/db", v, 1).await.unwrap();
    assert_eq!(read(kv, json!({})).await["data"]["password"], "new");
    let err = call(
        kv,
        Operation::Read,
        "data/app/db",
        json!({"label": "newest"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 400);
    let err = call(
        kv,
        Operation::Read,
        "data/app/db",
        json!({"label": "current", "version": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 400);
    // A key without a pending version: the label reads as missing.
    let err = call(
        kv,
        Operation::Read,
        "data/app/db",
        json!({"label": "pending"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 404);
    // A key that does not exist yet rotates from version 0.
    let v = kv
        .create_pending("new/key", 0, &fields(json!({"k": "v"})))
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert!(call(kv, Operation::Read, "data/new/key", json!({}))
        .await
        .is_err());
    kv.promote("new/key", 1, 0).await.unwrap();
    let got = body(
        &call(kv, Operation::Read, "data/new/key", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(got["data"], json!({"k": "v"}));
}

//! `data/` and `subkeys/`.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{body, call, fail, get, ok, put, req, setup, stored_keys};
use crate::logical::{LogicalBackend, Operation};

#[tokio::test]
async fn write_then_read_round_trips_any_json() {
    let f = setup().await;
    let secret =
        json!({"user": "admin", "port": 5432, "tls": true, "nested": {"a": [1, "two", null]}});
    let w = put(&f.kv, "app/db", secret.clone()).await;
    assert_eq!(w["version"], 1);
    assert_eq!(w["deletion_time"], "");
    assert_eq!(w["destroyed"], false);
    assert_eq!(w["custom_metadata"], serde_json::Value::Null);
    let created = w["created_time"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == "2024-01-01T00:00:00.123456789Z".len());

    let r = get(&f.kv, "app/db").await;
    assert_eq!(r["data"], secret);
    assert_eq!(r["metadata"], w);

    let w2 = put(&f.kv, "app/db", json!({"user": "root"})).await;
    assert_eq!(w2["version"], 2);
    assert_eq!(get(&f.kv, "app/db").await["data"], json!({"user": "root"}));
}

#[tokio::test]
async fn create_operation_writes_like_update() {
    let f = setup().await;
    let w = ok(
        &f.kv,
        Operation::Create,
        "data/new",
        json!({"data": {"k": "v"}}),
    )
    .await;
    assert_eq!(w["version"], 1);
}

#[tokio::test]
async fn read_of_missing_key_is_a_bare_404() {
    let f = setup().await;
    let err = call(&f.kv, Operation::Read, "data/nothing", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(err.messages().is_empty());
}

#[tokio::test]
async fn read_of_chosen_versions() {
    let f = setup().await;
    for i in 1..=3 {
        put(&f.kv, "v", json!({ "n": i })).await;
    }
    let r = ok(&f.kv, Operation::Read, "data/v", json!({"version": "2"})).await;
    assert_eq!(
        (r["data"]["n"].clone(), r["metadata"]["version"].clone()),
        (json!(2), json!(2))
    );
    let r = ok(&f.kv, Operation::Read, "data/v", json!({"version": 1})).await;
    assert_eq!(r["data"]["n"], 1);
    // 0 and absent mean the current version.
    let r = ok(&f.kv, Operation::Read, "data/v", json!({"version": "0"})).await;
    assert_eq!(r["data"]["n"], 3);
    let (status, _) = fail(&f.kv, Operation::Read, "data/v", json!({"version": "9"})).await;
    assert_eq!(status, 404);
    let (status, msg) = fail(&f.kv, Operation::Read, "data/v", json!({"version": "two"})).await;
    assert_eq!(status, 400);
    assert!(msg.contains("\"version\""), "{msg}");
    let (status, _) = fail(
        &f.kv,
        Operation::Read,
        "data/absent",
        json!({"version": "x"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bad_write_bodies_are_400() {
    let f = setup().await;
    let cases = [
        (json!({}), "no data provided"),
        (json!({"data": null}), "no data provided"),
        (json!({"data": "s3cr3t-value"}), "field \"data\""),
        (json!({"data": ["s3cr3t-value"]}), "field \"data\""),
        (
            json!({"data": {"a": 1}, "options": "cas=0"}),
            "field \"options\"",
        ),
        (
            json!({"data": {"a": 1}, "options": {"cas": "abc"}}),
            "error parsing check-and-set parameter",
        ),
    ];
    for (b, want) in cases {
        let (status, msg) = fail(&f.kv, Operation::Update, "data/x", b.clone()).await;
        assert_eq!(status, 400, "{b}");
        assert!(msg.contains(want), "{b}: {msg}");
        assert!(!msg.contains("s3cr3t"), "secret echoed in {msg}");
    }
    assert!(stored_keys(&f.view).await.is_empty());
}

#[tokio::test]
async fn check_and_set() {
    let f = setup().await;
    let w = |cas: serde_json::Value| json!({"data": {"a": 1}, "options": {"cas": cas}});
    // cas 0: only when absent.
    assert_eq!(
        ok(&f.kv, Operation::Update, "data/c", w(json!(0))).await["version"],
        1
    );
    let (status, msg) = fail(&f.kv, Operation::Update, "data/c", w(json!(0))).await;
    assert_eq!(
        (status, msg.as_str()),
        (
            400,
            "check-and-set parameter did not match the current version"
        )
    );
    // cas N: only when N is current.
    assert_eq!(
        ok(&f.kv, Operation::Update, "data/c", w(json!(1))).await["version"],
        2
    );
    assert_eq!(
        ok(&f.kv, Operation::Update, "data/c", w(json!("2"))).await["version"],
        3
    );
    for stale in [json!(1), json!(-1), json!(7)] {
        let (status, msg) = fail(&f.kv, Operation::Update, "data/c", w(stale)).await;
        assert_eq!(status, 400);
        assert!(msg.contains("did not match"));
    }
    // hvac sends an empty options object: no cas.
    let plain = json!({"data": {"a": 2}, "options": {}});
    assert_eq!(
        ok(&f.kv, Operation::Update, "data/c", plain).await["version"],
        4
    );
}

#[tokio::test]
async fn cas_required_by_mount_or_key() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"cas_required": true}),
    )
    .await;
    let (status, msg) = fail(
        &f.kv,
        Operation::Update,
        "data/m",
        json!({"data": {"a": 1}}),
    )
    .await;
    assert_eq!(
        (status, msg.as_str()),
        (400, "check-and-set parameter required for this call")
    );
    let b = json!({"data": {"a": 1}, "options": {"cas": 0}});
    assert_eq!(
        ok(&f.kv, Operation::Update, "data/m", b).await["version"],
        1
    );

    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"cas_required": false}),
    )
    .await;
    ok(
        &f.kv,
        Operation::Update,
        "metadata/k",
        json!({"cas_required": true}),
    )
    .await;
    let (status, _) = fail(
        &f.kv,
        Operation::Update,
        "data/k",
        json!({"data": {"a": 1}}),
    )
    .await;
    assert_eq!(status, 400);
    // Other keys are not affected.
    put(&f.kv, "other", json!({"a": 1})).await;
}

#[tokio::test]
async fn patch_merges_into_a_new_version() {
    let f = setup().await;
    put(
        &f.kv,
        "p",
        json!({"keep": 1, "change": "old", "drop": true, "nested": {"x": 1, "y": 2}}),
    )
    .await;
    let patch =
        json!({"data": {"change": "new", "drop": null, "add": [1], "nested": {"y": null, "z": 3}}});
    let w = ok(&f.kv, Operation::Patch, "data/p", patch).await;
    assert_eq!(w["version"], 2);
    assert_eq!(
        get(&f.kv, "p").await["data"],
        json!({"keep": 1, "change": "new", "add": [1], "nested": {"x": 1, "z": 3}})
    );
    // Version 1 is untouched.
    let r = ok(&f.kv, Operation::Read, "data/p", json!({"version": 1})).await;
    assert_eq!(r["data"]["change"], "old");
    // cas applies to patch too.
    let stale = json!({"data": {"a": 1}, "options": {"cas": 1}});
    let (status, _) = fail(&f.kv, Operation::Patch, "data/p", stale).await;
    assert_eq!(status, 400);
    let fresh = json!({"data": {"a": 1}, "options": {"cas": 2}});
    assert_eq!(
        ok(&f.kv, Operation::Patch, "data/p", fresh).await["version"],
        3
    );
}

#[tokio::test]
async fn patch_needs_merge_patch_content_type() {
    let f = setup().await;
    put(&f.kv, "p", json!({"a": 1})).await;
    let mut r = req(Operation::Patch, "data/p", json!({"data": {"a": 2}}));
    r.content_type = Some("application/json".into());
    let resp = f.kv.handle(&r).await.unwrap();
    assert_eq!(resp.status, Some(415));
    let raw = resp.raw.unwrap();
    assert!(raw["errors"][0]
        .as_str()
        .unwrap()
        .contains("application/merge-patch+json"));
    r.content_type = None;
    assert_eq!(f.kv.handle(&r).await.unwrap_err().status(), 400);
    // Nothing was written.
    assert_eq!(get(&f.kv, "p").await["metadata"]["version"], 1);
}

#[tokio::test]
async fn patch_of_absent_or_deleted_key_is_404() {
    let f = setup().await;
    let p = json!({"data": {"a": 1}});
    let err = call(&f.kv, Operation::Patch, "data/absent", p.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    let (status, msg) = fail(&f.kv, Operation::Patch, "data/absent", json!({})).await;
    assert_eq!((status, msg.as_str()), (400, "no data provided"));

    put(&f.kv, "gone", json!({"a": 0})).await;
    ok(&f.kv, Operation::Delete, "data/gone", json!({})).await;
    let resp = call(&f.kv, Operation::Patch, "data/gone", p).await.unwrap();
    assert_eq!(resp.status, Some(404));
    let b = body(&resp);
    assert_eq!(b["version"], 1);
    assert_ne!(b["deletion_time"], "");
}

#[tokio::test]
async fn soft_delete_of_latest_answers_404_with_metadata() {
    let f = setup().await;
    put(&f.kv, "d", json!({"a": 1})).await;
    put(&f.kv, "d", json!({"a": 2})).await;
    let resp = call(&f.kv, Operation::Delete, "data/d", json!({}))
        .await
        .unwrap();
    assert!(resp.data.is_none() && resp.status.is_none());

    let resp = call(&f.kv, Operation::Read, "data/d", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    let b = body(&resp);
    assert_eq!(b["data"], serde_json::Value::Null);
    assert_eq!(b["metadata"]["version"], 2);
    assert_ne!(b["metadata"]["deletion_time"], "");
    // Version 1 still reads.
    let r = ok(&f.kv, Operation::Read, "data/d", json!({"version": 1})).await;
    assert_eq!(r["data"]["a"], 1);
    // Deleting an absent key is a no-op.
    let resp = call(&f.kv, Operation::Delete, "data/absent", json!({}))
        .await
        .unwrap();
    assert!(resp.data.is_none());
    assert!(call(&f.kv, Operation::Read, "data/absent", json!({}))
        .await
        .is_err());
}

#[tokio::test]
async fn list_on_data_is_not_a_thing() {
    let f = setup().await;
    put(&f.kv, "a/b", json!({"x": 1})).await;
    for path in ["data/", "data/a/"] {
        let (status, msg) = fail(&f.kv, Operation::List, path, json!({})).await;
        assert_eq!((status, msg.as_str()), (404, "unsupported path"));
    }
}

#[tokio::test]
async fn bad_paths_are_400() {
    let f = setup().await;
    for path in [
        "data/",
        "data/a/",
        "data/a//b",
        "data/../x",
        "data/a/./b",
        "metadata/a//b",
    ] {
        let (status, _) = fail(&f.kv, Operation::Update, path, json!({"data": {"a": 1}})).await;
        assert_eq!(status, 400, "{path}");
    }
    assert!(stored_keys(&f.view).await.is_empty());
}

#[tokio::test]
async fn storage_layout_keeps_nested_keys_apart() {
    let f = setup().await;
    put(&f.kv, "a", json!({"which": "a"})).await;
    put(&f.kv, "a/b", json!({"which": "a/b"})).await;
    assert_eq!(get(&f.kv, "a").await["data"]["which"], "a");
    assert_eq!(get(&f.kv, "a/b").await["data"]["which"], "a/b");
    let ha = hex::encode(Sha256::digest(b"a"));
    let hab = hex::encode(Sha256::digest(b"a/b"));
    let mut want = vec![
        "metadata/a".to_string(),
        "metadata/a/b".to_string(),
        format!("versions/{ha}/00000000000000000001"),
        format!("versions/{hab}/00000000000000000001"),
    ];
    want.sort();
    assert_eq!(stored_keys(&f.view).await, want);
}

#[tokio::test]
async fn unknown_body_fields_warn() {
    let f = setup().await;
    let resp = call(
        &f.kv,
        Operation::Update,
        "data/w",
        json!({"data": {"a": 1}, "bogus": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [bogus]"]
    );
    let resp = call(
        &f.kv,
        Operation::Update,
        "data/w",
        json!({"data": {"a": 1}}),
    )
    .await
    .unwrap();
    assert!(resp.warnings.is_empty());
}

#[tokio::test]
async fn subkeys_strip_values_to_depth() {
    let f = setup().await;
    put(
        &f.kv,
        "s",
        json!({"foo": "abc", "bar": {"baz": "def", "deep": {"x": 1}}, "empty": {}}),
    )
    .await;
    let r = ok(&f.kv, Operation::Read, "subkeys/s", json!({})).await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "empty": null})
    );
    assert_eq!(r["metadata"]["version"], 1);
    let r = ok(&f.kv, Operation::Read, "subkeys/s", json!({"depth": "1"})).await;
    assert_eq!(
        r["subkeys"],
        json!({"foo": null, "bar": null, "empty": null})
    );
    let r = ok(&f.kv, Operation::Read, "subkeys/s", json!({"depth": 2})).await;
    assert_eq!(r["subkeys"]["bar"], json!({"baz": null, "deep": null}));
    assert!(!r.to_string().contains("abc"));

    let (status, _) = fail(&f.kv, Operation::Read, "subkeys/s", json!({"depth": "-1"})).await;
    assert_eq!(status, 400);
    let (status, _) = fail(&f.kv, Operation::Read, "subkeys/none", json!({})).await;
    assert_eq!(status, 404);
    ok(&f.kv, Operation::Delete, "data/s", json!({})).await;
    let resp = call(&f.kv, Operation::Read, "subkeys/s", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));
    assert_eq!(body(&resp)["subkeys"], serde_json::Value::Null);
}

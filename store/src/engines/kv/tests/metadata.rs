//! `metadata/`: read, write, patch, delete, list, pruning and delete-after.

use chrono::DateTime;
use serde_json::{json, Map, Value};

use super::{call, fail, get, meta, ok, put, req, setup, stored_keys};
use crate::logical::{LogicalBackend, Operation};

fn version_keys(m: &Value) -> Vec<u64> {
    let mut v: Vec<u64> = m["versions"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn read_shape() {
    let f = setup().await;
    put(&f.kv, "app/db", json!({"a": 1})).await;
    put(&f.kv, "app/db", json!({"a": 2})).await;
    let m = meta(&f.kv, "app/db").await;
    assert_eq!(m["current_version"], 2);
    assert_eq!(m["oldest_version"], 0);
    assert_eq!(m["max_versions"], 0);
    assert_eq!(m["cas_required"], false);
    assert_eq!(m["delete_version_after"], "0s");
    assert_eq!(m["custom_metadata"], Value::Null);
    assert_eq!(version_keys(&m), vec![1, 2]);
    assert_eq!(m["versions"]["2"]["created_time"], m["updated_time"]);
    assert_eq!(m["versions"]["1"]["created_time"], m["created_time"]);
    assert_eq!(m["versions"]["1"]["destroyed"], false);
    let (status, _) = fail(&f.kv, Operation::Read, "metadata/absent", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn key_max_versions_prunes_data_and_metadata() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "metadata/p",
        json!({"max_versions": 3}),
    )
    .await;
    for i in 1..=5 {
        put(&f.kv, "p", json!({ "n": i })).await;
    }
    let m = meta(&f.kv, "p").await;
    assert_eq!(version_keys(&m), vec![3, 4, 5]);
    assert_eq!(m["oldest_version"], 3);
    assert_eq!(m["current_version"], 5);
    // metadata + 3 versions.
    assert_eq!(stored_keys(&f.view).await.len(), 4);
    let (status, _) = fail(&f.kv, Operation::Read, "data/p", json!({"version": 1})).await;
    assert_eq!(status, 404);
    let r = ok(&f.kv, Operation::Read, "data/p", json!({"version": 3})).await;
    assert_eq!(r["data"]["n"], 3);
}

#[tokio::test]
async fn mount_max_versions_and_default_of_ten() {
    let f = setup().await;
    for i in 1..=12 {
        put(&f.kv, "ten", json!({ "n": i })).await;
    }
    assert_eq!(
        version_keys(&meta(&f.kv, "ten").await),
        (3..=12).collect::<Vec<_>>()
    );

    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"max_versions": 2}),
    )
    .await;
    for i in 1..=4 {
        put(&f.kv, "two", json!({ "n": i })).await;
    }
    assert_eq!(version_keys(&meta(&f.kv, "two").await), vec![3, 4]);
    // The key's own setting wins over the mount's.
    ok(
        &f.kv,
        Operation::Update,
        "metadata/four",
        json!({"max_versions": 4}),
    )
    .await;
    for i in 1..=5 {
        put(&f.kv, "four", json!({ "n": i })).await;
    }
    assert_eq!(version_keys(&meta(&f.kv, "four").await), vec![2, 3, 4, 5]);
}

#[tokio::test]
async fn delete_version_after_from_mount_and_key() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    let w = put(&f.kv, "t", json!({"a": 1})).await;
    let created = DateTime::parse_from_rfc3339(w["created_time"].as_str().unwrap()).unwrap();
    let deletion = DateTime::parse_from_rfc3339(w["deletion_time"].as_str().unwrap()).unwrap();
    assert_eq!((deletion - created).num_seconds(), 3600);
    // Not yet passed: reads fine.
    assert_eq!(get(&f.kv, "t").await["data"]["a"], 1);
    f.kv.advance_clock(3601);
    let resp = call(&f.kv, Operation::Read, "data/t", json!({}))
        .await
        .unwrap();
    assert_eq!(resp.status, Some(404));

    // The smaller of key and mount wins.
    ok(
        &f.kv,
        Operation::Update,
        "metadata/short",
        json!({"delete_version_after": "10m"}),
    )
    .await;
    let w = put(&f.kv, "short", json!({"a": 1})).await;
    let created = DateTime::parse_from_rfc3339(w["created_time"].as_str().unwrap()).unwrap();
    let deletion = DateTime::parse_from_rfc3339(w["deletion_time"].as_str().unwrap()).unwrap();
    assert_eq!((deletion - created).num_seconds(), 600);
    assert_eq!(meta(&f.kv, "short").await["delete_version_after"], "10m0s");

    // A negative mount setting disables it everywhere.
    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"delete_version_after": "-1s"}),
    )
    .await;
    assert_eq!(
        put(&f.kv, "short", json!({"a": 2})).await["deletion_time"],
        ""
    );
    let (status, _) = fail(
        &f.kv,
        Operation::Update,
        "metadata/short",
        json!({"delete_version_after": "-5s"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn custom_metadata_round_trips_and_shows_in_data_reads() {
    let f = setup().await;
    let b = json!({"custom_metadata": {"owner": "ops", "ticket": 42, "on": true}, "cas_required": true});
    ok(&f.kv, Operation::Update, "metadata/c", b).await;
    let m = meta(&f.kv, "c").await;
    assert_eq!(
        m["custom_metadata"],
        json!({"owner": "ops", "ticket": "42", "on": "1"})
    );
    assert_eq!(m["current_version"], 0);
    assert_eq!(m["cas_required"], true);
    // Metadata without any version: data reads are a bare 404.
    let (status, _) = fail(&f.kv, Operation::Read, "data/c", json!({})).await;
    assert_eq!(status, 404);
    let w = ok(
        &f.kv,
        Operation::Update,
        "data/c",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
    )
    .await;
    assert_eq!(w["custom_metadata"]["owner"], "ops");
    assert_eq!(
        get(&f.kv, "c").await["metadata"]["custom_metadata"]["ticket"],
        "42"
    );
    // A write replaces the whole map.
    ok(
        &f.kv,
        Operation::Update,
        "metadata/c",
        json!({"custom_metadata": {"x": "y"}}),
    )
    .await;
    assert_eq!(meta(&f.kv, "c").await["custom_metadata"], json!({"x": "y"}));
}

#[tokio::test]
async fn custom_metadata_limits() {
    let f = setup().await;
    let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let sixty_four: Map<String, Value> = (0..64).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (
            json!(many),
            "payload must contain at most 64 keys, provided 65",
        ),
        (json!({ "k".repeat(129): "v" }), "length of key"),
        (
            json!({"k": "v".repeat(513)}),
            "length of value for key \"k\" is 513",
        ),
        (json!({"k": ""}), "length of value for key \"k\" is 0"),
        (json!({"k": "a\u{1}b"}), "contains unprintable characters"),
        (json!({"k": {"nested": 1}}), "must be a string"),
        (json!(["k"]), "custom_metadata validation failed"),
    ];
    for (cm, want) in cases {
        let (status, msg) = fail(
            &f.kv,
            Operation::Update,
            "metadata/l",
            json!({"custom_metadata": cm}),
        )
        .await;
        assert_eq!(status, 400);
        assert!(msg.contains(want), "{msg}");
    }
    let (_, msg) = fail(
        &f.kv,
        Operation::Update,
        "metadata/l",
        json!({"custom_metadata": {"": ""}}),
    )
    .await;
    assert!(
        msg.starts_with("2 errors occurred:\n\t* custom_metadata validation failed"),
        "{msg}"
    );
    assert!(stored_keys(&f.view).await.is_empty());
    // The limits themselves are allowed.
    ok(
        &f.kv,
        Operation::Update,
        "metadata/l",
        json!({"custom_metadata": sixty_four}),
    )
    .await;
    let edge = json!({"custom_metadata": { "k".repeat(128): "v".repeat(512) }});
    ok(&f.kv, Operation::Update, "metadata/l2", edge).await;
}

#[tokio::test]
async fn write_with_nothing_to_set_creates_nothing() {
    let f = setup().await;
    let resp = call(&f.kv, Operation::Update, "metadata/n", json!({}))
        .await
        .unwrap();
    assert!(resp.data.is_none());
    assert!(stored_keys(&f.view).await.is_empty());
    let (status, _) = fail(
        &f.kv,
        Operation::Update,
        "metadata/n",
        json!({"max_versions": "lots"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = fail(
        &f.kv,
        Operation::Update,
        "metadata/n",
        json!({"max_versions": -3}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn turning_cas_off_against_the_mount_warns() {
    let f = setup().await;
    ok(
        &f.kv,
        Operation::Update,
        "config",
        json!({"cas_required": true}),
    )
    .await;
    let resp = call(
        &f.kv,
        Operation::Update,
        "metadata/w",
        json!({"cas_required": false}),
    )
    .await
    .unwrap();
    assert_eq!(resp.warnings.len(), 1);
    assert!(resp.warnings[0].contains("mandated by backend config"));
    let resp = call(
        &f.kv,
        Operation::Update,
        "metadata/w",
        json!({"cas_required": true}),
    )
    .await
    .unwrap();
    assert!(resp.warnings.is_empty());
}

#[tokio::test]
async fn patch_merges_settings_and_custom_metadata() {
    let f = setup().await;
    let b = json!({"max_versions": 5, "custom_metadata": {"a": "1", "b": "2"}});
    ok(&f.kv, Operation::Update, "metadata/p", b).await;
    let patch = json!({"cas_required": true, "custom_metadata": {"a": null, "c": "3"}});
    ok(&f.kv, Operation::Patch, "metadata/p", patch).await;
    let m = meta(&f.kv, "p").await;
    assert_eq!(m["max_versions"], 5);
    assert_eq!(m["cas_required"], true);
    assert_eq!(m["custom_metadata"], json!({"b": "2", "c": "3"}));
    ok(
        &f.kv,
        Operation::Patch,
        "metadata/p",
        json!({"custom_metadata": null}),
    )
    .await;
    assert_eq!(meta(&f.kv, "p").await["custom_metadata"], Value::Null);

    let (status, _) = fail(
        &f.kv,
        Operation::Patch,
        "metadata/absent",
        json!({"max_versions": 1}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = fail(
        &f.kv,
        Operation::Patch,
        "metadata/p",
        json!({"custom_metadata": {"k": "v".repeat(600)}}),
    )
    .await;
    assert_eq!(status, 400);
    let mut r = req(Operation::Patch, "metadata/p", json!({"max_versions": 1}));
    r.content_type = Some("text/plain".into());
    assert_eq!(f.kv.handle(&r).await.unwrap().status, Some(415));
    assert_eq!(meta(&f.kv, "p").await["max_versions"], 5);
}

#[tokio::test]
async fn delete_removes_every_version_and_the_metadata() {
    let f = setup().await;
    for i in 1..=3 {
        put(&f.kv, "gone", json!({ "n": i })).await;
    }
    put(&f.kv, "kept", json!({"n": 0})).await;
    ok(&f.kv, Operation::Delete, "metadata/gone", json!({})).await;
    let (status, _) = fail(&f.kv, Operation::Read, "metadata/gone", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = fail(&f.kv, Operation::Read, "data/gone", json!({"version": 2})).await;
    assert_eq!(status, 404);
    assert_eq!(stored_keys(&f.view).await.len(), 2);
    assert_eq!(get(&f.kv, "kept").await["data"]["n"], 0);
    // Absent: a no-op; and a new write starts again at version 1.
    assert!(call(&f.kv, Operation::Delete, "metadata/gone", json!({}))
        .await
        .unwrap()
        .data
        .is_none());
    assert_eq!(put(&f.kv, "gone", json!({"n": 9})).await["version"], 1);
}

#[tokio::test]
async fn list_shows_keys_and_folders() {
    let f = setup().await;
    for p in ["app/db", "app/api/token", "app", "web/site", "top"] {
        put(&f.kv, p, json!({"x": 1})).await;
    }
    let root = ok(&f.kv, Operation::List, "metadata/", json!({})).await;
    assert_eq!(root["keys"], json!(["app", "app/", "top", "web/"]));
    let bare = ok(&f.kv, Operation::List, "metadata", json!({})).await;
    assert_eq!(bare["keys"], root["keys"]);
    let app = ok(&f.kv, Operation::List, "metadata/app/", json!({})).await;
    assert_eq!(app["keys"], json!(["api/", "db"]));
    let no_slash = ok(&f.kv, Operation::List, "metadata/app/api", json!({})).await;
    assert_eq!(no_slash["keys"], json!(["token"]));

    let err = call(&f.kv, Operation::List, "metadata/nothing/", json!({}))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.messages().len()), (404, 0));
    let (status, _) = fail(&f.kv, Operation::List, "metadata/a//", json!({})).await;
    assert_eq!(status, 400);
    // Keys deleted for good disappear from the list.
    ok(&f.kv, Operation::Delete, "metadata/top", json!({})).await;
    let root = ok(&f.kv, Operation::List, "metadata/", json!({})).await;
    assert_eq!(root["keys"], json!(["app", "app/", "web/"]));
}

#[tokio::test]
async fn empty_engine_lists_404() {
    let f = setup().await;
    let resp = call(&f.kv, Operation::List, "metadata/", json!({})).await;
    assert_eq!(resp.unwrap_err().status(), 404);
}

//! `config`.

use serde_json::json;

use super::{fail, ok, setup};
use crate::engines::kv::KvBackend;
use crate::logical::Operation;

#[tokio::test]
async fn defaults_then_round_trip() {
    let f = setup().await;
    let c = ok(&f.kv, Operation::Read, "config", json!({})).await;
    assert_eq!(
        c,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );

    // As hvac's configure() sends it.
    let b = json!({"max_versions": 17, "delete_version_after": "3h25m19s", "cas_required": true});
    ok(&f.kv, Operation::Update, "config", b).await;
    let c = ok(&f.kv, Operation::Read, "config", json!({})).await;
    assert_eq!(
        c,
        json!({"cas_required": true, "delete_version_after": "3h25m19s", "max_versions": 17})
    );

    // Fields left out keep their value; negative delete-after is stored as -1s.
    ok(
        &f.kv,
        Operation::Create,
        "config",
        json!({"delete_version_after": "-10m"}),
    )
    .await;
    let c = ok(&f.kv, Operation::Read, "config", json!({})).await;
    assert_eq!(
        c,
        json!({"cas_required": true, "delete_version_after": "-1s", "max_versions": 17})
    );

    // The config survives a new engine over the same view.
    let again = KvBackend::new(f.view.clone()).await.unwrap();
    assert_eq!(ok(&again, Operation::Read, "config", json!({})).await, c);
}

#[tokio::test]
async fn bad_values_are_400_and_change_nothing() {
    let f = setup().await;
    for b in [
        json!({"max_versions": "many"}),
        json!({"max_versions": -1}),
        json!({"cas_required": "maybe"}),
        json!({"delete_version_after": "soon"}),
        json!({"delete_version_after": [1]}),
    ] {
        let (status, _) = fail(&f.kv, Operation::Update, "config", b.clone()).await;
        assert_eq!(status, 400, "{b}");
    }
    let c = ok(&f.kv, Operation::Read, "config", json!({})).await;
    assert_eq!(c["max_versions"], 0);
    assert_eq!(c["cas_required"], false);
}

#[tokio::test]
async fn engine_refuses_an_unreadable_config() {
    let f = setup().await;
    f.view.put("config", b"not json".to_vec()).await.unwrap();
    assert!(KvBackend::new(f.view.clone()).await.is_err());
}

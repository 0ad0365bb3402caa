use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;

fn kv2(mount: &str, path: &str) -> Source {
    Source {
        names: vec![path.into()],
        path: format!("{mount}/data/{path}"),
        kind: SourceKind::KvV2 {
            mount: mount.into(),
            path: path.into(),
        },
        lazy: false,
    }
}

fn generic(path: &str) -> Source {
    Source {
        names: vec![path.into()],
        path: path.into(),
        kind: SourceKind::Generic,
        lazy: false,
    }
}

/// A frame as Vault 1.15+ sends it (`vault events subscribe -format=json`).
fn frame(event_type: &str, path: &str, data_path: Option<&str>) -> String {
    let mut metadata = json!({
        "current_version": "3",
        "oldest_version": "1",
        "modified": "true",
        "operation": "data-write",
        "path": path,
    });
    if let Some(d) = data_path {
        metadata["data_path"] = json!(d);
    }
    json!({
        "id": "a3be9fb1-b514-519f-5b25-b6f144a8c1ce",
        "source": "https://vaultproject.io/",
        "specversion": "1.0",
        "type": "*",
        "datacontenttype": "application/cloudevents",
        "time": "2023-09-12T15:19:49.394915-07:00",
        "data": {
            "event": {"id": "a3be9fb1-b514-519f-5b25-b6f144a8c1ce", "metadata": metadata},
            "event_type": event_type,
            "plugin_info": {
                "mount_class": "secret",
                "mount_accessor": "kv_5dc4d18e",
                "mount_path": "secret/",
                "plugin": "kv"
            }
        }
    })
    .to_string()
}

#[test]
fn parses_vault_cloudevents_frames() {
    let e = parse(&frame(
        "kv-v2/data-write",
        "secret/data/app/db",
        Some("secret/data/app/db"),
    ))
    .unwrap();
    assert_eq!(e.event_type, "kv-v2/data-write");
    assert_eq!(e.path, "secret/data/app/db");
    assert_eq!(e.data_path.as_deref(), Some("secret/data/app/db"));

    // Only data_path: it names the path.
    let text = json!({"data": {"event_type": "kv-v2/data-delete",
        "event": {"metadata": {"data_path": "secret/data/x"}}}})
    .to_string();
    assert_eq!(parse(&text).unwrap().path, "secret/data/x");
}

#[test]
fn frames_without_a_path_or_not_json_are_refused() {
    let no_path = json!({"data": {"event_type": "kv-v2/data-write",
        "event": {"metadata": {"current_version": "1"}}}})
    .to_string();
    assert_eq!(parse(&no_path), Err(ParseError::NoPath));
    assert!(matches!(parse("not json"), Err(ParseError::Shape(_))));
    assert!(matches!(parse("{\"id\":\"x\"}"), Err(ParseError::Shape(_))));
}

#[test]
fn a_shape_error_names_no_value() {
    // A frame whose path is a number: the message must not echo the frame.
    let text = json!({"data": {"event": {"metadata": {"path": 12345678}}}}).to_string();
    let e = parse(&text).unwrap_err().to_string();
    assert!(!e.contains("12345678"), "{e}");
}

#[test]
fn kv2_events_match_data_metadata_and_version_paths() {
    let s = kv2("secret", "app/db");
    for p in [
        "secret/data/app/db",
        "secret/metadata/app/db",
        "secret/delete/app/db",
        "secret/undelete/app/db",
        "secret/destroy/app/db",
        "/secret/data/app/db/",
    ] {
        assert!(names(&s, p), "{p}");
    }
    for p in [
        "secret/data/app/db2",
        "secret/data/app",
        "secret/config",
        "other/data/app/db",
        "secretx/data/app/db",
        "secret/app/db",
        "secret/data/app/db/more",
    ] {
        assert!(!names(&s, p), "{p}");
    }
}

#[test]
fn nested_mounts_and_v1_paths_match_exactly() {
    let s = kv2("team/kv", "x");
    assert!(names(&s, "team/kv/data/x"));
    assert!(!names(&s, "team/data/kv/x"));
    let v1 = generic("kv1/app/db");
    assert!(names(&v1, "kv1/app/db"));
    assert!(!names(&v1, "kv1/app/db2"));
    let sources = [
        kv2("secret", "a"),
        v1,
        kv2("secret", "b"),
        kv2("secret", "a/b"),
    ];
    assert_eq!(matching(&sources, "secret/data/a"), vec![0]);
    assert_eq!(matching(&sources, "secret/metadata/a/b"), vec![3]);
    assert_eq!(matching(&sources, "kv1/app/db"), vec![1]);
    assert!(matching(&sources, "secret/data/c").is_empty());
}

#[test]
fn the_inbox_coalesces_and_resyncs() {
    let inbox = Inbox::default();
    assert!(inbox.take().is_none());
    inbox.changed("secret/data/a");
    inbox.changed("secret/data/a");
    inbox.changed("secret/data/b");
    let p = inbox.take().unwrap();
    assert_eq!(p.paths.len(), 2);
    assert!(!p.resync && p.since.is_some());
    assert!(inbox.take().is_none());

    inbox.changed("secret/data/a");
    inbox.resync();
    inbox.changed("secret/data/c");
    let p = inbox.take().unwrap();
    assert!(p.resync && p.paths.is_empty());
}

#[test]
fn the_inbox_is_bounded() {
    let inbox = Inbox::default();
    for i in 0..=MAX_PENDING_PATHS {
        inbox.changed(&format!("secret/data/{i}"));
    }
    let p = inbox.take().unwrap();
    assert!(p.resync, "too many paths turn into a full check");
    assert!(p.paths.is_empty());
}

#[tokio::test]
async fn waiting_wakes_on_a_change_made_before_or_after() {
    let inbox = Arc::new(Inbox::default());
    inbox.changed("secret/data/a");
    let p = tokio::time::timeout(Duration::from_secs(1), inbox.wait())
        .await
        .unwrap();
    assert_eq!(p.paths.len(), 1);
    let i = inbox.clone();
    let waiter = tokio::spawn(async move { i.wait().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    inbox.changed("secret/data/b");
    let p = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(p.paths.contains("secret/data/b"));
}

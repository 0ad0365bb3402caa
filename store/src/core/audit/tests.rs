//! Broker tests over a real barrier (in-memory backend) and real files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use hush_api::audit::verify;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::*;
use crate::barrier::{Barrier, KeyBytes};
use crate::core::token::TokenEntry;
use crate::logical::{Auth, Operation};
use crate::storage::MemoryBackend;

async fn view() -> BarrierView {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(backend));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    BarrierView::new(barrier, "core/audit/")
}

fn opts(file: &Path) -> BTreeMap<String, String> {
    BTreeMap::from([("file_path".to_string(), file.display().to_string())])
}

fn token_entry() -> Arc<TokenEntry> {
    Arc::new(TokenEntry {
        id_hash: "idhash".into(),
        accessor: "accessor-plain-123".into(),
        parent_hash: None,
        policies: vec!["default".into(), "app".into()],
        meta: BTreeMap::new(),
        display_name: "token-ci".into(),
        num_uses: 0,
        creation_time: chrono::Utc::now(),
        ttl: 3600,
        explicit_max_ttl: 0,
        period: 0,
        renewable: true,
        expire_time: None,
        path: "auth/token/create".into(),
        token_type: "service".into(),
        entity_id: String::new(),
        bound_cidrs: Vec::new(),
        last_renewal: None,
    })
}

fn secret_request() -> Request {
    let mut req = Request::new(Operation::Update, "secret/data/app")
        .with_data(json!({"data": {"password": "hunter2-plain", "nested": ["deep-plain"]}}));
    req.client_token = Some(SecretString::from("hvs.client-token-plain"));
    req.token_entry = Some(token_entry());
    req.mount_point = "secret/".into();
    req.mount_type = "kv".into();
    req.remote_addr = Some("127.0.0.1".parse().unwrap());
    req
}

fn new_token_response() -> Response {
    Response {
        auth: Some(Auth {
            client_token: SecretString::from("hvs.issued-token-plain"),
            accessor: "issued-accessor-plain".into(),
            policies: vec!["default".into()],
            token_policies: vec!["default".into()],
            lease_duration: 60,
            renewable: true,
            token_type: "service".into(),
            ..Default::default()
        }),
        data: Some(
            json!({"value": "response-secret-plain"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..Default::default()
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify_file(path: &Path) -> hush_api::audit::VerifySummary {
    verify(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap()
}

#[tokio::test]
async fn entries_hold_no_plaintext_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    broker
        .enable("file", "file", "", opts(&file))
        .await
        .unwrap();
    let req = secret_request();
    let resp = new_token_response();
    broker.log_request(&req).await.unwrap();
    broker.log_response(&req, Ok(&resp)).await.unwrap();

    let text = std::fs::read_to_string(&file).unwrap();
    for plain in [
        "hunter2-plain",
        "deep-plain",
        "hvs.client-token-plain",
        "accessor-plain-123",
        "hvs.issued-token-plain",
        "issued-accessor-plain",
        "response-secret-plain",
    ] {
        assert!(!text.contains(plain), "{plain} written in clear");
    }
    assert_eq!(verify_file(&file).lines, 2);

    let entries = lines(&file);
    assert_eq!(entries[0]["type"], "request");
    assert_eq!(entries[1]["type"], "response");
    let r = &entries[0]["request"];
    assert_eq!(r["path"], "secret/data/app");
    assert_eq!(r["operation"], "update");
    assert_eq!(r["mount_type"], "kv");
    assert_eq!(r["namespace"]["id"], "root");
    assert_eq!(r["remote_address"], "127.0.0.1");
    assert_eq!(entries[0]["auth"]["display_name"], "token-ci");
    assert_eq!(entries[0]["auth"]["policies"], json!(["default", "app"]));
    assert_eq!(entries[0]["request"]["id"], entries[1]["request"]["id"]);

    // sys/audit-hash gives what the file holds.
    let hashed = broker.hash("file", "hunter2-plain").await.unwrap();
    assert_eq!(r["data"]["data"]["password"], hashed);
    let token_hash = broker
        .hash("file/", "hvs.client-token-plain")
        .await
        .unwrap();
    assert_eq!(entries[0]["auth"]["client_token"], token_hash);
    assert_eq!(r["client_token"], token_hash);
    let acc_hash = broker.hash("file", "accessor-plain-123").await.unwrap();
    assert_eq!(r["client_token_accessor"], acc_hash);
    let issued = broker.hash("file", "hvs.issued-token-plain").await.unwrap();
    assert_eq!(entries[1]["response"]["auth"]["client_token"], issued);
}

#[tokio::test]
async fn files_are_created_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    broker
        .enable("file", "file", "", opts(&file))
        .await
        .unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn restart_continues_the_chain_with_the_same_salt() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let view = view().await;
    let broker = AuditBroker::open(view.clone()).await.unwrap();
    broker
        .enable("file", "file", "main log", opts(&file))
        .await
        .unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    let before = broker.hash("file", "x").await.unwrap();
    drop(broker);

    let broker = AuditBroker::open(view).await.unwrap();
    assert!(broker.is_enabled());
    assert_eq!(broker.hash("file", "x").await.unwrap(), before);
    assert_eq!(broker.list()["file/"]["hash_chain"]["seq"], 2);
    broker.log_request(&secret_request()).await.unwrap();
    let summary = verify_file(&file);
    assert_eq!(summary.lines, 3);
    let listed = broker.list();
    assert_eq!(listed["file/"]["hash_chain"]["seq"], 3);
    assert_eq!(
        listed["file/"]["hash_chain"]["last_hash"],
        summary.last_hash
    );
}

#[tokio::test]
async fn list_has_vaults_shape() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    assert_eq!(broker.list(), json!({}));
    assert!(!broker.is_enabled());
    broker
        .enable("/ops/", "file", "ops log", opts(&file))
        .await
        .unwrap();
    let listed = broker.list();
    let d = &listed["ops/"];
    assert_eq!(d["type"], "file");
    assert_eq!(d["description"], "ops log");
    assert_eq!(d["path"], "ops/");
    assert_eq!(d["local"], false);
    assert_eq!(d["options"]["file_path"], file.display().to_string());
    assert!(broker.is_enabled());
}

#[tokio::test]
async fn removed_directory_makes_audit_fail_after_restart_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("audit.log");
    let view = view().await;
    let broker = AuditBroker::open(view.clone()).await.unwrap();
    broker
        .enable("file", "file", "", opts(&file))
        .await
        .unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    std::fs::remove_dir_all(&sub).unwrap();

    // SIGHUP-style reopen finds the directory gone.
    broker.reopen().await;
    let err = broker.log_request(&secret_request()).await.unwrap_err();
    assert!(matches!(err, LogicalError::AuditFailed(_)), "{err}");
    assert_eq!(err.status(), 500);
    drop(broker);

    // A restart keeps the device and fails its writes.
    let broker = AuditBroker::open(view).await.unwrap();
    assert!(broker.is_enabled());
    let err = broker
        .log_response(&secret_request(), Err(&LogicalError::PermissionDenied))
        .await;
    assert!(matches!(err, Err(LogicalError::AuditFailed(_))));

    // It recovers once the directory is back.
    std::fs::create_dir(&sub).unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    assert_eq!(verify_file(&file).lines, 1);
}

#[tokio::test]
async fn one_failing_device_of_two_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    broker
        .enable("full", "file", "", opts(Path::new("/dev/full")))
        .await
        .unwrap();
    let err = broker.log_request(&secret_request()).await.unwrap_err();
    assert!(matches!(err, LogicalError::AuditFailed(_)));

    broker
        .enable("good", "file", "", opts(&good))
        .await
        .unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    assert_eq!(verify_file(&good).lines, 1);
}

#[tokio::test]
async fn no_devices_means_nothing_to_do() {
    let broker = AuditBroker::open(view().await).await.unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    broker
        .log_response(&secret_request(), Ok(&Response::empty()))
        .await
        .unwrap();
}

#[tokio::test]
async fn enable_rejects_bad_input_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    let expect_400 = |r: Result<(), LogicalError>, needle: &str| {
        let err = r.unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    };
    expect_400(
        broker.enable("s", "syslog", "", opts(&file)).await,
        "unsupported audit device type",
    );
    expect_400(
        broker.enable("f", "file", "", BTreeMap::new()).await,
        "file_path is required",
    );
    expect_400(
        broker.enable("", "file", "", opts(&file)).await,
        "missing audit device path",
    );
    let missing = dir.path().join("nope/audit.log");
    expect_400(
        broker.enable("f", "file", "", opts(&missing)).await,
        "nope/audit.log",
    );
    expect_400(
        broker.enable("f", "file", "", opts(&missing)).await,
        "No such file",
    );
    for (k, v, needle) in [
        ("log_raw", "true", "log_raw"),
        ("mode", "0755", "executable"),
        ("mode", "rw", "invalid mode"),
        ("format", "jsonx", "unsupported format"),
        ("hmac_accessor", "maybe", "true or false"),
        ("filter", "x", "unknown option"),
    ] {
        let mut o = opts(&file);
        o.insert(k.into(), v.into());
        expect_400(broker.enable("f", "file", "", o).await, needle);
    }
    assert!(
        !broker.is_enabled(),
        "no failed enable may leave a device behind"
    );

    broker.enable("f", "file", "", opts(&file)).await.unwrap();
    let other = dir.path().join("other.log");
    expect_400(
        broker.enable("f/", "file", "", opts(&other)).await,
        "path already in use",
    );
    expect_400(
        broker.enable("g", "file", "", opts(&file)).await,
        "already written by",
    );
}

#[tokio::test]
async fn foreign_file_is_refused_at_enable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.log");
    std::fs::write(&file, "not an audit log\n").unwrap();
    let broker = AuditBroker::open(view().await).await.unwrap();
    let err = broker
        .enable("f", "file", "", opts(&file))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("not hush audit entries"), "{err}");
}

#[tokio::test]
async fn disable_stops_writing_and_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let view = view().await;
    let broker = AuditBroker::open(view.clone()).await.unwrap();
    broker
        .enable("file", "file", "", opts(&file))
        .await
        .unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    broker.disable("file/").await.unwrap();
    broker.disable("never-enabled").await.unwrap();
    assert!(!broker.is_enabled());
    broker.log_request(&secret_request()).await.unwrap();
    assert_eq!(verify_file(&file).lines, 1);
    let err = broker.hash("file", "x").await.unwrap_err();
    assert_eq!(err.status(), 400);

    let broker = AuditBroker::open(view).await.unwrap();
    assert!(!broker.is_enabled());
}

#[tokio::test]
async fn hmac_accessor_false_keeps_accessors_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    let mut o = opts(&file);
    o.insert("hmac_accessor".into(), "false".into());
    broker.enable("file", "file", "", o).await.unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    let entries = lines(&file);
    assert_eq!(entries[0]["auth"]["accessor"], "accessor-plain-123");
    assert!(!entries[0]["auth"]["client_token"]
        .as_str()
        .unwrap()
        .contains("plain"));
}

#[tokio::test]
async fn discard_device_accepts_everything() {
    let broker = AuditBroker::open(view().await).await.unwrap();
    let o = BTreeMap::from([("file_path".to_string(), "discard".to_string())]);
    broker.enable("null", "file", "", o).await.unwrap();
    broker.log_request(&secret_request()).await.unwrap();
    assert_eq!(broker.list()["null/"]["hash_chain"]["seq"], 1);
}

#[tokio::test]
async fn path_is_the_old_name_of_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.log");
    let broker = AuditBroker::open(view().await).await.unwrap();
    let o = BTreeMap::from([("path".to_string(), file.display().to_string())]);
    broker.enable("old", "file", "", o).await.unwrap();
    // Listed as given, as Vault does.
    assert_eq!(
        broker.list()["old/"]["options"]["path"],
        file.display().to_string()
    );
    broker.log_request(&secret_request()).await.unwrap();
    assert_eq!(lines(&file).len(), 1);
}

#[tokio::test]
async fn hash_of_a_device_not_enabled_names_it_as_vault_does() {
    let broker = AuditBroker::open(view().await).await.unwrap();
    let err = broker.hash("nope", "x").await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_string(), r#"unknown audit backend "nope/""#);
}

#[test]
fn debug_shows_paths_only() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let broker = AuditBroker::open(view().await).await.unwrap();
        broker
            .enable("file", "file", "", opts(&dir.path().join("a.log")))
            .await
            .unwrap();
        let dbg = format!("{broker:?}");
        assert!(dbg.contains("file/"));
        assert!(!dbg.contains("salt"));
    });
}

#[tokio::test]
async fn a_failing_device_is_told_to_webhooks_once_per_window() {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(backend));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let hooks = crate::core::webhooks::Webhooks::open(
        barrier.clone(),
        BarrierView::new(barrier.clone(), "sys/webhooks/"),
        crate::metrics::Metrics::new().webhooks(),
    )
    .await
    .unwrap();
    let cfg = json!({"url": "http://127.0.0.1:9/", "events": ["audit.failed"],
        "secret": "0123456789abcdef"});
    hooks
        .write("audit", cfg.as_object().unwrap())
        .await
        .unwrap();
    let broker = AuditBroker::open(BarrierView::new(barrier, "core/audit/"))
        .await
        .unwrap()
        .with_webhooks(hooks.clone());
    broker
        .enable("full", "file", "", opts(Path::new("/dev/full")))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(broker.log_request(&secret_request()).await.is_err());
    }
    // Queued in the background: one event for three failures.
    let mut list = Value::Null;
    for _ in 0..100 {
        list = hooks.deliveries("audit", 10).await.unwrap();
        if list["pending"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let d = &list["deliveries"].as_array().unwrap()[..];
    assert_eq!(d.len(), 1, "{list}");
    assert_eq!(
        (d[0]["type"].as_str(), d[0]["path"].as_str()),
        (Some("audit.failed"), Some("sys/audit/full"))
    );
}

//! Tests of the engine's API that need no database: configs stored with
//! `verify_connection=false`, and refusals that come before any connection. The tests
//! against a real PostgreSQL cluster are in the `tests` crate (`tests/tests/database.rs`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::barrier::{Barrier, KeyBytes};
use crate::storage::MemoryBackend;

const ROOT_PW: &str = "r00t-Secret-pw";

async fn engine() -> DatabaseBackend {
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(backend));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    DatabaseBackend::new(BarrierView::new(barrier, "logical/db/"))
        .await
        .unwrap()
}

async fn call(
    db: &DatabaseBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    let mut req = Request::new(op, format!("database/{path}")).with_data(body);
    req.mount_point = "database/".into();
    db.handle(&req).await
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_body(port: u16) -> Value {
    json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/postgres?sslmode=disable"),
        "username": "root",
        "password": ROOT_PW,
        "allowed_roles": "ro, app-*",
        "verify_connection": false,
    })
}

fn err_text(r: Result<Response, LogicalError>) -> (u16, String) {
    let e = r.expect_err("expected an error");
    (e.status(), e.to_string())
}

#[tokio::test]
async fn config_round_trip_hides_the_password() {
    let db = engine().await;
    call(
        &db,
        Operation::Update,
        "config/pg",
        config_body(dead_port()),
    )
    .await
    .unwrap();
    let data = call(&db, Operation::Read, "config/pg", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    let text = serde_json::to_string(&data).unwrap();
    assert!(!text.contains(ROOT_PW), "{text}");
    assert_eq!(data["plugin_name"], "postgresql-database-plugin");
    assert_eq!(data["allowed_roles"], json!(["ro", "app-*"]));
    assert_eq!(data["connection_details"]["username"], "root");
    assert_eq!(data["connection_details"]["max_open_connections"], 4);
    assert_eq!(data["verify_connection"], false);
    let keys = call(&db, Operation::List, "config", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(keys["keys"], json!(["pg"]));
    // An update keeps what it does not name.
    call(
        &db,
        Operation::Update,
        "config/pg",
        json!({"allowed_roles": ["*"], "verify_connection": false}),
    )
    .await
    .unwrap();
    let data = call(&db, Operation::Read, "config/pg", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["allowed_roles"], json!(["*"]));
    assert_eq!(data["connection_details"]["username"], "root");
    call(&db, Operation::Delete, "config/pg", json!({}))
        .await
        .unwrap();
    let (status, _) = err_text(call(&db, Operation::Read, "config/pg", json!({})).await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn literal_password_in_url_is_masked_and_warned_about() {
    let db = engine().await;
    let mut body = config_body(dead_port());
    body["connection_url"] = json!("postgresql://root:hunter2@127.0.0.1:1/postgres");
    let resp = call(&db, Operation::Update, "config/pg", body)
        .await
        .unwrap();
    assert_eq!(resp.warnings.len(), 1);
    let data = call(&db, Operation::Read, "config/pg", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    let url = data["connection_details"]["connection_url"]
        .as_str()
        .unwrap();
    assert_eq!(url, "postgresql://root:*****@127.0.0.1:1/postgres");
    // Rotating would leave the literal password behind: refused before any connection.
    let (status, msg) = err_text(call(&db, Operation::Update, "rotate-root/pg", json!({})).await);
    assert_eq!(status, 400);
    assert!(msg.contains("templated url"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn bad_configs_are_400() {
    let db = engine().await;
    let mut no_plugin = config_body(1);
    no_plugin.as_object_mut().unwrap().remove("plugin_name");
    let mut wrong_plugin = config_body(1);
    wrong_plugin["plugin_name"] = json!("mysql-database-plugin");
    let mut no_url = config_body(1);
    no_url.as_object_mut().unwrap().remove("connection_url");
    let mut bad_ssl = config_body(1);
    bad_ssl["connection_url"] = json!("postgres://h/db?sslmode=maybe");
    let mut bad_auth = config_body(1);
    bad_auth["password_authentication"] = json!("md5");
    for body in [no_plugin, wrong_plugin, no_url, bad_ssl, bad_auth] {
        let (status, msg) = err_text(call(&db, Operation::Update, "config/pg", body).await);
        assert_eq!(status, 400, "{msg}");
        assert!(!msg.contains(ROOT_PW), "{msg}");
    }
    let (status, _) = err_text(call(&db, Operation::Update, "config/a%2Fb", config_body(1)).await);
    assert_eq!(status, 400);
    assert!(call(&db, Operation::List, "config", json!({}))
        .await
        .unwrap()
        .data
        .unwrap()["keys"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn verify_connection_failure_is_400_without_the_password() {
    let db = engine().await;
    let mut body = config_body(dead_port());
    body["verify_connection"] = json!(true);
    let (status, msg) = err_text(call(&db, Operation::Update, "config/pg", body).await);
    assert_eq!(status, 400);
    assert!(msg.contains("error verifying connection"), "{msg}");
    assert!(!msg.contains(ROOT_PW), "{msg}");
    // Nothing stored.
    let (status, _) = err_text(call(&db, Operation::Read, "config/pg", json!({})).await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn roles_round_trip_and_list() {
    let db = engine().await;
    let body = json!({
        "db_name": "pg",
        "creation_statements": "CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}'",
        "default_ttl": "1h",
        "max_ttl": 86400,
    });
    call(&db, Operation::Update, "roles/ro", body)
        .await
        .unwrap();
    let data = call(&db, Operation::Read, "roles/ro", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["db_name"], "pg");
    assert_eq!(data["default_ttl"], 3600);
    assert_eq!(data["max_ttl"], 86400);
    assert_eq!(data["creation_statements"].as_array().unwrap().len(), 1);
    assert_eq!(data["revocation_statements"], json!([]));
    let keys = call(&db, Operation::List, "roles/", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(keys["keys"], json!(["ro"]));
    let (status, msg) = err_text(
        call(
            &db,
            Operation::Update,
            "roles/bad",
            json!({"db_name": "pg"}),
        )
        .await,
    );
    assert_eq!((status, msg.as_str()), (400, "empty creation statements"));
    call(&db, Operation::Delete, "roles/ro", json!({}))
        .await
        .unwrap();
    let (status, _) = err_text(call(&db, Operation::Read, "roles/ro", json!({})).await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn creds_refuse_unknown_and_disallowed_roles_before_connecting() {
    let db = engine().await;
    call(
        &db,
        Operation::Update,
        "config/pg",
        config_body(dead_port()),
    )
    .await
    .unwrap();
    let role = json!({"db_name": "pg", "creation_statements": "SELECT 1"});
    call(&db, Operation::Update, "roles/other", role.clone())
        .await
        .unwrap();
    call(&db, Operation::Update, "roles/app-ro", role.clone())
        .await
        .unwrap();
    let (status, msg) = err_text(call(&db, Operation::Read, "creds/other", json!({})).await);
    assert_eq!(status, 400);
    assert_eq!(msg, "\"other\" is not an allowed role");
    let (status, msg) = err_text(call(&db, Operation::Read, "creds/nope", json!({})).await);
    assert_eq!((status, msg.as_str()), (400, "unknown role: nope"));
    // Allowed by the glob: gets as far as connecting, which fails cleanly.
    let (status, msg) = err_text(call(&db, Operation::Read, "creds/app-ro", json!({})).await);
    assert_eq!(status, 500, "{msg}");
    assert!(!msg.contains(ROOT_PW), "{msg}");
    // A role on a database with no config.
    call(
        &db,
        Operation::Update,
        "roles/ro",
        json!({"db_name": "missing", "creation_statements": "x"}),
    )
    .await
    .unwrap();
    let (status, msg) = err_text(call(&db, Operation::Read, "creds/ro", json!({})).await);
    assert_eq!(status, 400);
    assert!(msg.contains("\"missing\" not found"), "{msg}");
}

#[tokio::test]
async fn static_roles_check_their_fields() {
    let db = engine().await;
    call(
        &db,
        Operation::Update,
        "config/pg",
        config_body(dead_port()),
    )
    .await
    .unwrap();
    let cases = [
        (
            json!({"db_name": "pg", "username": "app", "rotation_period": 4}),
            "5 seconds",
        ),
        (json!({"db_name": "pg", "rotation_period": 60}), "username"),
        (
            json!({"username": "app", "rotation_period": 60}),
            "database name",
        ),
        (
            json!({"db_name": "pg", "username": "app"}),
            "rotation_period",
        ),
    ];
    for (body, needle) in cases {
        let (status, msg) = err_text(call(&db, Operation::Update, "static-roles/ro", body).await);
        assert_eq!(status, 400, "{msg}");
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
    let (status, msg) = err_text(
        call(
            &db,
            Operation::Update,
            "static-roles/not-allowed",
            json!({"db_name": "pg", "username": "app", "rotation_period": 60}),
        )
        .await,
    );
    assert_eq!(status, 400);
    assert!(msg.contains("not an allowed role"), "{msg}");
    let (status, _) = err_text(call(&db, Operation::Read, "static-creds/ro", json!({})).await);
    assert_eq!(status, 400);
    let (status, _) = err_text(call(&db, Operation::Update, "rotate-role/ro", json!({})).await);
    assert_eq!(status, 400);
    let keys = call(&db, Operation::List, "static-roles", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(keys["keys"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn lease_operations_need_a_lease_and_a_database() {
    let db = engine().await;
    let (status, _) = err_text(call(&db, Operation::Renew, "creds/ro", json!({})).await);
    assert_eq!(status, 400);
    let mut req = Request::new(Operation::Revoke, "database/creds/ro");
    req.mount_point = "database/".into();
    let mut internal = crate::logical::Data::new();
    internal.insert("username".into(), json!("v-x"));
    internal.insert("role".into(), json!("gone"));
    internal.insert("db_name".into(), json!("gone"));
    let now = chrono::Utc::now();
    req.lease = Some(crate::logical::LeaseContext {
        lease_id: "database/creds/ro/abc".into(),
        internal,
        issue_time: now,
        expire_time: now,
        increment: 0,
    });
    let (status, msg) = err_text(db.handle(&req).await);
    assert_eq!(status, 400);
    assert!(msg.contains("\"gone\" not found"), "{msg}");
}

#[tokio::test]
async fn routes_and_operations() {
    let db = engine().await;
    for path in ["nothing", "creds", "creds/", "bogus/x"] {
        let (status, _) = err_text(call(&db, Operation::Read, path, json!({})).await);
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = err_text(call(&db, Operation::Update, "creds/ro", json!({})).await);
    assert_eq!(status, 405);
    let (status, _) = err_text(call(&db, Operation::Read, "roles", json!({})).await);
    assert_eq!(status, 405);
    let mut req = Request::new(Operation::Update, "database/config/pg");
    req.mount_point = "database/".into();
    assert_eq!(db.exists(&req).await.unwrap(), Some(false));
    call(&db, Operation::Update, "config/pg", config_body(1))
        .await
        .unwrap();
    assert_eq!(db.exists(&req).await.unwrap(), Some(true));
    assert!(!format!("{db:?}").contains(ROOT_PW));
    db.cleanup().await;
    assert!(db.cancel.is_cancelled());
}

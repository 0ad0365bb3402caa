//! The database secrets engine against a real PostgreSQL cluster started by the harness:
//! over HTTP against a real hushd, and (for lease renewal and revocation, which only the
//! expiration manager sends) against the engine in-process.

use std::sync::Arc;
use std::time::Duration;

use hush_store::logical::{
    Data, LeaseContext, LogicalBackend, Operation, Request, Response, SecretLease,
};
use hush_tests::pg::{Postgres, ENGINE_PASSWORD, ENGINE_USER};
use hush_tests::{http_client, wait_for, Hushd};
use serde_json::{json, Value};

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                      GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";

fn config(pg: &Postgres, password: &str, allowed: Value) -> Value {
    json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.template_url("sslmode=disable"),
        "username": ENGINE_USER,
        "password": password,
        "allowed_roles": allowed,
    })
}

async fn mount(h: &Hushd) {
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/database",
            Some(json!({"type": "database"})),
        )
        .await;
    assert_eq!(s, 204, "mount: {b}");
}

/// A dev hushd with `database/` mounted and configured against `pg`, role `ro` created.
async fn hushd_with_db(pg: &Postgres) -> Hushd {
    let h = Hushd::dev().await;
    mount(&h).await;
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(config(pg, ENGINE_PASSWORD, json!(["ro", "static-*"]))),
        )
        .await;
    assert!(s == 204 || s == 200, "config: {s} {b}");
    let (s, b) = h
        .call(
            "POST",
            "database/roles/ro",
            Some(json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h"})),
        )
        .await;
    assert_eq!(s, 204, "role: {b}");
    h
}

async fn creds(h: &Hushd, role: &str) -> (String, String) {
    let (s, b) = h.call("GET", &format!("database/creds/{role}"), None).await;
    assert_eq!(s, 200, "creds: {b}");
    (
        b["data"]["username"].as_str().unwrap().to_string(),
        b["data"]["password"].as_str().unwrap().to_string(),
    )
}

async fn count_things(pg: &Postgres, user: &str, password: &str) -> i64 {
    let client = pg.connect(user, password).await.expect("login");
    client
        .query_one("SELECT count(*) FROM public.things", &[])
        .await
        .expect("select")
        .get(0)
}

#[tokio::test]
async fn config_verifies_and_creds_log_in_and_select() {
    let pg = Postgres::start().await;
    let h = Hushd::dev().await;
    mount(&h).await;
    // A wrong root password: 400, and the message names no password.
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(config(&pg, "Wrong-Pw-123", json!(["ro"]))),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let text = b.to_string();
    assert!(text.contains("error verifying connection"), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("Wrong-Pw-123") && !text.contains(ENGINE_PASSWORD),
        "{text}"
    );
    drop(h);
    let h = hushd_with_db(&pg).await;
    let (s, b) = h.call("GET", "database/config/pg", None).await;
    assert_eq!(s, 200);
    assert!(!b.to_string().contains(ENGINE_PASSWORD), "{b}");
    let (user, password) = creds(&h, "ro").await;
    assert!(user.starts_with("v-root-ro-"), "{user}");
    assert!(password.len() >= 20);
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    assert!(pg.valid_until(&user).await.is_some());
    // A wrong password does not log in as that user.
    assert!(pg.connect(&user, "not-it").await.is_err());
    // Two leases, two users.
    let (user2, _) = creds(&h, "ro").await;
    assert_ne!(user, user2);
    // hushd's logs never hold the root or the generated password.
    let log = h.stderr();
    assert!(!log.contains(ENGINE_PASSWORD) && !log.contains(&password));
}

/// Write role `other` with `creation_statements`, then ask for its creds.
async fn other_role_creds(h: &Hushd, creation_statements: &str) -> (u16, Value) {
    let body = json!({"db_name": "pg", "creation_statements": creation_statements});
    let (s, b) = h.call("POST", "database/roles/other", Some(body)).await;
    assert_eq!(s, 204, "{b}");
    h.call("GET", "database/creds/other", None).await
}

#[tokio::test]
async fn allowed_roles_and_bad_statements_are_clean_400s() {
    let pg = Postgres::start().await;
    let h = hushd_with_db(&pg).await;
    let (s, b) = other_role_creds(&h, CREATE).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["errors"][0], "\"other\" is not an allowed role");
    // Allow everything, then break the statements: the database's message comes back with
    // the generated password scrubbed out.
    let body = json!({"allowed_roles": "*", "password": ENGINE_PASSWORD});
    let (s, b) = h.call("POST", "database/config/pg", Some(body)).await;
    assert!(s == 204 || s == 200, "{b}");
    let (s, b) = other_role_creds(&h, "SELECT '{{password}}'::int").await;
    assert_eq!(s, 400, "{b}");
    let msg = b["errors"][0].as_str().unwrap();
    assert!(
        msg.contains("invalid input syntax for type integer"),
        "{msg}"
    );
    assert!(msg.contains("[redacted]"), "{msg}");
    assert!(!msg.contains(ENGINE_PASSWORD), "{msg}");
    // Nothing was left behind by the failed transaction.
    let n: i64 = pg
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let (s, b) = other_role_creds(&h, "CREATE ROLE \"{{name}}\" NONSENSE").await;
    assert_eq!(s, 400, "{b}");
    let msg = b["errors"][0].as_str().unwrap();
    assert!(msg.contains("unrecognized role option"), "{msg}");
}

#[tokio::test]
async fn rotate_root_changes_the_password_and_the_engine_still_works() {
    let pg = Postgres::start().await;
    let h = hushd_with_db(&pg).await;
    assert!(pg.connect(ENGINE_USER, ENGINE_PASSWORD).await.is_ok());
    let (s, b) = h.call("POST", "database/rotate-root/pg", None).await;
    assert_eq!(s, 204, "{b}");
    assert!(
        pg.connect(ENGINE_USER, ENGINE_PASSWORD).await.is_err(),
        "old root password still logs in"
    );
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    let (s, b) = h.call("POST", "database/reset/pg", None).await;
    assert_eq!(s, 204, "{b}");
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    let (s, b) = h.call("GET", "database/config/pg", None).await;
    assert_eq!(s, 200);
    assert!(!b.to_string().contains(ENGINE_PASSWORD));
    let (s, _) = h.call("POST", "database/rotate-root/nope", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn scram_password_authentication_keeps_plain_passwords_out_of_sql() {
    let pg = Postgres::start().await;
    let h = hushd_with_db(&pg).await;
    let body = json!({"password_authentication": "scram-sha-256", "max_connection_lifetime": "1m"});
    let (s, b) = h.call("POST", "database/config/pg", Some(body)).await;
    assert!(s == 204 || s == 200, "{b}");
    let (s, b) = h.call("GET", "database/config/pg", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["data"]["connection_details"]["password_authentication"],
        "scram-sha-256"
    );
    assert_eq!(
        b["data"]["connection_details"]["max_connection_lifetime"],
        "1m0s"
    );
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    let stored: String = pg
        .admin()
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    // Root rotation goes the same way and the engine keeps working.
    let (s, b) = h.call("POST", "database/rotate-root/pg", None).await;
    assert_eq!(s, 204, "{b}");
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    // The last statement of the engine's session was that CREATE ROLE: it carried the SCRAM
    // verifier, not the plain password (with `password` it would hold the password itself).
    let last: Vec<String> = pg
        .admin()
        .await
        .query(
            "SELECT query FROM pg_stat_activity WHERE usename = $1",
            &[&ENGINE_USER],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(last.iter().all(|q| !q.contains(&password)), "{last:?}");
}

/// A password policy with symbols PostgreSQL takes inside '...' (no quote), 32 characters.
const DB_POLICY: &str = r##"length = 32
rule "charset" {
  charset = "abcdefghijkmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "ABCDEFGHJKLMNPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset = "23456789"
  min-chars = 3
}
rule "charset" {
  charset = "#%+=:.!"
  min-chars = 3
}
"##;

#[tokio::test]
async fn a_password_policy_shapes_dynamic_static_and_root_passwords() {
    let pg = Postgres::start().await;
    pg.admin()
        .await
        .batch_execute("CREATE ROLE app_pw LOGIN PASSWORD 'Initial-Pw-1'; GRANT SELECT ON public.things TO app_pw;")
        .await
        .unwrap();
    let h = hushd_with_db(&pg).await;
    // A policy that does not exist is refused when the connection names it.
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(json!({"password_policy": "db"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let msg = b["errors"][0].as_str().unwrap();
    assert!(
        msg.contains("password_policy") && msg.contains("\"db\" does not exist"),
        "{msg}"
    );
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/password/db",
            Some(json!({"policy": DB_POLICY})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(json!({"password_policy": "db"})),
        )
        .await;
    assert!(s == 204 || s == 200, "{b}");
    let (s, b) = h.call("GET", "database/config/pg", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["password_policy"], "db");

    let policy = hush_store::logical::password::PasswordPolicy::parse(DB_POLICY).unwrap();
    for _ in 0..5 {
        let (user, password) = creds(&h, "ro").await;
        assert!(policy.satisfied_by(&password), "{password}");
        assert_eq!(count_things(&pg, &user, &password).await, 2);
    }
    // Static roles and root rotation draw from it too; the engine still logs in as root.
    let (s, b) = h
        .call(
            "POST",
            "database/static-roles/static-pw",
            Some(json!({"db_name": "pg", "username": "app_pw", "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let data = static_creds(&h, "static-pw").await;
    let password = data["password"].as_str().unwrap();
    assert!(policy.satisfied_by(password), "{password}");
    pg.connect("app_pw", password).await.expect("static login");
    let (s, b) = h.call("POST", "database/rotate-root/pg", None).await;
    assert_eq!(s, 204, "{b}");
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);

    // Without the policy, credentials are a 400 naming it, not a default password.
    let (s, _) = h.call("DELETE", "sys/policies/password/db", None).await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "database/creds/ro", None).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["errors"][0], "password policy \"db\" does not exist",
        "{b}"
    );
    // Clearing it goes back to Vault's default policy.
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(json!({"password_policy": ""})),
        )
        .await;
    assert!(s == 204 || s == 200, "{b}");
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(password.len(), 24);
    assert!(password
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    assert_eq!(count_things(&pg, &user, &password).await, 2);
}

async fn static_creds(h: &Hushd, name: &str) -> Value {
    let (s, b) = h
        .call("GET", &format!("database/static-creds/{name}"), None)
        .await;
    assert_eq!(s, 200, "static-creds: {b}");
    b["data"].clone()
}

#[tokio::test]
async fn static_roles_rotate_on_schedule_and_across_a_restart() {
    let pg = Postgres::start().await;
    pg.admin()
        .await
        .batch_execute("CREATE ROLE app_static LOGIN PASSWORD 'Initial-Pw-1'; GRANT SELECT ON public.things TO app_static;")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    mount(&h).await;
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(config(&pg, ENGINE_PASSWORD, json!(["static-*"]))),
        )
        .await;
    assert!(s == 204 || s == 200, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "database/static-roles/static-app",
            Some(json!({"db_name": "pg", "username": "app_static", "rotation_period": "1h"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    // Taken over at once: the initial password is gone.
    assert!(pg.connect("app_static", "Initial-Pw-1").await.is_err());
    let first = static_creds(&h, "static-app").await;
    assert_eq!(first["username"], "app_static");
    assert_eq!(first["rotation_period"], 3600);
    assert!(first["ttl"].as_u64().unwrap() > 3500);
    let pw1 = first["password"].as_str().unwrap().to_string();
    assert_eq!(count_things(&pg, "app_static", &pw1).await, 2);
    // rotate-role: now.
    let (s, b) = h
        .call("POST", "database/rotate-role/static-app", None)
        .await;
    assert_eq!(s, 204, "{b}");
    let pw2 = static_creds(&h, "static-app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(pw1, pw2);
    assert!(pg.connect("app_static", &pw1).await.is_err());
    assert_eq!(count_things(&pg, "app_static", &pw2).await, 2);
    let (s, b) = h
        .call("GET", "database/static-roles/static-app", None)
        .await;
    assert_eq!(s, 200);
    assert!(b["data"].get("password").is_none(), "{b}");
    // On schedule: a 5 s period.
    let (s, b) = h
        .call(
            "POST",
            "database/static-roles/static-app",
            Some(json!({"rotation_period": 5})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let pw3 = wait_for_new_password(&h, &pw2).await;
    assert_eq!(count_things(&pg, "app_static", &pw3).await, 2);
    // A restart (kill -9) continues the schedule from storage.
    h.kill9();
    let mut h2 = Hushd::start(&args, "http", http_client()).await;
    h2.unseal(&key).await;
    h2.token = h.token.clone();
    let pw4 = wait_for_new_password(&h2, &pw3).await;
    assert_eq!(count_things(&pg, "app_static", &pw4).await, 2);
    // A static role needs an allowed name.
    let (s, b) = h2
        .call(
            "POST",
            "database/static-roles/plain",
            Some(json!({"db_name": "pg", "username": "app_static", "rotation_period": 60})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

/// Poll static-creds until the password differs from `old` (rotation period 5 s).
async fn wait_for_new_password(h: &Hushd, old: &str) -> String {
    for _ in 0..100 {
        let now = static_creds(h, "static-app").await;
        let pw = now["password"].as_str().unwrap();
        if pw != old {
            return pw.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the static role's password did not rotate within 20 s");
}

#[tokio::test]
async fn tls_verify_full_against_a_tls_only_cluster() {
    let pg = Postgres::start_tls().await;
    let ca = pg.ca.clone().unwrap();
    let h = Hushd::dev().await;
    mount(&h).await;
    let mut body = config(&pg, ENGINE_PASSWORD, json!("*"));
    // Plain TCP is refused by this cluster's pg_hba.
    let (s, b) = h
        .call("POST", "database/config/pg", Some(body.clone()))
        .await;
    assert_eq!(s, 400, "{b}");
    body["connection_url"] =
        json!(pg.template_url(&format!("sslmode=verify-full&sslrootcert={}", ca.display())));
    let (s, b) = h.call("POST", "database/config/pg", Some(body)).await;
    assert!(s == 204 || s == 200, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "database/roles/ro",
            Some(json!({"db_name": "pg", "creation_statements": CREATE})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (user, _) = creds(&h, "ro").await;
    assert!(pg.role_exists(&user).await);
    let ssl: bool = pg
        .admin()
        .await
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1",
            &[&ENGINE_USER],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the engine's sessions are not encrypted");
}

// ---- lease renewal and revocation, sent to the engine as the expiration manager does ----

async fn engine(pg: &Postgres) -> Arc<dyn LogicalBackend> {
    use hush_store::barrier::{Barrier, BarrierView, KeyBytes};
    let storage = Arc::new(hush_store::storage::MemoryBackend::new());
    let barrier = Arc::new(Barrier::new(storage));
    barrier.initialize(&KeyBytes::random()).await.unwrap();
    let view = BarrierView::new(barrier, "logical/db/");
    let db: Arc<dyn LogicalBackend> = Arc::new(
        hush_store::engines::database::DatabaseBackend::new(view)
            .await
            .unwrap(),
    );
    let mut c = config(pg, ENGINE_PASSWORD, json!(["ro"]));
    c["verify_connection"] = json!(true);
    call(&*db, Operation::Update, "config/pg", c).await.unwrap();
    let role = json!({"db_name": "pg", "creation_statements": CREATE, "default_ttl": 600, "max_ttl": 3600});
    call(&*db, Operation::Update, "roles/ro", role)
        .await
        .unwrap();
    db
}

async fn call(
    db: &dyn LogicalBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, hush_store::logical::LogicalError> {
    let mut req = Request::new(op, format!("database/{path}")).with_data(body);
    req.mount_point = "database/".into();
    db.handle(&req).await
}

fn lease_request(
    op: Operation,
    secret: &SecretLease,
    issued: chrono::DateTime<chrono::Utc>,
    increment: u64,
) -> Request {
    let mut req = Request::new(op, "database/creds/ro");
    req.mount_point = "database/".into();
    req.lease = Some(LeaseContext {
        lease_id: "database/creds/ro/test".into(),
        internal: secret.internal.clone(),
        issue_time: issued,
        expire_time: issued + chrono::TimeDelta::seconds(600),
        increment,
    });
    req
}

#[tokio::test]
async fn renew_moves_valid_until_and_revoke_drops_the_user_and_its_sessions() {
    let pg = Postgres::start().await;
    let db = engine(&pg).await;
    let issued = chrono::Utc::now();
    let resp = call(&*db, Operation::Read, "creds/ro", json!({}))
        .await
        .unwrap();
    let secret = resp.secret.clone().expect("a lease");
    assert_eq!(
        (secret.ttl, secret.max_ttl, secret.renewable),
        (600, 3600, true)
    );
    let data: Data = resp.data.unwrap();
    let user = data["username"].as_str().unwrap().to_string();
    let password = data["password"].as_str().unwrap().to_string();
    assert_eq!(secret.internal["username"], json!(user));
    let before = pg.valid_until(&user).await.expect("VALID UNTIL set");
    // Renew by 30 minutes: VALID UNTIL moves to about now + 30 min.
    let renewed = db
        .handle(&lease_request(Operation::Renew, &secret, issued, 1800))
        .await
        .unwrap();
    assert_eq!(renewed.secret.as_ref().unwrap().ttl, 1800);
    let after = pg.valid_until(&user).await.unwrap();
    assert!(after > before, "{after} <= {before}");
    // An increment past max_ttl is capped at issue + 1 h.
    let capped = db
        .handle(&lease_request(Operation::Renew, &secret, issued, 100_000))
        .await
        .unwrap();
    let granted = capped.secret.unwrap().ttl;
    assert!(granted <= 3600 && granted > 3500, "{granted}");
    // Past max_ttl: refused.
    let old = issued - chrono::TimeDelta::seconds(7200);
    let err = db
        .handle(&lease_request(Operation::Renew, &secret, old, 60))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    // Revoke with a session open: the session ends and the role is gone at once.
    let session = pg.connect(&user, &password).await.unwrap();
    session.simple_query("SELECT 1").await.unwrap();
    let done = db
        .handle(&lease_request(Operation::Revoke, &secret, issued, 0))
        .await
        .unwrap();
    assert!(done.data.is_none());
    assert!(!pg.role_exists(&user).await);
    wait_for(Duration::from_secs(5), "the session to end", || {
        session.is_closed()
    })
    .await;
    assert!(pg.connect(&user, &password).await.is_err());
    // Revoking again is harmless (the user is already gone).
    db.handle(&lease_request(Operation::Revoke, &secret, issued, 0))
        .await
        .unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn custom_renew_and_revocation_statements_run() {
    let pg = Postgres::start().await;
    let db = engine(&pg).await;
    let role = json!({
        "db_name": "pg",
        "creation_statements": CREATE,
        "renew_statements": "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'; COMMENT ON ROLE \"{{name}}\" IS 'renewed'",
        "revocation_statements": ["REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"", "DROP ROLE \"{{name}}\""],
        "default_ttl": 60,
    });
    call(&*db, Operation::Update, "roles/ro", role)
        .await
        .unwrap();
    let issued = chrono::Utc::now();
    let resp = call(&*db, Operation::Read, "creds/ro", json!({}))
        .await
        .unwrap();
    let secret = resp.secret.unwrap();
    let user = resp.data.unwrap()["username"].as_str().unwrap().to_string();
    db.handle(&lease_request(Operation::Renew, &secret, issued, 0))
        .await
        .unwrap();
    let comment: Option<String> = pg
        .admin()
        .await
        .query_one(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(comment.as_deref(), Some("renewed"));
    db.handle(&lease_request(Operation::Revoke, &secret, issued, 0))
        .await
        .unwrap();
    assert!(!pg.role_exists(&user).await);
    // A second revoke runs the custom DROP ROLE again: a clean 400, no secret in it.
    let err = db
        .handle(&lease_request(Operation::Revoke, &secret, issued, 0))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(!err.to_string().contains(ENGINE_PASSWORD));
}

// ---- through the expiration manager (sys/leases), once the core registers leases ----

/// Creds under a lease: `sys/leases/renew` moves VALID UNTIL, `sys/leases/revoke` drops the
/// user, and expiry drops it within 2 s of its TTL.
#[tokio::test]
async fn leases_through_the_expiration_manager() {
    let pg = Postgres::start().await;
    let h = hushd_with_db(&pg).await;
    let (s, b) = h.call("GET", "database/creds/ro", None).await;
    assert_eq!(s, 200, "{b}");
    let lease = b["lease_id"].as_str().unwrap_or_default();
    assert!(lease.starts_with("database/creds/ro/"), "{lease}");
    assert_eq!(b["lease_duration"], 3600);
    assert_eq!(b["renewable"], true);
    let user = b["data"]["username"].as_str().unwrap().to_string();
    let before = pg.valid_until(&user).await.unwrap();
    let body = json!({"lease_id": lease, "increment": 7200});
    let (s, b) = h.call("PUT", "sys/leases/renew", Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["lease_duration"], 7200);
    let after = pg.valid_until(&user).await.unwrap();
    assert!(after > before, "{after} <= {before}");
    let body = json!({"lease_id": lease, "sync": true});
    let (s, b) = h.call("PUT", "sys/leases/revoke", Some(body)).await;
    assert!(s == 204 || s == 200, "{b}");
    assert!(!pg.role_exists(&user).await);
    // Expiry drops the user within 2 s of its TTL.
    let role =
        json!({"db_name": "pg", "creation_statements": CREATE, "default_ttl": 2, "max_ttl": 10});
    let (s, b) = h.call("POST", "database/roles/ro", Some(role)).await;
    assert_eq!(s, 204, "{b}");
    let issued = std::time::Instant::now();
    let (user, _) = creds(&h, "ro").await;
    dropped_within(&pg, &user, issued, Duration::from_secs(4)).await;
}

/// Wait for the user to be dropped, at most `limit` after `since`.
async fn dropped_within(pg: &Postgres, user: &str, since: std::time::Instant, limit: Duration) {
    while pg.role_exists(user).await {
        assert!(
            since.elapsed() < limit,
            "{user} still exists {:?} after its lease was issued",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kill -9` of hushd (SQLite) with a dynamic credential's lease outstanding: after restart
/// and unseal the lease still expires on time and the user is dropped.
#[tokio::test]
async fn a_lease_outstanding_across_kill_9_still_expires_on_time() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    mount(&h).await;
    let (s, b) = h
        .call(
            "POST",
            "database/config/pg",
            Some(config(&pg, ENGINE_PASSWORD, json!(["ro"]))),
        )
        .await;
    assert!(s == 204 || s == 200, "{b}");
    let role =
        json!({"db_name": "pg", "creation_statements": CREATE, "default_ttl": 5, "max_ttl": 60});
    let (s, b) = h.call("POST", "database/roles/ro", Some(role)).await;
    assert_eq!(s, 204, "{b}");
    let issued = std::time::Instant::now();
    let (user, password) = creds(&h, "ro").await;
    assert_eq!(count_things(&pg, &user, &password).await, 2);
    h.kill9();
    let h2 = Hushd::start(&args, "http", http_client()).await;
    h2.unseal(&key).await;
    assert!(pg.role_exists(&user).await, "dropped before its TTL");
    dropped_within(&pg, &user, issued, Duration::from_secs(7)).await;
}

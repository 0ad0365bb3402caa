//! hush-agent logs in by itself (`--auth approle`, `--auth kubernetes` in local mode) against a
//! real `hushd --dev`, renders a secret its role's policy allows on a real tmpfs, and with
//! `--once` fails naming a secret the policy does not allow. A `--once` whose login keeps
//! failing (429 after too many refused logins, or a store that cannot be reached) gives up at
//! its `--once-deadline`, naming the last error.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hush_tests::{free_port, Agent, Hushd, Tmpfs};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn ok(h: &Hushd, method: &str, path: &str, body: Value) {
    let (st, b) = h.call(method, path, Some(body)).await;
    assert!(st == 200 || st == 204, "{path}: {st} {b}");
}

/// Policy `app` (read secret/data/app/*) and two secrets, one outside it.
async fn policy_and_secrets(h: &Hushd) {
    ok(
        h,
        "PUT",
        "sys/policies/acl/app",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    h.kv_put("app/db", json!({"password": "allowed-pw"})).await;
    h.kv_put("other/db", json!({"password": "denied-pw"})).await;
}

async fn run_once(args: &[String]) -> (Option<i32>, String) {
    let (code, err, _) = run_timed(args, Duration::from_secs(30)).await;
    (code, err)
}

/// Runs the agent; its exit code, its stderr and how long it ran. Panics when it is still
/// running after `limit`.
async fn run_timed(args: &[String], limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut agent = Agent::spawn(args);
    let status = agent.wait_exit(limit).await;
    let took = started.elapsed();
    let err = agent.stderr();
    let status = status.unwrap_or_else(|| panic!("still running after {took:?}:\n{err}"));
    (status.code(), err, took)
}

/// `--once` at `addr` logging in with the AppRole files `(role_id, secret_id)`, rendering
/// `secret` (`NAME=PATH#FIELD`) into `dest`.
fn once_args(addr: &str, files: (&Path, &Path), dest: &Path, secret: &str) -> Vec<String> {
    [
        "--addr",
        addr,
        "--auth",
        "approle",
        "--role-id-file",
        &s(files.0),
        "--secret-id-file",
        &s(files.1),
        "--dest",
        &s(dest),
        "--secret",
        secret,
        "--once",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// An approle mount and role `app` (policy `app`, with `fields`): its role ID and a secret ID.
async fn approle_app(h: &Hushd, fields: Value) -> (String, String) {
    ok(h, "POST", "sys/auth/approle", json!({"type": "approle"})).await;
    let mut role = json!({"token_policies": ["app"]});
    role.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    ok(h, "POST", "auth/approle/role/app", role).await;
    h.approle_credentials("approle", "app").await
}

#[tokio::test]
async fn approle_login_renders_allowed_and_names_denied() {
    let h = Hushd::dev().await;
    policy_and_secrets(&h).await;
    let (role_id, secret_id) = approle_app(&h, json!({"token_ttl": "10m"})).await;
    let dir = tempfile::tempdir().unwrap();
    let rid = dir.path().join("role-id");
    let sid = dir.path().join("secret-id");
    std::fs::write(&rid, &role_id).unwrap();
    std::fs::write(&sid, &secret_id).unwrap();
    let tmpfs = Tmpfs::new();
    let base = |secret: &str| once_args(&h.addr, (&rid, &sid), &tmpfs.path, secret);
    let (code, err) = run_once(&base("pw=secret/data/app/db#password")).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(),
        "allowed-pw"
    );
    assert!(!err.contains(&secret_id), "the secret_id leaked: {err}");

    let other = Tmpfs::new();
    let mut args = base("other=secret/data/other/db#password");
    let i = args.iter().position(|a| a == &s(&tmpfs.path)).unwrap();
    args[i] = s(&other.path);
    let (code, err) = run_once(&args).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("secret \"secret/data/other/db\""), "{err}");
    assert!(!err.contains(&secret_id), "the secret_id leaked: {err}");
}

#[tokio::test]
async fn token_file_and_auth_together_exit_64() {
    let (code, err) = run_once(
        &[
            "--addr",
            "http://127.0.0.1:1",
            "--token-file",
            "/t",
            "--auth",
            "approle",
            "--role-id-file",
            "/r",
            "--dest",
            "/run",
            "--secret",
            "x=secret/data/x#y",
        ]
        .map(String::from),
    )
    .await;
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("--token-file and --auth are mutually exclusive: give one of them"),
        "{err}"
    );
}

#[tokio::test]
async fn kubernetes_local_login_renders_the_secret() {
    let h = Hushd::dev().await;
    policy_and_secrets(&h).await;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    ok(
        &h,
        "POST",
        "sys/auth/kubernetes",
        json!({"type": "kubernetes"}),
    )
    .await;
    ok(
        &h,
        "POST",
        "auth/kubernetes/config",
        json!({"pem_keys": [kp.public_key_pem()], "issuer": "https://kubernetes.default.svc.cluster.local"}),
    )
    .await;
    ok(
        &h,
        "POST",
        "auth/kubernetes/role/web",
        json!({
            "bound_service_account_names": ["web"],
            "bound_service_account_namespaces": ["prod"],
            "audience": "vault",
            "token_policies": ["app"],
            "token_ttl": "15m",
        }),
    )
    .await;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": ["vault"],
        "sub": "system:serviceaccount:prod:web",
        "exp": t + 600, "iat": t - 5, "nbf": t - 5,
        "kubernetes.io": {
            "namespace": "prod",
            "serviceaccount": {"name": "web", "uid": "sa-uid"},
            "pod": {"name": "web-1", "uid": "pod-uid"},
        },
    });
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let jwt =
        jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), &claims, &enc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("token");
    std::fs::write(&jwt_file, &jwt).unwrap();
    let tmpfs = Tmpfs::new();
    let (code, err) = run_once(
        &[
            "--addr",
            &h.addr,
            "--auth",
            "kubernetes",
            "--role",
            "web",
            "--jwt-file",
            &s(&jwt_file),
            "--dest",
            &s(&tmpfs.path),
            "--secret",
            "pw=secret/data/app/db#password",
            "--once",
        ]
        .map(String::from),
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(),
        "allowed-pw"
    );
    assert!(!err.contains(&jwt), "the JWT leaked: {err}");
}

/// Longest a `--once` with a 3 s deadline may run before the test fails.
const LIMIT: Duration = Duration::from_secs(15);

/// `--once` at `addr` logging in with this AppRole role ID and secret ID, giving up after
/// 3 s: checks it exits 1 in time, saying so. Returns its stderr and destination.
async fn once_gives_up(addr: &str, role_id: &str, secret_id: &str) -> (String, Tmpfs) {
    let dir = tempfile::tempdir().unwrap();
    let (rid, sid) = (dir.path().join("role-id"), dir.path().join("secret-id"));
    std::fs::write(&rid, role_id).unwrap();
    std::fs::write(&sid, secret_id).unwrap();
    let tmpfs = Tmpfs::new();
    let mut args = once_args(
        addr,
        (&rid, &sid),
        &tmpfs.path,
        "pw=secret/data/app/db#password",
    );
    args.extend(["--once-deadline".to_string(), "3s".to_string()]);
    let (code, err, took) = run_timed(&args, LIMIT).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(took < Duration::from_secs(6), "took {took:?}:\n{err}");
    assert!(
        err.contains("--once did not finish within its deadline (3s)"),
        "{err}"
    );
    (err, tmpfs)
}

#[tokio::test]
async fn once_whose_login_keeps_getting_429_exits_1_at_its_deadline() {
    let h = Hushd::dev().await;
    policy_and_secrets(&h).await;
    let (role_id, _) = approle_app(&h, json!({})).await;
    let wrong = "00000000-0000-0000-0000-000000000000";
    // Refused logins until the store throttles this identity (and address): 429.
    let mut throttled = false;
    for _ in 0..50 {
        let body = json!({"role_id": role_id, "secret_id": wrong});
        let (st, _) = h.call("POST", "auth/approle/login", Some(body)).await;
        if st == 429 {
            throttled = true;
            break;
        }
        assert_eq!(st, 400, "a wrong secret_id is refused");
    }
    assert!(throttled, "no 429 after 50 refused logins");
    let (err, tmpfs) = once_gives_up(&h.addr, &role_id, wrong).await;
    assert!(
        err.contains("could not log in at auth/approle/login") && err.contains("429"),
        "the last error is named: {err}"
    );
    assert!(!tmpfs.path.join("pw").exists());
}

#[tokio::test]
async fn once_against_an_unreachable_store_exits_1_at_its_deadline() {
    // Nothing listens there.
    let addr = format!("http://127.0.0.1:{}", free_port());
    let (err, _tmpfs) = once_gives_up(&addr, "some-role-id", "some-secret-id").await;
    assert!(
        err.contains("could not log in at auth/approle/login: could not reach"),
        "the last error is named: {err}"
    );
    assert!(
        !err.contains("some-secret-id"),
        "the secret_id leaked: {err}"
    );
}

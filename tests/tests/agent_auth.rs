//! hush-agent logs in by itself (`--auth approle`, `--auth kubernetes` in local mode) against a
//! real `hushd --dev`, renders a secret its role's policy allows on a real tmpfs, and with
//! `--once` fails naming a secret the policy does not allow.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_tests::{Agent, Hushd, Tmpfs};
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
    let mut agent = Agent::spawn(args);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    (status.code(), agent.stderr())
}

#[tokio::test]
async fn approle_login_renders_allowed_and_names_denied() {
    let h = Hushd::dev().await;
    policy_and_secrets(&h).await;
    ok(&h, "POST", "sys/auth/approle", json!({"type": "approle"})).await;
    ok(
        &h,
        "POST",
        "auth/approle/role/app",
        json!({"token_policies": ["app"], "token_ttl": "10m"}),
    )
    .await;
    let (role_id, secret_id) = h.approle_credentials("approle", "app").await;
    let dir = tempfile::tempdir().unwrap();
    let rid = dir.path().join("role-id");
    let sid = dir.path().join("secret-id");
    std::fs::write(&rid, &role_id).unwrap();
    std::fs::write(&sid, &secret_id).unwrap();
    let tmpfs = Tmpfs::new();
    let base = |secret: &str| -> Vec<String> {
        [
            "--addr",
            &h.addr,
            "--auth",
            "approle",
            "--role-id-file",
            &s(&rid),
            "--secret-id-file",
            &s(&sid),
            "--dest",
            &s(&tmpfs.path),
            "--secret",
            secret,
            "--once",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
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

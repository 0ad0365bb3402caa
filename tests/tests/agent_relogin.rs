//! hush-agent logs in by itself, against a real `hushd --dev` and a real tmpfs: again and again
//! as its tokens reach the role's max TTL, and again when its token is revoked behind its back
//! (each proved by a new secret version reaching the file afterwards: only a live token can
//! read it), and with the `jwt` method.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_tests::{wait_for, Agent, Hushd, Tmpfs};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn ok(h: &Hushd, method: &str, path: &str, body: Value) -> Value {
    let (st, b) = h.call(method, path, Some(body)).await;
    assert!(st == 200 || st == 204, "{path}: {st} {b}");
    b
}

async fn app_policy(h: &Hushd) {
    ok(
        h,
        "PUT",
        "sys/policies/acl/app",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
}

fn logins(agent: &Agent) -> usize {
    agent.stderr().matches("logged in").count()
}

/// An approle role with these token fields and a running agent logged in with it, rendering
/// `secret/app/db#password` to `pw`, checking every 300 ms.
async fn approle_agent(
    h: &Hushd,
    token_fields: Value,
    tmpfs: &Tmpfs,
) -> (Agent, String, tempfile::TempDir) {
    app_policy(h).await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    ok(h, "POST", "sys/auth/approle", json!({"type": "approle"})).await;
    let mut role = json!({"token_policies": ["app"]});
    role.as_object_mut()
        .unwrap()
        .extend(token_fields.as_object().unwrap().clone());
    ok(h, "POST", "auth/approle/role/app", role).await;
    let (role_id, secret_id) = h.approle_credentials("approle", "app").await;
    let dir = tempfile::tempdir().unwrap();
    let rid = dir.path().join("role-id");
    let sid = dir.path().join("secret-id");
    std::fs::write(&rid, &role_id).unwrap();
    std::fs::write(&sid, &secret_id).unwrap();
    let agent = Agent::spawn(&[
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
        "pw=secret/data/app/db#password",
        "--refresh-interval",
        "300ms",
        "--backoff-max",
        "1s",
    ]);
    let file = tmpfs.path.join("pw");
    wait_for(Duration::from_secs(20), "first render", || {
        std::fs::read_to_string(&file).ok().as_deref() == Some("v1")
    })
    .await;
    (agent, secret_id, dir)
}

/// Write `v` and wait for it in the file: only a working token can read it.
async fn new_version_arrives(h: &Hushd, tmpfs: &Tmpfs, agent: &Agent, v: &str) {
    h.kv_put("app/db", json!({ "password": v })).await;
    let file = tmpfs.path.join("pw");
    let mut last = String::new();
    for _ in 0..100 {
        last = std::fs::read_to_string(&file).unwrap_or_default();
        if last == v {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{v:?} never reached the file (last {last:?}):\n{}",
        agent.stderr()
    );
}

#[tokio::test]
async fn the_agent_logs_in_again_before_the_max_ttl_ends() {
    let h = Hushd::dev().await;
    let tmpfs = Tmpfs::new();
    let (mut agent, secret_id, _dir) = approle_agent(
        &h,
        json!({"token_ttl": "2s", "token_max_ttl": "3s", "secret_id_num_uses": 0}),
        &tmpfs,
    )
    .await;
    assert_eq!(logins(&agent), 1, "{}", agent.stderr());
    // Three max TTLs: a token that was not replaced would be long dead.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let n = logins(&agent);
    assert!(
        n >= 3,
        "only {n} logins in three max TTLs:\n{}",
        agent.stderr()
    );
    new_version_arrives(&h, &tmpfs, &agent, "v2").await;
    assert!(agent.running(), "{}", agent.stderr());
    assert!(!agent.stderr().contains(&secret_id), "the secret_id leaked");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_by_a_new_login() {
    let h = Hushd::dev().await;
    let tmpfs = Tmpfs::new();
    let (mut agent, _, _dir) = approle_agent(&h, json!({"token_ttl": "10m"}), &tmpfs).await;
    assert_eq!(logins(&agent), 1, "{}", agent.stderr());
    // Revoke every token the approle mount issued (the agent's) behind its back: login
    // tokens are leases under their login path.
    ok(
        &h,
        "PUT",
        "sys/leases/revoke-prefix/auth/approle/login",
        json!({}),
    )
    .await;
    new_version_arrives(&h, &tmpfs, &agent, "after-revoke").await;
    assert!(logins(&agent) >= 2, "{}", agent.stderr());
    assert!(agent.running(), "{}", agent.stderr());
}

#[tokio::test]
async fn jwt_login_renders_allowed_and_names_denied() {
    let h = Hushd::dev().await;
    app_policy(&h).await;
    h.kv_put("app/db", json!({"password": "allowed-pw"})).await;
    h.kv_put("other/db", json!({"password": "denied-pw"})).await;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    ok(&h, "POST", "sys/auth/jwt", json!({"type": "jwt"})).await;
    ok(
        &h,
        "POST",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [kp.public_key_pem()], "bound_issuer": "https://ci.example"}),
    )
    .await;
    ok(
        &h,
        "POST",
        "auth/jwt/role/deploy",
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["hush"],
            "bound_claims": {"repo": "acme/*"},
            "bound_claims_type": "glob",
            "token_policies": ["app"],
        }),
    )
    .await;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://ci.example", "aud": "hush", "sub": "pipeline-7",
        "repo": "acme/web", "exp": t + 600, "iat": t - 5,
    });
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let jwt =
        jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), &claims, &enc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("jwt");
    std::fs::write(&jwt_file, &jwt).unwrap();
    for (secret, want) in [
        ("pw=secret/data/app/db#password", Some("allowed-pw")),
        ("pw=secret/data/other/db#password", None),
    ] {
        let tmpfs = Tmpfs::new();
        let mut agent = Agent::spawn(&[
            "--addr",
            &h.addr,
            "--auth",
            "jwt",
            "--role",
            "deploy",
            "--jwt-file",
            &s(&jwt_file),
            "--dest",
            &s(&tmpfs.path),
            "--secret",
            secret,
            "--once",
        ]);
        let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
        let err = agent.stderr();
        assert!(!err.contains(&jwt), "the JWT leaked: {err}");
        match want {
            Some(v) => {
                assert_eq!(status.code(), Some(0), "{err}");
                assert_eq!(std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(), v);
            }
            None => {
                assert_eq!(status.code(), Some(1), "{err}");
                assert!(err.contains("secret \"secret/data/other/db\""), "{err}");
            }
        }
    }
}

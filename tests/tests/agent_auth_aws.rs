//! hush-agent logs in with `--auth aws` against a real `hushd --dev` whose aws mount uses the
//! Python `moto` server as STS: with keys from the environment, and with a web identity
//! token file (AssumeRoleWithWebIdentity at moto, endpoint from AWS_ENDPOINT_URL_STS). It
//! renders a secret its role's policy allows on a real tmpfs; with `--once` it fails naming
//! one the policy does not allow, and the AWS secret key never reaches its log.

use std::path::Path;
use std::time::Duration;

use hush_tests::moto::Moto;
use hush_tests::{Agent, Hushd, Tmpfs};
use serde_json::{json, Value};

const SERVER_ID: &str = "hushd.agent-test";

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn ok(h: &Hushd, method: &str, path: &str, body: Value) {
    let (st, b) = h.call(method, path, Some(body)).await;
    assert!(st == 200 || st == 204, "{path}: {st} {b}");
}

/// hushd with an aws mount on moto, role `app` (policy: read secret/data/app/*) bound to
/// user `app-*` and role `AppRole`, and two secrets, one outside the policy.
async fn setup(moto: &Moto) -> Hushd {
    let h = Hushd::dev().await;
    ok(&h, "POST", "sys/auth/aws", json!({"type": "aws"})).await;
    ok(
        &h,
        "POST",
        "auth/aws/config/client",
        json!({"sts_endpoint": moto.url, "iam_server_id_header_value": SERVER_ID}),
    )
    .await;
    ok(
        &h,
        "PUT",
        "sys/policies/acl/app",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    ok(
        &h,
        "POST",
        "auth/aws/role/app",
        json!({"token_policies": "app", "token_ttl": "10m",
               "bound_iam_principal_arn": ["arn:aws:iam::123456789012:user/app-*",
                                           "arn:aws:iam::123456789012:role/AppRole"]}),
    )
    .await;
    h.kv_put("app/db", json!({"password": "allowed-pw"})).await;
    h.kv_put("other/db", json!({"password": "denied-pw"})).await;
    h
}

fn args(h: &Hushd, dest: &Path, secret: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--addr",
        &h.addr,
        "--auth",
        "aws",
        "--role",
        "app",
        "--aws-server-id",
        SERVER_ID,
        "--dest",
        &s(dest),
        "--secret",
        secret,
        "--once",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

async fn run_once(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut agent = Agent::spawn_env(args, env);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    (status.code(), agent.stderr())
}

#[tokio::test]
async fn environment_keys_log_in_render_the_allowed_secret_and_name_the_denied_one() {
    let moto = Moto::start();
    let h = setup(&moto).await;
    let user = moto.user("app-web");
    let env = [
        ("AWS_ACCESS_KEY_ID", user.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", user.secret_key.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let endpoint = ["--aws-sts-endpoint", moto.url.as_str()];
    let tmpfs = Tmpfs::new();
    let (code, err) = run_once(
        &args(&h, &tmpfs.path, "pw=secret/data/app/db#password", &endpoint),
        &env,
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(),
        "allowed-pw"
    );
    assert!(err.contains("logged in") && err.contains("aws"), "{err}");
    assert!(
        !err.contains(&user.secret_key),
        "the secret key leaked: {err}"
    );

    let other = Tmpfs::new();
    let (code, err) = run_once(
        &args(
            &h,
            &other.path,
            "o=secret/data/other/db#password",
            &endpoint,
        ),
        &env,
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("secret \"secret/data/other/db\""), "{err}");
    assert!(!other.path.join("o").exists());

    // A server id hushd does not expect: the login is refused, clearly, and --once gives up.
    let mut wrong = args(&h, &other.path, "pw=secret/data/app/db#password", &endpoint);
    let i = wrong.iter().position(|a| a == SERVER_ID).unwrap();
    wrong[i] = "another-server".into();
    let (code, err) = run_once(&wrong, &env).await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("X-Vault-AWS-IAM-Server-ID"), "{err}");
    assert!(
        !err.contains(&user.secret_key),
        "the secret key leaked: {err}"
    );
}

#[tokio::test]
async fn a_web_identity_token_file_is_exchanged_at_sts_and_logs_in() {
    let moto = Moto::start();
    let h = setup(&moto).await;
    let role_arn = moto.role("AppRole");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("web-identity-token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln\n",
    )
    .unwrap();
    let token_path = s(&token_file);
    let env = [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path.as_str()),
        ("AWS_ROLE_ARN", role_arn.as_str()),
        ("AWS_ROLE_SESSION_NAME", "agent-e2e"),
        ("AWS_ENDPOINT_URL_STS", moto.url.as_str()),
    ];
    let tmpfs = Tmpfs::new();
    let (code, err) = run_once(
        &args(&h, &tmpfs.path, "pw=secret/data/app/db#password", &[]),
        &env,
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmpfs.path.join("pw")).unwrap(),
        "allowed-pw"
    );
    assert!(
        !err.contains("eyJzdWIiOiJhcHAifQ"),
        "the web identity token leaked: {err}"
    );

    // Without the role ARN the chain is refused with a clear message.
    let env = [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path.as_str()),
        ("AWS_ROLE_ARN", ""),
        ("AWS_ENDPOINT_URL_STS", moto.url.as_str()),
    ];
    let other = Tmpfs::new();
    let (code, err) = run_once(
        &args(&h, &other.path, "pw=secret/data/app/db#password", &[]),
        &env,
    )
    .await;
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"),
        "{err}"
    );
}

//! The aws auth method (iam type) end to end: a real `hushd --dev` over HTTP, with the
//! Python `moto` server as STS. Users, keys and roles are made in moto; GetCallerIdentity
//! requests are signed with `aws-sigv4` (hush-agent's signer); hushd sends them on to moto
//! and binds the ARN moto answers with. Every refusal is checked too: wrong method, another
//! body, the server-id header missing, unsigned or for another server, an unknown role, an
//! ARN the role does not bind, the ec2 auth type, bad base64 and bad header JSON.

use base64::Engine;
use hush_tests::moto::{sign_login, Moto};
use hush_tests::Hushd;
use serde_json::{json, Value};

const SERVER_ID: &str = "hushd.test";

async fn ok(h: &Hushd, method: &str, path: &str, body: Value) {
    let (s, b) = h.call(method, path, Some(body)).await;
    assert!(s == 200 || s == 204, "{path}: {s} {b}");
}

/// Mount `aws`, point it at moto, require the server-id header, and make role `dev` bound
/// to user `dev-*` and role `Builder` (policy `app`).
async fn setup(h: &Hushd, moto: &Moto) {
    ok(h, "POST", "sys/auth/aws", json!({"type": "aws"})).await;
    ok(
        h,
        "POST",
        "auth/aws/config/client",
        json!({"sts_endpoint": moto.url, "sts_region": "us-east-1",
               "iam_server_id_header_value": SERVER_ID}),
    )
    .await;
    ok(
        h,
        "PUT",
        "sys/policies/acl/app",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    ok(
        h,
        "POST",
        "auth/aws/role/dev",
        json!({"auth_type": "iam", "token_policies": "app", "token_ttl": "10m",
               "bound_iam_principal_arn": ["arn:aws:iam::123456789012:user/dev-*",
                                           "arn:aws:iam::123456789012:role/Builder"]}),
    )
    .await;
}

async fn login(h: &Hushd, body: Value) -> (u16, Value) {
    h.call_as(None, "POST", "auth/aws/login", Some(body)).await
}

fn error(b: &Value) -> String {
    b["errors"][0].as_str().unwrap_or_default().to_string()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn iam_users_and_assumed_roles_log_in_through_moto() {
    let moto = Moto::start();
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    ok(
        &h,
        "PUT",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log}}),
    )
    .await;
    setup(&h, &moto).await;
    h.kv_put("app/db", json!({"password": "allowed-pw"})).await;
    h.kv_put("other/db", json!({"password": "denied-pw"})).await;

    let user = moto.user("dev-alice");
    let (s, b) = login(
        &h,
        sign_login(&user, "us-east-1", &moto.url, Some(SERVER_ID), "dev"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let auth = &b["auth"];
    assert_eq!(auth["policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 600);
    let m = &auth["metadata"];
    assert_eq!(m["client_arn"], user.arn);
    assert_eq!(
        m["canonical_arn"],
        "arn:aws:iam::123456789012:user/dev-alice"
    );
    assert_eq!(m["account_id"], "123456789012");
    assert_eq!(m["auth_type"], "iam");
    let token = auth["client_token"].as_str().unwrap().to_string();
    let (s, b) = h
        .call_as(Some(&token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(
        (s, b["data"]["data"]["password"].as_str()),
        (200, Some("allowed-pw"))
    );
    let (s, _) = h
        .call_as(Some(&token), "GET", "secret/data/other/db", None)
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["display_name"], "aws-dev-alice");

    // An assumed role (with a session token) binds as its role; no role given: the role's
    // name ("builder") comes from the ARN, as Vault does.
    let role_arn = moto.role("Builder");
    let temp = moto.assume(&role_arn, "ci-run-7");
    assert_eq!(
        temp.arn,
        "arn:aws:sts::123456789012:assumed-role/Builder/ci-run-7"
    );
    let signed = sign_login(&temp, "us-east-1", &moto.url, Some(SERVER_ID), "dev");
    let headers_b64 = signed["iam_request_headers"].as_str().unwrap().to_string();
    let (s, b) = login(&h, signed).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["auth"]["metadata"]["canonical_arn"],
        "arn:aws:iam::123456789012:role/Builder"
    );
    ok(
        &h,
        "POST",
        "auth/aws/role/builder",
        json!({"bound_iam_principal_arn": role_arn, "policies": "ci"}),
    )
    .await;
    let (s, b) = login(
        &h,
        sign_login(&temp, "us-east-1", &moto.url, Some(SERVER_ID), ""),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["auth"]["metadata"]["role"], "builder");
    assert_eq!(b["auth"]["policies"], json!(["ci", "default"]));

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("auth/aws/login"));
    let session = temp.session_token.as_deref().unwrap();
    assert!(
        !text.contains(session) && !text.contains(&headers_b64) && !text.contains(&token),
        "a credential in the audit log"
    );
    assert!(
        !h.stderr().contains(session),
        "the session token in hushd's log"
    );
}

#[tokio::test]
async fn requests_other_than_a_signed_get_caller_identity_are_refused() {
    let moto = Moto::start();
    // Many refusals for one identity (role `dev`, one user's key): no lockout in the way.
    let args = [
        "--dev",
        "--dev-root-token",
        "root",
        "--login-lockout-threshold",
        "0",
    ];
    let mut h = Hushd::start(&args, "http", hush_tests::http_client()).await;
    h.token = Some("root".into());
    setup(&h, &moto).await;
    let user = moto.user("dev-bob");
    let good = || sign_login(&user, "us-east-1", &moto.url, Some(SERVER_ID), "dev");
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut get = good();
    get["iam_http_request_method"] = json!("GET");
    cases.push((get, "only 'POST' is supported"));
    let mut other = good();
    other["iam_request_body"] = json!(b64("Action=GetSessionToken&Version=2011-06-15"));
    cases.push((other, "must be a GetCallerIdentity request"));
    cases.push((
        sign_login(&user, "us-east-1", &moto.url, None, "dev"),
        "missing header \"X-Vault-AWS-IAM-Server-ID\"",
    ));
    // The header added after signing: present and equal, but not covered by the signature.
    let mut unsigned = sign_login(&user, "us-east-1", &moto.url, None, "dev");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(unsigned["iam_request_headers"].as_str().unwrap())
        .unwrap();
    let mut headers: Value = serde_json::from_slice(&raw).unwrap();
    headers["X-Vault-AWS-IAM-Server-ID"] = json!([SERVER_ID]);
    unsigned["iam_request_headers"] = json!(b64(&headers.to_string()));
    cases.push((unsigned, "the header was not signed"));
    // A request signed for another server (replay towards this one).
    cases.push((
        sign_login(
            &user,
            "us-east-1",
            &moto.url,
            Some("other-vault.example"),
            "dev",
        ),
        "not the one this server expects",
    ));
    let mut bad64 = good();
    bad64["iam_request_url"] = json!("%%%");
    cases.push((bad64, "failed to base64 decode iam_request_url"));
    let mut badjson = good();
    badjson["iam_request_headers"] = json!(b64("[\"not\", \"a map\"]"));
    cases.push((badjson, "iam_request_headers must be a JSON object"));
    cases.push((
        sign_login(&user, "us-east-1", &moto.url, Some(SERVER_ID), "nobody"),
        "entry for role \"nobody\" not found",
    ));
    for (body, want) in cases {
        let (s, b) = login(&h, body).await;
        assert_eq!(s, 400, "{want}: {b}");
        assert!(
            error(&b).contains(want),
            "{} should contain {want}",
            error(&b)
        );
    }
    // The ec2 auth type is refused when the role is written.
    let (s, b) = h
        .call(
            "POST",
            "auth/aws/role/ec2",
            Some(json!({"auth_type": "ec2", "bound_ami_id": "ami-123"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        error(&b).contains("auth_type \"ec2\" is not supported"),
        "{b}"
    );
}

#[tokio::test]
async fn an_arn_the_role_does_not_bind_is_refused() {
    let moto = Moto::start();
    let h = Hushd::dev().await;
    setup(&h, &moto).await;
    let outsider = moto.user("ops-carol");
    let (s, b) = login(
        &h,
        sign_login(&outsider, "us-east-1", &moto.url, Some(SERVER_ID), "dev"),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        error(&b),
        "IAM Principal \"arn:aws:iam::123456789012:user/ops-carol\" does not belong to the role \"dev\""
    );
    // An access key moto does not know answers as a non-IAM principal: refused too.
    let mut ghost = outsider.clone();
    ghost.access_key = "AKIAUNKNOWN000000000".into();
    let (s, b) = login(
        &h,
        sign_login(&ghost, "us-east-1", &moto.url, Some(SERVER_ID), "dev"),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(!error(&b).contains(&outsider.secret_key));
    // Config reads back without credentials.
    ok(
        &h,
        "POST",
        "auth/aws/config/client",
        json!({"access_key": "AKIAHUSHD", "secret_key": "hushd-secret"}),
    )
    .await;
    let (s, b) = h.call("GET", "auth/aws/config/client", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["sts_endpoint"], json!(moto.url));
    assert!(
        !b.to_string().contains("hushd-secret") && !b.to_string().contains("AKIAHUSHD"),
        "{b}"
    );
}

//! Unit tests of the aws method over a real barrier view, with a small STS stand-in on a
//! loopback port that records what hushd sends it and answers as told.

use std::sync::Arc;

use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::iam::{self, Principal};
use super::AwsBackend;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

const SECRET_SIG: &str = "Signature=5ecre7519";

/// An STS stand-in: answers every request with `answer` and keeps the raw requests.
struct Sts {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<(u16, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn identity_xml(arn: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDAEXAMPLE</UserId>\
         <Account>123456789012</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>"
    )
}

async fn sts(status: u16, body: String) -> Sts {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let answer = Arc::new(Mutex::new((status, body)));
    let (s, a) = (seen.clone(), answer.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then a body of the announced length.
            loop {
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            s.lock().push(String::from_utf8_lossy(&req).to_string());
            let (status, body) = a.lock().clone();
            let extra = if status == 302 {
                "location: http://127.0.0.1:9/elsewhere\r\n"
            } else {
                ""
            };
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(resp.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
    });
    Sts {
        url,
        seen,
        answer,
        task,
    }
}

async fn backend() -> AwsBackend {
    let storage = Arc::new(crate::storage::MemoryBackend::new());
    let barrier = Arc::new(crate::barrier::Barrier::new(storage));
    barrier
        .initialize(&crate::barrier::KeyBytes::random())
        .await
        .unwrap();
    let view = crate::barrier::BarrierView::new(barrier, "auth/aws/");
    AwsBackend::new(view).await.unwrap()
}

async fn call(
    b: &AwsBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> Result<Response, LogicalError> {
    b.handle(&Request::new(op, path).with_data(body)).await
}

fn err_msg(r: Result<Response, LogicalError>) -> (u16, String) {
    let e = r.unwrap_err();
    (e.status(), e.to_string())
}

/// A mount whose STS is `sts`, with server id `vault.example` and role `dev`.
async fn configured(sts: &Sts) -> AwsBackend {
    let b = backend().await;
    call(
        &b,
        Operation::Update,
        "config/client",
        json!({"sts_endpoint": sts.url, "sts_region": "us-east-1",
               "iam_server_id_header_value": "vault.example",
               "access_key": "AKIAHUSHD", "secret_key": "hushd-secret-key"}),
    )
    .await
    .unwrap();
    call(
        &b,
        Operation::Update,
        "role/dev",
        json!({"auth_type": "iam", "token_policies": "app",
               "bound_iam_principal_arn": ["arn:aws:iam::123456789012:user/dev*",
                                           "arn:aws:iam::123456789012:role/Builder"]}),
    )
    .await
    .unwrap();
    b
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The fields of a login, as hvac builds them; `signed` lists the signed headers.
fn login_body(role: &str, headers: Value, signed: &str, body: &str) -> Value {
    let mut headers = headers;
    headers["Authorization"] = json!([format!(
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/sts/aws4_request, \
         SignedHeaders={signed}, {SECRET_SIG}"
    )]);
    json!({
        "role": role,
        "iam_http_request_method": "POST",
        "iam_request_url": b64("https://sts.amazonaws.com/"),
        "iam_request_body": b64(body),
        "iam_request_headers": b64(&headers.to_string()),
    })
}

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const SIGNED: &str = "content-type;host;transfer-encoding;x-amz-date;x-vault-aws-iam-server-id";

fn good_headers() -> Value {
    json!({
        "Content-Type": ["application/x-www-form-urlencoded; charset=utf-8"],
        "Host": ["sts.amazonaws.com"],
        "X-Amz-Date": "20260101T000000Z",
        "X-Vault-AWS-IAM-Server-ID": ["vault.example"],
        "X-Unsigned-Extra": "not forwarded",
        "Transfer-Encoding": "chunked",
    })
}

async fn login(b: &AwsBackend, body: Value) -> Result<Response, LogicalError> {
    call(b, Operation::Update, "login", body).await
}

#[tokio::test]
async fn a_signed_request_logs_in_and_is_sent_to_the_configured_endpoint() {
    let s = sts(
        200,
        identity_xml("arn:aws:iam::123456789012:user/devs/dev-alice"),
    )
    .await;
    let b = configured(&s).await;
    let resp = login(&b, login_body("dev", good_headers(), SIGNED, BODY))
        .await
        .unwrap();
    let grant = resp.login.expect("a grant");
    assert_eq!(grant.policies, vec!["app"]);
    assert_eq!(grant.display_name, "dev-alice");
    let m = &grant.metadata;
    assert_eq!(m["account_id"], "123456789012");
    assert_eq!(m["auth_type"], "iam");
    assert_eq!(
        m["canonical_arn"],
        "arn:aws:iam::123456789012:user/dev-alice"
    );
    assert_eq!(
        m["client_arn"],
        "arn:aws:iam::123456789012:user/devs/dev-alice"
    );
    assert_eq!(m["client_user_id"], "AIDAEXAMPLE");
    assert_eq!(m["inferred_entity_type"], "");
    assert_eq!(m["role"], "dev");
    assert_eq!(m["role_id"].len(), 36);

    let seen = s.seen.lock().clone();
    assert_eq!(seen.len(), 1);
    let raw = seen[0].to_ascii_lowercase();
    assert!(raw.starts_with("post / http/1.1\r\n"), "{raw}");
    assert!(
        raw.contains("\r\nhost: sts.amazonaws.com\r\n"),
        "the signed Host is kept: {raw}"
    );
    assert!(
        raw.contains("x-vault-aws-iam-server-id: vault.example"),
        "{raw}"
    );
    assert!(raw.contains(&SECRET_SIG.to_ascii_lowercase()), "{raw}");
    assert!(
        !raw.contains("x-unsigned-extra"),
        "unsigned headers stay out: {raw}"
    );
    assert!(
        !raw.contains("\r\ntransfer-encoding:"),
        "hop-by-hop headers stay out, signed or not: {raw}"
    );
    assert!(raw.ends_with(&BODY.to_ascii_lowercase()), "{raw}");
}

#[tokio::test]
async fn assumed_roles_bind_as_their_role_and_the_role_defaults_to_the_friendly_name() {
    let s = sts(
        200,
        identity_xml("arn:aws:sts::123456789012:assumed-role/Builder/ci-42"),
    )
    .await;
    let b = configured(&s).await;
    let grant = login(&b, login_body("dev", good_headers(), SIGNED, BODY))
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(
        grant.metadata["canonical_arn"],
        "arn:aws:iam::123456789012:role/Builder"
    );
    assert_eq!(grant.display_name, "Builder");

    // No role given: the friendly name "Builder" names it (lower-cased, as Vault stores).
    call(
        &b,
        Operation::Update,
        "role/builder",
        json!({"bound_iam_principal_arn": "arn:aws:iam::123456789012:role/*", "policies": "ci"}),
    )
    .await
    .unwrap();
    let mut body = login_body("", good_headers(), SIGNED, BODY);
    body.as_object_mut().unwrap().remove("role");
    let grant = login(&b, body).await.unwrap().login.unwrap();
    assert_eq!(
        (grant.policies, grant.metadata["role"].as_str()),
        (vec!["ci".to_string()], "builder")
    );
}

#[tokio::test]
async fn an_arn_outside_the_role_is_refused() {
    let s = sts(
        200,
        identity_xml("arn:aws:iam::999999999999:user/dev-mallory"),
    )
    .await;
    let b = configured(&s).await;
    let (status, msg) = err_msg(login(&b, login_body("dev", good_headers(), SIGNED, BODY)).await);
    assert_eq!(status, 400);
    assert!(msg.contains("does not belong to the role \"dev\""), "{msg}");
}

#[tokio::test]
async fn requests_that_are_not_a_signed_get_caller_identity_are_refused_before_sts() {
    let s = sts(
        200,
        identity_xml("arn:aws:iam::123456789012:user/dev-alice"),
    )
    .await;
    let b = configured(&s).await;
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut get = login_body("dev", good_headers(), SIGNED, BODY);
    get["iam_http_request_method"] = json!("GET");
    cases.push((get, "only 'POST' is supported"));
    for other in [
        "Action=GetSessionToken&Version=2011-06-15",
        "Action=GetCallerIdentity&Version=2011-06-15&Action=AssumeRole",
        "Action=GetCallerIdentity",
        "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x",
    ] {
        cases.push((
            login_body("dev", good_headers(), SIGNED, other),
            "must be a GetCallerIdentity request",
        ));
    }
    let mut h = good_headers();
    h.as_object_mut()
        .unwrap()
        .remove("X-Vault-AWS-IAM-Server-ID");
    cases.push((
        login_body("dev", h, "content-type;host;x-amz-date", BODY),
        "missing header",
    ));
    cases.push((
        login_body("dev", good_headers(), "content-type;host;x-amz-date", BODY),
        "was not signed",
    ));
    let mut h = good_headers();
    h["X-Vault-AWS-IAM-Server-ID"] = json!("other-vault.example");
    cases.push((
        login_body("dev", h, SIGNED, BODY),
        "not the one this server expects",
    ));
    let mut query = login_body("dev", good_headers(), SIGNED, BODY);
    query["iam_request_url"] = json!(b64("https://sts.amazonaws.com/?Action=GetCallerIdentity"));
    cases.push((query, "no query parameters"));
    let mut bad64 = login_body("dev", good_headers(), SIGNED, BODY);
    bad64["iam_request_body"] = json!("!!not base64!!");
    cases.push((bad64, "failed to base64 decode iam_request_body"));
    let mut badjson = login_body("dev", good_headers(), SIGNED, BODY);
    badjson["iam_request_headers"] = json!(b64("{\"Host\": 1}"));
    cases.push((badjson, "iam_request_headers must be a JSON object"));
    let mut notjson = login_body("dev", good_headers(), SIGNED, BODY);
    notjson["iam_request_headers"] = json!(b64("Host: x"));
    cases.push((notjson, "iam_request_headers must be a JSON object"));
    let mut noauth = login_body("dev", good_headers(), SIGNED, BODY);
    noauth["iam_request_headers"] = json!(b64(&good_headers().to_string()));
    cases.push((noauth, "missing Authorization header"));
    cases.push((
        login_body("nobody", good_headers(), SIGNED, BODY),
        "entry for role \"nobody\" not found",
    ));
    for (body, want) in cases {
        let (status, msg) = err_msg(login(&b, body).await);
        assert_eq!(status, 400, "{msg}");
        assert!(msg.contains(want), "{msg} should contain {want}");
        assert!(
            !msg.contains("5ecre7") && !msg.contains("vault.example"),
            "{msg}"
        );
    }
    assert!(s.seen.lock().is_empty(), "STS was never asked");
}

#[tokio::test]
async fn sts_refusals_and_redirects_fail_without_echoing_credentials() {
    let s = sts(
        403,
        "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>\
         <Message>AKIAEXAMPLE 5ecre7519</Message></Error></ErrorResponse>"
            .into(),
    )
    .await;
    let b = configured(&s).await;
    let (status, msg) = err_msg(login(&b, login_body("dev", good_headers(), SIGNED, BODY)).await);
    assert_eq!(status, 400);
    assert_eq!(
        msg,
        "error making upstream request: received error code 403 from STS (SignatureDoesNotMatch)"
    );
    *s.answer.lock() = (302, String::new());
    let (status, msg) = err_msg(login(&b, login_body("dev", good_headers(), SIGNED, BODY)).await);
    assert_eq!(
        (status, msg.contains("received error code 302")),
        (400, true),
        "{msg}"
    );
    *s.answer.lock() = (200, "<nope".into());
    let (status, _) = err_msg(login(&b, login_body("dev", good_headers(), SIGNED, BODY)).await);
    assert_eq!(status, 400);
    assert_eq!(s.seen.lock().len(), 3, "no redirect was followed");
}

#[tokio::test]
async fn an_unreachable_sts_is_a_server_error() {
    let s = sts(200, String::new()).await;
    let b = configured(&s).await;
    call(
        &b,
        Operation::Update,
        "config/client",
        json!({"sts_endpoint": "http://127.0.0.1:9"}),
    )
    .await
    .unwrap();
    let (status, msg) = err_msg(login(&b, login_body("dev", good_headers(), SIGNED, BODY)).await);
    assert_eq!(status, 500, "{msg}");
}

#[tokio::test]
async fn config_hides_credentials_and_checks_the_endpoint() {
    let s = sts(200, String::new()).await;
    let b = configured(&s).await;
    let cfg = call(&b, Operation::Read, "config/client", json!({}))
        .await
        .unwrap();
    let data = cfg.data.unwrap();
    assert_eq!(data["sts_endpoint"], json!(s.url));
    assert_eq!(data["iam_server_id_header_value"], "vault.example");
    let text = serde_json::to_string(&data).unwrap();
    assert!(
        !text.contains("hushd-secret-key") && !text.contains("AKIAHUSHD"),
        "{text}"
    );
    let cfg_debug = format!("{:?}", b.config().await.unwrap().unwrap());
    assert!(!cfg_debug.contains("hushd-secret-key"), "{cfg_debug}");
    for bad in [
        json!({"sts_endpoint": "ftp://sts.example"}),
        json!({"sts_endpoint": "not a url"}),
        json!({"sts_endpoint": "", "sts_region": "eu-west-1"}),
        json!({"max_retries": "many"}),
    ] {
        let fresh = backend().await;
        assert_eq!(
            err_msg(call(&fresh, Operation::Update, "config/client", bad.clone()).await).0,
            400,
            "{bad}"
        );
    }
    call(&b, Operation::Delete, "config/client", json!({}))
        .await
        .unwrap();
    assert_eq!(
        err_msg(call(&b, Operation::Read, "config/client", json!({})).await).0,
        404
    );
}

#[tokio::test]
async fn roles_are_iam_only_and_read_back_in_vaults_shape() {
    let b = backend().await;
    for (bad, want) in [
        (
            json!({"auth_type": "ec2", "bound_ami_id": "ami-1"}),
            "auth_type \"ec2\" is not supported",
        ),
        (
            json!({"bound_ami_id": "ami-1", "bound_iam_principal_arn": "arn:aws:iam::1:user/a"}),
            "bound_ami_id is an ec2 binding",
        ),
        (
            json!({"bound_iam_principal_arn": "arn:aws:iam::1:user/a", "resolve_aws_unique_ids": true}),
            "resolve_aws_unique_ids is not supported",
        ),
        (
            json!({"token_policies": "p"}),
            "at least one bound parameter",
        ),
        (
            json!({"bound_iam_principal_arn": "user/a"}),
            "is not an ARN",
        ),
        (
            json!({"auth_type": "ldap", "bound_iam_principal_arn": "arn:aws:iam::1:user/a"}),
            "auth_type must be",
        ),
    ] {
        let (status, msg) = err_msg(call(&b, Operation::Update, "role/r", bad).await);
        assert_eq!(status, 400);
        assert!(msg.contains(want), "{msg}");
    }
    call(&b, Operation::Update, "role/Web",
         json!({"bound_iam_principal_arn": "arn:aws:iam::1:role/web", "resolve_aws_unique_ids": false, "token_ttl": "1h"}))
        .await
        .unwrap();
    let r = call(&b, Operation::Read, "role/web", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(r["auth_type"], "iam");
    assert_eq!(
        r["bound_iam_principal_arn"],
        json!(["arn:aws:iam::1:role/web"])
    );
    assert_eq!(
        (r["resolve_aws_unique_ids"].clone(), r["token_ttl"].clone()),
        (json!(false), json!(3600))
    );
    let id = r["role_id"].clone();
    call(
        &b,
        Operation::Update,
        "role/web",
        json!({"token_ttl": "2h"}),
    )
    .await
    .unwrap();
    let r = call(&b, Operation::Read, "role/web", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        (r["role_id"].clone(), r["token_ttl"].clone()),
        (id, json!(7200)),
        "the role_id stays"
    );
    let list = call(&b, Operation::List, "roles", json!({})).await.unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["web"]));
    call(&b, Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    assert_eq!(
        err_msg(call(&b, Operation::Read, "role/web", json!({})).await).0,
        404
    );
    assert_eq!(
        err_msg(call(&b, Operation::List, "role", json!({})).await).0,
        404
    );
}

#[test]
fn headers_are_strings_or_lists() {
    let h = iam::parse_headers(br#"{"Host": "a", "X-Multi": ["1", "2"]}"#).unwrap();
    assert_eq!((h["host"].as_str(), h["x-multi"].as_str()), ("a", "1,2"));
    for bad in [&b"[]"[..], br#"{"a": 1}"#, br#"{"a": [1]}"#, b"{"] {
        assert!(iam::parse_headers(bad).is_err());
    }
    let auth = "AWS4-HMAC-SHA256 Credential=A/x/y/sts/aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=s";
    assert_eq!(
        iam::signed_headers(auth).unwrap(),
        vec!["host", "x-amz-date"]
    );
    assert!(iam::signed_headers("Basic abc").is_none());
}

#[test]
fn arns_are_parsed_and_canonicalised() {
    for (arn, canonical, name) in [
        (
            "arn:aws:iam::123:user/alice",
            "arn:aws:iam::123:user/alice",
            "alice",
        ),
        (
            "arn:aws:iam::123:user/team/a/alice",
            "arn:aws:iam::123:user/alice",
            "alice",
        ),
        (
            "arn:aws:iam::123:role/path/Deploy",
            "arn:aws:iam::123:role/Deploy",
            "Deploy",
        ),
        (
            "arn:aws-cn:sts::123:assumed-role/Deploy/sess",
            "arn:aws-cn:iam::123:role/Deploy",
            "Deploy",
        ),
    ] {
        let p = Principal::parse(arn).unwrap();
        assert_eq!(
            (p.canonical_arn().as_str(), p.friendly_name.as_str()),
            (canonical, name)
        );
    }
    for bad in [
        "arn:aws:iam::123:group/g",
        "arn:aws:sts::123:assumed-role/OnlyRole",
        "arn:aws:iam:us-east-1:123:user/a",
        "arn:aws:iam::123:user/",
        "arn:aws:iam::123",
        "urn:aws:iam::123:user/a",
    ] {
        assert!(Principal::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn sts_answers_are_read() {
    let id =
        iam::parse_caller_identity(identity_xml("arn:aws:iam::1:user/a&amp;b").as_bytes()).unwrap();
    assert_eq!(
        (id.arn.as_str(), id.account.as_str()),
        ("arn:aws:iam::1:user/a&b", "123456789012")
    );
    assert!(iam::parse_caller_identity(b"<GetCallerIdentityResponse/>").is_err());
    assert!(iam::parse_caller_identity(b"<a><b></a>").is_err());
    // An Arn outside the result element does not count.
    assert!(iam::parse_caller_identity(b"<X><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/a</Arn><Account>1</Account></GetCallerIdentityResult></X>").is_err());
    assert_eq!(
        iam::error_code(b"<Error><Code>ExpiredToken</Code></Error>").as_deref(),
        Some("ExpiredToken")
    );
    assert_eq!(iam::error_code(b"<Error><Code>a b</Code></Error>"), None);
}

/// Found by fuzzing (fuzz/corpus/sts_answer/regression-entity-spaces): each piece of text
/// around an entity was trimmed, so `a &lt;b` read as `a<b`.
#[test]
fn spaces_next_to_an_entity_are_kept() {
    let id = iam::parse_caller_identity(
        identity_xml(" arn:aws:iam::1:user/a &lt; b &amp;c\n ").as_bytes(),
    )
    .unwrap();
    assert_eq!(id.arn, "arn:aws:iam::1:user/a < b &c");
}

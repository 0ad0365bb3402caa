//! `--auth aws`: sign an STS `GetCallerIdentity` request with `aws-sigv4` and send it, unsent
//! to AWS, as the `auth/<mount>/login` body hushd (or Vault) forwards to STS.
//!
//! At each login: credentials from the standard chain ([`aws_creds`](super::aws_creds)), the
//! region (`--aws-region`, else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`) and the STS
//! endpoint (`--aws-sts-endpoint`, else `AWS_ENDPOINT_URL_STS`, `https://sts.amazonaws.com`).
//! The request is signed for that endpoint's host; with `--aws-server-id` the
//! `X-Vault-AWS-IAM-Server-ID` header is added before signing, so it is covered.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::aws_creds::{self, AwsCredentials, Env};
use super::error::AuthError;
use crate::config::AwsLogin;

/// The signed request's body.
pub const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const DEFAULT_STS: &str = "https://sts.amazonaws.com";
const DEFAULT_REGION: &str = "us-east-1";
const SERVER_ID_HEADER: &str = "X-Vault-AWS-IAM-Server-ID";

/// Vault's iam login fields. No `Debug`: the headers hold a signature and session token.
#[derive(Serialize)]
pub struct AwsLoginBody {
    pub role: String,
    pub iam_http_request_method: &'static str,
    pub iam_request_url: String,
    pub iam_request_body: String,
    pub iam_request_headers: String,
}

impl std::fmt::Debug for AwsLoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsLoginBody")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn aws_err(reason: impl Into<String>) -> AuthError {
    AuthError::Aws(reason.into())
}

/// Where to sign for and which region: settings first, then the environment.
pub fn endpoint_and_region(login: &AwsLogin, env: Env<'_>) -> (String, String) {
    let endpoint = login
        .sts_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_STS"))
        .unwrap_or_else(|| DEFAULT_STS.into());
    let region = login
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.into());
    (endpoint.trim_end_matches('/').to_string(), region)
}

/// Sign GetCallerIdentity for `endpoint` and build the login body.
pub fn signed_body(
    creds: &AwsCredentials,
    region: &str,
    endpoint: &str,
    server_id: Option<&str>,
    role: &str,
    time: SystemTime,
) -> Result<AwsLoginBody, AuthError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let url = reqwest::Url::parse(&format!("{endpoint}/"))
        .map_err(|_| aws_err(format!("the STS endpoint {endpoint:?} is not a URL")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            return Err(aws_err(format!(
                "the STS endpoint {endpoint:?} has no host"
            )))
        }
    };
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), host),
        (
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
    ];
    if let Some(v) = server_id {
        headers.push((SERVER_ID_HEADER.into(), v.into()));
    }
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose_secret().to_string(),
        creds
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        None,
        "hush-agent",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| aws_err("cannot set up SigV4 signing"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(GET_CALLER_IDENTITY.as_bytes()),
    )
    .map_err(|_| aws_err("a header of the STS request is not valid HTTP"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| aws_err("SigV4 signing failed"))?
        .into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_string(), v.to_string()));
    }
    let map: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::json!([v])))
        .collect();
    let headers_json = zeroize::Zeroizing::new(serde_json::Value::Object(map).to_string());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    Ok(AwsLoginBody {
        role: role.to_string(),
        iam_http_request_method: "POST",
        iam_request_url: b64(url.as_str()),
        iam_request_body: b64(GET_CALLER_IDENTITY),
        iam_request_headers: b64(&headers_json),
    })
}

/// The client for STS (web identity) and IMDS: no redirects, a timeout.
fn http() -> Result<&'static reqwest::Client, AuthError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    hush_api::install_crypto_provider();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| aws_err("cannot build the HTTP client for AWS"))?;
    Ok(CLIENT.get_or_init(|| c))
}

/// Look up credentials and sign a login body for `login`.
pub async fn login_body(login: &AwsLogin) -> Result<AwsLoginBody, AuthError> {
    let env = aws_creds::process_env;
    let (endpoint, region) = endpoint_and_region(login, &env);
    let creds = aws_creds::load(&env, http()?, &endpoint)
        .await
        .map_err(|e| aws_err(e.to_string()))?;
    tracing::debug!(source = creds.source, access_key_id = %creds.access_key_id, %region, %endpoint, "signing the aws login");
    signed_body(
        &creds,
        &region,
        &endpoint,
        login.server_id.as_deref(),
        &login.role,
        SystemTime::now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::Value;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(SecretString::from),
            source: "environment",
        }
    }

    fn decode(s: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_body_is_a_signed_get_caller_identity_covering_the_server_id() {
        let b = signed_body(
            &creds(Some("session-tok")),
            "eu-west-1",
            "http://127.0.0.1:5000",
            Some("hushd.example"),
            "web",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        assert_eq!(
            (b.role.as_str(), b.iam_http_request_method),
            ("web", "POST")
        );
        assert_eq!(decode(&b.iam_request_url), "http://127.0.0.1:5000/");
        assert_eq!(decode(&b.iam_request_body), GET_CALLER_IDENTITY);
        let h: Value = serde_json::from_str(&decode(&b.iam_request_headers)).unwrap();
        assert_eq!(h["Host"], serde_json::json!(["127.0.0.1:5000"]));
        assert_eq!(h[SERVER_ID_HEADER], serde_json::json!(["hushd.example"]));
        assert_eq!(
            h["x-amz-security-token"],
            serde_json::json!(["session-tok"])
        );
        assert_eq!(h["x-amz-date"], serde_json::json!(["20270115T080000Z"]));
        let auth = h["authorization"][0].as_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/eu-west-1/sts/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-vault-aws-iam-server-id"), "{auth}");
        assert!(!auth.contains("wJalr"), "the secret key is never sent");
    }

    #[test]
    fn settings_win_over_the_environment_and_defaults_fill_in() {
        let login = AwsLogin {
            role: "r".into(),
            region: None,
            server_id: None,
            sts_endpoint: None,
        };
        let none = |_: &str| None;
        assert_eq!(
            endpoint_and_region(&login, &none),
            (
                "https://sts.amazonaws.com".to_string(),
                "us-east-1".to_string()
            )
        );
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL_STS" => Some("http://sts.local:4566/".to_string()),
            "AWS_DEFAULT_REGION" => Some("ap-south-1".to_string()),
            _ => None,
        };
        assert_eq!(
            endpoint_and_region(&login, &env),
            (
                "http://sts.local:4566".to_string(),
                "ap-south-1".to_string()
            )
        );
        let set = AwsLogin {
            region: Some("eu-west-1".into()),
            sts_endpoint: Some("https://sts.eu-west-1.amazonaws.com".into()),
            ..login
        };
        assert_eq!(endpoint_and_region(&set, &env).1, "eu-west-1");
        assert_eq!(
            endpoint_and_region(&set, &env).0,
            "https://sts.eu-west-1.amazonaws.com"
        );
    }
}

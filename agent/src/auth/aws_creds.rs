//! AWS credentials from the standard chain, looked up again at each login (they rotate):
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (and
//!    `AWS_ROLE_SESSION_NAME`), exchanged by an unsigned `AssumeRoleWithWebIdentity` call to
//!    the STS endpoint (EKS IRSA, and any OIDC issuer AWS trusts);
//! 3. IMDSv2: a session token `PUT`, then the instance role's credentials
//!    (`AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the address, `AWS_EC2_METADATA_DISABLED=true`
//!    turns it off).
//!
//! The secret key and session token are [`SecretString`]s; no `Debug` shows them and no
//! error message carries them (nor the web identity token).

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Credentials to sign with.
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    /// Where they came from: `environment`, `web identity` or `IMDS`.
    pub source: &'static str,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// No credentials could be had. Messages name sources and files, never a credential.
#[derive(Debug, thiserror::Error)]
#[error("no AWS credentials: {0}")]
pub struct CredentialsError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, CredentialsError> {
    Err(CredentialsError(msg.into()))
}

/// The process environment, or a fixed map in tests.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Read the environment, empty values as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

const IMDS_DEFAULT: &str = "http://169.254.169.254";
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// Look the chain up. `sts_endpoint` is where web identity tokens are exchanged.
pub async fn load(
    env: Env<'_>,
    http: &reqwest::Client,
    sts_endpoint: &str,
) -> Result<AwsCredentials, CredentialsError> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(AwsCredentials {
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
                session_token: env("AWS_SESSION_TOKEN").map(SecretString::from),
                source: "environment",
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            return fail("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
        (None, None) => {}
    }
    if let Some(file) = env("AWS_WEB_IDENTITY_TOKEN_FILE") {
        let Some(role_arn) = env("AWS_ROLE_ARN") else {
            return fail("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
        };
        let session = env("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(|| format!("hush-agent-{}", std::process::id()));
        return web_identity(http, sts_endpoint, &file, &role_arn, &session).await;
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return fail("none in the environment, no web identity token file, and IMDS is disabled");
    }
    let imds = env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_DEFAULT.into());
    imds_credentials(http, imds.trim_end_matches('/')).await
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn web_identity(
    http: &reqwest::Client,
    sts_endpoint: &str,
    file: &str,
    role_arn: &str,
    session: &str,
) -> Result<AwsCredentials, CredentialsError> {
    let token = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
        CredentialsError(format!(
            "cannot read the web identity token file {file}: {}",
            crate::config::io_reason(&e)
        ))
    })?);
    let body = Zeroizing::new(format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role_arn),
        form_encode(session),
        form_encode(token.trim())
    ));
    let what = "AssumeRoleWithWebIdentity";
    let resp = http
        .post(format!("{sts_endpoint}/"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.as_bytes().to_vec())
        .send()
        .await
        .map_err(|_| CredentialsError(format!("{what} at {sts_endpoint}: request failed")))?;
    let status = resp.status().as_u16();
    let text = Zeroizing::new(
        resp.text()
            .await
            .map_err(|_| CredentialsError(format!("{what}: reading the answer failed")))?,
    );
    if status != 200 {
        return fail(format!("{what} at {sts_endpoint}: HTTP status {status}"));
    }
    let [id, secret, token] = xml_fields(&text, ["AccessKeyId", "SecretAccessKey", "SessionToken"])
        .ok_or_else(|| CredentialsError(format!("{what}: the answer has no credentials")))?;
    Ok(AwsCredentials {
        access_key_id: id,
        secret_access_key: SecretString::from(secret),
        session_token: Some(SecretString::from(token)),
        source: "web identity",
    })
}

/// The text of the first element named each of `names` (inside `<Credentials>`).
fn xml_fields<const N: usize>(xml: &str, names: [&str; N]) -> Option<[String; N]> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut current: Option<usize> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = e.local_name();
                current = names
                    .iter()
                    .position(|n| *n == name.as_ref())
                    .filter(|i| out[*i].is_none());
                if let Some(i) = current {
                    out[i] = Some(String::new());
                }
            }
            Event::Text(t) => {
                if let Some(i) = current {
                    out[i].as_mut()?.push_str(t.xml10_content().trim());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(i) = current {
                    let name = r.xml10_content();
                    let text = match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => v.to_string(),
                        None => r.resolve_char_ref().ok()??.to_string(),
                    };
                    out[i].as_mut()?.push_str(&text);
                }
            }
            Event::End(_) => current = None,
            Event::Eof => break,
            _ => {}
        }
    }
    let vals: Vec<String> = out.into_iter().collect::<Option<Vec<_>>>()?;
    vals.try_into().ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    code: Option<String>,
    access_key_id: String,
    secret_access_key: SecretString,
    token: Option<SecretString>,
}

async fn imds_credentials(
    http: &reqwest::Client,
    base: &str,
) -> Result<AwsCredentials, CredentialsError> {
    let unreachable = || {
        CredentialsError(format!(
            "none in the environment, no web identity token file, and IMDS at {base} did not answer"
        ))
    };
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "300")
        .timeout(IMDS_TIMEOUT)
        .send()
        .await
        .map_err(|_| unreachable())?;
    if !token.status().is_success() {
        return fail(format!(
            "IMDS token request: HTTP status {}",
            token.status().as_u16()
        ));
    }
    let token = Zeroizing::new(token.text().await.map_err(|_| unreachable())?);
    let get = |path: String| {
        http.get(format!(
            "{base}/latest/meta-data/iam/security-credentials/{path}"
        ))
        .header("x-aws-ec2-metadata-token", token.trim())
        .timeout(IMDS_TIMEOUT)
        .send()
    };
    let roles = get(String::new()).await.map_err(|_| unreachable())?;
    if !roles.status().is_success() {
        return fail(format!(
            "IMDS: the instance has no IAM role (HTTP status {})",
            roles.status().as_u16()
        ));
    }
    let roles = roles.text().await.map_err(|_| unreachable())?;
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return fail("IMDS: the instance has no IAM role");
    };
    let creds = get(role.to_string()).await.map_err(|_| unreachable())?;
    if !creds.status().is_success() {
        return fail(format!(
            "IMDS credentials: HTTP status {}",
            creds.status().as_u16()
        ));
    }
    let body = Zeroizing::new(creds.bytes().await.map_err(|_| unreachable())?.to_vec());
    let c: ImdsCredentials = serde_json::from_slice(&body)
        .map_err(|_| CredentialsError("IMDS credentials: not the expected JSON".into()))?;
    if c.code.as_deref().is_some_and(|code| code != "Success") {
        return fail("IMDS credentials: the answer's Code is not Success");
    }
    Ok(AwsCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.token,
        source: "IMDS",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn http() -> reqwest::Client {
        hush_api::install_crypto_provider();
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[tokio::test]
    async fn environment_credentials_come_first_and_debug_hides_them() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-session"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent"),
        ]);
        let c = load(&env, &http(), "http://127.0.0.1:9").await.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.source),
            ("AKIAENV", "environment")
        );
        assert_eq!(c.secret_access_key.expose_secret(), "env-secret");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("env-secret") && !dbg.contains("env-session"),
            "{dbg}"
        );
    }

    #[tokio::test]
    async fn half_set_or_missing_pieces_are_named() {
        let http = http();
        let e = load(&env_of(&[("AWS_ACCESS_KEY_ID", "A")]), &http, "http://x").await;
        assert!(e.unwrap_err().0.contains("must be set together"));
        let e = load(
            &env_of(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]),
            &http,
            "http://x",
        )
        .await;
        assert!(e.unwrap_err().0.contains("AWS_ROLE_ARN is not"));
        let e = load(
            &env_of(&[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/t"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ]),
            &http,
            "http://x",
        )
        .await;
        assert!(e
            .unwrap_err()
            .0
            .contains("cannot read the web identity token file /nonexistent/t"));
        let e = load(
            &env_of(&[("AWS_EC2_METADATA_DISABLED", "true")]),
            &http,
            "http://x",
        )
        .await;
        assert!(e.unwrap_err().0.contains("IMDS is disabled"));
        // Nothing listens on port 9: IMDS does not answer.
        let e = load(
            &env_of(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")]),
            &http,
            "http://x",
        )
        .await;
        assert!(e
            .unwrap_err()
            .0
            .contains("IMDS at http://127.0.0.1:9 did not answer"));
    }

    /// An IMDSv2 stand-in: a session token by PUT, then the role and its credentials only
    /// for requests that carry the token.
    async fn imds() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                let line = text.lines().next().unwrap_or_default().to_string();
                let authed = text.contains("x-aws-ec2-metadata-token: imds-tok");
                let creds = r#"{"Code": "Success", "AccessKeyId": "ASIAIMDS", "SecretAccessKey": "imds-secret", "Token": "imds-session"}"#;
                let (status, body) = match line.split(' ').take(2).collect::<Vec<_>>()[..] {
                    ["put", "/latest/api/token"]
                        if text.contains("x-aws-ec2-metadata-token-ttl-seconds") =>
                    {
                        (200, "imds-tok")
                    }
                    [_, _] if !authed => (401, ""),
                    ["get", "/latest/meta-data/iam/security-credentials/"] => (200, "web-role\n"),
                    ["get", "/latest/meta-data/iam/security-credentials/web-role"] => (200, creds),
                    _ => (404, ""),
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn imds_v2_gives_the_instance_role_credentials() {
        let url = imds().await;
        let env = env_of(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", url.as_str())]);
        let c = load(&env, &http(), "http://127.0.0.1:9").await.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.source), ("ASIAIMDS", "IMDS"));
        assert_eq!(c.secret_access_key.expose_secret(), "imds-secret");
        assert_eq!(c.session_token.unwrap().expose_secret(), "imds-session");
    }

    #[test]
    fn sts_credentials_are_read_from_xml() {
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
                   <Credentials><SessionToken>tok&amp;en</SessionToken><SecretAccessKey>sk</SecretAccessKey>\
                   <AccessKeyId>ASIA1</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
                   </AssumeRoleWithWebIdentityResponse>";
        let [id, sk, tok] =
            xml_fields(xml, ["AccessKeyId", "SecretAccessKey", "SessionToken"]).unwrap();
        assert_eq!(
            (id.as_str(), sk.as_str(), tok.as_str()),
            ("ASIA1", "sk", "tok&en")
        );
        assert!(xml_fields(
            "<Credentials><AccessKeyId>A</AccessKeyId></Credentials>",
            ["AccessKeyId", "SessionToken"]
        )
        .is_none());
        assert_eq!(form_encode("a b/c=d"), "a%20b%2Fc%3Dd");
    }
}

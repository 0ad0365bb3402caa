//! `--auth aws` settings (`[auth] method = "aws"`): the role, and optionally the signing
//! region, the server-id header value and the STS endpoint. Unset ones are taken from the
//! environment at each login (see [`crate::auth::aws`]).

use super::{AwsLogin, ConfigError};
use hush_api::agent_config::RawAuth;

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Whether any aws-only setting is given (refused for the other methods).
pub fn any_set(auth: &RawAuth) -> bool {
    auth.aws_region.is_some() || auth.aws_server_id.is_some() || auth.aws_sts_endpoint.is_some()
}

/// A region name like `us-east-1`.
pub fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An STS endpoint: an http(s) URL without query; a trailing `/` is dropped.
pub fn sts_endpoint(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?}: want an http(s) URL like https://sts.us-east-1.amazonaws.com");
    let url = reqwest::Url::parse(text.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Check the `[auth]` settings of `--auth aws`.
pub fn login(auth: RawAuth) -> Result<AwsLogin, ConfigError> {
    if auth.jwt_file.is_some() || auth.role_id_file.is_some() || auth.secret_id_file.is_some() {
        return err(
            "--jwt-file, --role-id-file and --secret-id-file are not used by --auth aws: it signs with AWS credentials from the environment",
        );
    }
    let role = match auth.role.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => return err("--auth aws needs --role (auth.role)"),
    };
    let region = match auth.aws_region.as_deref().map(str::trim) {
        None => None,
        Some(r) if valid_region(r) => Some(r.to_string()),
        Some(r) => return err(format!("--aws-region {r:?}: want a region like us-east-1")),
    };
    let server_id = match auth.aws_server_id.as_deref().map(str::trim) {
        None => None,
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            Some(v.to_string())
        }
        Some(_) => return err("--aws-server-id: want a non-empty header value of printable ASCII"),
    };
    let sts_endpoint = match auth.aws_sts_endpoint.as_deref() {
        None => None,
        Some(t) => {
            Some(sts_endpoint(t).map_err(|e| ConfigError(format!("--aws-sts-endpoint {e}")))?)
        }
    };
    Ok(AwsLogin {
        role,
        region,
        server_id,
        sts_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(role: Option<&str>) -> RawAuth {
        RawAuth {
            method: Some("aws".into()),
            role: role.map(Into::into),
            ..RawAuth::default()
        }
    }

    #[test]
    fn role_is_needed_and_the_rest_is_optional() {
        assert_eq!(
            login(raw(None)).unwrap_err().0,
            "--auth aws needs --role (auth.role)"
        );
        let l = login(raw(Some("web"))).unwrap();
        assert_eq!(
            (l.role.as_str(), l.region, l.server_id, l.sts_endpoint),
            ("web", None, None, None)
        );
        let mut a = raw(Some("web"));
        a.aws_region = Some("eu-west-1".into());
        a.aws_server_id = Some("hushd.example".into());
        a.aws_sts_endpoint = Some("http://127.0.0.1:5000/".into());
        let l = login(a).unwrap();
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(l.server_id.as_deref(), Some("hushd.example"));
        assert_eq!(l.sts_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut a = raw(Some("web"));
        a.aws_region = Some("EU West".into());
        assert_eq!(
            login(a).unwrap_err().0,
            "--aws-region \"EU West\": want a region like us-east-1"
        );
        let mut a = raw(Some("web"));
        a.aws_sts_endpoint = Some("ftp://sts".into());
        assert!(login(a)
            .unwrap_err()
            .0
            .starts_with("--aws-sts-endpoint \"ftp://sts\": want"));
        let mut a = raw(Some("web"));
        a.aws_server_id = Some("a\nb".into());
        assert!(login(a).unwrap_err().0.starts_with("--aws-server-id"));
        let mut a = raw(Some("web"));
        a.jwt_file = Some("/j".into());
        assert!(login(a).unwrap_err().0.contains("not used by --auth aws"));
    }
}

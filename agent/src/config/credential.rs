//! `--token-file` or `--auth` (`server.token_file` or `[auth]`): exactly one, each checked.

use std::path::PathBuf;

use super::{
    ConfigError, Credential, JwtKind, LoginMethod, LoginSpec, DEFAULT_GCE_METADATA_HOST,
    DEFAULT_K8S_JWT_FILE,
};
use hush_api::agent_config::RawAuth;

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// A mount path: segments of letters, digits, `_`, `-` and `.`, slashes trimmed.
fn mount_path(text: &str) -> Result<String, ConfigError> {
    let m = text.trim().trim_matches('/');
    let ok = !m.is_empty()
        && m.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if ok {
        Ok(m.to_string())
    } else {
        err(format!(
            "auth mount {text:?}: want a mount path like kubernetes or k8s/prod"
        ))
    }
}

fn non_empty(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// Decide where the agent's token comes from.
pub fn credential(token_file: Option<PathBuf>, auth: RawAuth) -> Result<Credential, ConfigError> {
    let token_file = non_empty(token_file);
    let Some(method) = auth.method.as_deref().map(str::trim) else {
        if auth.role.is_some()
            || auth.mount.is_some()
            || auth.jwt_file.is_some()
            || auth.role_id_file.is_some()
            || auth.secret_id_file.is_some()
            || auth.gcp_metadata_host.is_some()
            || super::aws::any_set(&auth)
        {
            return err("auth settings given without a method: set --auth or auth.method");
        }
        return match token_file {
            Some(p) => Ok(Credential::TokenFile(p)),
            None => err("no token: set --token-file or --auth (server.token_file or auth.method)"),
        };
    };
    if token_file.is_some() {
        return err("--token-file and --auth are mutually exclusive: give one of them");
    }
    if method == "gcp" {
        let mount = mount_path(auth.mount.as_deref().unwrap_or(method))?;
        let env_host = std::env::var("GCE_METADATA_HOST").ok();
        let method = gcp(auth, env_host)?;
        return Ok(Credential::Login(LoginSpec { mount, method }));
    }
    if auth.gcp_metadata_host.is_some() {
        return err(format!(
            "--gcp-metadata-host is only for --auth gcp, not {method}"
        ));
    }
    if method == "aws" {
        let mount = mount_path(auth.mount.as_deref().unwrap_or(method))?;
        let method = LoginMethod::Aws(super::aws::login(auth)?);
        return Ok(Credential::Login(LoginSpec { mount, method }));
    }
    if super::aws::any_set(&auth) {
        return err(format!(
            "--aws-region, --aws-server-id and --aws-sts-endpoint are only for --auth aws, not {method}"
        ));
    }
    let kind = match method {
        "kubernetes" => Some(JwtKind::Kubernetes),
        "jwt" => Some(JwtKind::Jwt),
        "approle" => None,
        other => {
            return err(format!(
                "auth method {other:?}: want kubernetes, jwt, gcp, approle or aws"
            ))
        }
    };
    let mount = mount_path(auth.mount.as_deref().unwrap_or(method))?;
    let method = match kind {
        Some(kind) => {
            if auth.role_id_file.is_some() || auth.secret_id_file.is_some() {
                return err(format!(
                    "--role-id-file and --secret-id-file are only for --auth approle, not {method}"
                ));
            }
            let role = required_role(&auth, method)?;
            let jwt_file = match (non_empty(auth.jwt_file), kind) {
                (Some(p), _) => p,
                (None, JwtKind::Kubernetes) => PathBuf::from(DEFAULT_K8S_JWT_FILE),
                (None, JwtKind::Jwt) => {
                    return err("--auth jwt needs --jwt-file (auth.jwt_file)");
                }
            };
            LoginMethod::Jwt {
                kind,
                role,
                jwt_file,
            }
        }
        None => {
            if auth.role.is_some() || auth.jwt_file.is_some() {
                return err(
                    "--role and --jwt-file are not used by --auth approle: it logs in with --role-id-file and --secret-id-file",
                );
            }
            let Some(role_id_file) = non_empty(auth.role_id_file) else {
                return err("--auth approle needs --role-id-file (auth.role_id_file)");
            };
            LoginMethod::AppRole {
                role_id_file,
                secret_id_file: non_empty(auth.secret_id_file),
            }
        }
    };
    Ok(Credential::Login(LoginSpec { mount, method }))
}

fn required_role(auth: &RawAuth, method: &str) -> Result<String, ConfigError> {
    match auth.role.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => Ok(r.to_string()),
        _ => err(format!("--auth {method} needs --role (auth.role)")),
    }
}

/// A metadata server address: `host` or `host:port` (an IPv6 literal in brackets), no scheme.
fn metadata_host(text: &str) -> Result<String, ConfigError> {
    let h = text.trim();
    let ok = !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(h.to_string())
    } else {
        err(format!(
            "gcp metadata host {text:?}: want host or host:port, like {DEFAULT_GCE_METADATA_HOST}"
        ))
    }
}

/// `--auth gcp`: a role, and the metadata server from the flag, else `env_host`
/// (`GCE_METADATA_HOST`), else the default.
fn gcp(auth: RawAuth, env_host: Option<String>) -> Result<LoginMethod, ConfigError> {
    if auth.jwt_file.is_some() || auth.role_id_file.is_some() || auth.secret_id_file.is_some() {
        return err(
            "--jwt-file, --role-id-file and --secret-id-file are not used by --auth gcp: it gets its token from the metadata server",
        );
    }
    let role = required_role(&auth, "gcp")?;
    let host = [auth.gcp_metadata_host, env_host]
        .into_iter()
        .flatten()
        .find(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_GCE_METADATA_HOST.to_string());
    Ok(LoginMethod::Gcp {
        role,
        metadata_host: metadata_host(&host)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(method: &str) -> RawAuth {
        RawAuth {
            method: Some(method.into()),
            ..RawAuth::default()
        }
    }

    fn msg(r: Result<Credential, ConfigError>) -> String {
        r.expect_err("must be refused").0
    }

    #[test]
    fn token_file_alone_and_neither() {
        assert_eq!(
            credential(Some("/t".into()), RawAuth::default()).unwrap(),
            Credential::TokenFile("/t".into())
        );
        assert_eq!(
            msg(credential(None, RawAuth::default())),
            "no token: set --token-file or --auth (server.token_file or auth.method)"
        );
    }

    #[test]
    fn token_file_and_auth_are_exclusive() {
        assert_eq!(
            msg(credential(Some("/t".into()), auth("approle"))),
            "--token-file and --auth are mutually exclusive: give one of them"
        );
    }

    #[test]
    fn kubernetes_defaults_mount_and_jwt_file() {
        let mut a = auth("kubernetes");
        a.role = Some("web".into());
        let Credential::Login(spec) = credential(None, a).unwrap() else {
            panic!("a login");
        };
        assert_eq!(spec.mount, "kubernetes");
        assert_eq!(spec.method_name(), "kubernetes");
        assert_eq!(
            spec.method,
            LoginMethod::Jwt {
                kind: JwtKind::Kubernetes,
                role: "web".into(),
                jwt_file: DEFAULT_K8S_JWT_FILE.into(),
            }
        );
    }

    #[test]
    fn jwt_needs_role_and_file_and_mount_is_checked() {
        assert_eq!(
            msg(credential(None, auth("jwt"))),
            "--auth jwt needs --role (auth.role)"
        );
        let mut a = auth("jwt");
        a.role = Some("r".into());
        assert_eq!(
            msg(credential(None, a)),
            "--auth jwt needs --jwt-file (auth.jwt_file)"
        );
        let mut a = auth("jwt");
        a.role = Some("r".into());
        a.jwt_file = Some("/j".into());
        a.mount = Some("/oidc/prod/".into());
        let Credential::Login(spec) = credential(None, a).unwrap() else {
            panic!("a login");
        };
        assert_eq!(spec.mount, "oidc/prod");
        let mut a = auth("jwt");
        a.role = Some("r".into());
        a.jwt_file = Some("/j".into());
        a.mount = Some("a/../b".into());
        assert_eq!(
            msg(credential(None, a)),
            "auth mount \"a/../b\": want a mount path like kubernetes or k8s/prod"
        );
    }

    #[test]
    fn approle_needs_role_id_and_refuses_jwt_settings() {
        assert_eq!(
            msg(credential(None, auth("approle"))),
            "--auth approle needs --role-id-file (auth.role_id_file)"
        );
        let mut a = auth("approle");
        a.role_id_file = Some("/r".into());
        a.role = Some("x".into());
        assert!(msg(credential(None, a)).contains("not used by --auth approle"));
        let mut a = auth("approle");
        a.role_id_file = Some("/r".into());
        a.secret_id_file = Some("/s".into());
        assert_eq!(
            credential(None, a).unwrap(),
            Credential::Login(LoginSpec {
                mount: "approle".into(),
                method: LoginMethod::AppRole {
                    role_id_file: "/r".into(),
                    secret_id_file: Some("/s".into()),
                },
            })
        );
        let mut a = auth("kubernetes");
        a.role = Some("web".into());
        a.role_id_file = Some("/r".into());
        assert!(msg(credential(None, a)).contains("only for --auth approle"));
    }

    #[test]
    fn unknown_method_and_settings_without_method() {
        assert_eq!(
            msg(credential(None, auth("ldap"))),
            "auth method \"ldap\": want kubernetes, jwt, gcp, approle or aws"
        );
        let mut a = auth("approle");
        a.role_id_file = Some("/r".into());
        a.aws_region = Some("us-east-1".into());
        assert!(msg(credential(None, a)).contains("only for --auth aws, not approle"));
        let mut a = auth("aws");
        a.role = Some("web".into());
        a.mount = Some("aws/prod".into());
        let Credential::Login(spec) = credential(None, a).unwrap() else {
            panic!("a login");
        };
        assert_eq!(
            (spec.mount.as_str(), spec.method_name()),
            ("aws/prod", "aws")
        );
        let a = RawAuth {
            role: Some("web".into()),
            ..RawAuth::default()
        };
        assert_eq!(
            msg(credential(Some("/t".into()), a)),
            "auth settings given without a method: set --auth or auth.method"
        );
    }

    #[test]
    fn gcp_needs_a_role_and_takes_the_metadata_host() {
        assert_eq!(
            msg(credential(None, auth("gcp"))),
            "--auth gcp needs --role (auth.role)"
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        assert_eq!(
            gcp(a, None).unwrap(),
            LoginMethod::Gcp {
                role: "web".into(),
                metadata_host: DEFAULT_GCE_METADATA_HOST.into(),
            }
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        let m = gcp(a, Some("169.254.169.254:80".into())).unwrap();
        assert!(
            matches!(m, LoginMethod::Gcp { metadata_host, .. } if metadata_host == "169.254.169.254:80")
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        a.gcp_metadata_host = Some("127.0.0.1:8080".into());
        let m = gcp(a, Some("env.invalid".into())).unwrap();
        assert!(
            matches!(m, LoginMethod::Gcp { metadata_host, .. } if metadata_host == "127.0.0.1:8080")
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        a.gcp_metadata_host = Some("http://x/".into());
        assert_eq!(
            gcp(a, None).unwrap_err().0,
            "gcp metadata host \"http://x/\": want host or host:port, like metadata.google.internal"
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        a.jwt_file = Some("/j".into());
        assert!(msg(credential(None, a)).contains("not used by --auth gcp"));
        let mut a = auth("kubernetes");
        a.role = Some("web".into());
        a.gcp_metadata_host = Some("h".into());
        assert_eq!(
            msg(credential(None, a)),
            "--gcp-metadata-host is only for --auth gcp, not kubernetes"
        );
        let mut a = auth("gcp");
        a.role = Some("web".into());
        a.mount = Some("gcp/prod".into());
        let Credential::Login(spec) = credential(None, a).unwrap() else {
            panic!("a login");
        };
        assert_eq!(
            (spec.mount.as_str(), spec.method_name()),
            ("gcp/prod", "gcp")
        );
    }
}

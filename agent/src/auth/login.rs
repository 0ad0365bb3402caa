//! Workload-identity login: `auth/<mount>/login` with a JWT (kubernetes, jwt) or an AppRole
//! role_id/secret_id, each read from its file at every login (kubelet rotates projected
//! tokens), with a GCE identity token fetched fresh from the metadata server (gcp), or with an
//! STS request signed with AWS credentials ([`super::aws`]). The credentials live only in
//! zeroized buffers and the request body; they are
//! never logged and never part of an error message.

use std::path::Path;

use hush_api::wire::Auth;
use hush_api::Client;
use serde::Serialize;
use zeroize::Zeroizing;

use super::error::AuthError;
use crate::config::{LoginMethod, LoginSpec};

/// `{role, jwt}`. No `Debug`: it holds the JWT.
#[derive(Serialize)]
struct JwtBody<'a> {
    role: &'a str,
    jwt: &'a str,
}

/// `{role_id, secret_id}`. No `Debug`: it holds the secret_id.
#[derive(Serialize)]
struct AppRoleBody<'a> {
    role_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_id: Option<&'a str>,
}

/// Read one credential file, trimmed; `what` names it in errors (never its content).
fn read_credential(what: &'static str, path: &Path) -> Result<Zeroizing<String>, AuthError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| AuthError::Credential {
                what,
                path: path.into(),
                reason: crate::config::io_reason(&e),
            })?,
        );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AuthError::Credential {
            what,
            path: path.into(),
            reason: "the file is empty".into(),
        });
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

/// The login path, e.g. `auth/kubernetes/login`.
pub fn login_path(spec: &LoginSpec) -> String {
    format!("auth/{}/login", spec.mount)
}

/// Log in once. `base` carries no token.
pub async fn login(base: &Client, spec: &LoginSpec) -> Result<Auth, AuthError> {
    let path = login_path(spec);
    let reply = match &spec.method {
        LoginMethod::Jwt { role, jwt_file, .. } => {
            let jwt = read_credential("JWT", jwt_file)?;
            base.write(&path, &JwtBody { role, jwt: &jwt }).await
        }
        LoginMethod::Gcp {
            role,
            metadata_host,
        } => {
            let jwt = super::gcp::identity_token(metadata_host, role).await?;
            base.write(&path, &JwtBody { role, jwt: &jwt }).await
        }
        LoginMethod::AppRole {
            role_id_file,
            secret_id_file,
        } => {
            let role_id = read_credential("role_id", role_id_file)?;
            let secret_id = match secret_id_file {
                Some(p) => Some(read_credential("secret_id", p)?),
                None => None,
            };
            let body = AppRoleBody {
                role_id: &role_id,
                secret_id: secret_id.as_ref().map(|s| s.as_str()),
            };
            base.write(&path, &body).await
        }
        LoginMethod::Aws(aws) => {
            let body = super::aws::login_body(aws).await?;
            base.write(&path, &body).await
        }
    };
    let fail = |source| AuthError::Login {
        path: path.clone(),
        source,
    };
    let auth = reply.map_err(fail)?.and_then(|r| r.auth);
    match auth {
        Some(a) if !secrecy::ExposeSecret::expose_secret(&a.client_token).is_empty() => Ok(a),
        _ => Err(AuthError::Login {
            path: path.clone(),
            source: hush_api::ClientError::Decode {
                path,
                reason: "the response has no auth".into(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtKind;

    #[test]
    fn bodies_have_vaults_shape() {
        let b = serde_json::to_value(JwtBody {
            role: "web",
            jwt: "e.y.j",
        })
        .unwrap();
        assert_eq!(b, serde_json::json!({"role": "web", "jwt": "e.y.j"}));
        let b = serde_json::to_value(AppRoleBody {
            role_id: "r",
            secret_id: None,
        })
        .unwrap();
        assert_eq!(b, serde_json::json!({"role_id": "r"}));
    }

    #[test]
    fn credential_files_are_trimmed_and_errors_name_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "  e.y.j-secret\n").unwrap();
        assert_eq!(
            read_credential("JWT", &path).unwrap().as_str(),
            "e.y.j-secret"
        );
        std::fs::write(&path, "\n").unwrap();
        let e = read_credential("JWT", &path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "could not read the JWT from {}: the file is empty",
                path.display()
            )
        );
        let e = read_credential("secret_id", &dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("could not read the secret_id from "), "{e}");
    }

    #[tokio::test]
    async fn a_missing_jwt_file_fails_before_any_request() {
        // Port 9 (discard) is never asked: the file is read first.
        let base = Client::new("http://127.0.0.1:9", None, None).unwrap();
        let spec = LoginSpec {
            mount: "k8s".into(),
            method: LoginMethod::Jwt {
                kind: JwtKind::Kubernetes,
                role: "web".into(),
                jwt_file: "/nonexistent/hush/jwt".into(),
            },
        };
        assert_eq!(login_path(&spec), "auth/k8s/login");
        assert!(matches!(
            login(&base, &spec).await,
            Err(AuthError::Credential { what: "JWT", .. })
        ));
    }
}

//! `sys/auth` (list), `sys/auth/:path` (enable, read, disable), `sys/auth/:path/tune`.
//!
//! Auth methods live in the one mount table, under `auth/`. Disabling one deletes its data
//! (roles, secret IDs); tokens it issued stay valid until they expire (Vault revokes them:
//! hushd does not yet track tokens by mount).

use serde_json::Value;

use super::mounts;
use crate::core::mount::{normalize_mount_path, MountConfig};
use crate::core::state::Unsealed;
use crate::logical::fields::field_secs;
use crate::logical::{Data, LogicalError, Operation, Request, Response};

/// `sys/auth/<rest>`: everything below the list.
pub async fn handle(st: &Unsealed, req: &Request, rest: &str) -> Result<Response, LogicalError> {
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    if let Some(path) = rest.strip_suffix("/tune") {
        let full = full_path(path);
        return match req.operation {
            Operation::Read => mounts::read_tune(st, &full),
            _ if write => {
                check_token_type(&req.data)?;
                mounts::tune(st, req, &full).await
            }
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    match req.operation {
        Operation::Read => {
            let entry = st.router.get(&full_path(rest)).ok_or_else(|| {
                LogicalError::invalid(format!("no auth method enabled at auth/{rest}"))
            })?;
            Ok(Response::data(entry.to_json()))
        }
        Operation::Delete => disable(st, rest).await,
        _ if write => enable(st, req, rest).await,
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

/// An auth mount's `token_type` (tune, or `config` at enable): hushd issues service tokens
/// only, so Vault's default, `default-service`, is the one it can keep; anything else is a
/// 400 rather than a setting silently dropped.
fn check_token_type(data: &Data) -> Result<(), LogicalError> {
    match data.get("token_type") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if t.is_empty() || t == "default-service" => Ok(()),
        Some(Value::String(t)) => Err(LogicalError::invalid(format!(
            "token_type {t:?} is not supported on auth mounts: hushd issues service tokens \
             (\"default-service\")"
        ))),
        Some(_) => Err(LogicalError::invalid("token_type must be a string")),
    }
}

fn full_path(path: &str) -> String {
    format!("auth/{}", normalize_mount_path(path))
}

async fn enable(st: &Unsealed, req: &Request, path: &str) -> Result<Response, LogicalError> {
    let kind = req.get_str("type").unwrap_or_default();
    let description = req.get_str("description").unwrap_or_default();
    let mut config = MountConfig::default();
    match req.data.get("config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            check_token_type(m)?;
            if let Some(x) = field_secs(m, "default_lease_ttl")? {
                config.default_lease_ttl = x;
            }
            if let Some(x) = field_secs(m, "max_lease_ttl")? {
                config.max_lease_ttl = x;
            }
        }
        Some(_) => return Err(LogicalError::invalid("config must be an object")),
    }
    if config.max_lease_ttl != 0 && config.default_lease_ttl > config.max_lease_ttl {
        return Err(LogicalError::invalid(
            "default_lease_ttl cannot be greater than max_lease_ttl",
        ));
    }
    let entry = st.router.mount_auth(path, kind, description).await?;
    if config != MountConfig::default() {
        st.router.tune(&entry.path, Some(config), None).await?;
    }
    Ok(Response::empty())
}

async fn disable(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let full = full_path(path);
    if full == "auth/token/" {
        return Err(LogicalError::invalid(
            "the token auth method cannot be disabled",
        ));
    }
    // Vault answers 204 for a path with nothing mounted.
    super::leases::revoke_mount(st, &full).await?;
    st.router.unmount(&full).await?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_default_token_type_is_accepted_on_auth_mounts() {
        let data = |v: Value| v.as_object().cloned().unwrap_or_default();
        for ok in [
            json!({}),
            json!({"token_type": "default-service"}),
            json!({"token_type": ""}),
        ] {
            assert!(check_token_type(&data(ok)).is_ok());
        }
        for bad in [
            json!({"token_type": "batch"}),
            json!({"token_type": "default-batch"}),
            json!({"token_type": "service"}),
            json!({"token_type": 1}),
        ] {
            let err = check_token_type(&data(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert!(err.to_string().contains("token_type"), "{bad}: {err}");
        }
    }
}

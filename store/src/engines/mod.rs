//! Secrets engines mounted under the router.
//!
//! # Plugging in an engine
//!
//! Implement [`crate::logical::LogicalBackend`] over the mount's
//! [`crate::barrier::BarrierView`], add the type to [`SUPPORTED_TYPES`], [`normalize_kind`]
//! (options it takes) and the registry in [`crate::backends`]. An engine
//! issuing dynamic secrets answers with [`crate::logical::Response::leased`] and handles
//! [`crate::logical::Operation::Renew`] / `Revoke` requests from the expiration manager.

use serde_json::Value;

use crate::logical::LogicalError;

pub mod cubbyhole;
pub mod database;
pub mod kv;

/// Secrets engine types `sys/mounts/:path` accepts (`generic` is Vault's old name of `kv`).
pub const SUPPORTED_TYPES: &[&str] = &["kv", "generic", "database"];

fn supported() -> String {
    let names: Vec<String> = SUPPORTED_TYPES.iter().map(|t| format!("{t:?}")).collect();
    format!("{} (kv versions 1 and 2)", names.join(", "))
}

/// The KV version in mount options, as Vault's weak decoding reads it: absent, `null` and
/// `""` are `None` (version 1 for a kv mount); numbers and strings as text.
pub fn kv_version(
    options: &serde_json::Map<String, Value>,
) -> Result<Option<String>, LogicalError> {
    match options.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(LogicalError::invalid("options.version must be 1 or 2")),
    }
}

/// Check a secrets engine type and its options: `kv` (version 1 unless `options.version`
/// says 2, as in Vault), `kv-v1`, `kv-v2`, `generic` (a kv mount under its old name) and
/// `database`. The version is stored as a string, as Vault stores it.
pub fn normalize_kind(
    kind: &str,
    options: Value,
) -> Result<(String, serde_json::Map<String, Value>), LogicalError> {
    let mut options = match options {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        _ => return Err(LogicalError::invalid("options must be an object")),
    };
    let version = kv_version(&options)?;
    match kind {
        "kv" | "generic" | "kv-v1" | "kv-v2" => {
            let version = match (kind, version) {
                ("kv-v1", _) => Some("1".to_string()),
                ("kv-v2", _) => Some("2".to_string()),
                (_, v) => v,
            };
            match version.as_deref() {
                None => {
                    options.remove("version");
                }
                Some(v @ ("1" | "2")) => {
                    options.insert("version".into(), Value::String(v.into()));
                }
                Some(other) => {
                    return Err(LogicalError::invalid(format!(
                        "invalid kv version {other:?}: hushd serves kv versions 1 and 2"
                    )))
                }
            }
            let kind = if kind == "generic" { "generic" } else { "kv" };
            Ok((kind.into(), options))
        }
        "database" if version.is_some() => Err(LogicalError::invalid(
            "secrets engine \"database\" does not allow setting a version",
        )),
        "database" => Ok(("database".into(), options)),
        "" => Err(LogicalError::invalid("missing secrets engine type")),
        other => Err(LogicalError::invalid(format!(
            "unknown secrets engine type {other:?}: hushd supports {}",
            supported()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_version_rules() {
        let version = |kind: &str, options: Value| {
            let (kind, options) = normalize_kind(kind, options).unwrap();
            (kind, options.get("version").cloned())
        };
        assert_eq!(
            version("kv-v2", Value::Null),
            ("kv".into(), Some(json!("2")))
        );
        assert_eq!(
            version("kv-v1", Value::Null),
            ("kv".into(), Some(json!("1")))
        );
        assert_eq!(version("kv", json!({"version": 2})).1, Some(json!("2")));
        assert_eq!(version("kv", json!({"version": "2"})).1, Some(json!("2")));
        assert_eq!(version("kv", json!({"version": 1})).1, Some(json!("1")));
        // Plain `kv` is version 1, as in Vault: the options say nothing.
        assert_eq!(version("kv", Value::Null), ("kv".into(), None));
        assert_eq!(version("kv", json!({"version": ""})), ("kv".into(), None));
        assert_eq!(version("generic", Value::Null), ("generic".into(), None));
        for bad in [
            json!({"version": "3"}),
            json!({"version": 0}),
            json!({"version": [2]}),
        ] {
            let err = normalize_kind("kv", bad).unwrap_err();
            assert_eq!(err.status(), 400);
        }
        assert!(normalize_kind("database", json!({"version": "2"})).is_err());
        assert!(normalize_kind("transit", Value::Null).is_err());
        assert_eq!(
            normalize_kind("database", Value::Null).unwrap().0,
            "database"
        );
    }
}

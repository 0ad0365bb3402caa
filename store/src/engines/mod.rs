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

/// Secrets engine types `sys/mounts/:path` accepts.
pub const SUPPORTED_TYPES: &[&str] = &["kv", "database"];

fn supported() -> String {
    let names: Vec<String> = SUPPORTED_TYPES.iter().map(|t| format!("{t:?}")).collect();
    format!("{} (kv version 2)", names.join(", "))
}

/// Accept `kv` with options.version 2, or `kv-v2`; refuse version 1.
pub fn normalize_kind(
    kind: &str,
    options: Value,
) -> Result<(String, serde_json::Map<String, Value>), LogicalError> {
    let mut options = match options {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        _ => return Err(LogicalError::invalid("options must be an object")),
    };
    match kind {
        "kv" | "kv-v2" => {
            let version = match options.get("version") {
                None | Some(Value::Null) if kind == "kv-v2" => "2".to_string(),
                None | Some(Value::Null) => "1".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(LogicalError::invalid("options.version must be 2")),
            };
            if version != "2" {
                return Err(LogicalError::invalid(format!(
                    "kv version {version} is not supported: hushd serves kv version 2 only \
                     (pass options.version=2)"
                )));
            }
            options.insert("version".into(), Value::String("2".into()));
            Ok(("kv".into(), options))
        }
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
        assert_eq!(normalize_kind("kv-v2", Value::Null).unwrap().0, "kv");
        assert!(normalize_kind("kv", json!({"version": 2})).is_ok());
        assert!(normalize_kind("kv", json!({"version": "2"})).is_ok());
        assert!(normalize_kind("kv", Value::Null).is_err());
        assert!(normalize_kind("kv", json!({"version": "1"})).is_err());
        assert!(normalize_kind("transit", Value::Null).is_err());
        assert_eq!(
            normalize_kind("database", Value::Null).unwrap().0,
            "database"
        );
    }
}

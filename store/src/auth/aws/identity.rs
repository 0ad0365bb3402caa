//! `config/identity`: Vault's aws identity configuration, `iam_alias`, `iam_metadata`,
//! `ec2_alias` and `ec2_metadata`.
//!
//! hushd has no identity store (no entities), so the alias choices are checked, kept and
//! shown only. `iam_metadata` chooses the token metadata of an iam login among
//! [`IAM_METADATA`] (`role_id` and `role` are always there); `["default"]`, the default, keeps
//! them all. The ec2 login type is not supported, so `ec2_metadata` is checked and kept only.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::metadata::{metadata_fields, shown_fields};
use crate::logical::fields::list_field;
use crate::logical::{Data, LogicalError};

pub const PATH: &str = "config/identity";

/// The token metadata an iam login may carry besides `role_id` and `role`.
pub const IAM_METADATA: [&str; 8] = [
    "account_id",
    "auth_type",
    "canonical_arn",
    "client_arn",
    "client_user_id",
    "inferred_aws_region",
    "inferred_entity_id",
    "inferred_entity_type",
];
/// Vault's ec2 metadata fields.
pub const EC2_METADATA: [&str; 5] = ["account_id", "ami_id", "auth_type", "instance_id", "region"];
const IAM_ALIASES: [&str; 4] = ["role_id", "unique_id", "full_arn", "canonical_arn"];
const EC2_ALIASES: [&str; 3] = ["role_id", "instance_id", "image_id"];

/// The stored `config/identity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct IdentityConfig {
    pub iam_alias: String,
    /// `None`: every field (`["default"]`).
    pub iam_metadata: Option<Vec<String>>,
    pub ec2_alias: String,
    pub ec2_metadata: Option<Vec<String>>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            iam_alias: "role_id".into(),
            iam_metadata: None,
            ec2_alias: "role_id".into(),
            ec2_metadata: None,
        }
    }
}

impl IdentityConfig {
    /// Apply a write: the fields present replace the stored ones; an unknown value is a 400.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        for (key, slot, allowed) in [
            ("iam_alias", &mut self.iam_alias, &IAM_ALIASES[..]),
            ("ec2_alias", &mut self.ec2_alias, &EC2_ALIASES[..]),
        ] {
            match data.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) => {
                    let v = if v.is_empty() { "role_id" } else { v.as_str() };
                    if !allowed.contains(&v) {
                        return Err(LogicalError::invalid(format!(
                            "invalid {key} {v:?}: want one of {}",
                            allowed.join(", ")
                        )));
                    }
                    *slot = v.to_string();
                }
                Some(_) => return Err(LogicalError::invalid(format!("{key} must be a string"))),
            }
        }
        for (key, slot, allowed) in [
            ("iam_metadata", &mut self.iam_metadata, &IAM_METADATA[..]),
            ("ec2_metadata", &mut self.ec2_metadata, &EC2_METADATA[..]),
        ] {
            if let Some(fields) = list_field(data, key)? {
                *slot = metadata_fields(key, fields, allowed)?;
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "iam_alias": self.iam_alias,
            "iam_metadata": shown_fields(&self.iam_metadata, &IAM_METADATA),
            "ec2_alias": self.ec2_alias,
            "ec2_metadata": shown_fields(&self.ec2_metadata, &EC2_METADATA),
        })
    }

    /// Keep, of an iam login's metadata, the chosen fields (and always `role_id`, `role`).
    pub fn select_iam(&self, metadata: &mut std::collections::BTreeMap<String, String>) {
        if let Some(fields) = &self.iam_metadata {
            metadata.retain(|k, _| k == "role_id" || k == "role" || fields.contains(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        serde_json::from_value(v).expect("an object")
    }

    #[test]
    fn values_are_checked_and_metadata_chosen() {
        let mut c = IdentityConfig::default();
        c.update(&data(
            json!({"iam_alias": "full_arn", "iam_metadata": ["client_arn"]}),
        ))
        .unwrap();
        assert_eq!(c.to_json()["iam_metadata"], json!(["client_arn"]));
        let mut m: std::collections::BTreeMap<String, String> =
            ["role", "role_id", "client_arn", "account_id"]
                .iter()
                .map(|k| (k.to_string(), "x".to_string()))
                .collect();
        c.select_iam(&mut m);
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["client_arn", "role", "role_id"]
        );
        for bad in [
            json!({"iam_alias": "nope"}),
            json!({"ec2_alias": "unique_id"}),
            json!({"iam_metadata": ["zone"]}),
            json!({"iam_metadata": ["default", "auth_type"]}),
            json!({"iam_alias": 3}),
        ] {
            assert_eq!(
                c.clone().update(&data(bad.clone())).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
        c.update(&data(json!({"iam_metadata": "default"}))).unwrap();
        assert_eq!(c.iam_metadata, None);
    }
}

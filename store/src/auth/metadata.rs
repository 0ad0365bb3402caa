//! The `*_metadata` config fields of auth methods (Vault's `authmetadata`): which fields of a
//! login's token metadata to keep.

use serde_json::{json, Value};

use crate::logical::LogicalError;

/// A write of a `*_metadata` field (gcp's `iam_metadata` and `gce_metadata`, aws's
/// `iam_metadata` and `ec2_metadata`): `["default"]` restores all fields (`None`), `[]` (or
/// `""`) keeps none, otherwise the named fields, each one of `allowed`.
pub fn metadata_fields(
    key: &str,
    mut fields: Vec<String>,
    allowed: &[&str],
) -> Result<Option<Vec<String>>, LogicalError> {
    if fields.iter().any(|f| f == "default") {
        if fields.len() > 1 {
            return Err(LogicalError::invalid(format!(
                "{key}: \"default\" cannot be combined with other fields"
            )));
        }
        return Ok(None);
    }
    if let Some(bad) = fields.iter().find(|f| !allowed.contains(&f.as_str())) {
        return Err(LogicalError::invalid(format!(
            "{key}: unknown field {bad:?}; the fields are {}",
            allowed.join(", ")
        )));
    }
    fields.sort();
    fields.dedup();
    Ok(Some(fields))
}

/// The fields as a read shows them (the defaults spelled out).
pub fn shown_fields(chosen: &Option<Vec<String>>, all: &[&str]) -> Value {
    match chosen {
        Some(fields) => json!(fields),
        None => json!(all),
    }
}

//! An aws role: which IAM principals may log in (iam auth type only) and the token they get.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::role::{role_json, TokenParams};
use crate::logical::fields::field_bool;
use crate::logical::fields::list_field;
use crate::logical::{Data, LogicalError};

pub use crate::logical::fields::valid_name;

/// Role fields of Vault's ec2 auth type; hushd refuses them rather than ignore a binding.
const EC2_FIELDS: &[&str] = &[
    "bound_ami_id",
    "bound_account_id",
    "bound_region",
    "bound_vpc_id",
    "bound_subnet_id",
    "bound_ec2_instance_id",
    "bound_iam_role_arn",
    "bound_iam_instance_profile_arn",
    "inferred_entity_type",
    "inferred_aws_region",
    "role_tag",
];

/// A stored role (no secrets in it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Role {
    /// Vault's `role_id`: a UUID made when the role is created, in the login's metadata.
    pub role_id: String,
    /// IAM principal ARNs allowed to log in (`*` globs), matched against the canonical ARN
    /// (`arn:aws:iam::ACCT:role/NAME` for an assumed role) and the ARN STS answered.
    pub bound_iam_principal_arn: Vec<String>,
    #[serde(flatten)]
    pub token: TokenParams,
}

fn refuse_ec2(data: &Data) -> Result<(), LogicalError> {
    if let Some(t) = data.get("auth_type") {
        match t.as_str().map(str::trim) {
            Some("" | "iam") => {}
            Some("ec2") => {
                return Err(LogicalError::invalid(
                    "auth_type \"ec2\" is not supported: hushd's aws method does iam logins only",
                ))
            }
            _ => return Err(LogicalError::invalid("auth_type must be \"iam\"")),
        }
    }
    for field in EC2_FIELDS {
        let set = match data.get(*field) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(LogicalError::invalid(format!(
                "{field} is an ec2 binding: hushd's aws method does iam logins only"
            )));
        }
    }
    if field_bool(data, "resolve_aws_unique_ids")? == Some(true) {
        return Err(LogicalError::invalid(
            "resolve_aws_unique_ids is not supported: hushd binds ARNs as given (set it to false)",
        ));
    }
    Ok(())
}

impl Role {
    /// Apply the fields present in a create/update request, then check the role.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        refuse_ec2(data)?;
        if let Some(v) = list_field(data, "bound_iam_principal_arn")? {
            if let Some(bad) = v.iter().find(|a| !a.starts_with("arn:")) {
                return Err(LogicalError::invalid(format!(
                    "bound_iam_principal_arn {bad:?} is not an ARN"
                )));
            }
            self.bound_iam_principal_arn = v;
        }
        self.token.update(data)?;
        if self.bound_iam_principal_arn.is_empty() {
            return Err(LogicalError::invalid(
                "at least one bound parameter should be specified on the role: set bound_iam_principal_arn",
            ));
        }
        if self.role_id.is_empty() {
            self.role_id = uuid::Uuid::new_v4().to_string();
        }
        Ok(())
    }

    /// The role as Vault's `GET role/:name` shows it.
    pub fn to_json(&self) -> Value {
        role_json(
            json!({
                "auth_type": "iam",
                "bound_iam_principal_arn": self.bound_iam_principal_arn,
                "resolve_aws_unique_ids": false,
                "role_id": self.role_id,
            }),
            &self.token,
        )
    }
}

crate::auth::role_store::role_fields_from_update!(Role);

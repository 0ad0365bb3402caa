//! A kubernetes role: which service accounts may log in and the token they get.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::role::{role_json, TokenParams};
use crate::logical::fields::list_field;
use crate::logical::{Data, LogicalError};

pub use crate::logical::fields::valid_name;

/// A stored role (no secrets in it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Role {
    /// Service-account names allowed to log in (`*` globs).
    pub bound_service_account_names: Vec<String>,
    /// Namespaces allowed to log in (`*` globs).
    pub bound_service_account_namespaces: Vec<String>,
    /// When set, the token's `aud` must contain it (and the TokenReview asks for it).
    pub audience: String,
    pub alias_name_source: String,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl Role {
    /// Apply the fields present in a create/update request, then check the role.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        if let Some(v) = list_field(data, "bound_service_account_names")? {
            self.bound_service_account_names = v;
        }
        if let Some(v) = list_field(data, "bound_service_account_namespaces")? {
            self.bound_service_account_namespaces = v;
        }
        if let Some(v) = data.get("audience") {
            self.audience = v
                .as_str()
                .ok_or_else(|| LogicalError::invalid("audience must be a string"))?
                .trim()
                .to_string();
        }
        if let Some(v) = data.get("alias_name_source").and_then(Value::as_str) {
            if !matches!(v, "serviceaccount_uid" | "serviceaccount_name") {
                return Err(LogicalError::invalid(format!(
                    "invalid alias_name_source {v:?}: use serviceaccount_uid or serviceaccount_name"
                )));
            }
            self.alias_name_source = v.to_string();
        }
        self.token.update(data)?;
        self.check()
    }

    fn check(&self) -> Result<(), LogicalError> {
        if self.bound_service_account_names.is_empty() {
            return Err(LogicalError::invalid(
                "\"bound_service_account_names\" can not be empty",
            ));
        }
        if self.bound_service_account_namespaces.is_empty() {
            return Err(LogicalError::invalid(
                "\"bound_service_account_namespaces\" can not be empty",
            ));
        }
        for (field, v) in [
            (
                "bound_service_account_names",
                &self.bound_service_account_names,
            ),
            (
                "bound_service_account_namespaces",
                &self.bound_service_account_namespaces,
            ),
        ] {
            if v.len() > 1 && v.iter().any(|x| x == "*") {
                return Err(LogicalError::invalid(format!(
                    "{field}: can not mix \"*\" with values"
                )));
            }
        }
        Ok(())
    }

    /// What a write of this role warns about. Both bindings `"*"` is allowed (as in Vault's
    /// plugin since v0.6.0) but lets every service account of the cluster log in.
    pub fn warnings(&self) -> Vec<String> {
        let star = |v: &[String]| v.len() == 1 && v[0] == "*";
        if star(&self.bound_service_account_names) && star(&self.bound_service_account_namespaces) {
            vec![
                "bound_service_account_names and bound_service_account_namespaces are both \"*\": \
                 any service account of any namespace can log in with this role"
                    .to_string(),
            ]
        } else {
            Vec::new()
        }
    }

    /// The role as Vault's `GET role/:name` shows it.
    pub fn to_json(&self) -> Value {
        role_json(
            json!({
                "bound_service_account_names": self.bound_service_account_names,
                "bound_service_account_namespaces": self.bound_service_account_namespaces,
                "audience": self.audience,
                "alias_name_source": if self.alias_name_source.is_empty() {
                    "serviceaccount_uid"
                } else {
                    self.alias_name_source.as_str()
                },
            }),
            &self.token,
        )
    }
}

crate::auth::role_store::role_fields_from_update!(Role, warnings);

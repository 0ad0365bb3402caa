//! A kubernetes role: which service accounts may log in and the token they get.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::approle::role::list_field;
use crate::auth::cidr;
use crate::duration::field_secs;
use crate::logical::{field_bool, field_u64, Data, LogicalError};

pub use crate::auth::approle::role::valid_name;

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
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_num_uses: u64,
    pub token_period: u64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
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
        // `policies` and `period` are Vault's deprecated names.
        if let Some(v) = list_field(data, "token_policies")?.or(list_field(data, "policies")?) {
            self.token_policies = v.into_iter().map(|p| p.to_lowercase()).collect();
        }
        if let Some(v) = field_secs(data, "token_ttl")?.or(field_secs(data, "ttl")?) {
            self.token_ttl = v;
        }
        if let Some(v) = field_secs(data, "token_max_ttl")?.or(field_secs(data, "max_ttl")?) {
            self.token_max_ttl = v;
        }
        if let Some(v) = field_u64(data, "token_num_uses")? {
            self.token_num_uses = v;
        }
        if let Some(v) = field_secs(data, "token_period")?.or(field_secs(data, "period")?) {
            self.token_period = v;
        }
        if let Some(v) = list_field(data, "token_bound_cidrs")? {
            self.token_bound_cidrs = cidr::parse_list(&v)?;
        }
        if let Some(v) = field_bool(data, "token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(t) = data.get("token_type").and_then(Value::as_str) {
            if !matches!(t, "" | "default" | "service") {
                return Err(LogicalError::invalid(format!(
                    "token_type {t:?} is not supported: hushd issues service tokens"
                )));
            }
        }
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
        let star = |v: &[String]| v.len() == 1 && v[0] == "*";
        if star(&self.bound_service_account_names) && star(&self.bound_service_account_namespaces) {
            return Err(LogicalError::invalid(
                "service_account_names and service_account_namespaces can not both be \"*\"",
            ));
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::invalid(
                "token_ttl should not be greater than token_max_ttl",
            ));
        }
        Ok(())
    }

    /// The role as Vault's `GET role/:name` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "bound_service_account_names": self.bound_service_account_names,
            "bound_service_account_namespaces": self.bound_service_account_namespaces,
            "audience": self.audience,
            "alias_name_source": if self.alias_name_source.is_empty() {
                "serviceaccount_uid"
            } else {
                self.alias_name_source.as_str()
            },
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_explicit_max_ttl": 0,
            "token_max_ttl": self.token_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "period": self.token_period,
            "ttl": self.token_ttl,
            "max_ttl": self.token_max_ttl,
            "token_ttl": self.token_ttl,
            "token_type": "default",
        })
    }
}

//! A `jwt` method role: its stored form and its fields as Vault reads and writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::jws::{BoundClaimsType, Validation};
use crate::auth::role::{role_json, TokenParams};
use crate::logical::duration::parse_secs;
use crate::logical::fields::list_field;
use crate::logical::{Data, LogicalError};

pub use crate::logical::fields::valid_name;

/// A stored role. Nothing in it is secret (bound values and policies only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct JwtRole {
    pub bound_audiences: Vec<String>,
    pub user_claim: String,
    pub bound_subject: String,
    pub bound_claims: Map<String, Value>,
    /// `"string"` or `"glob"`.
    pub bound_claims_type: String,
    pub claim_mappings: BTreeMap<String, String>,
    /// Vault's leeways: 0 = the default (60, 150, 150), negative = none.
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    /// Kept and shown for Vault compatibility (Terraform, the UI); hushd has no browser OIDC
    /// flow that would use them. `None` until written: read as `null`, as Vault's unset lists.
    #[serde(default)]
    pub allowed_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub oidc_scopes: Option<Vec<String>>,
    #[serde(flatten)]
    pub token: TokenParams,
}

/// A leeway: whole seconds (negative allowed: "none") or a duration string.
fn leeway_field(data: &Data, key: &str) -> Result<Option<i64>, LogicalError> {
    let bad = || LogicalError::invalid(format!("invalid value for {key:?}: must be seconds"));
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| parse_secs(s.trim()))
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// An object field, given as a JSON object or a string holding one (CLI `key=@file` style).
fn object_field(data: &Data, key: &str) -> Result<Option<Map<String, Value>>, LogicalError> {
    let bad = || LogicalError::invalid(format!("{key} must be a JSON object"));
    let v = match data.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Some(Map::new())),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(v) => v.clone(),
    };
    match v {
        Value::Object(m) => Ok(Some(m)),
        _ => Err(bad()),
    }
}

fn effective(v: i64, default: u64) -> u64 {
    match v {
        0 => default,
        n if n < 0 => 0,
        n => n as u64,
    }
}

impl JwtRole {
    /// Apply the fields present in a create/update request, then check the whole role.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        if let Some(t) = data.get("role_type").and_then(Value::as_str) {
            if !matches!(t, "" | "jwt") {
                return Err(LogicalError::invalid(format!(
                    "invalid role_type {t:?}: hushd supports only \"jwt\" (no browser OIDC flow)"
                )));
            }
        }
        if let Some(v) = list_field(data, "bound_audiences")? {
            self.bound_audiences = v;
        }
        if let Some(v) = data.get("user_claim") {
            self.user_claim = v
                .as_str()
                .ok_or_else(|| LogicalError::invalid("user_claim must be a string"))?
                .trim()
                .to_string();
        }
        if let Some(v) = data.get("bound_subject") {
            self.bound_subject = v
                .as_str()
                .ok_or_else(|| LogicalError::invalid("bound_subject must be a string"))?
                .to_string();
        }
        if let Some(v) = object_field(data, "bound_claims")? {
            self.bound_claims = v;
        }
        if let Some(v) = data.get("bound_claims_type") {
            let t = v.as_str().unwrap_or("?");
            BoundClaimsType::parse(t).ok_or_else(|| {
                LogicalError::invalid(format!(
                    "invalid bound_claims_type {t:?}: use \"string\" or \"glob\""
                ))
            })?;
            self.bound_claims_type = if t.is_empty() { "string" } else { t }.to_string();
        }
        if let Some(m) = object_field(data, "claim_mappings")? {
            let mut out = BTreeMap::new();
            for (claim, key) in m {
                let key = key.as_str().ok_or_else(|| {
                    LogicalError::invalid("claim_mappings values must be strings")
                })?;
                if key == "role" {
                    return Err(LogicalError::invalid(
                        "claim_mappings: metadata key \"role\" is reserved",
                    ));
                }
                if out.values().any(|k| k == key) {
                    return Err(LogicalError::invalid(format!(
                        "claim_mappings: metadata key {key:?} is mapped more than once"
                    )));
                }
                out.insert(claim, key.to_string());
            }
            self.claim_mappings = out;
        }
        for (key, slot) in [
            ("allowed_redirect_uris", &mut self.allowed_redirect_uris),
            ("oidc_scopes", &mut self.oidc_scopes),
        ] {
            if let Some(v) = list_field(data, key)? {
                *slot = Some(v);
            }
        }
        for (key, slot) in [
            ("clock_skew_leeway", &mut self.clock_skew_leeway),
            ("expiration_leeway", &mut self.expiration_leeway),
            ("not_before_leeway", &mut self.not_before_leeway),
        ] {
            if let Some(v) = leeway_field(data, key)? {
                *slot = v;
            }
        }
        self.token.update(data)?;
        self.check()
    }

    fn check(&self) -> Result<(), LogicalError> {
        if self.user_claim.is_empty() {
            return Err(LogicalError::invalid(
                "a user claim must be defined on the role",
            ));
        }
        if self.bound_audiences.is_empty()
            && self.bound_subject.is_empty()
            && self.bound_claims.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(LogicalError::invalid(
                "must have at least one bound constraint when creating/updating a role \
                 (bound_audiences, bound_subject, bound_claims or token_bound_cidrs)",
            ));
        }
        if self.claims_type() == BoundClaimsType::Glob {
            let all_strings = self.bound_claims.values().all(|v| match v {
                Value::String(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                _ => false,
            });
            if !all_strings {
                return Err(LogicalError::invalid(
                    "bound_claims values must be strings or lists of strings when \
                     bound_claims_type is \"glob\"",
                ));
            }
        }
        Ok(())
    }

    pub fn claims_type(&self) -> BoundClaimsType {
        BoundClaimsType::parse(&self.bound_claims_type).unwrap_or_default()
    }

    /// The role's part of a token's [`Validation`] (audiences, leeways).
    pub fn validation(&self) -> Validation {
        Validation {
            bound_audiences: self.bound_audiences.clone(),
            refuse_unbound_audience: true,
            clock_skew_leeway: effective(self.clock_skew_leeway, 60),
            expiration_leeway: effective(self.expiration_leeway, 150),
            not_before_leeway: effective(self.not_before_leeway, 150),
            ..Validation::default()
        }
    }

    /// The role as Vault's `GET role/:name` shows it.
    pub fn to_json(&self) -> Value {
        role_json(
            json!({
                "role_type": "jwt",
                "bound_audiences": self.bound_audiences,
                "user_claim": self.user_claim,
                "user_claim_json_pointer": self.user_claim.starts_with('/'),
                "bound_subject": self.bound_subject,
                "bound_claims": if self.bound_claims.is_empty() { Value::Null } else { Value::Object(self.bound_claims.clone()) },
                "bound_claims_type": if self.bound_claims_type.is_empty() { "string" } else { &self.bound_claims_type },
                "claim_mappings": if self.claim_mappings.is_empty() { Value::Null } else { json!(self.claim_mappings) },
                "groups_claim": "",
                "clock_skew_leeway": self.clock_skew_leeway,
                "expiration_leeway": self.expiration_leeway,
                "not_before_leeway": self.not_before_leeway,
                "allowed_redirect_uris": self.allowed_redirect_uris,
                "oidc_scopes": self.oidc_scopes,
            }),
            &self.token,
        )
    }
}

crate::auth::role_store::role_fields_from_update!(JwtRole);

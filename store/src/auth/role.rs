//! What every auth method's role shares: name rules, list fields and the token parameters
//! (Vault's `tokenutil.TokenParams`): the `token_*` fields a role stores, reads back and turns
//! into a [`LoginGrant`] on a good login.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::logical::cidr;
use crate::logical::fields::{field_bool, field_secs, field_u64, list_field};
use crate::logical::paths::{Field, Kind};
use crate::logical::{Data, LogicalError, LoginGrant};

/// The `token_*` fields of every auth method's role writes, for its route table
/// ([`crate::logical::paths::PathSpec::shared`]): what [`TokenParams::update`] reads.
pub const TOKEN_FIELDS: &[Field] = &[
    Field::opt(
        "token_policies",
        Kind::Strings,
        "Policies of the tokens a login gets.",
    ),
    Field::opt("token_ttl", Kind::Duration, "TTL of those tokens."),
    Field::opt("token_max_ttl", Kind::Duration, "Their max TTL."),
    Field::opt(
        "token_explicit_max_ttl",
        Kind::Duration,
        "A max TTL that renewals cannot pass.",
    ),
    Field::opt(
        "token_num_uses",
        Kind::Integer,
        "Uses per token; 0 = unlimited.",
    ),
    Field::opt("token_period", Kind::Duration, "Makes the tokens periodic."),
    Field::opt(
        "token_bound_cidrs",
        Kind::Strings,
        "Addresses the tokens may be used from.",
    ),
    Field::opt(
        "token_no_default_policy",
        Kind::Boolean,
        "Leave out the `default` policy.",
    ),
    Field::opt(
        "token_type",
        Kind::String,
        "`service` or `default` (hushd issues service tokens).",
    ),
];

/// The token a role's logins get. Stored flattened into each role (the same top-level keys
/// as before it was shared). Durations are seconds; 0 = not set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct TokenParams {
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    /// A hard cap that renewals cannot pass, whatever the mount says.
    pub token_explicit_max_ttl: u64,
    pub token_num_uses: u64,
    pub token_period: u64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    /// As written: Vault reads back `service` when asked for it, `default` otherwise.
    pub token_type: TokenType,
}

/// The `token_type` a role asks for. hushd issues service tokens only, so both mean a service
/// token; `batch` (and `default-batch`) are refused at the write.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Default,
    Service,
}

impl TokenType {
    fn parse(v: &Value) -> Result<Self, LogicalError> {
        match v.as_str() {
            Some("" | "default") => Ok(TokenType::Default),
            Some("service") => Ok(TokenType::Service),
            Some(t) => Err(LogicalError::invalid(format!(
                "token_type {t:?} is not supported: hushd issues service tokens"
            ))),
            None => Err(LogicalError::invalid("token_type must be a string")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            TokenType::Default => "default",
            TokenType::Service => "service",
        }
    }
}

impl TokenParams {
    /// Apply the `token_*` fields present in a role write (and Vault's deprecated names
    /// `policies`, `ttl`, `max_ttl`, `period`). Checks `token_ttl <= token_max_ttl`.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        if let Some(v) = list_field(data, "token_policies")?.or(list_field(data, "policies")?) {
            self.token_policies = v.into_iter().map(|p| p.to_lowercase()).collect();
        }
        if let Some(v) = field_secs(data, "token_ttl")?.or(field_secs(data, "ttl")?) {
            self.token_ttl = v;
        }
        if let Some(v) = field_secs(data, "token_max_ttl")?.or(field_secs(data, "max_ttl")?) {
            self.token_max_ttl = v;
        }
        if let Some(v) = field_secs(data, "token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
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
        if let Some(t) = data.get("token_type").filter(|v| !v.is_null()) {
            self.token_type = TokenType::parse(t)?;
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::invalid(
                "token_ttl should not be greater than token_max_ttl",
            ));
        }
        Ok(())
    }

    /// The fields as Vault's `GET role/:name` shows them, deprecated names included.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "token_policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_type": self.token_type.as_str(),
            "policies": self.token_policies,
            "period": self.token_period,
            "ttl": self.token_ttl,
            "max_ttl": self.token_max_ttl,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The grant for a good login as this role.
    pub fn grant(&self, metadata: BTreeMap<String, String>, display_name: String) -> LoginGrant {
        let max_ttl = match (self.token_max_ttl, self.token_explicit_max_ttl) {
            (0, e) => e,
            (m, 0) => m,
            (m, e) => m.min(e),
        };
        LoginGrant {
            policies: self.token_policies.clone(),
            no_default_policy: self.token_no_default_policy,
            metadata,
            display_name,
            ttl: self.token_ttl,
            max_ttl,
            period: self.token_period,
            num_uses: self.token_num_uses,
            bound_cidrs: self.token_bound_cidrs.clone(),
            renewable: true,
        }
    }
}

/// A role's JSON for `GET role/:name`: its own fields plus the token parameters.
pub fn role_json(own: Value, token: &TokenParams) -> Value {
    let mut m = match own {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.extend(token.to_json());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_route_tables_fields_are_the_ones_a_role_stores() {
        let shown = TokenParams::default().to_json();
        let listed: Vec<&str> = TOKEN_FIELDS.iter().map(|f| f.name).collect();
        let stored: Vec<&str> = shown
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("token_"))
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, stored);
    }

    #[test]
    fn fields_are_read_as_vault_sends_them() {
        let mut t = TokenParams::default();
        t.update(&data(json!({
            "token_policies": "a, B", "token_ttl": "1h", "token_max_ttl": 7200,
            "token_num_uses": "3", "token_bound_cidrs": ["10.0.0.0/8"],
        })))
        .unwrap();
        assert_eq!(t.token_policies, vec!["a", "b"]);
        assert_eq!(
            (t.token_ttl, t.token_max_ttl, t.token_num_uses),
            (3600, 7200, 3)
        );
        t.update(&data(json!({"policies": ["old"], "period": "1m"})))
            .unwrap();
        assert_eq!(
            (t.token_policies.clone(), t.token_period),
            (vec!["old".into()], 60)
        );
        let j = t.to_json();
        assert_eq!(j["token_ttl"], 3600);
        assert_eq!(j["policies"], json!(["old"]));
    }

    #[test]
    fn token_type_reads_back_as_written() {
        let mut t = TokenParams::default();
        assert_eq!(t.to_json()["token_type"], "default");
        t.update(&data(json!({"token_type": "service"}))).unwrap();
        assert_eq!(t.to_json()["token_type"], "service");
        // Kept when a later write leaves it out.
        t.update(&data(json!({"token_ttl": 60}))).unwrap();
        assert_eq!(t.to_json()["token_type"], "service");
        t.update(&data(json!({"token_type": ""}))).unwrap();
        assert_eq!(t.to_json()["token_type"], "default");
        t.update(&data(json!({"token_type": "default"}))).unwrap();
        assert_eq!(t.to_json()["token_type"], "default");
        // Stored roles from before the field read as default.
        let old: TokenParams = serde_json::from_value(json!({"token_ttl": 5})).unwrap();
        assert_eq!(old.token_type, TokenType::Default);
    }

    #[test]
    fn bad_fields_are_refused() {
        for bad in [
            json!({"token_ttl": "soon"}),
            json!({"token_bound_cidrs": ["10.0.0.0/40"]}),
            json!({"token_policies": [1]}),
            json!({"token_ttl": 100, "token_max_ttl": 10}),
            json!({"token_type": "batch"}),
            json!({"token_type": 5}),
            json!({"token_no_default_policy": "maybe"}),
        ] {
            let mut t = TokenParams::default();
            assert_eq!(
                t.update(&data(bad.clone())).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_grant_takes_the_tighter_max_ttl() {
        let mut t = TokenParams::default();
        t.update(&data(
            json!({"token_max_ttl": 600, "token_explicit_max_ttl": 300}),
        ))
        .unwrap();
        let g = t.grant(BTreeMap::new(), "x".into());
        assert_eq!((g.max_ttl, g.display_name.as_str()), (300, "x"));
        t.token_explicit_max_ttl = 0;
        assert_eq!(t.grant(BTreeMap::new(), String::new()).max_ttl, 600);
        t.token_max_ttl = 0;
        t.token_explicit_max_ttl = 50;
        assert_eq!(t.grant(BTreeMap::new(), String::new()).max_ttl, 50);
    }

    #[test]
    fn stored_roles_keep_their_shape() {
        #[derive(Serialize, Deserialize, Default)]
        struct R {
            name: String,
            #[serde(flatten)]
            token: TokenParams,
        }
        let old = json!({"name": "r", "token_policies": ["p"], "token_ttl": 5});
        let r: R = serde_json::from_value(old).unwrap();
        assert_eq!((r.token.token_policies.len(), r.token.token_ttl), (1, 5));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["token_ttl"], 5);
        assert!(back.get("token").is_none());
    }
}

//! A `gcp` method role: `iam` or `gce`, its bindings, and its fields as Vault reads and
//! writes them.
//!
//! hushd checks only what the presented token proves. Bindings that Vault checks by calling
//! the Compute Engine API (`bound_labels`, `bound_instance_groups`) are refused with a 400
//! rather than silently ignored.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::role::{role_json, TokenParams};
use crate::auth::role_store::RoleFields;
use crate::logical::fields::field_bool;
use crate::logical::fields::field_secs;
use crate::logical::fields::list_field;
use crate::logical::{Data, LogicalError};

pub use crate::logical::fields::valid_name;

/// Vault's default `max_jwt_exp` for iam roles: 15 minutes.
pub const DEFAULT_MAX_JWT_EXP: u64 = 15 * 60;

/// `iam` (a JWT signed by the service account's own key) or `gce` (an instance identity token
/// signed by Google).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoleType {
    #[default]
    Iam,
    Gce,
}

impl RoleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::Iam => "iam",
            RoleType::Gce => "gce",
        }
    }
}

/// A stored role. Nothing in it is secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GcpRole {
    pub role_type: RoleType,
    /// Service account emails or unique IDs; `*` (alone) for any.
    pub bound_service_accounts: Vec<String>,
    pub bound_projects: Vec<String>,
    /// gce only.
    pub bound_zones: Vec<String>,
    /// gce only.
    pub bound_regions: Vec<String>,
    /// iam only: the most a JWT's `exp` may lie after now, seconds.
    pub max_jwt_exp: u64,
    /// iam only: let a GCE identity token log in, its service account checked as for iam.
    pub allow_gce_inference: bool,
    pub add_group_aliases: bool,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl Default for GcpRole {
    fn default() -> Self {
        GcpRole {
            role_type: RoleType::Iam,
            bound_service_accounts: Vec::new(),
            bound_projects: Vec::new(),
            bound_zones: Vec::new(),
            bound_regions: Vec::new(),
            max_jwt_exp: DEFAULT_MAX_JWT_EXP,
            allow_gce_inference: true,
            add_group_aliases: false,
            token: TokenParams::default(),
        }
    }
}

fn role_type_field(data: &Data) -> Result<Option<RoleType>, LogicalError> {
    match data.get("type").or_else(|| data.get("role_type")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.trim() {
            "" => Ok(None),
            "iam" => Ok(Some(RoleType::Iam)),
            "gce" => Ok(Some(RoleType::Gce)),
            _ => Err(bad_type()),
        },
        Some(_) => Err(bad_type()),
    }
}

fn bad_type() -> LogicalError {
    LogicalError::invalid("role type must be either \"iam\" or \"gce\"")
}

impl GcpRole {
    /// Build a new role (`existing` = None) or update one from a write's fields, then check it.
    pub fn apply(existing: Option<GcpRole>, data: &Data) -> Result<GcpRole, LogicalError> {
        let given = role_type_field(data)?;
        let mut role = match (existing, given) {
            (None, None) => {
                return Err(LogicalError::invalid(
                    "role type must be provided (\"iam\" or \"gce\")",
                ))
            }
            (None, Some(t)) => GcpRole {
                role_type: t,
                ..GcpRole::default()
            },
            (Some(r), Some(t)) if r.role_type != t => {
                return Err(LogicalError::invalid(
                    "role type cannot be changed for an existing role",
                ))
            }
            (Some(r), _) => r,
        };
        for key in ["bound_labels", "bound_instance_groups"] {
            if list_field(data, key)?.is_some_and(|v| !v.is_empty()) {
                return Err(LogicalError::invalid(format!(
                    "{key} is not supported: hushd does not call the Compute Engine API, and the \
                     instance identity token does not carry {}",
                    key.trim_start_matches("bound_")
                )));
            }
        }
        if let Some(v) = list_field(data, "bound_service_accounts")? {
            role.bound_service_accounts = v;
        }
        // `project_id` is Vault's deprecated single-project name (hvac still sends it).
        if let Some(v) = list_field(data, "bound_projects")?.or(list_field(data, "project_id")?) {
            role.bound_projects = v;
        }
        if let Some(v) = list_field(data, "bound_zones")? {
            role.bound_zones = v;
        }
        if let Some(v) = list_field(data, "bound_regions")? {
            role.bound_regions = v;
        }
        if let Some(v) = field_secs(data, "max_jwt_exp")? {
            role.max_jwt_exp = v;
        }
        if let Some(v) = field_bool(data, "allow_gce_inference")? {
            role.allow_gce_inference = v;
        }
        if let Some(v) = field_bool(data, "add_group_aliases")? {
            role.add_group_aliases = v;
        }
        role.token.update(data)?;
        role.check()?;
        Ok(role)
    }

    /// `role/:name/service-accounts` {add, remove}: edit an iam role's service accounts.
    pub fn edit_service_accounts(&mut self, data: &Data) -> Result<(), LogicalError> {
        let add = list_field(data, "add")?.unwrap_or_default();
        let remove = list_field(data, "remove")?.unwrap_or_default();
        if add.is_empty() && remove.is_empty() {
            // Vault's message, checked before the role type as Vault does.
            return Err(LogicalError::invalid(
                "must provide at least one value to add or remove",
            ));
        }
        if self.role_type != RoleType::Iam {
            return Err(LogicalError::invalid(
                "service accounts can only be edited on iam roles",
            ));
        }
        for sa in add {
            if !self.bound_service_accounts.contains(&sa) {
                self.bound_service_accounts.push(sa);
            }
        }
        self.bound_service_accounts
            .retain(|sa| !remove.contains(sa));
        self.check()
    }

    fn check(&self) -> Result<(), LogicalError> {
        let sa = &self.bound_service_accounts;
        if sa.len() > 1 && sa.iter().any(|s| s == "*") {
            return Err(LogicalError::invalid(
                "cannot provide IAM service account wildcard '*' (for all service accounts) \
                 with other service accounts",
            ));
        }
        match self.role_type {
            RoleType::Iam => {
                if sa.is_empty() {
                    return Err(LogicalError::invalid(
                        "IAM role type must have at least one service account",
                    ));
                }
                if !self.bound_zones.is_empty() || !self.bound_regions.is_empty() {
                    return Err(LogicalError::invalid(
                        "bound_zones and bound_regions are only for gce roles",
                    ));
                }
                if self.max_jwt_exp == 0 {
                    return Err(LogicalError::invalid("max_jwt_exp must be positive"));
                }
            }
            RoleType::Gce => {
                if sa.is_empty()
                    && self.bound_projects.is_empty()
                    && self.bound_zones.is_empty()
                    && self.bound_regions.is_empty()
                {
                    return Err(LogicalError::invalid(
                        "gce role must have at least one binding (bound_service_accounts, \
                         bound_projects, bound_zones or bound_regions)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The role as Vault's `GET role/:name` shows it.
    pub fn to_json(&self) -> Value {
        let mut own = json!({
            "role_type": self.role_type.as_str(),
            "type": self.role_type.as_str(),
            "bound_service_accounts": self.bound_service_accounts,
            "bound_projects": self.bound_projects,
            "add_group_aliases": self.add_group_aliases,
        });
        let extra = match self.role_type {
            RoleType::Iam => json!({
                "max_jwt_exp": self.max_jwt_exp,
                "allow_gce_inference": self.allow_gce_inference,
            }),
            RoleType::Gce => json!({
                "bound_zones": self.bound_zones,
                "bound_regions": self.bound_regions,
                "bound_labels": {},
                "bound_instance_groups": [],
            }),
        };
        if let (Value::Object(o), Value::Object(e)) = (&mut own, extra) {
            o.extend(e);
        }
        role_json(own, &self.token)
    }
}

impl RoleFields for GcpRole {
    fn apply(existing: Option<Self>, data: &Data) -> Result<Self, LogicalError> {
        GcpRole::apply(existing, data)
    }

    fn to_json(&self) -> Value {
        GcpRole::to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn create_needs_a_type_and_keeps_it() {
        let err = GcpRole::apply(None, &data(json!({"bound_service_accounts": "*"}))).unwrap_err();
        assert!(
            err.to_string().contains("role type must be provided"),
            "{err}"
        );
        let r = GcpRole::apply(
            None,
            &data(
                json!({"type": "iam", "bound_service_accounts": "a@p.iam.gserviceaccount.com",
                         "project_id": "p", "policies": "x,y", "max_jwt_exp": "30m"}),
            ),
        )
        .unwrap();
        assert_eq!(r.bound_projects, vec!["p"]);
        assert_eq!((r.max_jwt_exp, r.allow_gce_inference), (1800, true));
        assert_eq!(r.token.token_policies, vec!["x", "y"]);
        let err = GcpRole::apply(Some(r.clone()), &data(json!({"type": "gce"}))).unwrap_err();
        assert!(err.to_string().contains("cannot be changed"), "{err}");
        let same = GcpRole::apply(Some(r), &data(json!({"token_ttl": 60}))).unwrap();
        assert_eq!(same.role_type, RoleType::Iam);
        let j = same.to_json();
        assert_eq!(
            (j["role_type"].as_str(), j["max_jwt_exp"].as_u64()),
            (Some("iam"), Some(1800))
        );
    }

    #[test]
    fn bad_roles_are_refused() {
        for bad in [
            json!({"type": "aws"}),
            json!({"type": "iam"}),
            json!({"type": "iam", "bound_service_accounts": ["*", "a@b"]}),
            json!({"type": "iam", "bound_service_accounts": "a@b", "bound_zones": "z"}),
            json!({"type": "iam", "bound_service_accounts": "a@b", "max_jwt_exp": 0}),
            json!({"type": "gce"}),
            json!({"type": "gce", "bound_projects": "p", "bound_labels": "env:prod"}),
            json!({"type": "gce", "bound_zones": "z", "bound_instance_groups": ["g"]}),
            json!({"type": "gce", "bound_zones": "z", "token_ttl": "soon"}),
        ] {
            let err = GcpRole::apply(None, &data(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
        let err = GcpRole::apply(
            None,
            &data(json!({"type": "gce", "bound_zones": "z", "bound_labels": "a:b"})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Compute Engine API"), "{err}");
    }

    #[test]
    fn service_accounts_are_edited_on_iam_roles_only() {
        let mut r = GcpRole::apply(
            None,
            &data(json!({"type": "iam", "bound_service_accounts": "a"})),
        )
        .unwrap();
        r.edit_service_accounts(&data(json!({"add": ["b", "a"], "remove": "a"})))
            .unwrap();
        assert_eq!(r.bound_service_accounts, vec!["b"]);
        for nothing in [json!({}), json!({"add": [], "remove": ""})] {
            let err = r.clone().edit_service_accounts(&data(nothing)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "must provide at least one value to add or remove"
            );
        }
        for bad in [json!({}), json!({"remove": "b"}), json!({"add": "*"})] {
            let mut copy = r.clone();
            assert_eq!(
                copy.edit_service_accounts(&data(bad.clone()))
                    .unwrap_err()
                    .status(),
                400,
                "{bad}"
            );
        }
        let mut g =
            GcpRole::apply(None, &data(json!({"type": "gce", "bound_zones": "z"}))).unwrap();
        assert!(g.edit_service_accounts(&data(json!({"add": "a"}))).is_err());
    }

    #[test]
    fn gce_role_shape() {
        let r = GcpRole::apply(
            None,
            &data(
                json!({"type": "gce", "bound_zones": ["us-east1-b"], "bound_regions": "eu-west1",
                         "bound_labels": ""}),
            ),
        )
        .unwrap();
        let j = r.to_json();
        assert_eq!(j["bound_zones"], json!(["us-east1-b"]));
        assert_eq!(j["bound_regions"], json!(["eu-west1"]));
        assert!(j.get("max_jwt_exp").is_none());
        let back: GcpRole = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}

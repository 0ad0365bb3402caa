//! Token roles (`auth/token/roles/:name`) and creation through them
//! (`auth/token/create/:role`), with Vault's fields and rules.
//!
//! A role decides, for the tokens made through it, what would otherwise need the caller's
//! policies or `sudo`: `allowed_policies` (any subset, not only the caller's), `orphan` and
//! `token_period`. Roles are stored in the token store's view under `roles/<name>`; names are
//! lower-cased, as in Vault.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::store::{sanitize_policies, CreateParams, TokenStore};
use super::TokenEntry;
use crate::logical::cidr;
use crate::logical::fields::{field_bool, field_secs, field_u64, list_field, valid_name};
use crate::logical::{Data, LogicalError, Operation, Request, Response};

const ROLES: &str = "roles/";

/// One token role, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRole {
    pub name: String,
    #[serde(default)]
    pub allowed_policies: Vec<String>,
    #[serde(default)]
    pub disallowed_policies: Vec<String>,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default = "yes")]
    pub renewable: bool,
    #[serde(default)]
    pub path_suffix: String,
    #[serde(default)]
    pub token_period: u64,
    #[serde(default)]
    pub token_explicit_max_ttl: u64,
    #[serde(default = "default_service")]
    pub token_type: String,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_no_default_policy: bool,
    #[serde(default)]
    pub token_num_uses: u64,
}

fn yes() -> bool {
    true
}

fn default_service() -> String {
    "default-service".to_string()
}

impl TokenRole {
    fn new(name: &str) -> TokenRole {
        TokenRole {
            name: name.to_string(),
            allowed_policies: Vec::new(),
            disallowed_policies: Vec::new(),
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            token_period: 0,
            token_explicit_max_ttl: 0,
            token_type: default_service(),
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_num_uses: 0,
        }
    }

    /// Apply the fields present in a create/update request. `period`, `explicit_max_ttl` and
    /// `bound_cidrs` are Vault's older names; the `token_` ones win when both are given.
    fn apply(&mut self, data: &Data) -> Result<(), LogicalError> {
        for key in [
            "allowed_policies_glob",
            "disallowed_policies_glob",
            "allowed_entity_aliases",
        ] {
            if list_field(data, key)?.is_some_and(|v| !v.is_empty()) {
                return Err(LogicalError::invalid(format!(
                    "{key} is not supported by hushd's token roles"
                )));
            }
        }
        if let Some(v) = list_field(data, "allowed_policies")? {
            self.allowed_policies = sanitize_policies(&v, false);
        }
        if let Some(v) = list_field(data, "disallowed_policies")? {
            self.disallowed_policies = sanitize_policies(&v, false);
        }
        if let Some(v) = field_bool(data, "orphan")? {
            self.orphan = v;
        }
        if let Some(v) = field_bool(data, "renewable")? {
            self.renewable = v;
        }
        if let Some(v) = data.get("path_suffix") {
            let v = v
                .as_str()
                .ok_or_else(|| LogicalError::invalid("path_suffix must be a string"))?;
            if v.contains("..") {
                return Err(LogicalError::invalid(
                    "error registering path suffix: '..' not allowed",
                ));
            }
            if !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(LogicalError::invalid(
                    "path_suffix must be printable ASCII without spaces",
                ));
            }
            self.path_suffix = v.trim_matches('/').to_string();
        }
        if let Some(v) = field_secs(data, "token_period")?.or(field_secs(data, "period")?) {
            self.token_period = v;
        }
        if let Some(v) =
            field_secs(data, "token_explicit_max_ttl")?.or(field_secs(data, "explicit_max_ttl")?)
        {
            self.token_explicit_max_ttl = v;
        }
        if let Some(v) = list_field(data, "token_bound_cidrs")?.or(list_field(data, "bound_cidrs")?)
        {
            self.token_bound_cidrs = cidr::parse_list(&v)?;
        }
        if let Some(v) = field_bool(data, "token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = field_u64(data, "token_num_uses")? {
            self.token_num_uses = v;
        }
        if let Some(v) = data.get("token_type") {
            let v = v
                .as_str()
                .ok_or_else(|| LogicalError::invalid("invalid 'token_type' value"))?;
            self.token_type = match v {
                "" | "default" | "default-service" => "default-service",
                "service" => "service",
                "batch" | "default-batch" => {
                    return Err(LogicalError::invalid(
                        "batch tokens are not supported by hushd",
                    ))
                }
                _ => return Err(LogicalError::invalid("invalid 'token_type' value")),
            }
            .to_string();
        }
        Ok(())
    }

    fn to_data(&self) -> Value {
        let mut data = json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": [],
            "disallowed_policies_glob": [],
            "allowed_entity_aliases": Value::Null,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "period": self.token_period,
            "token_period": self.token_period,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_type": self.token_type,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
        });
        if !self.token_bound_cidrs.is_empty() {
            data["token_bound_cidrs"] = json!(self.token_bound_cidrs);
        }
        data
    }

    /// The policies of a token made through this role, and whether `default` is added:
    /// Vault's rules for role-created tokens.
    fn policies(
        &self,
        requested: &[String],
        parent: &TokenEntry,
        sudo: bool,
        no_default_policy: bool,
    ) -> Result<(Vec<String>, bool), LogicalError> {
        let requested = sanitize_policies(requested, false);
        let policies = if !self.allowed_policies.is_empty() {
            if requested.is_empty() {
                self.allowed_policies.clone()
            } else {
                let outside = requested
                    .iter()
                    .any(|p| p != "default" && !self.allowed_policies.contains(p));
                if outside {
                    return Err(LogicalError::invalid(format!(
                        "token policies ({requested:?}) must be subset of the role's allowed policies ({:?})",
                        self.allowed_policies
                    )));
                }
                requested
            }
        } else if requested.is_empty() {
            sanitize_policies(&parent.policies, false)
        } else {
            if !sudo && !parent.is_root() {
                let parent_set = sanitize_policies(&parent.policies, false);
                if !requested.iter().all(|r| parent_set.contains(r)) {
                    return Err(LogicalError::invalid(
                        "child policies must be subset of parent",
                    ));
                }
            }
            requested
        };
        if let Some(p) = policies
            .iter()
            .find(|p| self.disallowed_policies.contains(p))
        {
            return Err(LogicalError::invalid(format!(
                "token policy {p:?} is disallowed by this role"
            )));
        }
        let add_default = !no_default_policy
            && !self.token_no_default_policy
            && !self.disallowed_policies.iter().any(|p| p == "default");
        Ok((policies, add_default))
    }

    /// Fit `params` (from the create request) to this role.
    pub(super) fn shape(
        &self,
        mut params: CreateParams,
        parent: &TokenEntry,
    ) -> Result<CreateParams, LogicalError> {
        let (policies, add_default) = self.policies(
            &params.policies,
            parent,
            params.sudo,
            params.no_default_policy,
        )?;
        params.policies = policies;
        params.no_default_policy = !add_default;
        params.via_role = true;
        params.orphan = params.orphan || self.orphan;
        if self.token_period > 0 {
            params.period = Some(self.token_period);
        } else if params.period.is_some_and(|p| p > 0) && !params.sudo && !parent.is_root() {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        if self.token_explicit_max_ttl > 0 {
            params.explicit_max_ttl = Some(match params.explicit_max_ttl {
                Some(t) if t > 0 => t.min(self.token_explicit_max_ttl),
                _ => self.token_explicit_max_ttl,
            });
        }
        if !self.renewable {
            params.renewable = Some(false);
        }
        if self.token_num_uses > 0
            && (params.num_uses == 0 || params.num_uses > self.token_num_uses)
        {
            params.num_uses = self.token_num_uses;
        }
        params.bound_cidrs = self.token_bound_cidrs.clone();
        params.path = format!("auth/token/create/{}", self.name);
        if !self.path_suffix.is_empty() {
            params.path = format!("{}/{}", params.path, self.path_suffix);
        }
        Ok(params)
    }
}

/// A role name from the path: lower-cased, as Vault does.
fn role_name(raw: &str) -> Result<String, LogicalError> {
    let name = raw.to_lowercase();
    if !valid_name(&name) {
        return Err(LogicalError::invalid(format!("invalid role name {raw:?}")));
    }
    Ok(name)
}

impl TokenStore {
    /// The role `name`, if any.
    pub(super) async fn role(&self, name: &str) -> Result<Option<TokenRole>, LogicalError> {
        let name = role_name(name)?;
        Ok(self.view.get_json(&format!("{ROLES}{name}")).await?)
    }

    /// The role a `create/:role` request names; Vault's 400 when it does not exist.
    pub(super) async fn must_role(&self, name: &str) -> Result<TokenRole, LogicalError> {
        self.role(name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown role {name}")))
    }

    /// `roles` (list) and `roles/:name` (create, update, read, delete).
    pub(super) async fn handle_roles(&self, req: &Request) -> Result<Response, LogicalError> {
        let rest = req.rel_path().strip_prefix("roles").unwrap_or_default();
        let name = rest.trim_start_matches('/');
        if name.is_empty() {
            return match req.operation {
                Operation::List | Operation::Read => {
                    let keys = self.view.list(ROLES).await?;
                    if keys.is_empty() {
                        return Err(LogicalError::NotFound(String::new()));
                    }
                    Ok(Response::list(keys))
                }
                _ => Err(LogicalError::UnsupportedOperation),
            };
        }
        let name = role_name(name)?;
        let key = format!("{ROLES}{name}");
        match req.operation {
            Operation::Read => match self.view.get_json::<TokenRole>(&key).await? {
                Some(role) => Ok(Response::data(role.to_data())),
                None => Err(LogicalError::NotFound(String::new())),
            },
            Operation::Create | Operation::Update => {
                let mut role = self
                    .view
                    .get_json::<TokenRole>(&key)
                    .await?
                    .unwrap_or_else(|| TokenRole::new(&name));
                role.apply(&req.data)?;
                self.view.put_json(&key, &role).await?;
                tracing::info!(role = %name, "token role written");
                Ok(Response::empty())
            }
            Operation::Delete => {
                self.view.delete(&key).await?;
                Ok(Response::empty())
            }
            _ => Err(LogicalError::UnsupportedOperation),
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
    fn unsupported_and_bad_fields_are_400s() {
        for body in [
            json!({"token_type": "batch"}),
            json!({"token_type": "weird"}),
            json!({"allowed_policies_glob": ["a*"]}),
            json!({"allowed_entity_aliases": ["x"]}),
            json!({"path_suffix": "../x"}),
            json!({"token_bound_cidrs": ["10.0.0.0/40"]}),
            json!({"token_period": "soon"}),
            json!({"orphan": "maybe"}),
        ] {
            let err = TokenRole::new("r").apply(&data(body.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
        }
    }

    #[test]
    fn older_field_names_are_accepted() {
        let mut role = TokenRole::new("r");
        role.apply(&data(json!({"period": "1h", "explicit_max_ttl": 60,
            "bound_cidrs": "10.0.0.0/8", "allowed_policies": "B, a"})))
            .unwrap();
        assert_eq!(role.token_period, 3600);
        assert_eq!(role.token_explicit_max_ttl, 60);
        assert_eq!(role.token_bound_cidrs, vec!["10.0.0.0/8"]);
        assert_eq!(role.allowed_policies, vec!["a", "b"]);
    }
}

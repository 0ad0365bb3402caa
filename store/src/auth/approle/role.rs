//! An AppRole role: its stored form, its fields as Vault reads and writes them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::role::{role_json, TokenParams};
use crate::logical::cidr;
use crate::logical::fields::field_secs;
use crate::logical::fields::list_field;
use crate::logical::fields::{field_bool, field_u64};
use crate::logical::{Data, LogicalError};

/// A stored role. The role ID is a credential half, but not a secret on its own (Vault
/// returns it to anyone who may read `role-id`); it is indexed by its HMAC.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Role {
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_ttl: u64,
    pub secret_id_num_uses: u64,
    pub secret_id_bound_cidrs: Vec<String>,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("bind_secret_id", &self.bind_secret_id)
            .field("token_policies", &self.token.token_policies)
            .finish_non_exhaustive()
    }
}

impl Role {
    /// A new role with Vault's defaults.
    pub fn new(role_id: String) -> Role {
        Role {
            role_id,
            bind_secret_id: true,
            ..Default::default()
        }
    }

    /// Apply the fields present in a create/update request.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        if let Some(v) = field_bool(data, "bind_secret_id")? {
            self.bind_secret_id = v;
        }
        if let Some(v) = field_secs(data, "secret_id_ttl")? {
            self.secret_id_ttl = v;
        }
        if let Some(v) = field_u64(data, "secret_id_num_uses")? {
            self.secret_id_num_uses = v;
        }
        if let Some(v) = list_field(data, "secret_id_bound_cidrs")? {
            self.secret_id_bound_cidrs = cidr::parse_list(&v)?;
        }
        self.token.update(data)?;
        self.check()
    }

    fn check(&self) -> Result<(), LogicalError> {
        if !self.bind_secret_id
            && self.secret_id_bound_cidrs.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(LogicalError::invalid(
                "at least one constraint should be enabled on the role: bind_secret_id, \
                 secret_id_bound_cidrs or token_bound_cidrs",
            ));
        }
        Ok(())
    }

    /// The role as Vault's `GET role/:name` shows it (without the role ID).
    pub fn to_json(&self) -> Value {
        role_json(
            json!({
                "bind_secret_id": self.bind_secret_id,
                "local_secret_ids": false,
                "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
                "secret_id_num_uses": self.secret_id_num_uses,
                "secret_id_ttl": self.secret_id_ttl,
            }),
            &self.token,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fields_are_read_as_vault_sends_them() {
        let mut r = Role::new("id".into());
        r.update(&data(json!({
            "token_policies": "a, B", "token_ttl": "1h", "token_max_ttl": 7200,
            "secret_id_num_uses": "3", "secret_id_bound_cidrs": ["10.0.0.0/8"],
        })))
        .unwrap();
        assert_eq!(r.token.token_policies, vec!["a", "b"]);
        assert_eq!((r.token.token_ttl, r.token.token_max_ttl), (3600, 7200));
        assert_eq!(r.secret_id_num_uses, 3);
        assert!(r.bind_secret_id);
        r.update(&data(json!({"policies": ["old"]}))).unwrap();
        assert_eq!(r.token.token_policies, vec!["old"]);
    }

    #[test]
    fn bad_fields_are_refused() {
        for bad in [
            json!({"token_ttl": "soon"}),
            json!({"secret_id_bound_cidrs": ["10.0.0.0/40"]}),
            json!({"token_policies": [1]}),
            json!({"token_ttl": 100, "token_max_ttl": 10}),
            json!({"bind_secret_id": false}),
            json!({"token_type": "batch"}),
        ] {
            let mut r = Role::new("id".into());
            assert_eq!(
                r.update(&data(bad.clone())).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
        let mut r = Role::new("id".into());
        r.update(&data(
            json!({"bind_secret_id": false, "token_bound_cidrs": "127.0.0.1/32"}),
        ))
        .unwrap();
    }
}

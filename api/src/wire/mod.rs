//! Vault's wire shapes, as serde types both the server and the clients use.
//!
//! Types that carry secrets (tokens, unseal keys, KV data) hold them as [`SecretString`] or
//! keep them out of `Debug`; they serialise the secret in clear only because the wire needs it.

pub mod agents;
pub mod kv;
pub mod reports;
pub mod sys;
pub mod token;

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A JSON object.
pub type Data = Map<String, Value>;

/// Serialise secrets in clear for the wire (and nowhere else).
pub mod expose {
    use secrecy::{ExposeSecret, SecretString};
    use serde::ser::SerializeSeq;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose_secret())
    }

    pub fn serialize_opt<S: Serializer>(
        s: &Option<SecretString>,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_some(s.expose_secret()),
            None => ser.serialize_none(),
        }
    }

    pub fn serialize_vec<S: Serializer>(v: &[SecretString], ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(v.len()))?;
        for s in v {
            seq.serialize_element(s.expose_secret())?;
        }
        seq.end()
    }
}

/// Vault's response envelope. `T` is the shape of `data`.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned"))]
pub struct VaultResponse<T = Data> {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub lease_id: String,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default = "none")]
    pub data: Option<T>,
    #[serde(default)]
    pub wrap_info: Option<Value>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default)]
    pub auth: Option<Auth>,
    #[serde(default)]
    pub mount_type: String,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> Default for VaultResponse<T> {
    fn default() -> Self {
        VaultResponse {
            request_id: String::new(),
            lease_id: String::new(),
            renewable: false,
            lease_duration: 0,
            data: None,
            wrap_info: None,
            warnings: None,
            auth: None,
            mount_type: String::new(),
        }
    }
}

impl<T> std::fmt::Debug for VaultResponse<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `data` may hold secrets: say only whether it is there.
        f.debug_struct("VaultResponse")
            .field("request_id", &self.request_id)
            .field("lease_id", &self.lease_id)
            .field("has_data", &self.data.is_some())
            .field("auth", &self.auth)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl<T> VaultResponse<T> {
    /// Warnings, empty when there were none.
    pub fn warnings(&self) -> &[String] {
        self.warnings.as_deref().unwrap_or(&[])
    }
}

/// The `auth` object of a response: a token that was just created, renewed or logged in.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub struct Auth {
    #[serde(serialize_with = "expose::serialize")]
    pub client_token: SecretString,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_policies: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub num_uses: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("client_token", &"[redacted]")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

/// An error body: `{"errors": ["..."]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The `data` of a LIST response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListData {
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `data` of `sys/policies/acl/:name`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyData {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub policy: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn envelope_parses_vault_shape_with_nulls() {
        let body = json!({
            "request_id": "r1", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"a": "b"}, "wrap_info": null, "warnings": null, "auth": null,
            "mount_type": "kv"
        });
        let r: VaultResponse = serde_json::from_value(body).unwrap();
        assert_eq!(r.request_id, "r1");
        assert!(r.warnings().is_empty());
        assert_eq!(r.data.unwrap()["a"], "b");

        let r: VaultResponse = serde_json::from_value(json!({"data": null})).unwrap();
        assert!(r.data.is_none());
        assert!(serde_json::from_value::<VaultResponse>(json!({"data": 5})).is_err());
    }

    #[test]
    fn auth_round_trips_the_token_but_hides_it_from_debug() {
        let body = json!({"client_token": "hvs.abc", "accessor": "acc", "policies": ["default"],
            "token_policies": ["default"], "metadata": null, "lease_duration": 60,
            "renewable": true, "entity_id": "", "token_type": "service", "orphan": false,
            "num_uses": 0});
        let auth: Auth = serde_json::from_value(body).unwrap();
        assert_eq!(auth.client_token.expose_secret(), "hvs.abc");
        assert!(!format!("{auth:?}").contains("hvs.abc"));
        let back = serde_json::to_value(&auth).unwrap();
        assert_eq!(back["client_token"], "hvs.abc");
        let r = VaultResponse::<Data> {
            auth: Some(auth),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("hvs.abc"));
    }

    #[test]
    fn error_body_parses() {
        let e: ErrorBody = serde_json::from_str(r#"{"errors":["permission denied"]}"#).unwrap();
        assert_eq!(e.errors, vec!["permission denied"]);
        let e: ErrorBody = serde_json::from_str(r#"{"errors":[]}"#).unwrap();
        assert!(e.errors.is_empty());
    }
}

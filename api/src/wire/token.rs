//! Token store shapes (`auth/token/...`).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::expose;

/// Body of `auth/token/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenCreateRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Duration string (`1h`, `30m`, `3600s`) or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_max_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Uses before the token is revoked; 0 or unset for unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_uses: Option<u64>,
    /// Create an orphan (no parent): needs root or sudo.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_parent: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_default_policy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
}

/// `data` of `auth/token/lookup`, `lookup-self` and `lookup-accessor`.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub struct TokenLookup {
    pub accessor: String,
    pub creation_time: i64,
    pub creation_ttl: u64,
    pub display_name: String,
    pub entity_id: String,
    pub expire_time: Option<String>,
    pub explicit_max_ttl: u64,
    /// The token itself; empty for a lookup by accessor.
    #[serde(serialize_with = "expose::serialize")]
    pub id: SecretString,
    pub issue_time: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub num_uses: u64,
    pub orphan: bool,
    pub path: String,
    pub policies: Vec<String>,
    pub renewable: bool,
    pub ttl: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(rename = "type")]
    pub token_type: String,
}

impl std::fmt::Debug for TokenLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLookup")
            .field("accessor", &self.accessor)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn create_request_sends_only_what_is_set() {
        let req = TokenCreateRequest {
            policies: vec!["app".into()],
            ttl: Some("1h".into()),
            no_parent: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"policies": ["app"], "ttl": "1h", "no_parent": true})
        );
    }

    #[test]
    fn lookup_parses_and_hides_id() {
        let l: TokenLookup = serde_json::from_value(json!({
            "accessor": "acc", "creation_time": 1700000000, "creation_ttl": 3600,
            "display_name": "token", "entity_id": "", "expire_time": null,
            "explicit_max_ttl": 0, "id": "hvs.secret", "issue_time": "2024-01-01T00:00:00Z",
            "meta": null, "num_uses": 0, "orphan": false, "path": "auth/token/create",
            "policies": ["default"], "renewable": true, "ttl": 3500, "type": "service"
        }))
        .unwrap();
        assert_eq!(l.id.expose_secret(), "hvs.secret");
        assert_eq!(l.token_type, "service");
        assert!(!format!("{l:?}").contains("hvs.secret"));
    }
}

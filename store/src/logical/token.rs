//! The stored token, as the token store keeps it and as a request carries it once the core
//! has authenticated it ([`super::Request::token_entry`]). The token string itself is never
//! stored: `id_hash` is its HMAC.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A stored token. The token string itself is never stored: `id_hash` is its HMAC.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// HMAC-SHA256 of the token (hex): the storage key.
    pub id_hash: String,
    pub accessor: String,
    /// `id_hash` of the parent; `None` for orphans and the root token.
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Uses left; 0 means unlimited.
    pub num_uses: u64,
    pub creation_time: DateTime<Utc>,
    /// Seconds; 0 means it never expires (root tokens).
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
    pub expire_time: Option<DateTime<Utc>>,
    /// The path that created it, e.g. `auth/token/create`.
    pub path: String,
    pub token_type: String,
    pub entity_id: String,
    /// CIDR blocks the token may be used from (empty: anywhere). Set by auth-method logins
    /// from a role's `token_bound_cidrs`; checked on every use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<String>,
    /// When it was last renewed (Vault's `last_renewal_time` / `last_renewal` in lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

//! The token store, mounted at `auth/token/`. Tokens are stored only as keyed hashes
//! (HMAC-SHA256 with a key kept behind the barrier); accessors index them; children are
//! revoked with their parent.
//!
//! # Layout
//!
//! - this file: the stored [`TokenEntry`];
//! - [`store`]: the [`TokenStore`] (storage, authentication, creation, renewal, revocation);
//! - [`backend`]: the `auth/token/` endpoints;
//! - [`ttl`]: Vault's TTL rules;
//! - `lease`: token leases in the expiration manager's index;
//! - [`cache`]: parsed entries of tokens in use, invalidated by every entry write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod backend;
pub mod cache;
mod lease;
pub mod store;
pub mod ttl;

#[cfg(test)]
mod tests;

pub use store::{Clock, CreateParams, Renewed, TokenStore};

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

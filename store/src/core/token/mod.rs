//! The token store, mounted at `auth/token/`. Tokens are stored only as keyed hashes
//! (HMAC-SHA256 with a key kept behind the barrier); accessors index them; children are
//! revoked with their parent.

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

// STUB (replaced by the token work): signatures only.
#[allow(clippy::todo, dead_code, unused_variables)]
mod stub {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::TokenEntry;
    use crate::barrier::BarrierView;
    use crate::logical::{LogicalBackend, LogicalError, Request, Response};

    #[derive(Debug)]
    pub struct TokenStore;
    impl TokenStore {
        pub async fn open(view: BarrierView) -> Result<TokenStore, LogicalError> {
            todo!()
        }
        pub async fn create_root_token(&self) -> Result<SecretString, LogicalError> {
            todo!()
        }
        pub async fn create_root_token_with_id(
            &self,
            token: &SecretString,
        ) -> Result<(), LogicalError> {
            todo!()
        }
        pub async fn authenticate(
            &self,
            token: &SecretString,
        ) -> Result<Arc<TokenEntry>, LogicalError> {
            todo!()
        }
    }
    #[async_trait::async_trait]
    impl LogicalBackend for TokenStore {
        async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
            todo!()
        }
    }
}
pub use stub::TokenStore;

//! Leases as stored: the [`LeaseEntry`] of a dynamic secret or a token, and the index
//! ([`index`]) they are kept in. Below both the token store (which writes token leases in the
//! same batches as the tokens) and the expiration manager (which renews and revokes them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::logical::{Data, LogicalError, TokenEntry};

pub mod index;

pub use index::LeaseIndex;

/// What a lease stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// A dynamic secret from an engine: renewed and revoked by the engine.
    Secret,
    /// A token: renewed and revoked by the token store.
    Token,
}

/// One stored lease. Kept small (times as unix millis, nothing empty stored): SQLite keeps a
/// row of up to about 480 bytes in its b-tree page and spills longer ones to overflow pages.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseEntry {
    /// `<request path>/<random>`, or `<creating path>/<token hash>` for a token.
    pub lease_id: String,
    pub kind: LeaseKind,
    /// Accessor of the mount that issued it (a remounted path is another engine).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_accessor: String,
    /// The engine's [`crate::logical::SecretLease::internal`]: may hold what identifies a
    /// credential.
    #[serde(default, skip_serializing_if = "Data::is_empty")]
    pub internal: Data,
    /// Secret leases: hash of the token that created it. Token leases: the token's own hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub issue_time: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub expire_time: DateTime<Utc>,
    /// Issue time plus the max TTL (secret leases; a token keeps its own limits).
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_expire: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_renewal: Option<DateTime<Utc>>,
    pub renewable: bool,
    /// When the expiry task takes it next: the expiry, or a retry after a failed revocation.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub due: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revoke_attempts: u32,
    /// Why revocation gave up; such a lease stays stored but is no longer retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irrevocable: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl std::fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the internal data.
        f.debug_struct("LeaseEntry")
            .field("lease_id", &self.lease_id)
            .field("kind", &self.kind)
            .field("expire_time", &self.expire_time)
            .field("irrevocable", &self.irrevocable.is_some())
            .finish_non_exhaustive()
    }
}

impl LeaseEntry {
    /// The request path that issued it (the lease id without its last segment): renewals and
    /// revocations are routed by it.
    pub fn path(&self) -> &str {
        self.lease_id
            .rsplit_once('/')
            .map_or(self.lease_id.as_str(), |(p, _)| p)
    }

    /// Still waiting for the expiry task (not irrevocable).
    pub fn pending(&self) -> bool {
        self.irrevocable.is_none()
    }

    /// The lease of a token with an expiry; `None` for tokens that never expire.
    pub fn for_token(token: &TokenEntry) -> Option<LeaseEntry> {
        let expire_time = token.expire_time?;
        Some(LeaseEntry {
            lease_id: token_lease_id(token),
            kind: LeaseKind::Token,
            mount_accessor: String::new(),
            internal: Data::new(),
            token_hash: Some(token.id_hash.clone()),
            issue_time: token.creation_time,
            expire_time,
            max_expire: None,
            last_renewal: None,
            renewable: token.renewable,
            due: expire_time,
            revoke_attempts: 0,
            irrevocable: None,
        })
    }

    /// Seconds left until it expires, from `now`, to the nearest second (times are stored
    /// to the millisecond).
    pub fn ttl(&self, now: DateTime<Utc>) -> u64 {
        let ms = (self.expire_time - now).num_milliseconds();
        u64::try_from((ms + 500) / 1000).unwrap_or(0)
    }
}

/// The lease id of a token: `<creating path>/<token hash>`.
pub fn token_lease_id(token: &TokenEntry) -> String {
    format!("{}/{}", token.path.trim_end_matches('/'), token.id_hash)
}

/// Told by the token store which tokens it is about to revoke, so their leases go too.
#[async_trait::async_trait]
pub trait TokenRevocationHook: Send + Sync {
    async fn tokens_revoked(&self, hashes: &[String]) -> Result<(), LogicalError>;
}

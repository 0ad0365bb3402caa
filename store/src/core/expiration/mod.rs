//! The expiration manager (Vault's `ExpirationManager`): every dynamic secret and every
//! token with a TTL has a durable lease; one task revokes each lease when it is due.
//!
//! # Layout
//!
//! - this file: [`ExpirationManager`] registration and lookup;
//! - the stored [`LeaseEntry`] and its index (`sys/expire/`: entries, the by-expiry index the
//!   task reads the head of, the by-token index, irrevocable leases) are in
//!   [`crate::core::lease`], below the token store that writes token leases too;
//! - [`revoke`]: renewal, revocation (with retries, then irrevocable), prefixes, tokens;
//! - [`task`]: the one expiry task.
//!
//! The index lives in storage, not in memory: an unseal reads nothing but the head of the
//! by-expiry range, so start-up time does not grow with the number of leases (Vault reads
//! every lease at unseal), and a crash loses no lease.
//!
//! Token leases (`<creating path>/<token hash>`, as Vault's `auth/token/create/<hash>`) are
//! written by the token store in the same atomic batches as the tokens themselves; the
//! manager revokes and renews them through the token store.

use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};

use crate::core::lease::{index, LeaseEntry, LeaseIndex, LeaseKind, TokenRevocationHook};
use crate::core::mount::{MountConfig, MountEntry};
use crate::core::token::{Clock, TokenStore};
use crate::logical::ttl::{add_seconds, DEFAULT_TTL, MAX_TTL};
use crate::logical::{
    LeaseInfo, LogicalBackend, LogicalError, Operation, Request, SecretLease, REVOKED_TOKEN_HASH,
};

mod remount;
mod revoke;
mod task;
#[cfg(test)]
mod tests;

pub use revoke::{PrefixMode, Renewal};

/// A lease's TTL and max TTL (seconds) from what was asked and the mount's tuning: the TTL
/// is the first set of `ttl`, the mount's default and the system default; both are capped by
/// the mount's max lease TTL and the system max.
pub fn effective_ttls(cfg: &MountConfig, ttl: u64, max_ttl: u64) -> (u64, u64) {
    let mount_max = match cfg.max_lease_ttl {
        0 => MAX_TTL,
        m => m.min(MAX_TTL),
    };
    let max = match max_ttl {
        0 => mount_max,
        m => m.min(mount_max),
    };
    let ttl = [ttl, cfg.default_lease_ttl, DEFAULT_TTL]
        .into_iter()
        .find(|t| *t > 0)
        .unwrap_or(DEFAULT_TTL)
        .min(max);
    (ttl, max)
}

/// How a failed revocation is retried before the lease is marked irrevocable.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base: std::time::Duration,
    pub max: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: std::time::Duration::from_secs(2),
            max: std::time::Duration::from_secs(120),
        }
    }
}

/// Finds the engine that issued a lease. The router in production; tests mount their own.
pub trait LeaseBackends: Send + Sync {
    /// The mount serving `path` and its backend, if any.
    fn lease_backend(&self, path: &str) -> Option<(Arc<MountEntry>, Arc<dyn LogicalBackend>)>;
}

/// The expiration manager. One per unseal.
pub struct ExpirationManager {
    index: Arc<LeaseIndex>,
    tokens: Arc<TokenStore>,
    backends: Weak<dyn LeaseBackends>,
    clock: Clock,
    retry: RetryPolicy,
    /// Serialises changes to one lease (renew, revoke, expiry); striped by lease id.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Told of secret leases revoked or expired (`lease.revoked`, `lease.expired`).
    webhooks: std::sync::OnceLock<Arc<crate::core::webhooks::Webhooks>>,
}

impl std::fmt::Debug for ExpirationManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpirationManager")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

const STRIPES: usize = 64;

impl ExpirationManager {
    /// A manager over `index` (which the token store writes token leases to as well).
    /// `backends` is held weakly: the router owns the engines.
    pub fn new(
        index: Arc<LeaseIndex>,
        tokens: Arc<TokenStore>,
        backends: Weak<dyn LeaseBackends>,
    ) -> Arc<Self> {
        Self::with_options(
            index,
            tokens,
            backends,
            Arc::new(Utc::now),
            RetryPolicy::default(),
        )
    }

    pub fn with_options(
        index: Arc<LeaseIndex>,
        tokens: Arc<TokenStore>,
        backends: Weak<dyn LeaseBackends>,
        clock: Clock,
        retry: RetryPolicy,
    ) -> Arc<Self> {
        let manager = Arc::new(ExpirationManager {
            index,
            tokens: tokens.clone(),
            backends,
            clock,
            retry,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            webhooks: std::sync::OnceLock::new(),
        });
        let hook: Weak<dyn TokenRevocationHook> = Arc::downgrade(&manager) as _;
        tokens.set_revocation_hook(hook);
        manager
    }

    /// Emit `lease.revoked` and `lease.expired` to `webhooks` from now on.
    pub fn set_webhooks(&self, webhooks: Arc<crate::core::webhooks::Webhooks>) {
        let _ = self.webhooks.set(webhooks);
    }

    pub fn index(&self) -> &Arc<LeaseIndex> {
        &self.index
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn stripe(&self, lease_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        lease_id.hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    /// Register the lease an engine attached to its answer to `req` (served by `mount`),
    /// and return what the client is told.
    pub async fn register(
        &self,
        req: &Request,
        mount: &MountEntry,
        secret: &SecretLease,
    ) -> Result<LeaseInfo, LogicalError> {
        let now = self.now();
        let (ttl, max) = effective_ttls(&mount.config, secret.ttl, secret.max_ttl);
        let lease_id = format!(
            "{}/{}",
            req.path.trim_end_matches('/'),
            Alphanumeric.sample_string(&mut rand::rng(), 24)
        );
        if !index::valid_lease_id(&lease_id) {
            return Err(LogicalError::invalid("cannot lease a secret at this path"));
        }
        let expire_time = at(now, ttl)?;
        let entry = LeaseEntry {
            lease_id: lease_id.clone(),
            kind: LeaseKind::Secret,
            mount_accessor: mount.accessor.clone(),
            internal: secret.internal.clone(),
            token_hash: req.token_entry.as_ref().map(|t| t.id_hash.clone()),
            issue_time: now,
            expire_time,
            max_expire: Some(at(now, max)?),
            last_renewal: None,
            renewable: secret.renewable,
            due: expire_time,
            revoke_attempts: 0,
            irrevocable: None,
        };
        self.index.put(&entry, None).await?;
        tracing::debug!(lease_id = %lease_id, ttl, max_ttl = max, renewable = secret.renewable, "lease registered");
        Ok(LeaseInfo {
            lease_id,
            lease_duration: ttl,
            renewable: secret.renewable,
        })
    }

    /// The stored lease `lease_id`; 400 "invalid lease" when there is none.
    pub async fn lookup(&self, lease_id: &str) -> Result<LeaseEntry, LogicalError> {
        self.index
            .load(lease_id)
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid lease"))
    }

    /// Immediate children of `prefix` among lease ids.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        Ok(self.index.list(prefix).await?)
    }

    /// Leases whose revocation gave up: (lease id, reason).
    pub async fn irrevocable(&self) -> Result<Vec<(String, String)>, LogicalError> {
        let mut out = Vec::new();
        for id in self.index.irrevocable().await? {
            if let Some(e) = self.index.load(&id).await? {
                out.push((id, e.irrevocable.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// How many leases are stored (tokens included).
    pub async fn count(&self) -> Result<usize, LogicalError> {
        Ok(self.index.count().await?)
    }

    fn backend_for(
        &self,
        entry: &LeaseEntry,
    ) -> Result<(Arc<MountEntry>, Arc<dyn LogicalBackend>), LogicalError> {
        let gone = || {
            LogicalError::invalid(format!(
                "no secrets engine that issued {} is mounted",
                entry.lease_id
            ))
        };
        let backends = self.backends.upgrade().ok_or(LogicalError::Sealed)?;
        let (mount, backend) = backends.lease_backend(entry.path()).ok_or_else(gone)?;
        if mount.accessor != entry.mount_accessor {
            return Err(gone());
        }
        Ok((mount, backend))
    }
}

#[async_trait::async_trait]
impl TokenRevocationHook for ExpirationManager {
    /// Vault's `RevokeByToken`: the leases a revoked token created expire now; the expiry
    /// task revokes them (with retries) right away.
    async fn tokens_revoked(&self, hashes: &[String]) -> Result<(), LogicalError> {
        for hash in hashes {
            for id in self.index.by_token(hash).await? {
                self.expire_now(&id).await?;
            }
        }
        self.destroy_cubbyholes(hashes).await
    }
}

impl ExpirationManager {
    /// A revoked token's cubbyhole goes with it (Vault's token store destroys it on
    /// revocation): the `cubbyhole/` mount gets a [`Operation::Revoke`] without a lease.
    async fn destroy_cubbyholes(&self, hashes: &[String]) -> Result<(), LogicalError> {
        let Some(backends) = self.backends.upgrade() else {
            return Ok(());
        };
        let Some((mount, backend)) = backends.lease_backend(CUBBYHOLE) else {
            return Ok(());
        };
        if mount.path != CUBBYHOLE {
            return Ok(());
        }
        for hash in hashes {
            let mut req = Request::new(Operation::Revoke, CUBBYHOLE);
            req.mount_point = mount.path.clone();
            req.mount_type = mount.kind.clone();
            req.data.insert(
                REVOKED_TOKEN_HASH.into(),
                serde_json::Value::from(hash.as_str()),
            );
            backend.handle(&req).await?;
        }
        Ok(())
    }
}

/// The built-in per-token storage.
const CUBBYHOLE: &str = "cubbyhole/";

/// `now` plus `secs`, or 400 past the representable range.
pub(crate) fn at(now: DateTime<Utc>, secs: u64) -> Result<DateTime<Utc>, LogicalError> {
    add_seconds(now, secs).ok_or_else(|| LogicalError::invalid("the TTL is too large"))
}

//! Renewal and revocation of leases: through the engine that issued a secret, through the
//! token store for a token. A failed revocation is retried by the expiry task with
//! exponential backoff, then the lease is marked irrevocable and kept.

use chrono::{DateTime, Utc};

use super::{at, effective_ttls, ExpirationManager, LeaseEntry, LeaseKind};
use crate::logical::duration::format_secs;
use crate::logical::{LeaseContext, LogicalError, Operation, Request};

/// The outcome of a renewal.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub lease_id: String,
    /// Seconds granted from now.
    pub ttl: u64,
    pub renewable: bool,
    pub warnings: Vec<String>,
}

/// What a revoke-prefix does to each lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMode {
    /// Revoke now through the engine; fail if one fails.
    Sync,
    /// Let the expiry task revoke them at once (with retries).
    Async,
    /// Remove the leases without asking the engine (`revoke-force`).
    Force,
}

impl ExpirationManager {
    /// Extend `lease_id` by `increment` seconds from now (0: the engine's or token's default),
    /// capped at its max TTL with a warning; refused once expired, past the max or when not
    /// renewable.
    pub async fn renew(&self, lease_id: &str, increment: u64) -> Result<Renewal, LogicalError> {
        let Some((entry, _guard)) = self.lock_lease(lease_id).await? else {
            return Err(LogicalError::invalid("lease not found"));
        };
        if entry.kind == LeaseKind::Token {
            let hash = entry.token_hash.as_deref().unwrap_or_default();
            let renewed = self.tokens.renew(hash, increment).await?;
            return Ok(Renewal {
                lease_id: lease_id.to_string(),
                ttl: renewed.ttl,
                renewable: renewed.entry.renewable,
                warnings: renewed.warnings,
            });
        }
        let now = self.now();
        if entry.irrevocable.is_some() || entry.expire_time <= now {
            return Err(LogicalError::invalid("lease expired"));
        }
        if !entry.renewable {
            return Err(LogicalError::invalid("lease is not renewable"));
        }
        let (mount, backend) = self.backend_for(&entry)?;
        // The mount's max lease TTL as tuned now applies too.
        let (_, mount_max) = effective_ttls(&mount.config, 0, 0);
        let max_expire = [entry.max_expire, Some(at(entry.issue_time, mount_max)?)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(entry.expire_time);
        if max_expire <= now {
            return Err(LogicalError::invalid("past the max TTL, cannot renew"));
        }
        let req = engine_request(&entry, Operation::Renew, &mount, increment);
        let resp = backend.handle(&req).await?;
        let granted = resp
            .secret
            .as_ref()
            .map(|s| s.ttl)
            .filter(|t| *t > 0)
            .unwrap_or_else(|| effective_ttls(&mount.config, increment, 0).0);
        let renewable = resp.secret.as_ref().is_none_or(|s| s.renewable);
        let left = u64::try_from((max_expire - now).num_seconds()).unwrap_or(0);
        let mut warnings = resp.warnings;
        let ttl = if granted > left {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped \
                 accordingly",
                format_secs(granted),
                format_secs(left)
            ));
            left
        } else {
            granted
        };
        let mut next = entry.clone();
        next.expire_time = at(now, ttl)?;
        next.due = next.expire_time;
        next.last_renewal = Some(now);
        next.renewable = renewable;
        self.index.put(&next, Some(&entry)).await?;
        tracing::debug!(lease_id, ttl, "lease renewed");
        Ok(Renewal {
            lease_id: lease_id.to_string(),
            ttl,
            renewable,
            warnings,
        })
    }

    /// Revoke `lease_id`. `sync`: now, failing if the engine fails (the expiry task then
    /// retries); otherwise the lease expires now and the expiry task revokes it. Revoking a
    /// lease that does not exist succeeds, as in Vault.
    pub async fn revoke(&self, lease_id: &str, sync: bool) -> Result<(), LogicalError> {
        if !sync {
            return self.expire_now(lease_id).await;
        }
        let Some((entry, _guard)) = self.lock_lease(lease_id).await? else {
            return Ok(());
        };
        self.revoke_or_retry(entry, "lease.revoked").await
    }

    /// Revoke every lease whose id is under `prefix` (a path: a trailing `/` is implied).
    /// Returns how many leases were found.
    pub async fn revoke_prefix(
        &self,
        prefix: &str,
        mode: PrefixMode,
    ) -> Result<usize, LogicalError> {
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        let ids = self.index.with_prefix(&prefix).await?;
        let mut first_err = None;
        for id in &ids {
            let result = match mode {
                PrefixMode::Async => self.expire_now(id).await,
                PrefixMode::Sync => self.revoke(id, true).await,
                PrefixMode::Force => self.force_remove(id).await,
            };
            if let Err(e) = result {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(LogicalError::invalid(format!(
                "failed to revoke some leases under {prefix}: {e}"
            ))),
            None => Ok(ids.len()),
        }
    }

    /// Remove a lease without asking its engine (a token is still revoked: that is local).
    async fn force_remove(&self, lease_id: &str) -> Result<(), LogicalError> {
        let Some((entry, _guard)) = self.lock_lease(lease_id).await? else {
            return Ok(());
        };
        if entry.kind == LeaseKind::Token {
            return self.revoke_token_lease(&entry).await;
        }
        tracing::warn!(lease_id = %entry.lease_id, "lease removed without revoking its secret");
        self.index.delete(&entry).await?;
        self.tell_webhooks(&entry, "lease.revoked", true).await;
        Ok(())
    }

    /// Make the lease due now: the expiry task revokes it at once.
    pub(super) async fn expire_now(&self, lease_id: &str) -> Result<(), LogicalError> {
        let Some((entry, _guard)) = self.lock_lease(lease_id).await? else {
            return Ok(());
        };
        if !entry.pending() {
            return Ok(());
        }
        let mut next = entry.clone();
        next.due = self.now().min(entry.due);
        self.index.put(&next, Some(&entry)).await?;
        Ok(())
    }

    /// The expiry task's step for one due lease.
    /// `millis` is the due time of the index key the task read.
    pub(super) async fn expire(&self, millis: i64, lease_id: &str) -> Result<(), LogicalError> {
        let locked = self.lock_lease(lease_id).await?;
        let (entry, _guard) = match locked {
            Some((entry, guard)) => (Some(entry), guard),
            None => (None, None),
        };
        let current = entry
            .as_ref()
            .is_some_and(|e| e.pending() && e.due.timestamp_millis() == millis);
        let Some(entry) = entry.filter(|_| current) else {
            // Renewed or rescheduled since the task read the index, and the key is gone; or a
            // key left behind by a lease that is not there (never written so): drop it.
            return Ok(self.index.delete_expiry_key(millis, lease_id).await?);
        };
        if entry.due > self.now() {
            return Ok(());
        }
        // Due at its expiry time (or later: a retry): it expired; due earlier: a revocation
        // made it due now.
        let why = if entry.due < entry.expire_time {
            "lease.revoked"
        } else {
            "lease.expired"
        };
        match self.revoke_or_retry(entry, why).await {
            Ok(()) => Ok(()),
            // Recorded for a retry (or marked irrevocable); the task carries on.
            Err(LogicalError::InvalidRequest(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Load `lease_id`; a secret lease is returned with its stripe locked, so renewals,
    /// revocations and expiry of one lease do not interleave. A token lease is not locked
    /// here: the token store serialises its own changes, and holding a stripe while waiting
    /// for its lock could deadlock against a token revocation making leases due (which takes
    /// stripes under that lock).
    async fn lock_lease(
        &self,
        lease_id: &str,
    ) -> Result<Option<(LeaseEntry, Option<tokio::sync::MutexGuard<'_, ()>>)>, LogicalError> {
        match self.index.load(lease_id).await? {
            None => Ok(None),
            Some(e) if e.kind == LeaseKind::Token => Ok(Some((e, None))),
            Some(_) => {
                let guard = self.stripe(lease_id).lock().await;
                // Re-read under the lock: it may have changed meanwhile.
                Ok(self.index.load(lease_id).await?.map(|e| (e, Some(guard))))
            }
        }
    }

    /// Revoke `entry` through its engine or the token store; on failure record the attempt
    /// (schedule a retry or give up) and return the failure. Caller holds the stripe. A
    /// secret lease revoked is told to the webhooks as `event` (`lease.revoked`,
    /// `lease.expired`).
    async fn revoke_or_retry(
        &self,
        entry: LeaseEntry,
        event: &'static str,
    ) -> Result<(), LogicalError> {
        if entry.kind == LeaseKind::Token {
            return self.revoke_token_lease(&entry).await;
        }
        let result = match self.backend_for(&entry) {
            Ok((mount, backend)) => {
                let req = engine_request(&entry, Operation::Revoke, &mount, 0);
                backend.handle(&req).await.map(drop)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.index.delete(&entry).await?;
                tracing::debug!(lease_id = %entry.lease_id, "lease revoked");
                self.tell_webhooks(&entry, event, false).await;
                Ok(())
            }
            Err(LogicalError::Sealed) => Err(LogicalError::Sealed),
            Err(e) => {
                self.record_failure(entry, &e).await?;
                Err(LogicalError::invalid(format!(
                    "failed to revoke lease: {e}"
                )))
            }
        }
    }

    /// Queue `event` for a secret lease gone (its id, path and times; `forced`: removed
    /// without its engine). A queue failure is logged, never the revocation's failure.
    async fn tell_webhooks(&self, entry: &LeaseEntry, event: &str, forced: bool) {
        let Some(hooks) = self.webhooks.get() else {
            return;
        };
        let path = entry.path();
        if !hooks.wanted(event, path) {
            return;
        }
        let mut data = serde_json::Map::new();
        data.insert("lease_id".into(), entry.lease_id.clone().into());
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        data.insert("issue_time".into(), time(entry.issue_time).into());
        data.insert("expire_time".into(), time(entry.expire_time).into());
        if forced {
            data.insert("forced".into(), true.into());
        }
        if let Err(e) = hooks.emit(event, path, data).await {
            tracing::warn!(lease_id = %entry.lease_id, error = %e, "webhook: cannot queue a lease event");
        }
    }

    async fn revoke_token_lease(&self, entry: &LeaseEntry) -> Result<(), LogicalError> {
        if let Some(hash) = &entry.token_hash {
            self.tokens.revoke_tree(hash).await?;
        }
        // The token store removes the lease with the token; a lease left without its token
        // (never written together) goes here.
        if self.index.load(&entry.lease_id).await?.is_some() {
            self.index.delete(entry).await?;
        }
        Ok(())
    }

    async fn record_failure(
        &self,
        entry: LeaseEntry,
        err: &LogicalError,
    ) -> Result<(), LogicalError> {
        let mut next = entry.clone();
        next.revoke_attempts += 1;
        if next.revoke_attempts >= self.retry.attempts {
            tracing::error!(
                lease_id = %entry.lease_id,
                attempts = next.revoke_attempts,
                error = %err,
                "lease revocation failed; the lease is now irrevocable"
            );
            next.irrevocable = Some(err.to_string());
        } else {
            let wait = backoff(self.retry.base, self.retry.max, next.revoke_attempts);
            tracing::warn!(
                lease_id = %entry.lease_id,
                attempt = next.revoke_attempts,
                retry_in_ms = wait.as_millis() as u64,
                error = %err,
                "lease revocation failed; will retry"
            );
            next.due = retry_at(self.now(), wait);
        }
        self.index.put(&next, Some(&entry)).await?;
        Ok(())
    }
}

/// `base * 2^(attempt-1)`, at most `max`.
fn backoff(
    base: std::time::Duration,
    max: std::time::Duration,
    attempt: u32,
) -> std::time::Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(max)
}

fn retry_at(now: DateTime<Utc>, wait: std::time::Duration) -> DateTime<Utc> {
    let wait = chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
    now.checked_add_signed(wait).unwrap_or(now)
}

/// The request the manager sends an engine about `entry`.
fn engine_request(
    entry: &LeaseEntry,
    op: Operation,
    mount: &crate::core::mount::MountEntry,
    increment: u64,
) -> Request {
    let mut req = Request::new(op, entry.path());
    req.mount_point = mount.path.clone();
    req.mount_type = mount.kind.clone();
    req.lease = Some(LeaseContext {
        lease_id: entry.lease_id.clone(),
        internal: entry.internal.clone(),
        issue_time: entry.issue_time,
        expire_time: entry.expire_time,
        increment,
    });
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(Duration::from_secs(2), Duration::from_secs(20), n);
        assert_eq!(b(1), Duration::from_secs(2));
        assert_eq!(b(2), Duration::from_secs(4));
        assert_eq!(b(4), Duration::from_secs(16));
        assert_eq!(b(5), Duration::from_secs(20));
        assert_eq!(b(40), Duration::from_secs(20));
    }
}

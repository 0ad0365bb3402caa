//! The durable lease index behind the barrier (view `sys/expire/`):
//!
//! - `id/<lease id>`: the [`LeaseEntry`] as JSON (the lease id keeps its `/`s, so
//!   `LIST sys/leases/lookup/<prefix>` is a plain list of `id/<prefix>`);
//! - `by-expiry/<due millis, 20 digits>/<escaped lease id>`: empty, one per pending lease, in
//!   the order the expiry task takes them (the head of this range is all it ever reads);
//! - `by-token/<token hash>/<escaped lease id>`: empty, the leases a token created;
//! - `irrevocable/<escaped lease id>`: empty, leases whose revocation gave up.
//!
//! Every change to a lease writes its entry and its index keys in one atomic batch, so the
//! index never points at a lease that is gone nor misses one that exists. The token store
//! folds the ops for token leases into its own batches.

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::LeaseEntry;
use crate::barrier::{BarrierError, BarrierView};
use crate::storage::Op;

pub const BY_EXPIRY: &str = "by-expiry/";
pub const BY_TOKEN: &str = "by-token/";
pub const IRREVOCABLE: &str = "irrevocable/";
pub const ID: &str = "id/";

/// Escape a lease id into one key segment: `%` and `/` as `%25` and `%2F`.
pub fn escape(lease_id: &str) -> String {
    lease_id.replace('%', "%25").replace('/', "%2F")
}

pub fn unescape(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%25", "%")
}

/// Milliseconds since the epoch, clamped at 0, as the 20-digit key segment.
pub fn millis_key(t: DateTime<Utc>) -> String {
    format!("{:020}", t.timestamp_millis().max(0))
}

/// The lease index over one barrier view, plus the wake-up of the expiry task.
pub struct LeaseIndex {
    view: BarrierView,
    /// Woken when a lease becomes due earlier than the task's current deadline.
    pub(crate) wake: Notify,
    /// The deadline (unix millis) the expiry task sleeps until; `i64::MAX` when idle.
    pub(crate) next_due: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for LeaseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseIndex")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl LeaseIndex {
    pub fn new(view: BarrierView) -> Self {
        LeaseIndex {
            view,
            wake: Notify::new(),
            next_due: std::sync::atomic::AtomicI64::new(i64::MAX),
        }
    }

    pub fn view(&self) -> &BarrierView {
        &self.view
    }

    /// Tell the expiry task about a lease due at `due`: wakes it only when that is earlier
    /// than what it sleeps until.
    pub fn note_due(&self, due: DateTime<Utc>) {
        let due = due.timestamp_millis();
        if due < self.next_due.load(std::sync::atomic::Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    pub async fn load(&self, lease_id: &str) -> Result<Option<LeaseEntry>, BarrierError> {
        if !valid_lease_id(lease_id) {
            return Ok(None);
        }
        self.view.get_json(&format!("{ID}{lease_id}")).await
    }

    /// Ops that store `entry` and its index keys, replacing those of `old` (the entry as
    /// stored before, if any).
    pub fn put_ops(
        &self,
        entry: &LeaseEntry,
        old: Option<&LeaseEntry>,
    ) -> Result<Vec<Op>, BarrierError> {
        let mut ops = Vec::with_capacity(4);
        let new_keys = index_keys(entry);
        if let Some(old) = old {
            for key in index_keys(old) {
                if !new_keys.contains(&key) {
                    ops.push(self.view.delete_op(&key)?);
                }
            }
        }
        ops.push(
            self.view
                .put_json_op(&format!("{ID}{}", entry.lease_id), entry)?,
        );
        for key in new_keys {
            ops.push(self.view.put_op(&key, Vec::new())?);
        }
        Ok(ops)
    }

    /// Ops that remove `entry` and all its index keys.
    pub fn delete_ops(&self, entry: &LeaseEntry) -> Result<Vec<Op>, BarrierError> {
        let mut ops = vec![self.view.delete_op(&format!("{ID}{}", entry.lease_id))?];
        for key in index_keys(entry) {
            ops.push(self.view.delete_op(&key)?);
        }
        Ok(ops)
    }

    /// Store `entry` (replacing `old`) atomically.
    pub async fn put(
        &self,
        entry: &LeaseEntry,
        old: Option<&LeaseEntry>,
    ) -> Result<(), BarrierError> {
        self.view.write(self.put_ops(entry, old)?).await?;
        if entry.pending() {
            self.note_due(entry.due);
        }
        Ok(())
    }

    pub async fn delete(&self, entry: &LeaseEntry) -> Result<(), BarrierError> {
        self.view.write(self.delete_ops(entry)?).await
    }

    /// Remove one by-expiry key (a stale one: its lease moved or is gone).
    pub async fn delete_expiry_key(&self, millis: i64, lease_id: &str) -> Result<(), BarrierError> {
        let key = format!("{BY_EXPIRY}{:020}/{}", millis.max(0), escape(lease_id));
        self.view.delete(&key).await
    }

    /// The earliest `limit` pending leases: (due millis, lease id), in due order.
    pub async fn head(&self, limit: usize) -> Result<Vec<(i64, String)>, BarrierError> {
        let keys = self.view.scan_range(BY_EXPIRY, None, limit).await?;
        Ok(keys.iter().filter_map(|k| parse_expiry_key(k)).collect())
    }

    /// Ids of the leases created by the token with hash `token_hash`.
    pub async fn by_token(&self, token_hash: &str) -> Result<Vec<String>, BarrierError> {
        let keys = self.view.list(&format!("{BY_TOKEN}{token_hash}/")).await?;
        Ok(keys.iter().map(|k| unescape(k)).collect())
    }

    /// Ids of every lease whose id starts with `prefix` (a whole path segment prefix).
    pub async fn with_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        if !valid_prefix(prefix) {
            return Ok(Vec::new());
        }
        let keys = self.view.scan_prefix(&format!("{ID}{prefix}")).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(ID).map(str::to_string))
            .collect())
    }

    /// Immediate children of `prefix` among lease ids (`LIST sys/leases/lookup/<prefix>`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        if !valid_prefix(prefix) {
            return Ok(Vec::new());
        }
        self.view.list(&format!("{ID}{prefix}")).await
    }

    /// Ids of the leases marked irrevocable.
    pub async fn irrevocable(&self) -> Result<Vec<String>, BarrierError> {
        let keys = self.view.list(IRREVOCABLE).await?;
        Ok(keys.iter().map(|k| unescape(k)).collect())
    }

    /// How many leases are stored (keys only; no entry is read or decrypted).
    pub async fn count(&self) -> Result<usize, BarrierError> {
        Ok(self.view.scan_prefix(ID).await?.len())
    }
}

/// The index keys `entry` must have.
fn index_keys(entry: &LeaseEntry) -> Vec<String> {
    let escaped = escape(&entry.lease_id);
    let mut keys = Vec::with_capacity(2);
    if entry.pending() {
        keys.push(format!("{BY_EXPIRY}{}/{escaped}", millis_key(entry.due)));
    }
    if entry.irrevocable.is_some() {
        keys.push(format!("{IRREVOCABLE}{escaped}"));
    }
    if let (Some(hash), super::LeaseKind::Secret) = (&entry.token_hash, entry.kind) {
        keys.push(format!("{BY_TOKEN}{hash}/{escaped}"));
    }
    keys
}

fn parse_expiry_key(key: &str) -> Option<(i64, String)> {
    let rest = key.strip_prefix(BY_EXPIRY)?;
    let (millis, id) = rest.split_once('/')?;
    Some((millis.parse().ok()?, unescape(id)))
}

/// A lease id a client may name: a relative path without empty, `.` or `..` segments.
pub fn valid_lease_id(id: &str) -> bool {
    !id.is_empty() && !id.ends_with('/') && valid_prefix(id)
}

/// A prefix of lease ids: as a lease id, but may be empty or end in `/`.
pub fn valid_prefix(prefix: &str) -> bool {
    let body = prefix.strip_suffix('/').unwrap_or(prefix);
    prefix.is_empty()
        || (!prefix.starts_with('/')
            && body
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keys_sort_by_time() {
        for id in ["a/b/c", "x%2Fy/z", "plain", "%"] {
            assert_eq!(unescape(&escape(id)), id);
            assert!(!escape(id).contains('/'));
        }
        let early = DateTime::from_timestamp_millis(999).unwrap();
        let late = DateTime::from_timestamp_millis(1_000_000_000_000).unwrap();
        assert!(millis_key(early) < millis_key(late));
        assert_eq!(millis_key(early).len(), 20);
        let key = format!(
            "{BY_EXPIRY}{}/{}",
            millis_key(late),
            escape("db/creds/ro/x")
        );
        assert_eq!(
            parse_expiry_key(&key),
            Some((1_000_000_000_000, "db/creds/ro/x".to_string()))
        );
        assert_eq!(parse_expiry_key("by-expiry/notanumber/x"), None);
    }

    #[test]
    fn lease_ids_and_prefixes_are_checked() {
        assert!(valid_lease_id("database/creds/ro/abc"));
        for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "a/"] {
            assert!(!valid_lease_id(bad), "{bad}");
        }
        assert!(valid_prefix("") && valid_prefix("database/") && valid_prefix("database/cr"));
        assert!(!valid_prefix("../x") && !valid_prefix("a//"));
    }
}

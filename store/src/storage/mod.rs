//! Storage: a dumb, durable key/value layer below the barrier. It only ever sees ciphertext.
//! Backends: [`sqlite`] (embedded, the default), [`postgres`] (a PostgreSQL the operator runs),
//! [`memory`] (dev and tests), and the read [`cache`] in front of any of them.
//!
//! Keys are `/`-separated paths. `list` answers with the immediate children of a prefix, as
//! Vault's physical backends do: leaf names as they are, "folders" with a trailing `/`.

use async_trait::async_trait;

pub mod cache;
/// The shared semantics checks every backend passes; public (hidden) so the end-to-end tests
/// run them on a real PostgreSQL.
#[doc(hidden)]
pub mod conformance;
pub mod memory;
pub mod postgres;
pub mod sqlite;

pub use memory::MemoryBackend;
pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

/// One change in an atomic batch.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "Put({key:?}, {} bytes)", value.len()),
            Op::Delete { key } => write!(f, "Delete({key:?})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("storage backend is shutting down")]
    Closed,
    /// The backend could not be opened; the message says where and why.
    #[error("{0}")]
    Open(String),
    /// HA: this node does not hold the lock (any more), so it may not write; the write was
    /// not applied.
    #[error(
        "this hushd is not the active node: it does not hold the HA lock, nothing was written"
    )]
    NotActive,
    /// The disk holding the storage is full (SQLite's `SQLITE_FULL`, `ENOSPC`): nothing of the
    /// write was applied. Reads keep working; writes work again once space is freed.
    #[error(
        "storage is full: no space left on the disk holding {0}; nothing was written. \
         Free space there: writes resume by themselves, reads keep working meanwhile"
    )]
    Full(String),
}

/// A durable key/value store. `write` returns only once the whole batch is durable (fsynced)
/// and applies it atomically: all or nothing.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Immediate children of `prefix` (which is empty or ends in `/`), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Every key below `prefix`, at any depth, sorted, as full keys.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Up to `limit` full keys below `prefix`, in key order, each greater than `start_after`
    /// when given: a bounded, resumable walk of an ordered index (the lease expiry index reads
    /// only its head this way). The default filters [`Backend::scan_prefix`]; real backends
    /// answer from their ordered key index without reading the rest.
    async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let keys = self.scan_prefix(prefix).await?;
        Ok(keys
            .into_iter()
            .filter(|k| start_after.is_none_or(|s| k.as_str() > s))
            .take(limit)
            .collect())
    }

    /// How many keys are below `prefix`, at any depth. The default counts
    /// [`Backend::scan_prefix`]; SQLite counts in its key index without reading the keys out.
    async fn count_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        Ok(self.scan_prefix(prefix).await?.len() as u64)
    }

    /// Up to `limit` entries (key and stored bytes) below `prefix`, in key order, each key
    /// greater than `start_after` when given: a bounded, resumable walk that reads values with
    /// their keys (`hushd migrate` copies a store this way). The default reads each value of a
    /// [`Backend::scan_range`] page; SQLite and PostgreSQL answer a page in one query. The read
    /// cache passes it through without keeping what it read.
    async fn scan_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let keys = self.scan_range(prefix, start_after, limit).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            // A key deleted between the two reads is left out, as if the page had been read later.
            if let Some(value) = self.get(&key).await? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Apply all ops atomically and durably.
    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError>;

    /// Short name for `sys/seal-status` `storage_type` and logs.
    fn kind(&self) -> &'static str;

    /// Every entry, in key order, as one consistent view (a read transaction: writes that
    /// commit meanwhile are not seen), streamed through a bounded channel so memory stays
    /// flat whatever the number of entries. A read error ends the stream with `Err`; the
    /// stream ends (closes) after the last entry. Snapshots (`sys/storage/snapshot`) use it.
    async fn export(&self) -> Result<ExportStream, StorageError> {
        Err(StorageError::Backend(format!(
            "{}: snapshots are not supported by this backend",
            self.kind()
        )))
    }

    /// Replace every entry by those `entries` sends, atomically: one transaction that first
    /// removes every key, then inserts, and commits only when [`Import::End`] arrives. A
    /// stream that closes without `End` (the producer failed or went away) rolls everything
    /// back and leaves the old entries, as does any error (or a crash before the commit).
    /// Returns the number of entries written.
    async fn replace_all(&self, entries: ImportStream) -> Result<u64, StorageError> {
        drop(entries);
        Err(StorageError::Backend(format!(
            "{}: snapshot restore is not supported by this backend",
            self.kind()
        )))
    }

    /// Turn the read cache off (emptied: reads go to the backend) or on (from empty). An HA
    /// node caches only while it is active: only then is it the only writer. Only the read
    /// cache holds anything.
    fn set_cache(&self, _on: bool) {}
}

/// One stored entry: its key and its (ciphertext) value.
pub type Entry = (String, Vec<u8>);

/// Entries of [`Backend::export`], in key order.
pub type ExportStream = tokio::sync::mpsc::Receiver<Result<Entry, StorageError>>;

/// What [`Backend::replace_all`] reads.
#[derive(Debug)]
pub enum Import {
    Entry(String, Vec<u8>),
    /// Every entry was sent: commit.
    End,
}

/// The entries of [`Backend::replace_all`].
pub type ImportStream = tokio::sync::mpsc::Receiver<Import>;

/// How many entries an export or import channel holds ahead of its reader.
pub const STREAM_DEPTH: usize = 256;

/// The error of an import stream that closed before [`Import::End`].
pub fn import_cut_short() -> StorageError {
    StorageError::Backend("the entries to restore ended early: nothing was changed".into())
}

/// The active node, as the HA lock names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The holder's id, random per process start.
    pub node_id: String,
    /// The URL clients and other nodes reach it at (its `--api-addr`).
    pub api_addr: String,
    pub generation: u64,
    /// When it took the lock (the database's clock).
    pub since: chrono::DateTime<chrono::Utc>,
}

/// The lock that makes one of several hushd on one storage the active node, and fences the
/// writes of the others (see [`postgres::lock`]). Only PostgreSQL implements it.
#[async_trait]
pub trait HaLock: Send + Sync + 'static {
    /// Take the lock for `ttl` unless another node holds it: its generation, or `None`. From
    /// the moment it is taken, this node's writes carry the generation.
    async fn try_acquire(&self, ttl: std::time::Duration) -> Result<Option<u64>, StorageError>;

    /// Extend the lock by `ttl` from now; `false` when it is not this node's any more (then
    /// this node's writes fail from now on).
    async fn renew(&self, generation: u64, ttl: std::time::Duration) -> Result<bool, StorageError>;

    /// Give the lock up now (a seal, a shutdown, a step-down), so a standby takes over at once.
    /// Writes stop first.
    async fn release(&self, generation: u64) -> Result<(), StorageError>;

    /// Who holds the lock now, if anyone.
    async fn leader(&self) -> Result<Option<Leader>, StorageError>;

    /// Stop writing at once, before anything else is said to the database.
    fn fence_off(&self);

    /// This node's id in the lock row.
    fn node_id(&self) -> &str;
}

/// Collapse sorted full keys below `prefix` into Vault-style immediate children.
pub fn children_of<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::children_of;

    #[test]
    fn children_collapse_folders() {
        let keys = ["a/b", "a/c/d", "a/c/e", "a/f/", "b"];
        assert_eq!(children_of("a/", keys), vec!["b", "c/", "f/"]);
        assert_eq!(children_of("", keys), vec!["a/", "b"]);
        assert!(children_of("zzz/", keys).is_empty());
    }
}

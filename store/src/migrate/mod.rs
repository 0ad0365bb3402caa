//! `hushd migrate --from URL --to URL`: an offline copy of every storage entry from one store
//! to another (SQLite to PostgreSQL and back, or between two of a kind), then a check that the
//! destination holds exactly what was read.
//!
//! Entries are copied as stored: ciphertext under the barrier, the seal's own entries as they
//! are, so no key is needed and nothing is decrypted. The copy walks the source in key order in
//! pages of `batch` entries ([`Backend::scan_entries`]) and writes each page as one atomic
//! batch, so memory holds one page whatever the size of the store. A SHA-256 runs over the
//! entries as read (see [`EntryHash`]); the destination is then read back the same way and its
//! count and hash must match.
//!
//! The seal configuration (`core/seal/config`) is written last, only once everything else
//! verified: until then the destination is not an initialised Hush store (`sys/init` says
//! `false`, no key unseals it), so an interrupted migration can never be served by mistake.
//! A destination that holds anything is refused, with how to empty it; an interrupted run is
//! started over that way.
//!
//! # Layout
//! - `mod.rs`: the endpoints (URLs parsed as `--storage` takes them), the copy, the check.
//! - [`progress`]: a counter on a terminal, JSON lines otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::barrier::seal::CONFIG_PATH;
use crate::config::StorageConfig;
use crate::storage::postgres::PostgresUrl;
use crate::storage::{Backend, Op, PostgresBackend, SqliteBackend, StorageError};

pub mod progress;

pub use progress::{Phase, Progress, Summary};

/// Entries per page unless `--batch` says.
pub const DEFAULT_BATCH: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A bad `--from`/`--to` (exit 64, as a bad configuration).
    #[error("{0}")]
    Usage(String),
    /// The destination already holds entries.
    #[error("{0}")]
    NotEmpty(String),
    /// What was read back is not what was written.
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Storage(String),
}

/// One side of a migration: a durable store and how to name it without its password.
pub struct Endpoint {
    storage: StorageConfig,
    /// `sqlite://PATH` or the PostgreSQL URL with `***` for the password.
    shown: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Which end an [`Endpoint`] is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

impl Side {
    fn flag(self) -> &'static str {
        match self {
            Side::From => "--from",
            Side::To => "--to",
        }
    }
}

impl Endpoint {
    /// Parse `url` as `--storage` does. `inmem` is refused (it holds nothing), and a SQLite
    /// source must exist.
    pub fn parse(url: &str, side: Side) -> Result<Endpoint, MigrateError> {
        let flag = side.flag();
        let storage =
            StorageConfig::parse(url).map_err(|e| MigrateError::Usage(format!("{flag}: {e}")))?;
        let shown = match &storage {
            StorageConfig::Memory => {
                return Err(MigrateError::Usage(format!(
                    "{flag}: inmem keeps nothing: migrate copies between sqlite://PATH and postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                )))
            }
            StorageConfig::Sqlite(path) => {
                if side == Side::From && !path.is_file() {
                    return Err(MigrateError::Usage(format!(
                        "{flag}: {} does not exist",
                        path.display()
                    )));
                }
                format!("sqlite://{}", path.display())
            }
            StorageConfig::Postgres(url) => url.to_string(),
        };
        Ok(Endpoint { storage, shown })
    }

    /// Is `other` the same store (the same file, or the same database on the same server)?
    fn same_store(&self, other: &Endpoint) -> bool {
        match (&self.storage, &other.storage) {
            (StorageConfig::Sqlite(a), StorageConfig::Sqlite(b)) => canonical(a) == canonical(b),
            (StorageConfig::Postgres(a), StorageConfig::Postgres(b)) => {
                (a.host(), a.port(), a.database()) == (b.host(), b.port(), b.database())
            }
            _ => false,
        }
    }

    async fn open(&self, side: Side) -> Result<Arc<dyn Backend>, MigrateError> {
        let fail = |e: StorageError| {
            MigrateError::Storage(format!("{}: cannot open {self}: {e}", side.flag()))
        };
        Ok(match &self.storage {
            StorageConfig::Sqlite(path) => Arc::new(SqliteBackend::open(path).map_err(fail)?),
            StorageConfig::Postgres(url) => {
                Arc::new(PostgresBackend::connect(url).await.map_err(fail)?)
            }
            StorageConfig::Memory => unreachable!("refused by Endpoint::parse"),
        })
    }

    /// How to empty this store so a migration can start over.
    fn how_to_empty(&self) -> String {
        match &self.storage {
            StorageConfig::Sqlite(path) => format!(
                "delete {p} (and {p}-wal, {p}-shm if present)",
                p = path.display()
            ),
            StorageConfig::Postgres(url) => pg_how_to_empty(url),
            StorageConfig::Memory => String::new(),
        }
    }
}

fn pg_how_to_empty(url: &PostgresUrl) -> String {
    format!(
        "run `DELETE FROM hush_store;` in database {:?} (or drop and create the database)",
        url.database()
    )
}

/// `path` made absolute with its directory resolved (the file itself may not exist yet).
fn canonical(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// SHA-256 over entries in key order, each as `u32 BE key length, key, u64 BE value length,
/// value`: any changed, missing, added or reordered byte changes it.
#[derive(Default, Clone)]
pub struct EntryHash {
    hasher: Sha256,
    entries: u64,
    bytes: u64,
}

impl std::fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryHash")
            .field("entries", &self.entries)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl EntryHash {
    pub fn add(&mut self, key: &str, value: &[u8]) {
        self.hasher
            .update(u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.hasher.update(key.as_bytes());
        self.hasher.update((value.len() as u64).to_be_bytes());
        self.hasher.update(value);
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    pub fn finish(self) -> (u64, u64, String) {
        (
            self.entries,
            self.bytes,
            hex::encode(self.hasher.finalize()),
        )
    }
}

/// Parse both ends, open them and [`copy`]; the whole of `hushd migrate`.
pub async fn run(
    from: &str,
    to: &str,
    batch: usize,
    progress: &mut dyn Progress,
) -> Result<Summary, MigrateError> {
    let source = Endpoint::parse(from, Side::From)?;
    let dest = Endpoint::parse(to, Side::To)?;
    if source.same_store(&dest) {
        return Err(MigrateError::Usage(format!(
            "--from and --to are the same store ({source}): give another destination"
        )));
    }
    let src = source.open(Side::From).await?;
    let dst = dest.open(Side::To).await?;
    tracing::info!(from = %source, to = %dest, batch, "migration started");
    let summary = copy(src.as_ref(), dst.as_ref(), &dest, batch, progress).await?;
    tracing::info!(
        from = %source,
        to = %dest,
        entries = summary.entries,
        bytes = summary.bytes,
        sha256 = %summary.sha256,
        "migration verified"
    );
    Ok(summary)
}

/// Copy every entry of `src` into the empty `dst` (named `dest` in messages) in pages of
/// `batch`, then read `dst` back and compare. See the module docs.
pub async fn copy(
    src: &dyn Backend,
    dst: &dyn Backend,
    dest: &Endpoint,
    batch: usize,
    progress: &mut dyn Progress,
) -> Result<Summary, MigrateError> {
    let started = Instant::now();
    let batch = batch.max(1);
    let store_err = |what: &str, e: StorageError| MigrateError::Storage(format!("{what}: {e}"));
    if !dst
        .scan_range("", None, 1)
        .await
        .map_err(|e| store_err("reading the destination", e))?
        .is_empty()
    {
        let n = dst
            .count_prefix("")
            .await
            .map_err(|e| store_err("reading the destination", e))?;
        let interrupted = dst
            .get(CONFIG_PATH)
            .await
            .map_err(|e| store_err("reading the destination", e))?
            .is_none();
        return Err(MigrateError::NotEmpty(format!(
            "the destination {dest} is not empty ({n} entries{}): migrate only copies into an empty store. To start over, {}, then run hushd migrate again",
            if interrupted {
                "; no seal configuration, so most likely an interrupted migration"
            } else {
                "; it is an initialised Hush store"
            },
            dest.how_to_empty()
        )));
    }
    let total = src
        .count_prefix("")
        .await
        .map_err(|e| store_err("reading the source", e))?;

    // Copy, hashing what is read.
    let mut source_hash = EntryHash::default();
    let mut seal_config: Option<Vec<u8>> = None;
    let mut after: Option<String> = None;
    loop {
        let page = src
            .scan_entries("", after.as_deref(), batch)
            .await
            .map_err(|e| store_err("reading the source", e))?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let mut ops = Vec::with_capacity(page.len());
        for (key, value) in page {
            source_hash.add(&key, &value);
            if key == CONFIG_PATH {
                seal_config = Some(value);
            } else {
                ops.push(Op::Put { key, value });
            }
        }
        dst.write(ops)
            .await
            .map_err(|e| store_err("writing the destination", e))?;
        progress.report(Phase::Copy, source_hash.entries, source_hash.bytes, total);
    }
    progress.finish_phase(Phase::Copy, source_hash.entries, source_hash.bytes, total);
    let (entries, bytes, sha256) = source_hash.finish();

    // Read the destination back; the seal configuration, not written yet, is hashed at its
    // place in key order.
    let mut dest_hash = EntryHash::default();
    let mut pending = seal_config.as_deref().map(|v| (CONFIG_PATH, v));
    let mut after: Option<String> = None;
    loop {
        let page = dst
            .scan_entries("", after.as_deref(), batch)
            .await
            .map_err(|e| store_err("reading the destination back", e))?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, value) in &page {
            if let Some((k, v)) = pending.filter(|(k, _)| *k < key.as_str()) {
                dest_hash.add(k, v);
                pending = None;
            }
            dest_hash.add(key, value);
        }
        progress.report(Phase::Verify, dest_hash.entries, dest_hash.bytes, entries);
    }
    if let Some((k, v)) = pending {
        dest_hash.add(k, v);
    }
    progress.finish_phase(Phase::Verify, dest_hash.entries, dest_hash.bytes, entries);
    let (dest_entries, dest_bytes, dest_sha) = dest_hash.finish();
    if (dest_entries, dest_bytes, &dest_sha) != (entries, bytes, &sha256) {
        return Err(MigrateError::Mismatch(format!(
            "verification failed: read {entries} entries ({bytes} bytes, SHA-256 {sha256}) from the source but {dest_entries} entries ({dest_bytes} bytes, SHA-256 {dest_sha}) back from the destination {dest}; the seal configuration was not written, so the destination is not usable. To start over, {}",
            dest.how_to_empty()
        )));
    }
    if let Some(value) = seal_config {
        dst.write(vec![Op::Put {
            key: CONFIG_PATH.into(),
            value: value.clone(),
        }])
        .await
        .map_err(|e| store_err("writing the destination's seal configuration", e))?;
        let back = dst
            .get(CONFIG_PATH)
            .await
            .map_err(|e| store_err("reading the destination back", e))?;
        if back.as_deref() != Some(value.as_slice()) {
            return Err(MigrateError::Mismatch(format!(
                "verification failed: the seal configuration read back from {dest} differs from the one written"
            )));
        }
    }
    if src
        .count_prefix("")
        .await
        .map_err(|e| store_err("reading the source", e))?
        != entries
    {
        return Err(MigrateError::Mismatch(format!(
            "the source changed during the migration (it holds another number of entries than the {entries} copied): stop every hushd using it and start over; to empty the destination, {}",
            dest.how_to_empty()
        )));
    }
    let summary = Summary {
        entries,
        bytes,
        sha256,
        elapsed: started.elapsed(),
    };
    progress.done(&summary);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    #[derive(Default)]
    struct Quiet(Vec<(Phase, u64)>);

    impl Progress for Quiet {
        fn report(&mut self, phase: Phase, entries: u64, _bytes: u64, _total: u64) {
            self.0.push((phase, entries));
        }
        fn finish_phase(&mut self, _: Phase, _: u64, _: u64, _: u64) {}
        fn done(&mut self, _: &Summary) {}
    }

    fn sqlite_endpoint(dir: &Path, name: &str) -> Endpoint {
        Endpoint::parse(&format!("sqlite://{}/{name}", dir.display()), Side::To).unwrap()
    }

    async fn filled(n: usize) -> MemoryBackend {
        let src = MemoryBackend::new();
        let mut ops: Vec<Op> = (0..n)
            .map(|i| Op::Put {
                key: format!("logical/{i:05}"),
                value: vec![(i % 251) as u8; i % 40],
            })
            .collect();
        ops.push(Op::Put {
            key: CONFIG_PATH.into(),
            value: b"{\"type\":\"shamir\"}".to_vec(),
        });
        ops.push(Op::Put {
            key: "core/keyring".into(),
            value: vec![1, 2, 3],
        });
        src.write(ops).await.unwrap();
        src
    }

    #[tokio::test]
    async fn copies_in_pages_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(2500).await;
        let dst = MemoryBackend::new();
        let mut p = Quiet::default();
        let s = copy(
            &src,
            &dst,
            &sqlite_endpoint(dir.path(), "x.db"),
            1000,
            &mut p,
        )
        .await
        .unwrap();
        assert_eq!(s.entries, 2502);
        assert_eq!(
            p.0.iter()
                .filter(|(ph, _)| *ph == Phase::Copy)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>(),
            vec![1000, 2000, 2502]
        );
        let mut h = EntryHash::default();
        for (k, v) in dst.scan_entries("", None, 10_000).await.unwrap() {
            h.add(&k, &v);
        }
        assert_eq!(h.finish().2, s.sha256);
        assert_eq!(
            dst.get(CONFIG_PATH).await.unwrap(),
            src.get(CONFIG_PATH).await.unwrap()
        );
    }

    #[tokio::test]
    async fn a_non_empty_destination_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(10).await;
        let dst = MemoryBackend::new();
        dst.write(vec![Op::Put {
            key: "logical/x".into(),
            value: vec![9],
        }])
        .await
        .unwrap();
        let dest = sqlite_endpoint(dir.path(), "x.db");
        let err = copy(&src, &dst, &dest, 100, &mut Quiet::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MigrateError::NotEmpty(_)), "{msg}");
        assert!(msg.contains("not empty (1 entries; no seal configuration, so most likely an interrupted migration)"), "{msg}");
        assert!(msg.contains("To start over, delete"), "{msg}");
        assert_eq!(dst.count_prefix("").await.unwrap(), 1);
    }

    #[test]
    fn hash_sees_boundaries_and_order() {
        let h = |entries: &[(&str, &[u8])]| {
            let mut h = EntryHash::default();
            for (k, v) in entries {
                h.add(k, v);
            }
            h.finish().2
        };
        assert_ne!(h(&[("ab", b"c")]), h(&[("a", b"bc")]));
        assert_ne!(
            h(&[("a", b"1"), ("b", b"2")]),
            h(&[("b", b"2"), ("a", b"1")])
        );
        assert_eq!(h(&[("a", b"1")]), h(&[("a", b"1")]));
    }

    #[test]
    fn bad_endpoints_have_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("sqlite://{}/none.db", dir.path().display());
        for (url, side, want) in [
            ("inmem", Side::To, "--to: inmem keeps nothing"),
            (missing.as_str(), Side::From, "does not exist"),
            (
                "sqlite:///no/such/dir/x.db",
                Side::To,
                "--to: storage directory /no/such/dir does not exist: create it first",
            ),
            (
                "mysql://u:pw-1@h/db",
                Side::From,
                "--from: unsupported storage \"mysql://...\"",
            ),
            (
                "postgres://u:pw-1@h/db?sslmode=maybe",
                Side::To,
                "--to: invalid storage: invalid sslmode",
            ),
        ] {
            let msg = Endpoint::parse(url, side).unwrap_err().to_string();
            assert!(msg.contains(want), "{url}: {msg}");
            assert!(!msg.contains("pw-1"), "{url}: {msg}");
        }
        let a =
            Endpoint::parse(&format!("sqlite://{}/a.db", dir.path().display()), Side::To).unwrap();
        let b = Endpoint::parse(
            &format!("sqlite://{}/./a.db", dir.path().display()),
            Side::To,
        )
        .unwrap();
        assert!(a.same_store(&b));
        let p1 = Endpoint::parse("postgres://u:one@h:5432/db", Side::To).unwrap();
        let p2 = Endpoint::parse("postgres://v:two@h/db?sslmode=disable", Side::To).unwrap();
        assert!(p1.same_store(&p2));
        assert!(!p1.to_string().contains("one"));
    }
}

//! SQLite backend: one file, WAL journal, `synchronous=FULL`, group commit.
//!
//! # Writes
//! One dedicated writer thread owns the only write connection. [`Backend::write`] sends its
//! batch over a channel and waits for the reply. The thread blocks for the first request,
//! then drains every request already queued (up to [`MAX_GROUP`]) and commits them all in
//! one `BEGIN IMMEDIATE … COMMIT`, so concurrent writers share one fsync. Each request runs
//! inside its own savepoint: a request whose statement fails is rolled back alone and answered
//! with its error, the rest of the group still commits. Replies go out only after `COMMIT`
//! returned, so a write that returned `Ok` is on disk (WAL + `synchronous=FULL`) and survives
//! `kill -9` or power loss. Nothing is buffered in memory ahead of the commit.
//!
//! # Checkpoints
//! The writer connection never checkpoints (`wal_autocheckpoint=0`): a checkpoint copies WAL
//! pages into the main file and fsyncs it, and on the writer it stalled every write queued
//! behind it (the long tail of write latency). A checkpointer thread with its own connection
//! runs a `PASSIVE` checkpoint every [`CHECKPOINT_EVERY`], which proceeds alongside new
//! commits; [`SqliteBackend::checkpoint`] (`TRUNCATE`) runs there too. Durability does not
//! depend on it: a commit is durable once its WAL frames are fsynced.
//!
//! # Reads
//! [`READERS`] dedicated reader threads, each owning a read-only connection, take jobs from
//! one shared queue. A quick measurement (`read_path_cost`, an ignored test, debug build)
//! found this about half the cost per `get` of a connection pool used through
//! `tokio::task::spawn_blocking` (~25 µs against ~50 µs), so dedicated threads were chosen.
//! `list` and `scan_prefix` are range scans (`key >= prefix AND key < upper_bound(prefix)`),
//! never `LIKE`, so `%` and `_` in keys are plain characters.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::{
    children_of, import_cut_short, Backend, ExportStream, Import, ImportStream, Op, StorageError,
    STREAM_DEPTH,
};
use crate::metrics::StorageMetrics;

/// Most requests committed in one transaction.
pub const MAX_GROUP: usize = 1024;
/// Read-only connections in the pool.
pub const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the checkpointer folds the WAL back into the main file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID";
/// Page size of new databases.
const PAGE_SIZE: u32 = 2048;
const SQL_GET: &str = "SELECT value FROM kv WHERE key = ?1";
const SQL_PUT: &str = "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)";
const SQL_DELETE: &str = "DELETE FROM kv WHERE key = ?1";
const SQL_RANGE: &str = "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key";
const SQL_FROM: &str = "SELECT key FROM kv WHERE key >= ?1 ORDER BY key";
/// Counted in SQLite's primary-key b-tree: no row reaches Rust.
const SQL_COUNT: &str = "SELECT COUNT(*) FROM kv WHERE key >= ?1 AND key < ?2";
const SQL_COUNT_FROM: &str = "SELECT COUNT(*) FROM kv WHERE key >= ?1";
/// A bounded page of an ordered range: served from the primary key's b-tree, so it reads
/// only the rows it returns whatever the size of the range.
const SQL_PAGE: &str =
    "SELECT key FROM kv WHERE key > ?1 AND key >= ?2 AND key < ?3 ORDER BY key LIMIT ?4";
const SQL_PAGE_FROM: &str = "SELECT key FROM kv WHERE key > ?1 AND key >= ?2 ORDER BY key LIMIT ?3";
/// [`SQL_PAGE`] with the values.
const SQL_ENTRIES: &str =
    "SELECT key, value FROM kv WHERE key > ?1 AND key >= ?2 AND key < ?3 ORDER BY key LIMIT ?4";
const SQL_ENTRIES_FROM: &str =
    "SELECT key, value FROM kv WHERE key > ?1 AND key >= ?2 ORDER BY key LIMIT ?3";
/// Every entry in key order (a snapshot's export).
const SQL_ALL: &str = "SELECT key, value FROM kv ORDER BY key";

type Reply = oneshot::Sender<Result<(), StorageError>>;

struct Msg {
    ops: Vec<Op>,
    reply: Reply,
}

/// Counters shared with the writer thread.
#[derive(Default)]
struct Stats {
    /// Transactions committed (one per group, or one per request on fallback).
    commits: AtomicU64,
    /// Messages sent but not yet taken by the writer thread.
    queued: AtomicUsize,
    /// Messages taken by the writer thread since open.
    taken: AtomicU64,
    /// Where each committed transaction's latency and batch size go, once hushd sets it.
    metrics: OnceLock<StorageMetrics>,
}

/// A read job: runs on one reader thread's connection and replies on its own channel.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// SQLite storage. See the module docs.
pub struct SqliteBackend {
    path: PathBuf,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
    read_tx: Option<mpsc::Sender<ReadJob>>,
    readers: Vec<JoinHandle<()>>,
    /// Asks the checkpointer for a `TRUNCATE` checkpoint; closing it stops the thread.
    checkpoint_tx: Option<mpsc::Sender<Reply>>,
    checkpointer: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    /// Test hook: while held, the writer thread waits before draining its queue.
    #[cfg(test)]
    gate: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .field("commits", &self.commits())
            .finish()
    }
}

fn backend_err(e: rusqlite::Error) -> StorageError {
    if is_full(&e) {
        return StorageError::Full("the SQLite database".into());
    }
    StorageError::Backend(format!("sqlite: {e}"))
}

/// Whether SQLite failed for want of space: `SQLITE_FULL` (SQLite's own answer to a short
/// write or `ENOSPC` on the database, WAL or shared-memory file).
fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// The least string greater than every string that starts with `prefix`, or `None` when no
/// such string exists (empty prefix, or only `char::MAX`). Bumps the last char to the next
/// valid code point; UTF-8 byte order equals code point order, so the range is exact.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl SqliteBackend {
    /// Open (or create) the database at `path`, set WAL + `synchronous=FULL`, create the table,
    /// start the writer thread and open the reader pool.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        create_private_file(path)?;
        let writer_conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend_err)?;
        writer_conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(backend_err)?;
        // Only takes effect on a new, empty database file (before WAL mode is set).
        writer_conn
            .execute_batch(&format!("PRAGMA page_size={PAGE_SIZE};"))
            .map_err(backend_err)?;
        let mode: String = writer_conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(backend_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Backend(format!(
                "sqlite: could not enable WAL journal mode (got {mode:?})"
            )));
        }
        writer_conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;")
            .map_err(backend_err)?;
        writer_conn.execute_batch(SCHEMA).map_err(backend_err)?;

        let ckpt_conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend_err)?;
        ckpt_conn.busy_timeout(BUSY_TIMEOUT).map_err(backend_err)?;
        ckpt_conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;")
            .map_err(backend_err)?;
        let (checkpoint_tx, checkpoint_rx) = mpsc::channel::<Reply>();
        let checkpointer = std::thread::Builder::new()
            .name("hush-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&ckpt_conn, &checkpoint_rx))
            .map_err(|e| {
                StorageError::Backend(format!("sqlite: cannot start checkpointer: {e}"))
            })?;

        let (read_tx, read_rx) = mpsc::channel::<ReadJob>();
        let read_rx = Arc::new(Mutex::new(read_rx));
        let mut readers = Vec::with_capacity(READERS);
        for i in 0..READERS {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(backend_err)?;
            c.busy_timeout(BUSY_TIMEOUT).map_err(backend_err)?;
            let rx = read_rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("hush-sqlite-reader-{i}"))
                .spawn(move || reader_loop(&c, &rx))
                .map_err(|e| StorageError::Backend(format!("sqlite: cannot start reader: {e}")))?;
            readers.push(handle);
        }

        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        #[cfg(test)]
        let gate = Arc::new(Mutex::new(()));
        let writer = {
            let stats = stats.clone();
            #[cfg(test)]
            let gate = gate.clone();
            std::thread::Builder::new()
                .name("hush-sqlite-writer".into())
                .spawn(move || {
                    let mut w = Writer {
                        conn: writer_conn,
                        stats,
                        #[cfg(test)]
                        gate,
                    };
                    w.run(rx);
                })
                .map_err(|e| StorageError::Backend(format!("sqlite: cannot start writer: {e}")))?
        };
        Ok(SqliteBackend {
            path: path.to_path_buf(),
            tx: Some(tx),
            writer: Some(writer),
            read_tx: Some(read_tx),
            readers,
            checkpoint_tx: Some(checkpoint_tx),
            checkpointer: Some(checkpointer),
            stats,
            #[cfg(test)]
            gate,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Report each committed transaction's latency and batch size to `metrics` from now on
    /// (the first call wins).
    pub fn observe(&self, metrics: StorageMetrics) {
        let _ = self.stats.metrics.set(metrics);
    }

    /// Transactions committed since open. Fewer than the writes when group commit works.
    pub fn commits(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// Fold the WAL back into the main file and truncate it (`wal_checkpoint(TRUNCATE)`), for
    /// tests and backups. Covers every write acknowledged before it was called.
    pub async fn checkpoint(&self) -> Result<(), StorageError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.checkpoint_tx.as_ref().ok_or(StorageError::Closed)?;
        tx.send(reply).map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn send(&self, msg: Msg) -> Result<(), StorageError> {
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        tx.send(msg).map_err(|_| {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            StorageError::Closed
        })
    }

    /// Run `f` on one of the reader threads' read-only connections.
    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |c| {
            let _ = reply.send(f(c).map_err(backend_err));
        });
        let tx = self.read_tx.as_ref().ok_or(StorageError::Closed)?;
        tx.send(job).map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }
}

/// A reader thread: takes jobs from the shared queue until it closes. A panicking job only
/// loses its own reply (the caller sees `Closed`); the thread keeps serving.
fn reader_loop(conn: &Connection, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        let job = jobs.lock().recv();
        let Ok(job) = job else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
    }
}

/// Create the database file owner-only (0600) if it does not exist yet. SQLite gives the
/// `-wal` and `-shm` files the permissions of the main file.
fn create_private_file(path: &Path) -> Result<(), StorageError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StorageError::Backend(format!(
            "cannot create database file {}: {e}",
            path.display()
        ))),
    }
}

/// Keys of the range below `prefix`, optionally skipping whole sub-folders (for `list`).
fn scan_keys(conn: &Connection, prefix: &str, skip_folders: bool) -> rusqlite::Result<Vec<String>> {
    let upper = prefix_upper_bound(prefix);
    let mut out = Vec::new();
    let mut from = prefix.to_string();
    // A read transaction so the restarted scans below all see one snapshot.
    conn.execute_batch("BEGIN DEFERRED")?;
    let result = (|| {
        'restart: loop {
            let mut stmt;
            let mut rows = match &upper {
                Some(u) => {
                    stmt = conn.prepare_cached(SQL_RANGE)?;
                    stmt.query(rusqlite::params![from, u])?
                }
                None => {
                    stmt = conn.prepare_cached(SQL_FROM)?;
                    stmt.query(rusqlite::params![from])?
                }
            };
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let Some(rest) = key.strip_prefix(prefix) else {
                    break 'restart;
                };
                if skip_folders {
                    if let Some(i) = rest.find('/') {
                        // A folder: keep one key for it, then jump past everything below it.
                        let folder = format!("{prefix}{}", &rest[..=i]);
                        out.push(key);
                        match prefix_upper_bound(&folder) {
                            Some(next) => {
                                from = next;
                                continue 'restart;
                            }
                            None => break 'restart,
                        }
                    }
                }
                out.push(key);
            }
            break;
        }
        Ok(())
    })();
    let end = conn.execute_batch("COMMIT");
    if end.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.and(end).map(|()| out)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_string();
        self.read(move |c| {
            c.prepare_cached(SQL_GET)?
                .query_row([&key], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let p = prefix.to_string();
        let keys = self.read(move |c| scan_keys(c, &p, true)).await?;
        Ok(children_of(prefix, keys.iter().map(String::as_str)))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let p = prefix.to_string();
        self.read(move |c| scan_keys(c, &p, false)).await
    }

    async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_string();
        let after = start_after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let rows = match prefix_upper_bound(&prefix) {
                Some(upper) => c
                    .prepare_cached(SQL_PAGE)?
                    .query_map(rusqlite::params![after, prefix, upper, limit], |r| r.get(0))?
                    .collect(),
                None => c
                    .prepare_cached(SQL_PAGE_FROM)?
                    .query_map(rusqlite::params![after, prefix, limit], |r| r.get(0))?
                    .collect(),
            };
            rows
        })
        .await
    }

    async fn scan_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let prefix = prefix.to_string();
        let after = start_after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
            let rows = match prefix_upper_bound(&prefix) {
                Some(upper) => c
                    .prepare_cached(SQL_ENTRIES)?
                    .query_map(rusqlite::params![after, prefix, upper, limit], row)?
                    .collect(),
                None => c
                    .prepare_cached(SQL_ENTRIES_FROM)?
                    .query_map(rusqlite::params![after, prefix, limit], row)?
                    .collect(),
            };
            rows
        })
        .await
    }

    async fn count_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let prefix = prefix.to_string();
        self.read(move |c| {
            let n: i64 = match prefix_upper_bound(&prefix) {
                Some(upper) => c
                    .prepare_cached(SQL_COUNT)?
                    .query_row(rusqlite::params![prefix, upper], |r| r.get(0))?,
                None => c
                    .prepare_cached(SQL_COUNT_FROM)?
                    .query_row(rusqlite::params![prefix], |r| r.get(0))?,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Msg { ops, reply })?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// A read transaction on a connection of its own (WAL: it sees the database as of its
    /// first read, whatever commits meanwhile), on a thread of its own so the reader pool is
    /// not held; rows go out through a bounded channel as they are stepped.
    async fn export(&self) -> Result<ExportStream, StorageError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend_err)?;
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_DEPTH);
        std::thread::Builder::new()
            .name("hush-sqlite-export".into())
            .spawn(move || {
                if let Err(e) = export_rows(&conn, &tx) {
                    let _ = tx.blocking_send(Err(backend_err(e)));
                }
            })
            .map_err(|e| StorageError::Backend(format!("sqlite: cannot start export: {e}")))?;
        Ok(rx)
    }

    /// One `BEGIN IMMEDIATE` transaction on a connection of its own: delete every row,
    /// insert the new ones as they arrive, commit at [`Import::End`]. Anything else (an
    /// error, the stream closing early, a crash) leaves the old rows: SQLite rolls back an
    /// uncommitted transaction, also when it finds its WAL after a `kill -9`.
    async fn replace_all(&self, entries: ImportStream) -> Result<u64, StorageError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend_err)?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;")
            .map_err(backend_err)?;
        let (reply, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("hush-sqlite-restore".into())
            .spawn(move || {
                let _ = reply.send(replace_rows(conn, entries));
            })
            .map_err(|e| StorageError::Backend(format!("sqlite: cannot start restore: {e}")))?;
        let n = rx.await.map_err(|_| StorageError::Closed)??;
        // Fold the (large) WAL back into the main file now rather than on the next tick.
        if let Err(e) = self.checkpoint().await {
            tracing::debug!(error = %e, "sqlite: checkpoint after restore did not complete");
        }
        Ok(n)
    }
}

/// Step every row of one read transaction into `tx`; stops early when the reader left.
fn export_rows(
    conn: &Connection,
    tx: &tokio::sync::mpsc::Sender<Result<super::Entry, StorageError>>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let mut stmt = conn.prepare(SQL_ALL)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let entry = (row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?);
        if tx.blocking_send(Ok(entry)).is_err() {
            break;
        }
    }
    drop(rows);
    drop(stmt);
    conn.execute_batch("COMMIT")
}

/// The restore transaction of [`SqliteBackend::replace_all`].
fn replace_rows(mut conn: Connection, mut entries: ImportStream) -> Result<u64, StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_err)?;
    tx.execute("DELETE FROM kv", []).map_err(backend_err)?;
    let mut n = 0u64;
    {
        let mut insert = tx
            .prepare("INSERT INTO kv (key, value) VALUES (?1, ?2)")
            .map_err(backend_err)?;
        loop {
            match entries.blocking_recv() {
                Some(Import::Entry(key, value)) => {
                    insert
                        .execute(rusqlite::params![key, value])
                        .map_err(backend_err)?;
                    n += 1;
                }
                Some(Import::End) => break,
                // Dropping `tx` rolls back.
                None => return Err(import_cut_short()),
            }
        }
    }
    tx.commit().map_err(backend_err)?;
    Ok(n)
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain what is queued, then stop.
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.read_tx.take();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.checkpoint_tx.take();
        if let Some(c) = self.checkpointer.take() {
            let _ = c.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    stats: Arc<Stats>,
    #[cfg(test)]
    gate: Arc<Mutex<()>>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            self.stats.taken.fetch_add(1, Ordering::SeqCst);
            #[cfg(test)]
            drop(self.gate.lock());
            let mut writes = Vec::new();
            let mut next = Some(first);
            while let Some(Msg { ops, reply }) = next.take() {
                writes.push((ops, reply));
                if writes.len() >= MAX_GROUP {
                    break;
                }
                if let Ok(m) = rx.try_recv() {
                    self.stats.queued.fetch_sub(1, Ordering::SeqCst);
                    self.stats.taken.fetch_add(1, Ordering::SeqCst);
                    next = Some(m);
                }
            }
            self.commit_group(writes);
        }
    }

    /// Commit every request in one transaction. If any request fails, or the transaction as
    /// a whole does (COMMIT error, SQLite rolled it back), the group is rolled back and each
    /// request is committed on its own, so one bad request fails alone. (No savepoint per
    /// request: SQLite journals every page a savepoint touches, which cost more than the
    /// inserts themselves; failures are rare enough to pay for the retry instead.)
    fn commit_group(&mut self, writes: Vec<(Vec<Op>, Reply)>) {
        let (ops, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        let started = Instant::now();
        match self.try_group(&ops) {
            Ok(()) => {
                self.committed(started, ops.len());
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, requests = ops.len(),
                    "sqlite: group commit failed, committing each request alone");
                for (ops, reply) in ops.iter().zip(replies) {
                    let r = self.commit_one(ops);
                    let _ = reply.send(r);
                }
            }
        }
    }

    /// All of `group` in one transaction; any error rolls back all of it (on drop).
    fn try_group(&mut self, group: &[Vec<Op>]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for ops in group {
            apply(&tx, ops)?;
        }
        tx.commit()
    }

    fn commit_one(&mut self, ops: &[Op]) -> Result<(), StorageError> {
        let started = Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend_err)?;
        apply(&tx, ops).map_err(backend_err)?;
        tx.commit().map_err(backend_err)?;
        self.committed(started, 1);
        Ok(())
    }

    /// Count one committed transaction of `requests` write requests, begun at `started`.
    fn committed(&self, started: Instant, requests: usize) {
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(
            requests,
            micros = started.elapsed().as_micros() as u64,
            "sqlite: committed"
        );
        if let Some(m) = self.stats.metrics.get() {
            m.commit(started.elapsed(), requests);
        }
    }
}

/// The checkpointer thread: a `PASSIVE` checkpoint every [`CHECKPOINT_EVERY`], a `TRUNCATE`
/// one on request, until the request channel closes.
fn checkpoint_loop(conn: &Connection, requests: &mpsc::Receiver<Reply>) {
    loop {
        match requests.recv_timeout(CHECKPOINT_EVERY) {
            Ok(reply) => {
                let _ = reply.send(checkpoint(conn, "TRUNCATE"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = checkpoint(conn, "PASSIVE") {
                    tracing::debug!(error = %e, "sqlite: background checkpoint failed");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `PRAGMA wal_checkpoint(<mode>)`; an error when it could not finish (`busy`) for TRUNCATE.
fn checkpoint(conn: &Connection, mode: &str) -> Result<(), StorageError> {
    let (busy, _log, _done): (i64, i64, i64) = conn
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(backend_err)?;
    if busy != 0 && mode == "TRUNCATE" {
        return Err(StorageError::Backend(
            "sqlite: checkpoint could not complete, readers are active".into(),
        ));
    }
    Ok(())
}

fn apply(conn: &Connection, ops: &[Op]) -> rusqlite::Result<()> {
    for op in ops {
        match op {
            Op::Put { key, value } => {
                conn.prepare_cached(SQL_PUT)?
                    .execute(rusqlite::params![key, value])?;
            }
            Op::Delete { key } => {
                conn.prepare_cached(SQL_DELETE)?.execute([key])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;

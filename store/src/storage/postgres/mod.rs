//! PostgreSQL backend: one table of ciphertext in a database the operator runs (replicated,
//! managed, backed up as they see fit), on tokio-postgres with a deadpool pool, TLS over rustls.
//!
//! # Schema
//! `hush_store (key bytea PRIMARY KEY, value bytea NOT NULL)`: keys are the UTF-8 bytes of the
//! storage key, so the primary key's order is byte order whatever the database's encoding or
//! collation, and `list`/scans are range reads of that index (`key >= prefix AND key <
//! upper_bound(prefix)`, never `LIKE`). `hush_lock` holds the HA lock's one row ([`lock`]).
//! `hush_schema (id, version)` holds the schema version: hushd creates the tables in an empty
//! database (under an advisory lock, so two starting together do not race), upgrades a version
//! 1 database (no lock table) in place, and refuses a database whose version is newer than its
//! own.
//!
//! # Writes
//! As in SQLite, one writer task commits for everyone: it takes the first queued request, then
//! every request already queued (up to [`MAX_GROUP`]), folds them into the last value of each
//! key (order kept: a later put or delete of a key wins) and applies that as one statement, so
//! in one round trip and one implicit transaction: a `DELETE ... = ANY` in a data-modifying CTE
//! and an upsert of `unnest` arrays (1.2-1.9x the KV writes/s at 16-64 clients of BEGIN,
//! upsert, delete, COMMIT in three round trips; docs/BENCHMARKS.md). Requests are answered only after the server's
//! ReadyForQuery, which it sends after the commit, so an acknowledged write is durable as far
//! as the server's `synchronous_commit` goes (hushd refuses to start when it is `off`). If the group
//! fails, each request is committed alone so one bad request fails alone. Re-applying a group
//! whose answer was lost is harmless: puts and deletes are idempotent and the order is
//! kept.
//!
//! # HA
//! [`PostgresBackend::connect_ha`] makes one of several nodes on the database: its writes use
//! `SQL_WRITE_FENCED`, made only while the node holds the lock row of [`lock`] with its
//! generation (else [`StorageError::NotActive`], nothing written), and every call is bounded by
//! the lock's TTL so a partition cannot hold a request past the node's lease.
//!
//! # Reads
//! Each read takes a pooled connection ([`POOL_SIZE`] at most, the writer's included) and runs
//! one prepared statement. `list` collapses the keys below a prefix into its children in the
//! server (`SELECT DISTINCT` of the part up to the next `/`), so only the children cross the
//! network.

pub mod lock;
mod snapshot;
pub mod tls;
mod url;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};

pub use self::lock::PostgresLock;
pub use self::url::PostgresUrl;
use super::{Backend, ExportStream, ImportStream, Op, StorageError};
use crate::metrics::StorageMetrics;
use lock::Fence;

/// Most write requests committed in one transaction.
pub const MAX_GROUP: usize = 1024;
/// Most connections open at once.
pub const POOL_SIZE: usize = 16;
/// The schema this hushd writes; it refuses a database with a newer one. Version 2 added the
/// HA lock row ([`lock`]); a version 1 database is upgraded in place.
pub const SCHEMA_VERSION: i32 = 2;
/// How long a request may wait for a free connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// `pg_advisory_xact_lock` key of the schema setup ("hush" in ASCII).
const SCHEMA_LOCK: i64 = 0x6875_7368;

const SQL_GET: &str = "SELECT value FROM hush_store WHERE key = $1";
const SQL_SCAN: &str = "SELECT key FROM hush_store WHERE key >= $1 AND key < $2 ORDER BY key";
/// A bounded page of an ordered range, from the primary key's b-tree.
const SQL_PAGE: &str = "SELECT key FROM hush_store WHERE key > $1 AND key >= $2 AND key < $3 \
                        ORDER BY key LIMIT $4";
/// [`SQL_PAGE`] with the values.
const SQL_ENTRIES: &str = "SELECT key, value FROM hush_store WHERE key > $1 AND key >= $2 \
                           AND key < $3 ORDER BY key LIMIT $4";
const SQL_COUNT: &str = "SELECT count(*) FROM hush_store WHERE key >= $1 AND key < $2";
/// The immediate children of `$1` (whose length in bytes + 1 is `$3`): the rest of each key
/// up to and with its first `/`.
const SQL_LIST: &str =
    "SELECT DISTINCT CASE WHEN p = 0 THEN r ELSE substring(r FROM 1 FOR p) END AS child \
     FROM (SELECT substring(key FROM $3) AS r FROM hush_store WHERE key >= $1 AND key < $2) s, \
          LATERAL (SELECT position('\\x2f'::bytea IN s.r) AS p) q \
     WHERE r <> ''::bytea ORDER BY child";
/// A whole group in one statement, so one round trip and its own (implicit) transaction: the
/// deletes in a data-modifying CTE, the puts as an upsert of `unnest` arrays. The key sets are
/// disjoint (folded to the last op per key), so the two parts never touch the same row.
/// `execute` returns at ReadyForQuery, which the server sends only after the COMMIT.
const SQL_WRITE: &str = "WITH deleted AS (DELETE FROM hush_store WHERE key = ANY($3::bytea[])) \
     INSERT INTO hush_store (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

/// [`SQL_WRITE`] for an HA node: the same writes, made only when the lock row still carries
/// this node's generation (`$4`) and has not expired, with that row share-locked until the
/// commit so a takeover waits for it. Answers how many lock rows it got: 0 means nothing was
/// written. See [`lock`].
const SQL_WRITE_FENCED: &str = "WITH fence AS (SELECT 1 FROM hush_lock WHERE id = 1 \
         AND generation = $4 AND expires_at > clock_timestamp() FOR SHARE), \
     deleted AS (DELETE FROM hush_store WHERE key = ANY($3::bytea[]) \
         AND EXISTS (SELECT 1 FROM fence)), \
     put AS (INSERT INTO hush_store (key, value) \
         SELECT k, v FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v) \
         WHERE EXISTS (SELECT 1 FROM fence) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value) \
     SELECT count(*) FROM fence";

/// How an HA node connects: who it is in the lock row, and how long any one storage call may
/// take (a partition must not hold requests past the lock's TTL).
#[derive(Debug, Clone)]
pub struct HaSettings {
    pub node_id: String,
    pub api_addr: String,
    pub call_timeout: Duration,
}

type Reply = oneshot::Sender<Result<(), StorageError>>;

struct Msg {
    ops: Vec<Op>,
    reply: Reply,
}

/// Counters shared with the writer task.
#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    metrics: OnceLock<StorageMetrics>,
}

/// PostgreSQL storage. See the module docs.
pub struct PostgresBackend {
    pool: Pool,
    url: Arc<PostgresUrl>,
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<Stats>,
    /// HA only: the generation every write must still hold.
    fence: Option<Arc<Fence>>,
    /// HA only: the bound on each storage call.
    call_timeout: Option<Duration>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.url)
            .field("commits", &self.commits())
            .finish()
    }
}

/// The first key after every key that starts with `prefix`. Keys are UTF-8, which has no
/// 0xFF byte, so the last byte can always be raised, and `[0xFF]` is above every key.
fn upper_bound(prefix: &str) -> Vec<u8> {
    let mut bound = prefix.as_bytes().to_vec();
    match bound.last_mut() {
        Some(last) => *last += 1,
        None => bound.push(0xFF),
    }
    bound
}

/// The server's message of a failed call (the client's `Display` says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut out = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                out.push_str(&format!(" ({detail})"));
            }
            out
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn key_string(bytes: Vec<u8>) -> Result<String, StorageError> {
    String::from_utf8(bytes)
        .map_err(|_| StorageError::Backend("postgresql: a stored key is not UTF-8".into()))
}

impl PostgresBackend {
    /// Connect, check the server, create or check the schema and start the writer task.
    /// Fails with the host, port, database and user (never the password) when the server
    /// cannot be reached or refuses the login.
    pub async fn connect(url: &PostgresUrl) -> Result<PostgresBackend, StorageError> {
        Self::open(url, None).await
    }

    /// As [`PostgresBackend::connect`], for one of several HA nodes: every write is fenced by
    /// the lock the returned handle takes (none is written before it is taken), every call is
    /// bounded by `ha.call_timeout`, and the connections carry `application_name`
    /// `hushd <api_addr>` unless the URL sets one.
    pub async fn connect_ha(
        url: &PostgresUrl,
        ha: HaSettings,
    ) -> Result<(PostgresBackend, Arc<PostgresLock>), StorageError> {
        let mut url = url.clone();
        if url.config.get_application_name() == Some("hushd") {
            url.config
                .application_name(format!("hushd {}", ha.api_addr));
        }
        let backend = Self::open(&url, Some(ha.call_timeout)).await?;
        let fence = backend.fence.clone().expect("an HA backend has a fence");
        // The lock has a connection of its own, made now: a renewal must never wait for one
        // of the request pool's (all busy under load) nor for a new connection's login.
        let lock_pool = build_pool(&backend.url, 1)?;
        drop(pooled(&lock_pool, &backend.url).await?);
        let lock = PostgresLock::new(
            lock_pool,
            backend.url.clone(),
            fence,
            ha.node_id,
            ha.api_addr,
            ha.call_timeout,
        );
        Ok((backend, Arc::new(lock)))
    }

    async fn open(
        url: &PostgresUrl,
        call_timeout: Option<Duration>,
    ) -> Result<PostgresBackend, StorageError> {
        let url = Arc::new(url.clone());
        let pool = build_pool(&url, POOL_SIZE)?;
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let fence = call_timeout.map(|_| Arc::new(Fence::default()));
        let backend = PostgresBackend {
            pool,
            url,
            tx,
            stats,
            fence: fence.clone(),
            call_timeout,
        };
        let mut client = backend.pool.get().await.map_err(|e| {
            StorageError::Open(backend.url.scrub(format!(
                "cannot connect to PostgreSQL at {}:{} (database {:?}, user {:?}): {}",
                backend.url.host(),
                backend.url.port(),
                backend.url.database(),
                backend.url.user(),
                pool_cause(&e)
            )))
        })?;
        let version = backend.setup(&mut client).await?;
        drop(client);
        tracing::info!(
            host = backend.url.host(),
            port = backend.url.port(),
            database = backend.url.database(),
            schema_version = version,
            "postgresql storage ready"
        );
        let writer = Writer {
            pool: backend.pool.clone(),
            url: backend.url.clone(),
            stats: backend.stats.clone(),
            fence,
            call_timeout,
        };
        tokio::spawn(writer.run(rx));
        Ok(backend)
    }

    /// Check `synchronous_commit`, then create the schema in an empty database or check its
    /// version; returns the version.
    async fn setup(&self, client: &mut Object) -> Result<i32, StorageError> {
        let err = |e: tokio_postgres::Error| {
            StorageError::Open(self.url.scrub(format!(
                "postgresql {}:{}/{}: cannot set up the schema: {}",
                self.url.host(),
                self.url.port(),
                self.url.database(),
                describe(&e)
            )))
        };
        let sync: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await
            .map_err(err)?
            .get(0);
        if sync == "off" {
            return Err(StorageError::Open(format!(
                "postgresql: synchronous_commit is off for user {:?} on database {:?}: a \
                 write could be acknowledged and then lost; set it to on (ALTER ROLE ... SET \
                 synchronous_commit = on)",
                self.url.user(),
                self.url.database()
            )));
        }
        let tx = client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(err)?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('hush_schema') IS NOT NULL", &[])
            .await
            .map_err(err)?
            .get(0);
        let found: Option<i32> = if exists {
            tx.query_opt("SELECT version FROM hush_schema WHERE id = 1", &[])
                .await
                .map_err(err)?
                .map(|r| r.get(0))
        } else {
            tx.batch_execute(
                "CREATE TABLE hush_schema (id smallint PRIMARY KEY CHECK (id = 1), \
                                           version integer NOT NULL)",
            )
            .await
            .map_err(err)?;
            None
        };
        let version = match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StorageError::Open(format!(
                    "postgresql: database {:?} holds Hush storage schema version {v}, newer than \
                     this hushd's ({SCHEMA_VERSION}): run a newer hushd",
                    self.url.database()
                )))
            }
            Some(v) if v == SCHEMA_VERSION => v,
            Some(v) => {
                // 1 -> 2: the HA lock row.
                tx.batch_execute(lock::SQL_CREATE).await.map_err(err)?;
                tx.execute(
                    "UPDATE hush_schema SET version = $1 WHERE id = 1",
                    &[&SCHEMA_VERSION],
                )
                .await
                .map_err(err)?;
                tracing::info!(
                    database = self.url.database(),
                    from = v,
                    to = SCHEMA_VERSION,
                    "postgresql: schema upgraded"
                );
                SCHEMA_VERSION
            }
            None => {
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS hush_store (key bytea PRIMARY KEY, \
                                                            value bytea NOT NULL);
                     INSERT INTO hush_schema (id, version) VALUES (1, {SCHEMA_VERSION})"
                ))
                .await
                .map_err(err)?;
                tx.batch_execute(lock::SQL_CREATE).await.map_err(err)?;
                tracing::info!(
                    database = self.url.database(),
                    version = SCHEMA_VERSION,
                    "postgresql: schema created"
                );
                SCHEMA_VERSION
            }
        };
        tx.commit().await.map_err(err)?;
        Ok(version)
    }

    /// Report each committed transaction's latency and batch size to `metrics` from now on
    /// (the first call wins).
    pub fn observe(&self, metrics: StorageMetrics) {
        let _ = self.stats.metrics.set(metrics);
    }

    /// Transactions committed since connect. Fewer than the writes when group commit works.
    pub fn commits(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<Object, StorageError> {
        pooled(&self.pool, &self.url).await
    }

    fn error(&self, what: &str, e: &tokio_postgres::Error) -> StorageError {
        query_error(&self.url, what, e)
    }

    /// The keys of one query with `params`, in order.
    async fn keys(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<String>, StorageError> {
        bounded(self.call_timeout, &self.url, async {
            let client = self.client().await?;
            let err = |e| self.error("read failed", &e);
            let stmt = client.prepare_cached(sql).await.map_err(err)?;
            let rows = client.query(&stmt, params).await.map_err(err)?;
            rows.into_iter().map(|r| key_string(r.get(0))).collect()
        })
        .await
    }
}

/// `work`, given at most `limit` (HA nodes) when there is one. Past it the outcome of a write
/// is unknown, and it is answered as failed.
async fn bounded<T>(
    limit: Option<Duration>,
    url: &PostgresUrl,
    work: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    let Some(limit) = limit else {
        return work.await;
    };
    tokio::time::timeout(limit, work).await.map_err(|_| {
        StorageError::Backend(format!(
            "postgresql {}:{}/{}: no answer within {limit:?}",
            url.host(),
            url.port(),
            url.database()
        ))
    })?
}

/// A pool of at most `size` connections to `url` (made when first needed).
fn build_pool(url: &PostgresUrl, size: usize) -> Result<Pool, StorageError> {
    let manager = tls::manager(
        url.config.clone(),
        url.verify,
        url.root_cert.as_deref(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    )
    .map_err(|e| StorageError::Open(url.scrub(format!("postgresql: {e}"))))?;
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(url.config.get_connect_timeout().copied())
        .build()
        .map_err(|e| StorageError::Open(format!("postgresql: cannot build the pool: {e}")))
}

fn pool_cause(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pe) => describe(pe),
        other => other.to_string(),
    }
}

async fn pooled(pool: &Pool, url: &PostgresUrl) -> Result<Object, StorageError> {
    pool.get().await.map_err(|e| {
        StorageError::Backend(url.scrub(format!(
            "postgresql {}:{}/{}: {}",
            url.host(),
            url.port(),
            url.database(),
            pool_cause(&e)
        )))
    })
}

fn query_error(url: &PostgresUrl, what: &str, e: &tokio_postgres::Error) -> StorageError {
    StorageError::Backend(url.scrub(format!(
        "postgresql {}:{}/{}: {what}: {}",
        url.host(),
        url.port(),
        url.database(),
        describe(e)
    )))
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        bounded(self.call_timeout, &self.url, async {
            let client = self.client().await?;
            let err = |e| self.error("read failed", &e);
            let stmt = client.prepare_cached(SQL_GET).await.map_err(err)?;
            let row = client
                .query_opt(&stmt, &[&key.as_bytes()])
                .await
                .map_err(err)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let from = i32::try_from(prefix.len() + 1)
            .map_err(|_| StorageError::Backend("postgresql: prefix too long".into()))?;
        self.keys(SQL_LIST, &[&prefix.as_bytes(), &upper_bound(prefix), &from])
            .await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.keys(SQL_SCAN, &[&prefix.as_bytes(), &upper_bound(prefix)])
            .await
    }

    async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = start_after.unwrap_or("").as_bytes();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.keys(
            SQL_PAGE,
            &[&after, &prefix.as_bytes(), &upper_bound(prefix), &limit],
        )
        .await
    }

    async fn scan_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = start_after.unwrap_or("").as_bytes();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let err = |e| self.error("read failed", &e);
        let stmt = client.prepare_cached(SQL_ENTRIES).await.map_err(err)?;
        let rows = client
            .query(
                &stmt,
                &[&after, &prefix.as_bytes(), &upper_bound(prefix), &limit],
            )
            .await
            .map_err(err)?;
        rows.into_iter()
            .map(|r| Ok((key_string(r.get(0))?, r.get(1))))
            .collect()
    }

    async fn count_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        bounded(self.call_timeout, &self.url, async {
            let client = self.client().await?;
            let err = |e| self.error("count failed", &e);
            let stmt = client.prepare_cached(SQL_COUNT).await.map_err(err)?;
            let n: i64 = client
                .query_one(&stmt, &[&prefix.as_bytes(), &upper_bound(prefix)])
                .await
                .map_err(err)?
                .get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        if ops.is_empty() {
            return Ok(());
        }
        if self.fence.as_ref().is_some_and(|f| f.get() == 0) {
            return Err(StorageError::NotActive);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg { ops, reply })
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    async fn export(&self) -> Result<ExportStream, StorageError> {
        snapshot::export(&self.pool, &self.url).await
    }

    async fn replace_all(&self, entries: ImportStream) -> Result<u64, StorageError> {
        snapshot::replace_all_in_one_transaction(
            &self.pool,
            &self.url,
            self.fence.as_deref(),
            entries,
        )
        .await
    }
}

/// The writer task's state. It stops when the backend (the channel's only sender) is
/// dropped, after answering every request already queued.
struct Writer {
    pool: Pool,
    url: Arc<PostgresUrl>,
    stats: Arc<Stats>,
    fence: Option<Arc<Fence>>,
    call_timeout: Option<Duration>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            self.commit_group(group).await;
        }
    }

    /// Commit `group` in one transaction, or each request alone when that fails.
    async fn commit_group(&self, group: Vec<Msg>) {
        let (ops, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|m| (m.ops, m.reply)).unzip();
        match self.commit(&ops).await {
            Ok(()) => {
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            // Fenced out: no request of the group can be written by this node.
            Err(StorageError::NotActive) => {
                for reply in replies {
                    let _ = reply.send(Err(StorageError::NotActive));
                }
            }
            Err(e) if ops.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = ops.len(), "postgresql: group commit failed, committing each request alone");
                for (ops, reply) in ops.iter().zip(replies) {
                    let _ = reply.send(self.commit(std::slice::from_ref(ops)).await);
                }
            }
        }
    }

    /// One transaction holding the last value each key gets in `requests`.
    async fn commit(&self, requests: &[Vec<Op>]) -> Result<(), StorageError> {
        let started = Instant::now();
        let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for op in requests.iter().flatten() {
            match op {
                Op::Put { key, value } => last.insert(key.as_bytes(), Some(value)),
                Op::Delete { key } => last.insert(key.as_bytes(), None),
            };
        }
        let (mut put_keys, mut put_values, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in last {
            match value {
                Some(v) => {
                    put_keys.push(key);
                    put_values.push(v);
                }
                None => deletes.push(key),
            }
        }
        let err = |e| query_error(&self.url, "write failed", &e);
        let generation = match &self.fence {
            Some(fence) => match fence.get() {
                0 => return Err(StorageError::NotActive),
                g => Some(g),
            },
            None => None,
        };
        bounded(self.call_timeout, &self.url, async {
            let client = pooled(&self.pool, &self.url).await?;
            match generation {
                None => {
                    let stmt = client.prepare_cached(SQL_WRITE).await.map_err(err)?;
                    client
                        .execute(&stmt, &[&put_keys, &put_values, &deletes])
                        .await
                        .map_err(err)?;
                }
                Some(generation) => {
                    let stmt = client.prepare_cached(SQL_WRITE_FENCED).await.map_err(err)?;
                    let held: i64 = client
                        .query_one(&stmt, &[&put_keys, &put_values, &deletes, &generation])
                        .await
                        .map_err(err)?
                        .get(0);
                    if held == 0 {
                        return Err(StorageError::NotActive);
                    }
                }
            }
            Ok(())
        })
        .await?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(
            requests = requests.len(),
            micros = started.elapsed().as_micros() as u64,
            "postgresql: committed"
        );
        if let Some(m) = self.stats.metrics.get() {
            m.commit(started.elapsed(), requests.len());
        }
        Ok(())
    }
}

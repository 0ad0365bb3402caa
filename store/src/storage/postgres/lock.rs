//! The HA lock: one row, `hush_lock`, that says which hushd is active and until when.
//!
//! # Why a row with a TTL, not an advisory lock
//! A session-level advisory lock lives as long as one connection: a node whose connection hangs
//! (a partition, a frozen process) keeps it until the server notices the dead TCP connection
//! (minutes with default keepalives), and it carries no number a write could be checked
//! against. The row carries both: `expires_at`, set from the **database's** clock (no clock of
//! the nodes is compared with another), and `generation`, raised at every takeover.
//!
//! # Fencing
//! The lock is only as good as the writes it guards. Every write of an HA node
//! (the writer task) is one statement that first takes `FOR SHARE` on the lock row where
//! `generation` is the node's and `expires_at` is in the future, and writes nothing unless it
//! got it: a takeover (`UPDATE` of that row) waits for the write's commit, and a write after a
//! takeover finds no row and fails with [`StorageError::NotActive`]. So a node that was frozen
//! or cut off while it held the lock cannot write once another node took over, whatever it
//! believes.
//!
//! # Timing
//! The holder renews every `ttl / 3`. It counts its own lease from the moment it *sent* a
//! successful renewal (its monotonic clock): the row's `expires_at` is the server's time on
//! receipt plus the TTL, so the node's deadline always falls before the row's, and it stops
//! serving before anyone else may start. A standby takes the row once `expires_at` passed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::{bounded, describe, pooled, PostgresUrl};
use crate::storage::{HaLock, Leader, StorageError};

/// The lock table and its one row (created with the schema, version 2).
pub(super) const SQL_CREATE: &str =
    "CREATE TABLE IF NOT EXISTS hush_lock (id smallint PRIMARY KEY CHECK (id = 1), \
                                          holder text NOT NULL, \
                                          api_addr text NOT NULL, \
                                          generation bigint NOT NULL, \
                                          acquired_at timestamptz NOT NULL, \
                                          expires_at timestamptz NOT NULL); \
     INSERT INTO hush_lock VALUES (1, '', '', 0, '-infinity', '-infinity') \
     ON CONFLICT (id) DO NOTHING";

/// Take the row when it expired, or when this node holds it already (after a local step-down
/// its old generation is dead either way: the new one fences it out).
const SQL_ACQUIRE: &str = "UPDATE hush_lock SET holder = $1, api_addr = $2, \
        generation = generation + 1, acquired_at = clock_timestamp(), \
        expires_at = clock_timestamp() + $3 * interval '1 millisecond' \
     WHERE id = 1 AND (expires_at <= clock_timestamp() OR holder = $1) \
     RETURNING generation";
const SQL_RENEW: &str = "UPDATE hush_lock \
        SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' \
     WHERE id = 1 AND holder = $1 AND generation = $2 AND expires_at > clock_timestamp() \
     RETURNING generation";
const SQL_RELEASE: &str = "UPDATE hush_lock SET expires_at = '-infinity' \
     WHERE id = 1 AND holder = $1 AND generation = $2";
const SQL_LEADER: &str = "SELECT holder, api_addr, generation, acquired_at FROM hush_lock \
     WHERE id = 1 AND expires_at > clock_timestamp()";

/// The fencing token the writer checks: the generation this node holds, 0 when none.
#[derive(Debug, Default)]
pub struct Fence(AtomicI64);

impl Fence {
    pub(super) fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, generation: i64) {
        self.0.store(generation, Ordering::Release);
    }
}

/// One node's handle on the lock row. Its writes are fenced by the generation it holds.
pub struct PostgresLock {
    pool: Pool,
    url: Arc<PostgresUrl>,
    fence: Arc<Fence>,
    node_id: String,
    api_addr: String,
    /// Bound on each lock statement, so a hung connection cannot hold the loop.
    timeout: Duration,
}

impl std::fmt::Debug for PostgresLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLock")
            .field("node_id", &self.node_id)
            .field("api_addr", &self.api_addr)
            .field("generation", &self.fence.get())
            .finish()
    }
}

impl PostgresLock {
    pub(super) fn new(
        pool: Pool,
        url: Arc<PostgresUrl>,
        fence: Arc<Fence>,
        node_id: String,
        api_addr: String,
        timeout: Duration,
    ) -> PostgresLock {
        PostgresLock {
            pool,
            url,
            fence,
            node_id,
            api_addr,
            timeout,
        }
    }

    /// Run one statement returning at most one `bigint`, bounded by the timeout.
    async fn one(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<i64>, StorageError> {
        let work = async {
            let client = pooled(&self.pool, &self.url).await?;
            let err = |e| lock_error(&self.url, what, &e);
            let stmt = client.prepare_cached(sql).await.map_err(err)?;
            let row = client.query_opt(&stmt, params).await.map_err(err)?;
            Ok(row.map(|r| r.get(0)))
        };
        bounded(Some(self.timeout), &self.url, work).await
    }
}

fn lock_error(url: &PostgresUrl, what: &str, e: &tokio_postgres::Error) -> StorageError {
    StorageError::Backend(url.scrub(format!(
        "postgresql {}:{}/{}: {what}: {}",
        url.host(),
        url.port(),
        url.database(),
        describe(e)
    )))
}

fn millis(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

#[async_trait::async_trait]
impl HaLock for PostgresLock {
    async fn try_acquire(&self, ttl: Duration) -> Result<Option<u64>, StorageError> {
        let got = self
            .one(
                "cannot take the HA lock",
                SQL_ACQUIRE,
                &[&self.node_id, &self.api_addr, &millis(ttl)],
            )
            .await?;
        if let Some(generation) = got {
            self.fence.set(generation);
        }
        Ok(got.and_then(|g| u64::try_from(g).ok()))
    }

    async fn renew(&self, generation: u64, ttl: Duration) -> Result<bool, StorageError> {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        let kept = self
            .one(
                "cannot renew the HA lock",
                SQL_RENEW,
                &[&self.node_id, &generation, &millis(ttl)],
            )
            .await?
            .is_some();
        if !kept {
            self.fence.set(0);
        }
        Ok(kept)
    }

    async fn release(&self, generation: u64) -> Result<(), StorageError> {
        self.fence.set(0);
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        let work = async {
            let client = pooled(&self.pool, &self.url).await?;
            let err = |e| lock_error(&self.url, "cannot release the HA lock", &e);
            let stmt = client.prepare_cached(SQL_RELEASE).await.map_err(err)?;
            client
                .execute(&stmt, &[&self.node_id, &generation])
                .await
                .map_err(err)?;
            Ok(())
        };
        bounded(Some(self.timeout), &self.url, work).await
    }

    async fn leader(&self) -> Result<Option<Leader>, StorageError> {
        let work = async {
            let client = pooled(&self.pool, &self.url).await?;
            let err = |e| lock_error(&self.url, "cannot read the HA lock", &e);
            let stmt = client.prepare_cached(SQL_LEADER).await.map_err(err)?;
            let row = client.query_opt(&stmt, &[]).await.map_err(err)?;
            Ok(row.map(|r| Leader {
                node_id: r.get(0),
                api_addr: r.get(1),
                generation: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                since: r.get(3),
            }))
        };
        bounded(Some(self.timeout), &self.url, work).await
    }

    fn fence_off(&self) {
        self.fence.set(0);
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}

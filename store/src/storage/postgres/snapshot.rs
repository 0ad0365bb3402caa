//! Snapshots on PostgreSQL: the consistent export and the all-or-nothing replace.
//!
//! - [`export`]: a `REPEATABLE READ, READ ONLY` transaction on a pooled connection of its own
//!   (one MVCC snapshot of the table), read through a portal [`PORTAL_ROWS`] rows at a time,
//!   so neither the client nor hushd ever holds more than one page of rows.
//! - [`replace_all_in_one_transaction`]: the only statement sequence that rewrites the whole
//!   table; one transaction (lock, delete, binary `COPY`, commit), so a failure or a killed
//!   hushd (the server rolls back a transaction whose connection died) leaves the old rows.

use std::pin::pin;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::IsolationLevel;

use super::lock::Fence;
use super::{key_string, pooled, query_error, PostgresUrl};
use crate::storage::{
    import_cut_short, Entry, ExportStream, Import, ImportStream, StorageError, STREAM_DEPTH,
};

/// Rows fetched per round trip of the export's portal.
pub const PORTAL_ROWS: i32 = 1000;

const SQL_ALL: &str = "SELECT key, value FROM hush_store ORDER BY key";

/// HA: does the lock row still carry this node's generation (`$1`), unexpired? Share-locks
/// the row until the commit, so a takeover waits for it (as `SQL_WRITE_FENCED`).
const SQL_FENCE: &str = "SELECT count(*) FROM hush_lock WHERE id = 1 AND generation = $1 \
                         AND expires_at > clock_timestamp() FOR SHARE";

/// Every entry in key order from one MVCC snapshot; see the module docs.
pub(super) async fn export(pool: &Pool, url: &PostgresUrl) -> Result<ExportStream, StorageError> {
    let client = pooled(pool, url).await?;
    let url = url.clone();
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    tokio::spawn(async move {
        let mut client = client;
        if let Err(e) = export_rows(&mut client, &tx).await {
            let _ = tx
                .send(Err(query_error(&url, "snapshot export failed", &e)))
                .await;
        }
    });
    Ok(rx)
}

async fn export_rows(
    client: &mut deadpool_postgres::Object,
    out: &mpsc::Sender<Result<Entry, StorageError>>,
) -> Result<(), tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let stmt = tx.prepare(SQL_ALL).await?;
    let portal = tx.bind(&stmt, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, PORTAL_ROWS).await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let entry = key_string(row.get(0)).map(|k| (k, row.get::<_, Vec<u8>>(1)));
            if out.send(entry).await.is_err() {
                // The reader went away: the transaction rolls back when dropped.
                return Ok(());
            }
        }
    }
    tx.commit().await
}

/// Replace every row of `hush_store` by `entries`, in ONE transaction: `LOCK TABLE` (writers
/// wait, readers go on seeing the old rows until the commit), `DELETE`, a binary `COPY` of
/// the entries as they arrive, `COMMIT` at [`Import::End`]. A stream that closes early, or
/// any error, rolls the whole transaction back.
///
/// HA (`fence`): refused at once when this node is fenced off; and the last statement
/// before the `COMMIT` checks that the lock row still carries this node's generation (and
/// share-locks it until the commit), else everything rolls back ([`StorageError::NotActive`]).
/// The check is at the end, not the start, because the transaction can run longer than the
/// lock's TTL: what matters is that the lock is still held when the new rows become visible.
/// No call timeout bounds the transaction as a whole (a large restore takes as long as it
/// takes); the fence does.
pub(super) async fn replace_all_in_one_transaction(
    pool: &Pool,
    url: &PostgresUrl,
    fence: Option<&Fence>,
    mut entries: ImportStream,
) -> Result<u64, StorageError> {
    if fence.is_some_and(|f| f.get() == 0) {
        return Err(StorageError::NotActive);
    }
    let err = |e: tokio_postgres::Error| query_error(url, "snapshot restore failed", &e);
    let mut client = pooled(pool, url).await?;
    let tx = client.transaction().await.map_err(err)?;
    tx.batch_execute("LOCK TABLE hush_store IN EXCLUSIVE MODE; DELETE FROM hush_store")
        .await
        .map_err(err)?;
    let sink = tx
        .copy_in("COPY hush_store (key, value) FROM STDIN (FORMAT binary)")
        .await
        .map_err(err)?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::BYTEA]));
    let mut n = 0u64;
    loop {
        match entries.recv().await {
            Some(Import::Entry(key, value)) => {
                writer
                    .as_mut()
                    .write(&[&key.as_bytes(), &value])
                    .await
                    .map_err(err)?;
                n += 1;
            }
            Some(Import::End) => break,
            // Dropping the unfinished COPY and the transaction rolls back.
            None => return Err(import_cut_short()),
        }
    }
    writer.finish().await.map_err(err)?;
    if let Some(fence) = fence {
        let held: i64 = tx
            .query_one(SQL_FENCE, &[&fence.get()])
            .await
            .map_err(err)?
            .get(0);
        if held == 0 {
            // Dropping the transaction rolls back.
            return Err(StorageError::NotActive);
        }
    }
    tx.commit().await.map_err(err)?;
    Ok(n)
}

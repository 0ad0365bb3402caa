//! Upgrade of a KV version 1 mount to version 2, as Vault does it when
//! `sys/mounts/:path/tune` sets `options.version=2`: every version 1 secret becomes version 1
//! of a versioned secret with fresh metadata.
//!
//! Runs when the version 2 engine opens over the mount's view (after the tune, and again at
//! every start, where it finds nothing to do). Each secret moves in one atomic batch (its
//! metadata, its version 1 and the removal of the version 1 entry), so a crash part-way
//! leaves every secret either moved or still in place, and the next start finishes the job.
//! Unlike Vault, which upgrades in the background and answers 400 meanwhile, the tune call
//! returns once the data has moved.

use serde_json::{Map, Value};

use super::data::commit_version;
use super::metadata::KeyMetadata;
use super::v1::PREFIX;
use super::{KeyRef, KvBackend};
use crate::logical::LogicalError;

/// Move every version 1 secret of the view into version 2's layout; returns how many moved.
pub(super) async fn migrate(kv: &KvBackend) -> Result<usize, LogicalError> {
    let stored = kv.view.scan_prefix(PREFIX).await?;
    if stored.is_empty() {
        return Ok(0);
    }
    tracing::info!(
        keys = stored.len(),
        view = kv.view.prefix(),
        "upgrading kv version 1 data to version 2"
    );
    let config = kv.load_config().await?;
    for entry in &stored {
        let path = &entry[PREFIX.len()..];
        let key = KeyRef::new(path).map_err(|_| {
            LogicalError::Internal("a stored kv version 1 key is not a valid path".into())
        })?;
        let _guard = kv.stripe(&key).write().await;
        let Some(raw) = kv.view.get(entry).await? else {
            continue;
        };
        let data: Map<String, Value> = serde_json::from_slice(&raw).map_err(|_| {
            LogicalError::Internal("stored kv version 1 secret is not a JSON object".into())
        })?;
        let now = kv.now();
        // A key with version 2 metadata already (not expected: the version 1 engine is closed
        // before the upgrade) gets the old value as its next version rather than losing it.
        let meta = kv
            .load_meta(&key)
            .await?
            .unwrap_or_else(|| KeyMetadata::new(path, now));
        let remove_old = vec![kv.view.delete_op(entry)?];
        commit_version(kv, &key, meta, &config, &data, now, remove_old, None).await?;
    }
    tracing::info!(
        keys = stored.len(),
        view = kv.view.prefix(),
        "kv upgrade done"
    );
    Ok(stored.len())
}

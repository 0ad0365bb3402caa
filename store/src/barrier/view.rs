//! A view of the barrier confined to a key prefix: each mount and each core subsystem gets
//! one, so an engine cannot read another's keys.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Barrier, BarrierError};
use crate::storage::Op;

#[derive(Clone)]
pub struct BarrierView {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl std::fmt::Debug for BarrierView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarrierView")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl BarrierView {
    /// `prefix` must end in `/`.
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        debug_assert!(prefix.ends_with('/'), "view prefix must end in '/'");
        BarrierView { barrier, prefix }
    }

    pub fn sub_view(&self, prefix: &str) -> BarrierView {
        BarrierView::new(self.barrier.clone(), format!("{}{}", self.prefix, prefix))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, key: &str) -> Result<String, BarrierError> {
        if key.split('/').any(|s| s == ".." || s == ".") || key.starts_with('/') {
            return Err(BarrierError::InvalidKey(key.to_string()));
        }
        Ok(format!("{}{}", self.prefix, key))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BarrierError> {
        self.barrier.get(&self.full(key)?).await
    }

    /// Read and parse JSON. A value that does not parse is reported as an integrity error.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, BarrierError> {
        let Some(raw) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|_| BarrierError::Integrity {
                key: format!("{}{}", self.prefix, key),
            })
    }

    /// Immediate children of `prefix` (relative to the view).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.barrier.list(&self.full(prefix)?).await
    }

    /// Every key under `prefix`, relative to the view.
    pub async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let keys = self.barrier.scan_prefix(&self.full(prefix)?).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect())
    }

    /// Up to `limit` keys under `prefix` after `start_after` (both relative to the view), in
    /// key order, relative to the view.
    pub async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BarrierError> {
        let after = start_after.map(|s| self.full(s)).transpose()?;
        let keys = self
            .barrier
            .scan_range(&self.full(prefix)?, after.as_deref(), limit)
            .await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect())
    }

    /// Build a put op for [`BarrierView::write`] (key relative to the view).
    pub fn put_op(&self, key: &str, value: Vec<u8>) -> Result<Op, BarrierError> {
        Ok(Op::Put {
            key: self.full(key)?,
            value,
        })
    }

    pub fn put_json_op<T: Serialize>(&self, key: &str, value: &T) -> Result<Op, BarrierError> {
        self.put_op(key, serde_json::to_vec(value).expect("serializable"))
    }

    pub fn delete_op(&self, key: &str) -> Result<Op, BarrierError> {
        Ok(Op::Delete {
            key: self.full(key)?,
        })
    }

    /// Apply ops built by this or another view of the same barrier, atomically.
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), BarrierError> {
        self.barrier.write(ops).await
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), BarrierError> {
        self.write(vec![self.put_op(key, value)?]).await
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BarrierError> {
        self.write(vec![self.put_json_op(key, value)?]).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.write(vec![self.delete_op(key)?]).await
    }

    /// Delete everything in the view (used when a mount is disabled).
    pub async fn clear(&self) -> Result<(), BarrierError> {
        let keys = self.barrier.scan_prefix(&self.prefix).await?;
        for chunk in keys.chunks(1000) {
            let ops = chunk
                .iter()
                .map(|k| Op::Delete { key: k.clone() })
                .collect();
            self.barrier.write(ops).await?;
        }
        Ok(())
    }
}

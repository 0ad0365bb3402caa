//! In-memory backend for `hushd --dev` and tests. Nothing survives a restart.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{
    children_of, import_cut_short, Backend, ExportStream, Import, ImportStream, Op, StorageError,
    STREAM_DEPTH,
};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read();
        let keys = map
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children_of(prefix, keys))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read();
        Ok(map
            .range(prefix.to_string()..)
            .map(|(k, _)| k.clone())
            .take_while(|k| k.starts_with(prefix))
            .collect())
    }

    async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        use std::ops::Bound;
        let map = self.map.read();
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        Ok(map
            .range((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut map = self.map.write();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    map.insert(key, value);
                }
                Op::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }

    /// A copy of the map taken under the read lock (it is all in memory anyway).
    async fn export(&self) -> Result<ExportStream, StorageError> {
        let copy = self.map.read().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_DEPTH);
        tokio::spawn(async move {
            for entry in copy {
                if tx.send(Ok(entry)).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// Builds the new map aside and swaps it in only at [`Import::End`].
    async fn replace_all(&self, mut entries: ImportStream) -> Result<u64, StorageError> {
        let mut next = BTreeMap::new();
        while let Some(item) = entries.recv().await {
            match item {
                Import::Entry(key, value) => {
                    next.insert(key, value);
                }
                Import::End => {
                    let n = next.len() as u64;
                    *self.map.write() = next;
                    return Ok(n);
                }
            }
        }
        Err(import_cut_short())
    }
}

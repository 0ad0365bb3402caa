//! STUB (replaced by the storage work).
#![allow(clippy::todo, dead_code, unused_variables)]
use super::StorageError;

#[derive(Debug)]
pub struct SqliteBackend;
impl SqliteBackend {
    pub fn open(path: &std::path::Path) -> Result<Self, StorageError> {
        todo!()
    }
}
#[async_trait::async_trait]
impl super::Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        todo!()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        todo!()
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        todo!()
    }
    async fn write(&self, ops: Vec<super::Op>) -> Result<(), StorageError> {
        todo!()
    }
    fn kind(&self) -> &'static str {
        todo!()
    }
}

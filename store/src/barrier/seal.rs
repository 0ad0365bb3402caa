//! STUB (replaced by the seal work): signatures only.
#![allow(clippy::todo, dead_code, unused_variables)]
use std::sync::Arc;

use super::{Barrier, BarrierError, KeyBytes};
use crate::storage::{Backend, StorageError};

pub const SEAL_PREFIX: &str = "core/seal/";

#[derive(Debug)]
pub struct Seal;
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SealConfig {
    pub secret_shares: u8,
    pub secret_threshold: u8,
}
pub struct InitOutput {
    pub keys: Vec<zeroize::Zeroizing<Vec<u8>>>,
}
#[derive(Debug)]
pub struct UnsealProgress {
    pub sealed: bool,
    pub progress: u8,
    pub threshold: u8,
    pub shares: u8,
    pub nonce: String,
}
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("already initialized")]
    AlreadyInitialized,
    #[error("not initialized")]
    NotInitialized,
    #[error("{0}")]
    InvalidParameters(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
impl Seal {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        todo!()
    }
    pub async fn config(&self) -> Result<Option<SealConfig>, SealError> {
        todo!()
    }
    pub async fn is_initialized(&self) -> Result<bool, SealError> {
        todo!()
    }
    pub async fn initialize(
        &self,
        barrier: &Barrier,
        shares: u8,
        threshold: u8,
    ) -> Result<InitOutput, SealError> {
        todo!()
    }
    pub async fn submit(&self, barrier: &Barrier, key: &[u8]) -> Result<UnsealProgress, SealError> {
        todo!()
    }
    pub fn reset(&self) {
        todo!()
    }
    pub fn progress(&self) -> (u8, String) {
        todo!()
    }
    pub fn root_key(&self) -> Option<KeyBytes> {
        todo!()
    }
    pub fn seal(&self, barrier: &Barrier) {
        todo!()
    }
}

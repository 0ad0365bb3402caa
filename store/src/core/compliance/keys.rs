//! Evidence about encryption at rest and the keys: the barrier's cipher, its key terms and
//! their age (`sys/key-status`), and the Shamir unseal configuration (`sys/seal-status`).

use chrono::{DateTime, Utc};

use crate::core::state::{seal_err, Core};
use crate::logical::LogicalError;

/// The barrier's cipher (`barrier/mod.rs`: every entry is sealed with it).
pub const CIPHER: &str = "AES-256-GCM";

#[derive(Debug, Clone)]
pub struct KeyEvidence {
    pub cipher: &'static str,
    pub active_term: u32,
    pub active_installed: DateTime<Utc>,
    /// Terms in the keyring, retired ones included.
    pub terms: usize,
    pub retired: usize,
    /// When the store was initialised: the first term's install time.
    pub initialised: DateTime<Utc>,
    /// Key shares needed to unseal, of how many.
    pub threshold: u8,
    pub shares: u8,
}

pub async fn gather(core: &Core) -> Result<KeyEvidence, LogicalError> {
    let barrier = core.barrier();
    let terms = barrier.terms()?;
    let active_term = barrier.active_term()?;
    let active = terms
        .iter()
        .find(|t| t.term == active_term)
        .ok_or_else(|| {
            LogicalError::Internal("the active key term is not in the keyring".into())
        })?;
    let initialised = terms
        .iter()
        .map(|t| t.install_time)
        .min()
        .unwrap_or(active.install_time);
    let seal = core.seal_handle().config().await.map_err(seal_err)?;
    Ok(KeyEvidence {
        cipher: CIPHER,
        active_term,
        active_installed: active.install_time,
        terms: terms.len(),
        retired: terms.iter().filter(|t| t.retired_time.is_some()).count(),
        initialised,
        threshold: seal.as_ref().map_or(0, |c| c.secret_threshold),
        shares: seal.as_ref().map_or(0, |c| c.secret_shares),
    })
}

//! The token store's side of token leases: the lease index it writes with every token that
//! expires, the hook that revokes the leases a revoked token created, and the one-time
//! indexing of tokens stored before tokens had leases.

use std::sync::Arc;

use super::{TokenEntry, TokenStore};
use crate::barrier::BarrierError;
use crate::core::lease::{LeaseEntry, LeaseIndex, TokenRevocationHook};
use crate::logical::LogicalError;
use crate::storage::Op;

impl TokenStore {
    /// Give every token with a TTL a lease in `index`.
    pub fn with_lease_index(mut self, index: Arc<LeaseIndex>) -> Self {
        self.leases = Some(index);
        self
    }

    /// Set who is told about revoked tokens (the expiration manager).
    pub fn set_revocation_hook(&self, hook: std::sync::Weak<dyn TokenRevocationHook>) {
        *self.revocation_hook.write() = Some(hook);
    }

    /// Tell the hook that the tokens `hashes` are being revoked.
    pub(super) async fn tokens_revoked(&self, hashes: &[String]) -> Result<(), LogicalError> {
        let hook = self
            .revocation_hook
            .read()
            .as_ref()
            .and_then(|h| h.upgrade());
        match hook {
            Some(hook) => hook.tokens_revoked(hashes).await,
            None => Ok(()),
        }
    }

    /// Ops that remove the lease of `entry` (as stored: it may have moved on a retry).
    pub(super) async fn lease_delete_ops(
        &self,
        entry: &TokenEntry,
    ) -> Result<Vec<Op>, LogicalError> {
        let (Some(index), Some(derived)) = (&self.leases, LeaseEntry::for_token(entry)) else {
            return Ok(Vec::new());
        };
        let stored = index.load(&derived.lease_id).await?;
        Ok(index.delete_ops(stored.as_ref().unwrap_or(&derived))?)
    }

    /// Give a lease to every expiring token that has none: tokens stored before tokens had
    /// leases. Runs once per store (a marker in the lease view records it), in the
    /// background, so it never delays an unseal. Returns how many leases it wrote.
    pub async fn index_unleased_tokens(&self) -> Result<usize, LogicalError> {
        let Some(index) = &self.leases else {
            return Ok(0);
        };
        if index.view().get(TOKENS_INDEXED).await?.is_some() {
            return Ok(0);
        }
        let mut written = 0;
        for key in self.view.scan_prefix("id/").await? {
            let _guard = self.lock.lock().await;
            let entry = match self.view.get_json::<TokenEntry>(&key).await {
                Ok(Some(entry)) => entry,
                Ok(None) | Err(BarrierError::Integrity { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(lease) = LeaseEntry::for_token(&entry) else {
                continue;
            };
            if index.load(&lease.lease_id).await?.is_none() {
                self.view.write(index.put_ops(&lease, None)?).await?;
                index.note_due(lease.due);
                written += 1;
            }
        }
        index.view().put(TOKENS_INDEXED, Vec::new()).await?;
        Ok(written)
    }
}

/// Set once every stored token has its lease.
const TOKENS_INDEXED: &str = "tokens-indexed";

//! The token store's side of token leases: the lease index it writes with every token that
//! expires, and the hook that revokes the leases a revoked token created.

use std::sync::Arc;

use super::{TokenEntry, TokenStore};
use crate::core::expiration::{LeaseEntry, LeaseIndex, TokenRevocationHook};
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
}

//! Reading every stored token a page at a time (the compliance report: tokens without expiry,
//! tokens older than its window). Keys are read with `scan_range`, so memory stays at a page.

use super::{TokenEntry, TokenStore};
use crate::barrier::BarrierError;
use crate::logical::LogicalError;

impl TokenStore {
    /// Up to `limit` live (unexpired) token entries after the storage key `after`, in key
    /// order, and the last key read (`None`: no more).
    pub async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TokenEntry>, Option<String>), LogicalError> {
        let keys = self.view.scan_range("id/", after, limit).await?;
        let now = self.now();
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            match self.view.get_json::<TokenEntry>(key).await {
                Ok(Some(e)) if e.expire_time.is_none_or(|t| t > now) => out.push(e),
                Ok(_) | Err(BarrierError::Integrity { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let last = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        Ok((out, last))
    }
}

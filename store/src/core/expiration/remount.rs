//! Moving leases with their mount (`sys/remount`).

use super::ExpirationManager;
use crate::core::lease::{LeaseEntry, LeaseKind};
use crate::logical::LogicalError;

impl ExpirationManager {
    /// Give every secret lease under the mount path `from` the same id under `to`, each in
    /// one atomic batch (entry and index keys), under its lease's lock. Token leases keep
    /// their ids: they are named by the token's creating path, which the token keeps.
    /// Returns how many leases moved.
    pub async fn move_prefix(&self, from: &str, to: &str) -> Result<usize, LogicalError> {
        let mut moved = 0;
        for id in self.index.with_prefix(from).await? {
            let Some(rest) = id.strip_prefix(from) else {
                continue;
            };
            let _guard = self.stripe(&id).lock().await;
            let Some(old) = self.index.load(&id).await? else {
                continue;
            };
            if old.kind != LeaseKind::Secret {
                continue;
            }
            let new = LeaseEntry {
                lease_id: format!("{to}{rest}"),
                ..old.clone()
            };
            let mut ops = self.index.delete_ops(&old)?;
            ops.extend(self.index.put_ops(&new, None)?);
            self.index.view().write(ops).await?;
            if new.pending() {
                self.index.note_due(new.due);
            }
            moved += 1;
        }
        Ok(moved)
    }
}

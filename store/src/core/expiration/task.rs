//! The one expiry task: reads the head of the by-expiry index, revokes what is due, and
//! sleeps until the next lease is due or a new, earlier lease wakes it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ExpirationManager;
use crate::logical::LogicalError;

/// Leases read from the head of the index per pass.
const HEAD: usize = 256;
/// The longest sleep: a clock that jumped is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Wait after an unexpected storage error before reading the index again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

impl ExpirationManager {
    /// Start the expiry task; it ends when `stop` is cancelled or the store seals.
    pub fn spawn_expiry(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            match me.tokens.index_unleased_tokens().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tokens = n, "leases written for tokens stored without one"),
                Err(e) if stop.is_cancelled() || is_sealed(&e) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "indexing tokens stored without a lease failed")
                }
            }
            loop {
                let wait = tokio::select! {
                    _ = stop.cancelled() => return,
                    pass = me.expire_due() => match pass {
                        Ok(wait) => wait,
                        Err(e) if stop.is_cancelled() || is_sealed(&e) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the lease expiry index failed");
                            Some(ERROR_PAUSE)
                        }
                    },
                };
                let Some(wait) = wait else { continue };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = me.index.wake.notified() => {}
                    _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                }
            }
        })
    }

    /// One pass: revoke every lease due now among the head of the index. Returns `None`
    /// when it did work (look again at once), else how long until the next lease is due.
    pub async fn expire_due(self: &Arc<Self>) -> Result<Option<Duration>, LogicalError> {
        // From here on, any new lease wakes the task: it may be earlier than what we read.
        self.index.next_due.store(i64::MAX, Ordering::Release);
        let head = self.index.head(HEAD).await?;
        let now = self.now().timestamp_millis();
        let due: Vec<(i64, String)> = head
            .iter()
            .take_while(|(millis, _)| *millis <= now)
            .cloned()
            .collect();
        if due.is_empty() {
            let next = head.first().map_or(i64::MAX, |(millis, _)| *millis);
            self.index.next_due.store(next, Ordering::Release);
            let ms = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
            return Ok(Some(Duration::from_millis(ms)));
        }
        let mut set = tokio::task::JoinSet::new();
        for (millis, id) in due {
            let me = self.clone();
            set.spawn(async move {
                let result = me.expire(millis, &id).await;
                (id, result)
            });
        }
        let mut sealed = None;
        let mut failed = false;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) if is_sealed(&e) => sealed = Some(e),
                Ok((id, Err(e))) => {
                    failed = true;
                    tracing::warn!(lease_id = %id, error = %e, "expiring a lease failed");
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, "a lease revocation task failed");
                }
            }
        }
        match sealed {
            Some(e) => Err(e),
            // Leases still due after an unexpected error: do not spin on them.
            None if failed => Ok(Some(ERROR_PAUSE)),
            None => Ok(None),
        }
    }
}

pub(crate) fn is_sealed(e: &LogicalError) -> bool {
    matches!(
        e,
        LogicalError::Sealed | LogicalError::Barrier(crate::barrier::BarrierError::Sealed)
    )
}

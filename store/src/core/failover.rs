//! The HA loop and its transitions: a standby takes the lock and becomes active, the active
//! node renews it or steps down. The state itself is [`super::ha::Ha`]; see there for the
//! design.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::ha::{Ha, Role, StepDown};
use super::state::Core;
use crate::logical::LogicalError;

/// Start the HA loop of `core` (an HA node) on the current runtime; it ends when the core is
/// dropped.
pub fn start(core: &Arc<Core>) {
    if core.ha().is_some() {
        drop(tokio::spawn(run(Arc::downgrade(core))));
    }
}

/// The HA loop of one node, until the core is dropped.
async fn run(core: Weak<Core>) {
    loop {
        let Some(c) = core.upgrade() else {
            return;
        };
        let Some(ha) = c.ha().cloned() else {
            return;
        };
        let pause = step(&c, &ha).await;
        drop(c);
        tokio::select! {
            () = ha.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One turn of the loop; how long to wait before the next.
async fn step(core: &Core, ha: &Ha) -> Duration {
    match ha.role() {
        Role::Active { generation, .. } => {
            let deadline = ha.deadline.load(Ordering::Acquire);
            let now = ha.nanos(Instant::now());
            if deadline == 0 || now >= deadline {
                core.step_down(StepDown::Expired).await;
                return Duration::ZERO;
            }
            let left = Duration::from_nanos(deadline - now);
            let sent = Instant::now();
            match tokio::time::timeout(left, ha.lock.renew(generation, ha.ttl)).await {
                Ok(Ok(true)) => {
                    ha.extend(sent + ha.ttl);
                    ha.renew_every()
                }
                Ok(Ok(false)) => {
                    core.step_down(StepDown::Lost).await;
                    Duration::ZERO
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the HA lock; retrying until the lease ends");
                    (ha.ttl / 10).min(Duration::from_millis(500))
                }
                Err(_) => {
                    core.step_down(StepDown::Expired).await;
                    Duration::ZERO
                }
            }
        }
        Role::Standby { .. } => {
            if !core.barrier().is_sealed() && !ha.paused() {
                match core.try_become_active().await {
                    Ok(true) => return ha.renew_every(),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the HA lock");
                    }
                }
            }
            match ha.lock.leader().await {
                Ok(leader) => ha.set_leader(leader),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the HA lock");
                    ha.set_leader(None);
                }
            }
            ha.poll()
        }
    }
}

impl Core {
    /// Standby with the barrier unsealed: take the lock if free and become active. `Ok(false)`:
    /// another node holds it (or this node was sealed meanwhile).
    async fn try_become_active(&self) -> Result<bool, LogicalError> {
        let Some(ha) = self.ha() else {
            return Ok(false);
        };
        let _guard = self.lifecycle.lock().await;
        if self.barrier().is_sealed() || ha.is_active() {
            return Ok(false);
        }
        let sent = Instant::now();
        let Some(generation) = ha.lock.try_acquire(ha.ttl).await? else {
            return Ok(false);
        };
        ha.set_active(generation, sent + ha.ttl);
        let loaded = async {
            // Another node may have written anything, the keyring included (sys/rotate): the
            // cache starts empty, and holds only what this node reads or writes from now.
            self.barrier().backend().set_cache(true);
            let root = self.seal_handle().root_key().ok_or(LogicalError::Sealed)?;
            self.barrier().unseal(&root).await?;
            self.post_unseal().await
        }
        .await;
        if let Err(e) = loaded {
            ha.set_standby();
            self.barrier().backend().set_cache(false);
            ha.release(generation).await;
            if let LogicalError::Barrier(crate::barrier::BarrierError::Integrity { .. }) = e {
                // The stored keyring is not the one these keys opened (a snapshot of another
                // store was restored): this node can never serve with them.
                tracing::error!(
                    "the stored keyring does not open with this node's keys (a snapshot of \
                     another store restored?): sealing this node; unseal it with the store's \
                     current keys"
                );
                self.seal_keys_locked();
            }
            return Err(e);
        }
        tracing::info!(
            generation,
            api_addr = ha.api_addr(),
            "this hushd is now the active node"
        );
        Ok(true)
    }

    /// Stop being the active node; the process stays up as a standby.
    pub async fn step_down(&self, why: StepDown) {
        let Some(ha) = self.ha() else {
            return;
        };
        let _guard = self.lifecycle.lock().await;
        let Some(generation) = ha.set_standby() else {
            return;
        };
        self.drop_unsealed().await;
        self.barrier().backend().set_cache(false);
        match why {
            StepDown::Asked => {
                ha.pause();
                ha.release(generation).await;
                tracing::info!(
                    generation,
                    "stepped down on request: this hushd is a standby"
                );
            }
            StepDown::Lost => tracing::warn!(
                generation,
                "another node holds the HA lock: this hushd stepped down to standby"
            ),
            StepDown::Expired => tracing::warn!(
                generation,
                "the HA lock could not be renewed within its TTL (storage unreachable or this \
                 process paused): this hushd stepped down to standby"
            ),
        }
        ha.wake();
    }
}

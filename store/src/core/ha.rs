//! High availability: several hushd on one PostgreSQL, one active, the others standing by.
//!
//! This module holds one node's HA state ([`Ha`]); [`super::failover`] runs the loop and the
//! transitions. Every unsealed node runs the loop: a standby tries to take the HA lock
//! ([`crate::storage::HaLock`]) every `Ha::poll` and learns who holds it; the holder becomes
//! active (loads the mount table, starts the background work) and renews the lock every third
//! of its TTL. A standby answers `sys/health` 429 and `sys/leader`, and sends every other
//! request to the active node with a `307` (hvac, the Vault CLI and reqwest follow it;
//! Vault does the same when request forwarding is off). Forwarding was not chosen: a `307` keeps
//! the standby out of the data path and needs no second listener or node-to-node trust.
//!
//! The active node counts its lease from when it *sent* its last successful renewal; past that
//! deadline it refuses every request ([`Ha::within_lease`], checked by
//! [`crate::core::Core::unsealed`]) and steps down to standby (the process stays up). Its
//! writes are fenced in the database anyway: see [`crate::storage::postgres::lock`].
//!
//! Becoming active loads nothing proportional to the number of leases or secrets: the mount
//! table, the policies on demand, and the head of the lease expiry index, as an unseal does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::storage::{HaLock, Leader};

/// Settings of an HA node.
pub struct HaConfig {
    pub lock: Arc<dyn HaLock>,
    /// This node's address for clients (`--api-addr`).
    pub api_addr: String,
    pub lock_ttl: Duration,
}

impl std::fmt::Debug for HaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaConfig")
            .field("api_addr", &self.api_addr)
            .field("lock_ttl", &self.lock_ttl)
            .finish_non_exhaustive()
    }
}

/// How long the lock is held for `sys/init` (it is not renewed meanwhile).
const INIT_LOCK_TTL: Duration = Duration::from_secs(60);
/// After `sys/step-down`, how long this node leaves the lock to the others (Vault: 10 s).
const STEP_DOWN_PAUSE: Duration = Duration::from_secs(10);

/// This node's part.
#[derive(Debug, Clone)]
pub enum Role {
    Standby {
        /// The active node as last read from the lock, if any holds it.
        leader: Option<Leader>,
    },
    Active {
        generation: u64,
        since: chrono::DateTime<chrono::Utc>,
    },
}

/// The HA state of one node.
pub struct Ha {
    pub(super) lock: Arc<dyn HaLock>,
    api_addr: String,
    pub(super) ttl: Duration,
    role: Mutex<Role>,
    /// Active: the end of the lease, in nanoseconds after `epoch`; 0 otherwise.
    pub(super) deadline: AtomicU64,
    epoch: Instant,
    /// Do not try to take the lock before this (after a step-down), nanoseconds after `epoch`.
    pause_until: AtomicU64,
    /// Wakes the HA loop early: unsealed, sealed, past the deadline.
    pub(super) wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Ha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ha")
            .field("api_addr", &self.api_addr)
            .field("ttl", &self.ttl)
            .field("role", &*self.role.lock())
            .finish_non_exhaustive()
    }
}

impl Ha {
    pub fn new(config: HaConfig) -> Ha {
        Ha {
            lock: config.lock,
            api_addr: config.api_addr,
            ttl: config.lock_ttl,
            role: Mutex::new(Role::Standby { leader: None }),
            deadline: AtomicU64::new(0),
            epoch: Instant::now(),
            pause_until: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub(super) fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub fn api_addr(&self) -> &str {
        &self.api_addr
    }

    pub fn role(&self) -> Role {
        self.role.lock().clone()
    }

    pub fn is_active(&self) -> bool {
        matches!(*self.role.lock(), Role::Active { .. })
    }

    /// The active node's address to send clients to, unless it is this node or unknown.
    pub fn leader_addr(&self) -> Option<String> {
        match &*self.role.lock() {
            Role::Standby {
                leader: Some(leader),
            } if leader.node_id != self.lock.node_id() => Some(leader.api_addr.clone()),
            _ => None,
        }
    }

    /// Active and the lease not over by this node's clock. Wakes the HA loop when it is over.
    pub fn within_lease(&self) -> bool {
        let deadline = self.deadline.load(Ordering::Acquire);
        let ok = deadline != 0 && self.nanos(Instant::now()) < deadline;
        if !ok {
            self.wake.notify_one();
        }
        ok
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How often a standby tries the lock: a fifth of the TTL, at most a second.
    pub(super) fn poll(&self) -> Duration {
        (self.ttl / 5).min(Duration::from_secs(1))
    }

    pub(super) fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    pub(super) fn set_active(&self, generation: u64, lease_end: Instant) {
        *self.role.lock() = Role::Active {
            generation,
            since: chrono::Utc::now(),
        };
        self.deadline
            .store(self.nanos(lease_end), Ordering::Release);
    }

    pub(super) fn extend(&self, lease_end: Instant) {
        self.deadline
            .store(self.nanos(lease_end), Ordering::Release);
    }

    /// Become a standby; the generation held, if any.
    pub(super) fn set_standby(&self) -> Option<u64> {
        self.lock.fence_off();
        self.deadline.store(0, Ordering::Release);
        let mut role = self.role.lock();
        let held = match &*role {
            Role::Active { generation, .. } => Some(*generation),
            Role::Standby { .. } => None,
        };
        *role = Role::Standby { leader: None };
        held
    }

    /// [`Ha::set_standby`] for a seal.
    pub(super) fn set_standby_for_seal(&self) -> Option<u64> {
        self.set_standby()
    }

    pub(super) fn set_leader(&self, leader: Option<Leader>) {
        let mut role = self.role.lock();
        if let Role::Standby { leader: known } = &mut *role {
            *known = leader;
        }
    }

    /// Give the lock up (bounded: the lock's own call timeout).
    pub(super) async fn release(&self, generation: u64) {
        if let Err(e) = self.lock.release(generation).await {
            tracing::warn!(error = %e, "could not release the HA lock; a standby takes over when it expires");
        }
    }

    /// Take the lock for `sys/init` (which writes before anyone is active).
    pub(super) async fn lock_for_init(&self) -> Result<u64, crate::logical::LogicalError> {
        match self.lock.try_acquire(INIT_LOCK_TTL).await? {
            Some(generation) => Ok(generation),
            None => Err(crate::logical::LogicalError::invalid(
                "another hushd holds the HA lock, so this store is initialized already: unseal \
                 this node with the store's keys",
            )),
        }
    }

    pub(super) fn pause(&self) {
        self.pause_until.store(
            self.nanos(Instant::now() + STEP_DOWN_PAUSE),
            Ordering::Release,
        );
    }

    pub(super) fn paused(&self) -> bool {
        self.nanos(Instant::now()) < self.pause_until.load(Ordering::Acquire)
    }
}

/// Why an active node stops being active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDown {
    /// Another node holds the lock now.
    Lost,
    /// The lease ran out before a renewal came back.
    Expired,
    /// `sys/step-down`: give the lock up and leave it to the others for a while.
    Asked,
}

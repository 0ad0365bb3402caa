//! Striped per-key write locks: every barrier write and every rewrap of an entry holds the
//! locks of its keys, so the rewrap's read, re-encrypt, write of an entry never lands over a
//! client write made in between (it would put the older value back).
//!
//! A key maps to one of [`STRIPES`] async mutexes by a fixed hash; a batch takes the stripes
//! of all its keys in ascending order (each once), so two batches never wait on each other in
//! a cycle. Writes to keys on different stripes do not wait for each other, and group commit
//! still gathers them.
//!
//! The guards are owned, so the storage write and its guards can go to a task of their own
//! ([`KeyLocks::write_holding`]): a caller that stops waiting (a client gone) cannot release
//! the locks while its write is still queued for commit.

use std::hash::{Hash, Hasher};

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::storage::{Backend, Op, StorageError};

/// How many locks the keys share. Two keys on one stripe only wait for each other's writes.
pub const STRIPES: usize = 1024;

pub struct KeyLocks {
    stripes: Vec<Arc<Mutex<()>>>,
}

/// The locks of a set of keys, held until dropped.
pub struct KeyGuards {
    _held: Vec<OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for KeyGuards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGuards")
            .field("stripes", &self._held.len())
            .finish()
    }
}

impl std::fmt::Debug for KeyLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }
}

impl KeyLocks {
    fn stripe(key: &str) -> usize {
        // `DefaultHasher::new()` has fixed keys: a key always maps to the same stripe.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }

    /// Hold the locks of every key in `keys` until the guards drop.
    pub async fn lock<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> KeyGuards {
        let mut stripes: Vec<usize> = keys.into_iter().map(Self::stripe).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.stripes[s].clone().lock_owned().await);
        }
        KeyGuards { _held: guards }
    }

    /// Write `ops` to `backend` in a task that keeps `guards` until storage answered, so the
    /// locks outlive the write even if the caller stops waiting.
    pub async fn write_holding<G: Send + 'static>(
        guards: G,
        backend: Arc<dyn Backend>,
        ops: Vec<Op>,
    ) -> Result<(), StorageError> {
        tokio::spawn(async move {
            let result = backend.write(ops).await;
            drop(guards);
            result
        })
        .await
        .map_err(|e| StorageError::Backend(format!("storage write task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::KeyLocks;

    #[tokio::test]
    async fn a_held_key_waits_and_overlapping_batches_do_not_deadlock() {
        let locks = Arc::new(KeyLocks::default());
        let held = locks.lock(["a"]).await;
        let l = locks.clone();
        let waiter = tokio::spawn(async move { drop(l.lock(["b", "a"]).await) });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "a write of a held key waits");
        drop(held);
        waiter.await.unwrap();
        // Many batches over the same keys in different orders all finish.
        let mut tasks = Vec::new();
        for i in 0..64 {
            let l = locks.clone();
            tasks.push(tokio::spawn(async move {
                let keys: Vec<String> = (0..20).map(|k| format!("k{}", (k * 7 + i) % 20)).collect();
                let _g = l.lock(keys.iter().map(String::as_str)).await;
                tokio::task::yield_now().await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

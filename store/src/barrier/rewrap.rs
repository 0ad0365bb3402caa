//! Moving entries to the active key term, and retiring the terms left behind. The walk over
//! the store (its cursor, pacing, progress) is the core's background task
//! (`core/rewrap.rs`); here is what it does to one page of keys, under the keys' locks.
//!
//! A page's keys beyond the last scanned key: the cursor is the last key of the key scan, so a
//! key skipped because it appeared between the two reads of a page, when it sorts after that
//! last key, is read again on the next page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use zeroize::Zeroize;

use super::locks::KeyLocks;
use super::{entry_term, seal_with, Barrier, BarrierError, KeyBytes};
use crate::storage::Op;

/// What [`Barrier::rewrap`] did with a page of keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapCount {
    /// Barrier entries looked at (the seal's own entries and deleted keys are not counted).
    pub scanned: u64,
    /// Entries re-encrypted under the active term.
    pub rewrapped: u64,
    /// Entries that could not be read (unknown term, failed integrity check): left as they
    /// are and logged; while any is left, older terms are not retired.
    pub unreadable: u64,
}

impl std::ops::AddAssign for RewrapCount {
    fn add_assign(&mut self, o: RewrapCount) {
        self.scanned += o.scanned;
        self.rewrapped += o.rewrapped;
        self.unreadable += o.unreadable;
    }
}

/// One key term as `sys/key-status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TermInfo {
    pub term: u32,
    pub install_time: DateTime<Utc>,
    /// When no entry was left under it; a retired term still decrypts, it never encrypts.
    pub retired_time: Option<DateTime<Utc>>,
}

impl Barrier {
    /// One page of the rewrap: up to `limit` keys after `after` (all keys, in key order), each
    /// entry under an older term re-encrypted under the active term, written back in one
    /// atomic batch. Returns what was done and the page's last key (`None`: the end). The
    /// keys' write locks are held from the read to the write, so a client write to one of them
    /// waits and lands after (never under) the rewrapped value. The values are read straight
    /// from storage ([`Backend::scan_entries`](crate::storage::Backend::scan_entries): one
    /// query, the read cache left alone). Keys outside the barrier (the keyring, the seal's
    /// entries) are skipped.
    pub async fn rewrap_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(RewrapCount, Option<String>), BarrierError> {
        let keys = self.scan_range("", after, limit).await?;
        let Some(last) = keys.last().cloned() else {
            return Ok((RewrapCount::default(), None));
        };
        let keys: std::collections::BTreeSet<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| Self::check_key(k).is_ok())
            .collect();
        let guards = self.key_locks.lock(keys.iter().copied()).await;
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let active = &ring.terms[&ring.active];
        let mut count = RewrapCount::default();
        let mut ops = Vec::new();
        // The same range again, now under the locks. A key not in the locked set (made since
        // the key scan) was written after the rotation, so under a term at least as new as
        // the walk's: it is left for a later page or needs nothing.
        for (key, entry) in self.backend.scan_entries("", after, limit).await? {
            let key = key.as_str();
            if !keys.contains(key) {
                continue;
            }
            count.scanned += 1;
            let plain = entry_term(key, &entry).and_then(|term| {
                if term == ring.active {
                    return Ok(None);
                }
                ring.open_term(key, term, &entry).map(Some)
            });
            match plain {
                Ok(None) => {}
                Ok(Some(mut plain)) => {
                    let value = seal_with(&active.cipher, ring.active, key, &plain);
                    plain.zeroize();
                    ops.push(Op::Put {
                        key: key.to_string(),
                        value,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rewrap: entry left as it is");
                    count.unreadable += 1;
                }
            }
        }
        count.rewrapped = ops.len() as u64;
        KeyLocks::write_holding(guards, self.backend.clone(), ops).await?;
        Ok((count, Some(last)))
    }

    /// The active term (`Sealed` while sealed).
    pub fn active_term(&self) -> Result<u32, BarrierError> {
        Ok(self
            .keyring
            .load()
            .as_ref()
            .ok_or(BarrierError::Sealed)?
            .active)
    }

    /// Every term of the keyring, oldest first.
    pub fn terms(&self) -> Result<Vec<TermInfo>, BarrierError> {
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        Ok(ring
            .terms
            .iter()
            .map(|(term, k)| TermInfo {
                term: *term,
                install_time: k.install_time,
                retired_time: k.retired_time,
            })
            .collect())
    }

    /// Mark retired every term below `term` that is not yet (the rewrap to `term` finished:
    /// no entry is under them). Their keys stay in the keyring, so anything still under one
    /// (an old entry put back into storage by hand...) stays readable. Returns
    /// the terms retired now; persists the keyring only when that is not empty.
    pub async fn retire_below(
        &self,
        root_key: &KeyBytes,
        term: u32,
    ) -> Result<Vec<u32>, BarrierError> {
        let _change = self.keyring_change.lock().await;
        let current = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let mut keyring = current.duplicate();
        let now = Utc::now();
        let mut retired = Vec::new();
        for (t, k) in keyring.terms.iter_mut() {
            if *t < term && *t != keyring.active && k.retired_time.is_none() {
                k.retired_time = Some(now);
                retired.push(*t);
            }
        }
        if !retired.is_empty() {
            self.persist_keyring(root_key, &keyring).await?;
            self.install(keyring);
        }
        Ok(retired)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::super::{entry_term, Barrier, KeyBytes};
    use crate::storage::{Backend, MemoryBackend, Op, StorageError};

    /// Memory storage whose `get` of one key waits until released, so a test can hold the
    /// rewrap between its read and its write.
    struct Gated {
        inner: MemoryBackend,
        key: &'static str,
        armed: std::sync::atomic::AtomicBool,
        write_armed: std::sync::atomic::AtomicBool,
        reached: Notify,
        release: Notify,
    }

    #[async_trait]
    impl Backend for Gated {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            let value = self.inner.get(key).await?;
            if key == self.key && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.reached.notify_one();
                self.release.notified().await;
            }
            Ok(value)
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list(prefix).await
        }
        async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.scan_prefix(prefix).await
        }
        async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
            if ops.iter().any(|o| o.key() == self.key)
                && self
                    .write_armed
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                self.reached.notify_one();
                self.release.notified().await;
            }
            self.inner.write(ops).await
        }
        fn kind(&self) -> &'static str {
            "gated"
        }
    }

    #[tokio::test]
    async fn a_write_racing_the_rewrap_of_its_key_is_never_lost() {
        let backend = Arc::new(Gated {
            inner: MemoryBackend::new(),
            key: "app/k",
            armed: false.into(),
            write_armed: false.into(),
            reached: Notify::new(),
            release: Notify::new(),
        });
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let root = KeyBytes::random();
        barrier.initialize(&root).await.unwrap();
        barrier.put("app/k", b"old".to_vec()).await.unwrap();
        barrier.rotate(&root).await.unwrap();

        // The rewrap reads the old value, then is held before its write.
        backend
            .armed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let b = barrier.clone();
        let rewrap = tokio::spawn(async move { b.rewrap_page(None, 10).await });
        backend.reached.notified().await;
        // A client write of the same key meanwhile: it must wait for the rewrap...
        let b = barrier.clone();
        let write = tokio::spawn(async move { b.put("app/k", b"new".to_vec()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !write.is_finished(),
            "the write waits for the rewrap of its key"
        );
        backend.release.notify_one();
        let (count, last) = rewrap.await.unwrap().unwrap();
        assert_eq!((count.scanned, count.rewrapped), (1, 1));
        assert_eq!(
            last.as_deref(),
            Some("core/keyring"),
            "the last key of the page"
        );
        write.await.unwrap().unwrap();
        // ...and wins: the rewrap did not put the old value back over it.
        assert_eq!(
            barrier.get("app/k").await.unwrap().unwrap().as_slice(),
            b"new"
        );
    }

    #[tokio::test]
    async fn a_rotation_waits_for_writes_already_under_the_old_term() {
        let backend = Arc::new(Gated {
            inner: MemoryBackend::new(),
            key: "app/slow",
            armed: false.into(),
            write_armed: true.into(),
            reached: Notify::new(),
            release: Notify::new(),
        });
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let root = KeyBytes::random();
        barrier.initialize(&root).await.unwrap();
        // A write has picked term 1 and is on its way to storage...
        let b = barrier.clone();
        let write = tokio::spawn(async move { b.put("app/slow", b"v".to_vec()).await });
        backend.reached.notified().await;
        // ...so the rotation does not take effect until it landed.
        let b = barrier.clone();
        let r = root.clone();
        let rotate = tokio::spawn(async move { b.rotate(&r).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!rotate.is_finished(), "the rotation waits for the write");
        assert_eq!(barrier.active_term().unwrap(), 1);
        backend.release.notify_one();
        write.await.unwrap().unwrap();
        assert_eq!(rotate.await.unwrap().unwrap().term, 2);
        // A walk started now finds the write and moves it.
        let (count, _) = barrier.rewrap_page(None, 10).await.unwrap();
        assert_eq!(count.rewrapped, 1);
        let raw = backend.get("app/slow").await.unwrap().unwrap();
        assert_eq!(entry_term("app/slow", &raw).unwrap(), 2);
    }

    #[tokio::test]
    async fn rewrap_moves_old_entries_skips_the_seal_and_retires_terms() {
        let backend = Arc::new(MemoryBackend::new());
        let barrier = Barrier::new(backend.clone());
        let root = KeyBytes::random();
        barrier.initialize(&root).await.unwrap();
        for i in 0..5 {
            barrier.put(&format!("a/{i}"), vec![i]).await.unwrap();
        }
        barrier.rotate(&root).await.unwrap();
        barrier.put("a/new", b"n".to_vec()).await.unwrap();
        backend
            .write(vec![Op::Put {
                key: "core/seal/config".into(),
                value: b"{}".to_vec(),
            }])
            .await
            .unwrap();
        let under_term_1 = backend.get("a/0").await.unwrap().unwrap();
        let (count, _) = barrier.rewrap_page(None, 100).await.unwrap();
        assert_eq!(
            (count.scanned, count.rewrapped, count.unreadable),
            (6, 5, 0)
        );
        for i in 0..5u8 {
            let key = format!("a/{i}");
            let raw = backend.get(&key).await.unwrap().unwrap();
            assert_eq!(entry_term(&key, &raw).unwrap(), 2);
            assert_eq!(barrier.get(&key).await.unwrap().unwrap().as_slice(), [i]);
        }
        assert_eq!(
            backend.get("core/seal/config").await.unwrap().unwrap(),
            b"{}"
        );
        assert_eq!(barrier.retire_below(&root, 2).await.unwrap(), vec![1]);
        assert!(barrier.retire_below(&root, 2).await.unwrap().is_empty());
        // Retired is kept across a seal, and the retired term still decrypts.
        barrier.seal();
        barrier.unseal(&root).await.unwrap();
        let terms = barrier.terms().unwrap();
        assert!(terms[0].retired_time.is_some() && terms[1].retired_time.is_none());
        backend
            .write(vec![Op::Put {
                key: "a/0".into(),
                value: under_term_1,
            }])
            .await
            .unwrap();
        assert_eq!(barrier.get("a/0").await.unwrap().unwrap().as_slice(), [0]);
        // A rotation after retiring keeps the marks.
        barrier.rotate(&root).await.unwrap();
        let terms = barrier.terms().unwrap();
        assert_eq!(terms.len(), 3);
        assert!(terms[0].retired_time.is_some());
    }
}

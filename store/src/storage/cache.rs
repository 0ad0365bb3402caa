//! A read cache in front of a backend. It sits below the barrier, so it only ever holds
//! ciphertext.
//!
//! `get` results are cached, including "absent", in a bounded [`quick_cache`] map (entry
//! count given at construction). Writes go through to the inner backend; once a write
//! returned, each written key's entry is *replaced* by the written value when no other write
//! to that key overlapped it in time, and removed otherwise (two overlapping writes may land in
//! either order, and only the backend knows which landed last) or when the write failed (its
//! outcome is unknown). Write-through matters: a KV write reads the key it is about to
//! replace, so invalidating sent every rewrite of a hot key to SQLite. `list` and
//! `scan_prefix` pass straight through.
//!
//! # The stale-insert race
//! A reader that fetched the old value just before a write could insert it just after the
//! write's invalidation, leaving a stale entry. Each key hashes to one of [`STRIPES`]
//! generation counters. A reader notes its stripe's generation before going to the backend and
//! inserts only if it is unchanged; a writer bumps the generation and invalidates under the
//! same stripe lock once the write returned. The invalidation runs in a spawned task, so it
//! happens even when the caller stops waiting for the write (the write itself may still land).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Backend, ExportStream, ImportStream, Op, StorageError};

/// Generation stripes; a write only disturbs readers of keys in its own stripes.
pub const STRIPES: usize = 64;

type Entries = quick_cache::sync::Cache<String, Option<Vec<u8>>>;

/// One stripe: its generation, and the writes in flight to its keys.
#[derive(Default)]
struct Stripe {
    generation: u64,
    in_flight: HashMap<String, InFlight>,
}

/// Writes to one key that have started and not yet finished.
struct InFlight {
    count: u32,
    /// Another write to the key started while one was in flight.
    overlapped: bool,
}

/// State shared with the spawned write tasks.
struct Shared {
    entries: Entries,
    stripes: Box<[Mutex<Stripe>]>,
    hasher: std::hash::RandomState,
}

impl Shared {
    fn stripe(&self, key: &str) -> &Mutex<Stripe> {
        let i = (self.hasher.hash_one(key) % STRIPES as u64) as usize;
        &self.stripes[i]
    }

    /// A write to `key` is about to reach the backend.
    fn begin(&self, key: &str) {
        let mut stripe = self.stripe(key).lock();
        match stripe.in_flight.get_mut(key) {
            Some(f) => {
                f.count += 1;
                f.overlapped = true;
            }
            None => {
                stripe.in_flight.insert(
                    key.to_string(),
                    InFlight {
                        count: 1,
                        overlapped: false,
                    },
                );
            }
        }
    }

    /// A write to `key` returned: `written` is the value it left (`Some(None)`: deleted), or
    /// `None` when the write failed. Cache it only when no other write overlapped this one.
    fn finish(&self, key: &str, written: Option<Option<Vec<u8>>>) {
        let mut stripe = self.stripe(key).lock();
        stripe.generation += 1;
        let alone = match stripe.in_flight.get_mut(key) {
            Some(f) if f.count > 1 => {
                f.count -= 1;
                false
            }
            Some(f) => {
                let alone = !f.overlapped;
                stripe.in_flight.remove(key);
                alone
            }
            None => false,
        };
        match written {
            Some(value) if alone => self.entries.insert(key.to_string(), value),
            _ => {
                self.entries.remove(key);
            }
        }
    }
}

/// Hit and miss counts since construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// A [`Backend`] that caches another one's `get` results. See the module docs.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    shared: Arc<Shared>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Off ([`Backend::set_cache`]): reads go straight to the backend.
    bypass: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBackend")
            .field("inner", &self.inner.kind())
            .field("entries", &self.shared.entries.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl CachedBackend {
    /// Cache up to `capacity` entries (at least one) of `inner`.
    pub fn new(inner: Arc<dyn Backend>, capacity: usize) -> Self {
        let stripes = (0..STRIPES)
            .map(|_| Mutex::new(Stripe::default()))
            .collect();
        CachedBackend {
            inner,
            shared: Arc::new(Shared {
                entries: Entries::new(capacity.max(1)),
                stripes,
                hasher: std::hash::RandomState::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypass: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shared.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.entries.is_empty()
    }

    /// Drop every entry (e.g. after restoring a backup under the running process).
    pub fn clear(&self) {
        for stripe in self.shared.stripes.iter() {
            stripe.lock().generation += 1;
        }
        self.shared.entries.clear();
    }
}

#[async_trait]
impl Backend for CachedBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if self.bypass.load(Ordering::Acquire) {
            return self.inner.get(key).await;
        }
        if let Some(v) = self.shared.entries.get(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stripe = self.shared.stripe(key);
        let before = stripe.lock().generation;
        let value = self.inner.get(key).await?;
        let stripe = stripe.lock();
        if stripe.generation == before {
            self.shared.entries.insert(key.to_string(), value.clone());
        }
        Ok(value)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.scan_prefix(prefix).await
    }

    async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        self.inner.scan_range(prefix, start_after, limit).await
    }

    async fn count_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        self.inner.count_prefix(prefix).await
    }

    /// Straight from storage, nothing cached: a walk of the whole store must not evict the
    /// entries requests keep reading.
    async fn scan_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.scan_entries(prefix, start_after, limit).await
    }

    async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        // What each key holds once the write landed (the last op on a key wins).
        let mut after: HashMap<String, Option<Vec<u8>>> = HashMap::with_capacity(ops.len());
        for op in &ops {
            let value = match op {
                Op::Put { value, .. } => Some(value.clone()),
                Op::Delete { .. } => None,
            };
            after.insert(op.key().to_string(), value);
        }
        // In a task, so the cache is settled even when the caller stops waiting.
        let task = tokio::spawn(async move {
            for key in after.keys() {
                shared.begin(key);
            }
            let result = inner.write(ops).await;
            let ok = result.is_ok();
            for (key, value) in after {
                shared.finish(&key, ok.then_some(value));
            }
            result
        });
        task.await
            .map_err(|e| StorageError::Backend(format!("cached write task failed: {e}")))?
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn export(&self) -> Result<ExportStream, StorageError> {
        self.inner.export().await
    }

    /// The inner replace, then every entry forgotten (whatever the outcome: a failed replace
    /// may or may not have landed): each stripe's generation is bumped first, so a read that
    /// started before cannot put back a value from the old store.
    async fn replace_all(&self, entries: ImportStream) -> Result<u64, StorageError> {
        let result = self.inner.replace_all(entries).await;
        self.clear();
        result
    }

    fn set_cache(&self, on: bool) {
        self.bypass.store(!on, Ordering::Release);
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use tokio::sync::Notify;

    use super::*;
    use crate::storage::{conformance, MemoryBackend, SqliteBackend};

    /// A memory backend whose `get` can be held after it fetched, and whose writes can fail.
    #[derive(Debug, Default)]
    struct Gated {
        inner: MemoryBackend,
        hold_gets: AtomicBool,
        fail_writes: AtomicBool,
        fetched: Notify,
        release: Notify,
        /// The next write lands, then waits for `write_release` before it returns.
        hold_writes: AtomicBool,
        write_landed: Notify,
        write_release: Notify,
    }

    #[async_trait]
    impl Backend for Gated {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            let v = self.inner.get(key).await?;
            if self.hold_gets.load(Ordering::SeqCst) {
                self.fetched.notify_one();
                self.release.notified().await;
            }
            Ok(v)
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list(prefix).await
        }
        async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.scan_prefix(prefix).await
        }
        async fn write(&self, ops: Vec<Op>) -> Result<(), StorageError> {
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(StorageError::Backend("injected failure".into()));
            }
            let hold = self.hold_writes.swap(false, Ordering::SeqCst);
            self.inner.write(ops).await?;
            if hold {
                // Landed, but the caller has not heard yet.
                self.write_landed.notify_one();
                self.write_release.notified().await;
            }
            Ok(())
        }
        fn kind(&self) -> &'static str {
            "gated"
        }
    }

    fn put(key: &str, value: &[u8]) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.to_vec(),
        }
    }

    fn setup() -> (Arc<Gated>, CachedBackend) {
        let gated = Arc::new(Gated::default());
        let cached = CachedBackend::new(gated.clone(), 100);
        (gated, cached)
    }

    #[tokio::test]
    async fn cached_backend_conforms_over_memory_and_sqlite() {
        conformance::check(&CachedBackend::new(Arc::new(MemoryBackend::new()), 1000)).await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteBackend::open(&dir.path().join("c.db")).unwrap());
        let cached = CachedBackend::new(sqlite, 1000);
        conformance::check(&cached).await;
        assert_eq!(cached.kind(), "sqlite");
    }

    #[tokio::test]
    async fn hit_after_miss_and_absent_is_cached() {
        let (gated, cached) = setup();
        gated.inner.write(vec![put("k", b"v1")]).await.unwrap();
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(cached.get("none").await.unwrap(), None);
        assert_eq!(cached.stats(), CacheStats { hits: 0, misses: 2 });
        // Change the backend behind the cache's back: the cache keeps answering.
        gated
            .inner
            .write(vec![put("k", b"v2"), put("none", b"x")])
            .await
            .unwrap();
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(
            cached.get("none").await.unwrap(),
            None,
            "absent is cached too"
        );
        assert_eq!(cached.stats(), CacheStats { hits: 2, misses: 2 });
        cached.clear();
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    }

    #[tokio::test]
    async fn a_write_leaves_its_value_in_the_cache() {
        let (_gated, cached) = setup();
        cached.write(vec![put("k", b"1")]).await.unwrap();
        let before = cached.stats();
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        cached
            .write(vec![Op::Delete { key: "k".into() }])
            .await
            .unwrap();
        assert_eq!(cached.get("k").await.unwrap(), None);
        let after = cached.stats();
        assert_eq!(after.misses, before.misses, "both reads were hits");
        assert_eq!(after.hits, before.hits + 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_writes_leave_no_value_behind() {
        let (gated, cached) = setup();
        let cached = Arc::new(cached);
        // W1 lands first but returns last; W2 lands second (the backend holds "2").
        gated.hold_writes.store(true, Ordering::SeqCst);
        let w1 = tokio::spawn({
            let cached = cached.clone();
            async move { cached.write(vec![put("k", b"1")]).await }
        });
        gated.write_landed.notified().await;
        cached.write(vec![put("k", b"2")]).await.unwrap();
        gated.write_release.notify_one();
        w1.await.unwrap().unwrap();
        // Caching W1's value here would serve "1" forever.
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
        // A lone write afterwards is cached again.
        cached.write(vec![put("k", b"3")]).await.unwrap();
        let misses = cached.stats().misses;
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(cached.stats().misses, misses);
    }

    #[tokio::test]
    async fn writes_invalidate_the_written_keys() {
        let (gated, cached) = setup();
        cached
            .write(vec![put("a", b"1"), put("b", b"1")])
            .await
            .unwrap();
        assert_eq!(cached.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(cached.get("b").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(cached.get("gone").await.unwrap(), None);
        cached
            .write(vec![
                put("a", b"2"),
                put("gone", b"new"),
                Op::Delete { key: "b".into() },
            ])
            .await
            .unwrap();
        assert_eq!(cached.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(cached.get("b").await.unwrap(), None);
        assert_eq!(
            cached.get("gone").await.unwrap().as_deref(),
            Some(&b"new"[..])
        );
        // A failed write still invalidates (its outcome is unknown to the cache).
        gated.inner.write(vec![put("a", b"3")]).await.unwrap();
        gated.fail_writes.store(true, Ordering::SeqCst);
        assert!(cached.write(vec![put("a", b"4")]).await.is_err());
        assert_eq!(cached.get("a").await.unwrap().as_deref(), Some(&b"3"[..]));
    }

    #[tokio::test]
    async fn a_slow_reader_does_not_cache_the_value_a_write_replaced() {
        let (gated, cached) = setup();
        let cached = Arc::new(cached);
        gated.inner.write(vec![put("k", b"old")]).await.unwrap();
        gated.hold_gets.store(true, Ordering::SeqCst);
        let reader = tokio::spawn({
            let cached = cached.clone();
            async move { cached.get("k").await }
        });
        gated.fetched.notified().await; // the reader holds "old"…
        gated.hold_gets.store(false, Ordering::SeqCst);
        cached.write(vec![put("k", b"new")]).await.unwrap(); // …while a write lands
        gated.release.notify_one();
        assert_eq!(reader.await.unwrap().unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(cached.get("k").await.unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let inner = Arc::new(MemoryBackend::new());
        let cached = CachedBackend::new(inner, 16);
        for i in 0..500 {
            assert_eq!(cached.get(&format!("k{i}")).await.unwrap(), None);
        }
        assert!(cached.len() <= 16, "{} entries", cached.len());
        assert!(!cached.is_empty());
    }
}

//! A small cache of parsed token entries, so that authenticating a token costs one HMAC and
//! one map lookup instead of a storage read, a decryption and a JSON parse (Vault keeps such a
//! cache too).
//!
//! Only entries without a use limit are cached (use-limited tokens go through the store's lock
//! on every use anyway). Expiry is still checked on every use against the cached
//! `expire_time`. Every write of a token entry (renewal, revocation, orphaning, spent use)
//! goes through [`TokenStore`](super::TokenStore)'s one write helper, which drops the written
//! hashes from the cache once the write returned, so a revoked token is refused as soon as the
//! revoke returns.
//!
//! # The stale-insert race
//! A lookup that read an entry just before a write could insert it just after the write's
//! invalidation. A generation counter, bumped with every invalidation under the same lock,
//! closes it: a lookup notes the generation before reading storage and inserts only if it is
//! unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::TokenEntry;

/// Entries held at most; the map is emptied when it is full (tokens in use come back at once).
pub const MAX_ENTRIES: usize = 16_384;

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<String, Arc<TokenEntry>>,
}

/// Parsed token entries by HMAC. See the module docs.
#[derive(Default)]
pub struct TokenCache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// The cached entry for `hash`, or the generation to pass to [`TokenCache::insert`].
    pub fn get(&self, hash: &str) -> Result<Arc<TokenEntry>, u64> {
        let inner = self.inner.lock();
        inner.entries.get(hash).cloned().ok_or(inner.generation)
    }

    /// Cache `entry` if nothing was invalidated since `generation` was read.
    pub fn insert(&self, generation: u64, entry: Arc<TokenEntry>) {
        if entry.num_uses != 0 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(entry.id_hash.clone(), entry);
    }

    /// Forget `hashes` and stop lookups that started earlier from caching.
    pub fn invalidate<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        for h in hashes {
            inner.entries.remove(h);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;

    use crate::barrier::{Barrier, BarrierView, KeyBytes};
    use crate::core::token::{CreateParams, TokenStore};
    use crate::storage::MemoryBackend;

    async fn store() -> TokenStore {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryBackend::new())));
        barrier.initialize(&KeyBytes::random()).await.unwrap();
        TokenStore::open(BarrierView::new(barrier, "sys/token/"))
            .await
            .unwrap()
    }

    async fn token(ts: &TokenStore, params: CreateParams) -> SecretString {
        ts.create(params, None).await.unwrap().client_token
    }

    fn ttl(secs: u64) -> CreateParams {
        CreateParams {
            policies: vec!["a".into()],
            ttl: Some(secs),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn used_tokens_are_cached_and_a_revoke_takes_effect_at_once() {
        let ts = store().await;
        let t = token(&ts, ttl(3600)).await;
        assert!(ts.cache.is_empty());
        let entry = ts.authenticate(&t).await.unwrap();
        assert_eq!(ts.cache.len(), 1);
        assert!(Arc::ptr_eq(&entry, &ts.authenticate(&t).await.unwrap()));
        ts.revoke_tree(&entry.id_hash).await.unwrap();
        assert!(ts.cache.is_empty());
        assert_eq!(ts.authenticate(&t).await.unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn children_revoked_with_their_parent_are_refused() {
        let ts = store().await;
        let parent = token(&ts, ttl(3600)).await;
        let parent_entry = ts.authenticate(&parent).await.unwrap();
        let child = ts
            .create(ttl(600), Some(&parent_entry))
            .await
            .unwrap()
            .client_token;
        ts.authenticate(&child).await.unwrap();
        assert_eq!(ts.cache.len(), 2);
        ts.revoke_tree(&parent_entry.id_hash).await.unwrap();
        assert_eq!(ts.authenticate(&child).await.unwrap_err().status(), 403);
        assert_eq!(ts.authenticate(&parent).await.unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn a_renewal_replaces_the_cached_entry() {
        let ts = store().await;
        let t = token(&ts, ttl(60)).await;
        let before = ts.authenticate(&t).await.unwrap();
        let renewed = ts.renew(&before.id_hash, 3000).await.unwrap();
        let after = ts.authenticate(&t).await.unwrap();
        assert_eq!(after.expire_time, renewed.entry.expire_time);
        assert_ne!(after.expire_time, before.expire_time);
    }

    #[tokio::test]
    async fn use_limited_tokens_are_never_cached() {
        let ts = store().await;
        let params = CreateParams {
            num_uses: 2,
            ..ttl(3600)
        };
        let t = token(&ts, params).await;
        ts.authenticate(&t).await.unwrap();
        ts.authenticate(&t).await.unwrap();
        assert!(ts.cache.is_empty());
        assert_eq!(ts.authenticate(&t).await.unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn a_lookup_that_raced_an_invalidation_does_not_cache() {
        let ts = store().await;
        let t = token(&ts, ttl(3600)).await;
        let entry = ts.authenticate(&t).await.unwrap();
        ts.cache.invalidate([entry.id_hash.as_str()]);
        let generation = ts.cache.get(&entry.id_hash).unwrap_err();
        ts.cache.invalidate(["unrelated"]);
        ts.cache.insert(generation, entry.clone());
        assert!(ts.cache.is_empty(), "a stale generation must not insert");
        let generation = ts.cache.get(&entry.id_hash).unwrap_err();
        ts.cache.insert(generation, entry);
        assert_eq!(ts.cache.len(), 1);
    }
}

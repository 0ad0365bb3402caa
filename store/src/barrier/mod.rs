//! The barrier: every value is encrypted with AES-256-GCM before it reaches storage.
//!
//! Stored entry layout: `[version = 1][term: u32 BE][nonce: 12 bytes][ciphertext || tag]`.
//! The AAD is the storage key, so a ciphertext copied to another key fails to open. Keys live
//! in a keyring of numbered terms: `rotate` adds a term used for new writes; older terms still
//! decrypt. The keyring is itself stored at [`KEYRING_PATH`], encrypted under the root key,
//! which only the seal (see [`seal`]) can recover.
//!
//! After a rotation, [`Barrier::rewrap`] (driven by the core's background task) moves entries
//! from older terms to the active one; a term no entry uses any more is then marked retired
//! ([`Barrier::retire_below`]): kept, so anything still under it stays readable, never used
//! to write. Every write holds per-key locks ([`locks`]) that the rewrap holds too, so the
//! rewrap never puts back a value a client replaced meanwhile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use arc_swap::ArcSwapOption;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::storage::{Backend, ImportStream, Op, StorageError};

pub mod locks;
mod rewrap;
pub mod seal;
pub mod view;

pub use rewrap::{RewrapCount, TermInfo};

pub use view::BarrierView;

/// Where the keyring is stored (encrypted with the root key, not with itself).
pub const KEYRING_PATH: &str = "core/keyring";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// 32 bytes of key material, wiped on drop, never printed.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct KeyBytes(pub [u8; 32]);

impl KeyBytes {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        KeyBytes(k)
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error("hushd is sealed")]
    Sealed,
    #[error("integrity check failed for storage entry {key:?}: the data was altered or corrupted")]
    Integrity { key: String },
    #[error("storage entry {key:?} is encrypted with unknown key term {term}")]
    UnknownTerm { key: String, term: u32 },
    #[error("the barrier is already initialized")]
    AlreadyInitialized,
    #[error("the barrier is not initialized")]
    NotInitialized,
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One key term.
struct TermKey {
    cipher: Aes256Gcm,
    key: KeyBytes,
    install_time: DateTime<Utc>,
    /// When the rewrap found no entry left under this term; it still decrypts.
    retired_time: Option<DateTime<Utc>>,
}

/// The unsealed keyring.
struct Keyring {
    active: u32,
    terms: BTreeMap<u32, TermKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    install_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_time: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active_term: u32,
    keys: Vec<StoredTerm>,
}

impl Drop for StoredKeyring {
    fn drop(&mut self) {
        for k in &mut self.keys {
            k.key.zeroize();
        }
    }
}

impl Keyring {
    /// Decrypt `entry`, stored at `key` under `term`, with that term's key.
    fn open_term(
        &self,
        key: &str,
        term: u32,
        entry: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let tk = self
            .terms
            .get(&term)
            .ok_or_else(|| BarrierError::UnknownTerm {
                key: key.to_string(),
                term,
            })?;
        open_with(&tk.cipher, key, entry)
    }

    fn with_first_term() -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(1, TermKey::new(KeyBytes::random(), Utc::now()));
        Keyring { active: 1, terms }
    }

    /// A copy, for a change to persist before it is swapped in.
    fn duplicate(&self) -> Keyring {
        Keyring {
            active: self.active,
            terms: self
                .terms
                .iter()
                .map(|(t, k)| {
                    let mut copy = TermKey::new(k.key.clone(), k.install_time);
                    copy.retired_time = k.retired_time;
                    (*t, copy)
                })
                .collect(),
        }
    }

    fn to_stored(&self) -> StoredKeyring {
        StoredKeyring {
            active_term: self.active,
            keys: self
                .terms
                .iter()
                .map(|(term, k)| StoredTerm {
                    term: *term,
                    key: base64::engine::general_purpose::STANDARD.encode(k.key.0),
                    install_time: k.install_time,
                    retired_time: k.retired_time,
                })
                .collect(),
        }
    }

    fn from_stored(stored: &StoredKeyring) -> Option<Self> {
        let mut terms = BTreeMap::new();
        for t in &stored.keys {
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(&t.key)
                    .ok()?,
            );
            let bytes: [u8; 32] = raw.as_slice().try_into().ok()?;
            let mut term = TermKey::new(KeyBytes(bytes), t.install_time);
            term.retired_time = t.retired_time;
            terms.insert(t.term, term);
        }
        terms.contains_key(&stored.active_term).then_some(Keyring {
            active: stored.active_term,
            terms,
        })
    }
}

impl TermKey {
    fn new(key: KeyBytes, install_time: DateTime<Utc>) -> Self {
        let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
        TermKey {
            cipher,
            key,
            install_time,
            retired_time: None,
        }
    }
}

/// Encrypt `plaintext` for storage under `path` with a single key (used for the keyring and
/// root key, and by the keyring for every entry).
pub fn seal_with(cipher: &Aes256Gcm, term: u32, path: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: path.as_bytes(),
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Read the term of a stored entry without decrypting it.
pub fn entry_term(path: &str, entry: &[u8]) -> Result<u32, BarrierError> {
    if entry.len() < HEADER_LEN + 16 || entry[0] != VERSION {
        return Err(BarrierError::Integrity {
            key: path.to_string(),
        });
    }
    Ok(u32::from_be_bytes(entry[1..5].try_into().expect("4 bytes")))
}

/// Decrypt an entry produced by [`seal_with`] for the same `path`.
pub fn open_with(
    cipher: &Aes256Gcm,
    path: &str,
    entry: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
    entry_term(path, entry)?;
    let nonce = Nonce::from_slice(&entry[5..HEADER_LEN]);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &entry[HEADER_LEN..],
                aad: path.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| BarrierError::Integrity {
            key: path.to_string(),
        })
}

/// Key status as `sys/key-status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: DateTime<Utc>,
    pub encryptions: u64,
}

/// The encryption barrier over a storage backend.
pub struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: ArcSwapOption<Keyring>,
    encryptions: AtomicU64,
    /// Held by every write and by the rewrap of an entry (see [`locks`]).
    key_locks: locks::KeyLocks,
    /// Serialises changes of the keyring (rotate, retire) so none is lost.
    keyring_change: tokio::sync::Mutex<()>,
    /// Held shared by every write from the moment it picks its term until storage answered;
    /// a rotation takes it alone to swap the keyring, so once it returns no write under the
    /// older term is still on its way to storage (the rewrap would not see one committed
    /// behind it), and [`Barrier::replace_all`] takes it alone so no write that began under
    /// the old keys lands in a restored store.
    write_fence: Arc<tokio::sync::RwLock<()>>,
    /// The active term (0 while sealed), for the rewrap task to follow rotations.
    active_term: tokio::sync::watch::Sender<u32>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("backend", &self.backend.kind())
            .field("sealed", &self.is_sealed())
            .finish()
    }
}

impl Barrier {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Barrier {
            backend,
            keyring: ArcSwapOption::empty(),
            encryptions: AtomicU64::new(0),
            key_locks: locks::KeyLocks::default(),
            keyring_change: tokio::sync::Mutex::new(()),
            write_fence: Arc::new(tokio::sync::RwLock::new(())),
            active_term: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.load().is_none()
    }

    /// Has a keyring ever been written?
    pub async fn is_initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.backend.get(KEYRING_PATH).await?.is_some())
    }

    /// Create the first key term, store the keyring under `root_key`, and unseal.
    pub async fn initialize(&self, root_key: &KeyBytes) -> Result<(), BarrierError> {
        if self.is_initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let keyring = Keyring::with_first_term();
        self.persist_keyring(root_key, &keyring).await?;
        self.install(keyring);
        Ok(())
    }

    /// Load the keyring with the root key. A wrong root key is an integrity error.
    pub async fn unseal(&self, root_key: &KeyBytes) -> Result<(), BarrierError> {
        let entry = self
            .backend
            .get(KEYRING_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let cipher = Aes256Gcm::new_from_slice(&root_key.0).expect("32-byte key");
        let plain = open_with(&cipher, KEYRING_PATH, &entry)?;
        let stored: StoredKeyring =
            serde_json::from_slice(&plain).map_err(|_| BarrierError::Integrity {
                key: KEYRING_PATH.into(),
            })?;
        let keyring = Keyring::from_stored(&stored).ok_or_else(|| BarrierError::Integrity {
            key: KEYRING_PATH.into(),
        })?;
        self.install(keyring);
        Ok(())
    }

    /// Use `keyring` from now on and tell the followers of the active term.
    fn install(&self, keyring: Keyring) {
        let active = keyring.active;
        self.keyring.store(Some(Arc::new(keyring)));
        self.active_term.send_replace(active);
    }

    /// Forget every key. Data stays encrypted in storage.
    pub fn seal(&self) {
        self.keyring.store(None);
        self.active_term.send_replace(0);
    }

    /// Follows the active term: changes at every rotation; 0 while sealed.
    pub fn active_term_changes(&self) -> tokio::sync::watch::Receiver<u32> {
        self.active_term.subscribe()
    }

    /// Add a key term; new writes use it, old terms still decrypt.
    pub async fn rotate(&self, root_key: &KeyBytes) -> Result<KeyStatus, BarrierError> {
        let _change = self.keyring_change.lock().await;
        let current = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let mut keyring = current.duplicate();
        let next = current.active + 1;
        keyring
            .terms
            .insert(next, TermKey::new(KeyBytes::random(), Utc::now()));
        keyring.active = next;
        self.persist_keyring(root_key, &keyring).await?;
        let _no_write_in_flight = self.write_fence.write().await;
        self.install(keyring);
        self.encryptions.store(0, Ordering::Relaxed);
        self.key_status()
    }

    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let active = &ring.terms[&ring.active];
        Ok(KeyStatus {
            term: ring.active,
            install_time: active.install_time,
            encryptions: self.encryptions.load(Ordering::Relaxed),
        })
    }

    async fn persist_keyring(
        &self,
        root_key: &KeyBytes,
        keyring: &Keyring,
    ) -> Result<(), BarrierError> {
        let plain = Zeroizing::new(serde_json::to_vec(&keyring.to_stored()).expect("json"));
        let cipher = Aes256Gcm::new_from_slice(&root_key.0).expect("32-byte key");
        let entry = seal_with(&cipher, 0, KEYRING_PATH, &plain);
        self.backend
            .write(vec![Op::Put {
                key: KEYRING_PATH.into(),
                value: entry,
            }])
            .await?;
        Ok(())
    }

    fn check_key(key: &str) -> Result<(), BarrierError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key.split('/').any(|seg| seg == ".." || seg == ".")
            || key == KEYRING_PATH
            || key.starts_with(seal::SEAL_PREFIX);
        if bad {
            return Err(BarrierError::InvalidKey(key.to_string()));
        }
        Ok(())
    }

    /// Decrypt the value at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BarrierError> {
        Self::check_key(key)?;
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let Some(entry) = self.backend.get(key).await? else {
            return Ok(None);
        };
        let term = entry_term(key, &entry)?;
        ring.open_term(key, term, &entry).map(Some)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        if self.is_sealed() {
            return Err(BarrierError::Sealed);
        }
        Ok(self.backend.list(prefix).await?)
    }

    pub async fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        if self.is_sealed() {
            return Err(BarrierError::Sealed);
        }
        Ok(self.backend.scan_prefix(prefix).await?)
    }

    /// Up to `limit` keys below `prefix` after `start_after`, in key order (see
    /// [`Backend::scan_range`](crate::storage::Backend::scan_range)).
    pub async fn scan_range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BarrierError> {
        if self.is_sealed() {
            return Err(BarrierError::Sealed);
        }
        Ok(self.backend.scan_range(prefix, start_after, limit).await?)
    }

    /// Encrypt and write a batch atomically. Plaintext buffers are wiped once encrypted.
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), BarrierError> {
        for op in &ops {
            Self::check_key(op.key())?;
        }
        // The keys' locks first, then the fence and the keyring: a write picks its term only
        // once no rewrap page holds its keys, and a rotation (or a restore) waits for it to
        // reach storage.
        let guards = self.key_locks.lock(ops.iter().map(Op::key)).await;
        let fence = self.write_fence.clone().read_owned().await;
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let active = &ring.terms[&ring.active];
        let mut sealed = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, mut value } => {
                    let entry = seal_with(&active.cipher, ring.active, &key, &value);
                    value.zeroize();
                    sealed.push(Op::Put { key, value: entry });
                }
                del @ Op::Delete { .. } => sealed.push(del),
            }
        }
        let n = sealed
            .iter()
            .filter(|o| matches!(o, Op::Put { .. }))
            .count() as u64;
        locks::KeyLocks::write_holding((guards, fence), self.backend.clone(), sealed).await?;
        self.encryptions.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Replace every storage entry (ciphertext as it is, the seal's and the keyring's
    /// included) by `entries`, all or nothing ([`Backend::replace_all`]). Only while sealed;
    /// first waits for every write in flight, and no write starts until it is done.
    pub async fn replace_all(&self, entries: ImportStream) -> Result<u64, BarrierError> {
        let _gate = self.write_fence.write().await;
        if !self.is_sealed() {
            return Err(BarrierError::Storage(StorageError::Backend(
                "storage is replaced only while sealed".into(),
            )));
        }
        Ok(self.backend.replace_all(entries).await?)
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), BarrierError> {
        self.write(vec![Op::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.write(vec![Op::Delete {
            key: key.to_string(),
        }])
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;

    async fn unsealed() -> (Arc<MemoryBackend>, Barrier, KeyBytes) {
        let backend = Arc::new(MemoryBackend::new());
        let barrier = Barrier::new(backend.clone());
        let root = KeyBytes::random();
        barrier.initialize(&root).await.unwrap();
        (backend, barrier, root)
    }

    #[tokio::test]
    async fn round_trip_and_ciphertext_bound_to_key() {
        let (backend, barrier, _) = unsealed().await;
        barrier.put("a/b", b"top secret".to_vec()).await.unwrap();
        assert_eq!(
            barrier.get("a/b").await.unwrap().unwrap().as_slice(),
            b"top secret"
        );
        let raw = backend.get("a/b").await.unwrap().unwrap();
        assert!(!raw.windows(10).any(|w| w == b"top secret"));
        // Copy the ciphertext to another key: it must not open there.
        backend
            .write(vec![Op::Put {
                key: "a/c".into(),
                value: raw,
            }])
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("a/c").await,
            Err(BarrierError::Integrity { .. })
        ));
    }

    #[tokio::test]
    async fn flipped_byte_is_an_integrity_error() {
        let (backend, barrier, _) = unsealed().await;
        barrier.put("k", b"value".to_vec()).await.unwrap();
        let mut raw = backend.get("k").await.unwrap().unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        backend
            .write(vec![Op::Put {
                key: "k".into(),
                value: raw,
            }])
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("k").await,
            Err(BarrierError::Integrity { .. })
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_old_terms_readable_across_unseal() {
        let (backend, barrier, root) = unsealed().await;
        barrier.put("old", b"1".to_vec()).await.unwrap();
        let st = barrier.rotate(&root).await.unwrap();
        assert_eq!(st.term, 2);
        barrier.put("new", b"2".to_vec()).await.unwrap();
        assert_eq!(
            entry_term("new", &backend.get("new").await.unwrap().unwrap()).unwrap(),
            2
        );
        barrier.seal();
        assert!(matches!(
            barrier.get("old").await,
            Err(BarrierError::Sealed)
        ));
        barrier.unseal(&root).await.unwrap();
        assert_eq!(barrier.get("old").await.unwrap().unwrap().as_slice(), b"1");
        assert_eq!(barrier.get("new").await.unwrap().unwrap().as_slice(), b"2");
        assert_eq!(barrier.key_status().unwrap().term, 2);
    }

    #[tokio::test]
    async fn wrong_root_key_does_not_unseal() {
        let (_, barrier, _) = unsealed().await;
        barrier.seal();
        assert!(barrier.unseal(&KeyBytes::random()).await.is_err());
        assert!(barrier.is_sealed());
    }

    #[tokio::test]
    async fn traversal_keys_are_refused() {
        let (_, barrier, _) = unsealed().await;
        for bad in ["../x", "a/../b", "/abs", "", "core/keyring"] {
            assert!(barrier.put(bad, vec![1]).await.is_err(), "{bad}");
        }
    }
}

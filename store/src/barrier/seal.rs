//! The Shamir seal: initialisation, unseal progress, sealing.
//!
//! At init a random 32-byte unseal key (the KEK) and a random 32-byte root key are made. The
//! root key is stored encrypted under the KEK; the KEK itself is never stored, only handed out
//! split into Shamir shares (`blahaj`, GF(256)), or whole when there is a single share.
//! Unsealing collects shares until the threshold, recombines the KEK, decrypts the root key
//! and hands it to [`Barrier::unseal`], which opens the keyring.
//!
//! Rekeying ([`Seal::rekey`], `sys/rekey`) takes a quorum of the current shares, checks they
//! open the root key, and makes a new KEK split under a new configuration: the configuration
//! and the root key sealed under the new KEK are written in one atomic batch. The root key and
//! the barrier keyring stay the same (as Vault's rekey of Shamir unseal keys).
//!
//! Storage layout (written straight to the [`Backend`]; the barrier refuses [`SEAL_PREFIX`]):
//! - `core/seal/config`: plaintext JSON `{"type":"shamir","secret_shares":N,"secret_threshold":T}`
//! - `core/seal/root-key`: the root key sealed with [`seal_with`] under the KEK (AAD = path).
//!
//! A share is 33 bytes: the x coordinate (1..=255) then 32 y bytes. With one share the key is
//! the 32-byte KEK itself.

use std::sync::Arc;

use aes_gcm::{Aes256Gcm, KeyInit};
use blahaj::{Share, Sharks};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{open_with, seal_with, Barrier, BarrierError, KeyBytes};
use crate::storage::{Backend, Op, StorageError};

/// Storage keys under this prefix belong to the seal and are written in the clear or under
/// the unseal key, never through the barrier.
pub const SEAL_PREFIX: &str = "core/seal/";
/// The seal configuration (plaintext JSON).
pub const CONFIG_PATH: &str = "core/seal/config";
/// The root key, encrypted under the unseal key.
pub const ROOT_KEY_PATH: &str = "core/seal/root-key";

const KEY_LEN: usize = 32;
const SHARE_LEN: usize = KEY_LEN + 1;

/// How many shares the unseal key is split into and how many unseal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

impl SealConfig {
    /// Length in bytes of one unseal key under this config.
    pub fn key_len(&self) -> usize {
        if self.secret_shares == 1 {
            KEY_LEN
        } else {
            SHARE_LEN
        }
    }
}

/// The stored form of [`SealConfig`].
#[derive(Serialize, Deserialize)]
struct StoredConfig {
    #[serde(rename = "type")]
    kind: String,
    secret_shares: u8,
    secret_threshold: u8,
}

/// The unseal keys made by [`Seal::initialize`]: shown once to the operator, never stored.
pub struct InitOutput {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for InitOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InitOutput {{ keys: [{} redacted] }}", self.keys.len())
    }
}

/// Where an unseal attempt stands (the fields of Vault's `sys/unseal` answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsealProgress {
    pub sealed: bool,
    pub progress: u8,
    pub threshold: u8,
    pub shares: u8,
    /// Identifies the current attempt; empty when no share was submitted yet.
    pub nonce: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("hushd is already initialized")]
    AlreadyInitialized,
    #[error("hushd is not initialized")]
    NotInitialized,
    #[error("invalid seal parameters: {0}")]
    InvalidParameters(String),
    /// The message never holds key material.
    #[error("invalid unseal key: {0}")]
    InvalidKey(String),
    /// The nonce given is not the one of the attempt in progress.
    #[error("incorrect nonce: it must be the one of the attempt in progress")]
    WrongNonce,
    #[error("no rekey in progress")]
    NoRekey,
    #[error("no rekey verification in progress")]
    NoRekeyVerification,
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Unseal-key shares collected toward the threshold: for unsealing, and for
/// `sys/generate-root`. Never shown.
#[derive(Default)]
pub struct Shares {
    parts: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shares {{ {} redacted }}", self.parts.len())
    }
}

impl Shares {
    /// Add `key`, checked as an unseal key. A share given again is ignored (as Vault).
    /// `Ok(true)`: the threshold is reached.
    pub fn add(&mut self, config: &SealConfig, key: &[u8]) -> Result<bool, SealError> {
        let expected = config.key_len();
        if key.len() != expected {
            return Err(SealError::InvalidKey(format!(
                "wrong length: expected {expected} bytes, got {}",
                key.len()
            )));
        }
        if config.secret_shares > 1 && key[0] == 0 {
            return Err(SealError::InvalidKey(
                "not a share of this seal (index 0)".into(),
            ));
        }
        if let Some(same) = self
            .parts
            .iter()
            .find(|s| s[0] == key[0] && config.secret_shares > 1)
        {
            if bool::from(same.as_slice().ct_eq(key)) {
                return Ok(false);
            }
            return Err(SealError::InvalidKey(
                "a different share with the same index was already submitted".into(),
            ));
        }
        self.parts.push(Zeroizing::new(key.to_vec()));
        Ok(self.parts.len() >= usize::from(config.secret_threshold))
    }

    /// How many shares were given.
    pub fn count(&self) -> u8 {
        u8::try_from(self.parts.len()).unwrap_or(u8::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Take the shares, leaving none.
    pub fn take(&mut self) -> Shares {
        std::mem::take(self)
    }
}

/// Shares submitted so far in the current unseal attempt.
#[derive(Default)]
struct Progress {
    shares: Shares,
    nonce: String,
}

/// What [`Quorum::submit`] did with a share.
#[derive(Debug)]
pub enum QuorumStep {
    /// The same share was given before: nothing changed.
    Duplicate,
    /// Counted; more are needed.
    More,
    /// The threshold is reached: the shares, taken out (progress is back to 0 whatever their
    /// check says, as Vault).
    Complete(Shares),
}

/// An operation run by a quorum of the unseal-key holders while unsealed (`sys/generate-root`,
/// `sys/rekey`): its nonce and the shares given so far. Never shows the shares.
#[derive(Debug)]
pub struct Quorum {
    pub nonce: String,
    shares: Shares,
}

impl Default for Quorum {
    fn default() -> Self {
        Self::new()
    }
}

impl Quorum {
    /// A new attempt with a fresh nonce (a UUID, as Vault).
    pub fn new() -> Self {
        Quorum {
            nonce: uuid::Uuid::new_v4().to_string(),
            shares: Shares::default(),
        }
    }

    /// Shares counted so far.
    pub fn progress(&self) -> u8 {
        self.shares.count()
    }

    /// Check `nonce` is this attempt's, then add `key`, checked as an unseal key of `config`.
    pub fn submit(
        &mut self,
        config: &SealConfig,
        nonce: &str,
        key: &[u8],
    ) -> Result<QuorumStep, SealError> {
        if self.nonce != nonce {
            return Err(SealError::WrongNonce);
        }
        let before = self.shares.count();
        if self.shares.add(config, key)? {
            return Ok(QuorumStep::Complete(self.shares.take()));
        }
        Ok(if self.shares.count() == before {
            QuorumStep::Duplicate
        } else {
            QuorumStep::More
        })
    }
}

/// A `sys/generate-root` attempt: its quorum, and the one-time pad the new root token is
/// encoded with. Never shown in `Debug` or logs.
pub struct RootGeneration {
    pub quorum: Quorum,
    pub otp: Zeroizing<String>,
}

impl std::fmt::Debug for RootGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootGeneration")
            .field("quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}

/// A `sys/rekey` attempt: its quorum of current shares and the configuration of the new ones.
/// With `verify` (Vault's `require_verification`) the new keys are answered first and take
/// effect only once a quorum of them is given back (`pending`).
#[derive(Debug)]
pub struct Rekey {
    pub quorum: Quorum,
    pub new: SealConfig,
    pub verify: bool,
    pub pending: Option<PendingKeys>,
}

impl Rekey {
    pub fn new(new: SealConfig, verify: bool) -> Self {
        Rekey {
            quorum: Quorum::new(),
            new,
            verify,
            pending: None,
        }
    }
}

/// New unseal keys answered but not yet in force (`require_verification`): the new KEK, the
/// root key it will seal, and the quorum of new shares given back so far.
pub struct PendingKeys {
    kek: KeyBytes,
    root: KeyBytes,
    pub quorum: Quorum,
}

impl std::fmt::Debug for PendingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingKeys")
            .field("quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}

/// What [`Seal::rekey`] did.
#[derive(Debug)]
pub struct RekeyDone {
    /// The new unseal keys (shown once).
    pub keys: InitOutput,
    pub config: SealConfig,
    /// `Some(nonce of the verification)` when the keys await verification; `None` when they
    /// are in force.
    pub verification_nonce: Option<String>,
}

/// The Shamir seal over a backend. See the module docs.
pub struct Seal {
    backend: Arc<dyn Backend>,
    progress: Mutex<Progress>,
    root: Mutex<Option<KeyBytes>>,
    init_lock: tokio::sync::Mutex<()>,
    /// The `sys/generate-root` attempt in progress, if any; dropped when sealing.
    root_generation: Mutex<Option<RootGeneration>>,
    /// The `sys/rekey` attempt in progress, if any; dropped when sealing.
    rekey: Mutex<Option<Rekey>>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal")
            .field("backend", &self.backend.kind())
            .field("progress", &self.progress.lock().shares.count())
            .field("root_key", &self.root.lock().as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Check Vault's rules: 1 <= threshold <= shares <= 255, and threshold > 1 when shares > 1.
pub fn validate(shares: u8, threshold: u8) -> Result<(), SealError> {
    let bad = |m: &str| Err(SealError::InvalidParameters(m.to_string()));
    if shares == 0 {
        return bad("secret_shares must be at least 1");
    }
    if threshold == 0 {
        return bad("secret_threshold must be at least 1");
    }
    if threshold > shares {
        return bad("secret_threshold cannot be larger than secret_shares");
    }
    if shares > 1 && threshold == 1 {
        return bad("secret_threshold must be greater than 1 when secret_shares is greater than 1");
    }
    Ok(())
}

fn corrupt(what: &str) -> SealError {
    SealError::Storage(StorageError::Backend(format!(
        "the stored seal {what} is unreadable"
    )))
}

/// The batch that stores `config` and the root key sealed under `kek`: written together, so
/// the stored configuration always matches the key that opens the root key.
fn seal_entries(kek: &KeyBytes, root: &KeyBytes, config: SealConfig) -> Result<Vec<Op>, SealError> {
    let sealed_root = seal_with(&kek_cipher(&kek.0)?, 0, ROOT_KEY_PATH, &root.0);
    let config = StoredConfig {
        kind: "shamir".into(),
        secret_shares: config.secret_shares,
        secret_threshold: config.secret_threshold,
    };
    let config = serde_json::to_vec(&config).expect("config serialises");
    Ok(vec![
        Op::Put {
            key: CONFIG_PATH.into(),
            value: config,
        },
        Op::Put {
            key: ROOT_KEY_PATH.into(),
            value: sealed_root,
        },
    ])
}

/// The unseal keys for `kek` under `config`: the KEK itself when there is one share, else
/// Shamir shares.
fn deal(kek: &KeyBytes, config: SealConfig) -> Vec<Zeroizing<Vec<u8>>> {
    if config.secret_shares == 1 {
        vec![Zeroizing::new(kek.0.to_vec())]
    } else {
        Sharks(config.secret_threshold)
            .dealer(&kek.0)
            .take(usize::from(config.secret_shares))
            .map(|s| Zeroizing::new(Vec::from(&s)))
            .collect()
    }
}

fn kek_cipher(kek: &[u8]) -> Result<Aes256Gcm, SealError> {
    Aes256Gcm::new_from_slice(kek)
        .map_err(|_| SealError::InvalidKey(format!("expected a {KEY_LEN}-byte unseal key")))
}

/// Rebuild the unseal key from the submitted parts.
fn combine(
    config: &SealConfig,
    parts: &[Zeroizing<Vec<u8>>],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if config.secret_shares == 1 {
        let only = parts
            .first()
            .ok_or_else(|| SealError::InvalidKey("no key submitted".into()))?;
        return Ok(only.clone());
    }
    let shares = parts
        .iter()
        .map(|p| Share::try_from(p.as_slice()))
        .collect::<Result<Vec<Share>, _>>()
        .map_err(|_| SealError::InvalidKey("malformed share".into()))?;
    let kek = Sharks(config.secret_threshold)
        .recover(&shares)
        .map_err(|_| SealError::InvalidKey("the shares could not be combined".into()))?;
    Ok(Zeroizing::new(kek))
}

impl Seal {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Seal {
            backend,
            progress: Mutex::new(Progress::default()),
            root: Mutex::new(None),
            init_lock: tokio::sync::Mutex::new(()),
            root_generation: Mutex::new(None),
            rekey: Mutex::new(None),
        }
    }

    /// The stored configuration, `None` before init.
    pub async fn config(&self) -> Result<Option<SealConfig>, SealError> {
        let Some(raw) = self.backend.get(CONFIG_PATH).await? else {
            return Ok(None);
        };
        let stored: StoredConfig =
            serde_json::from_slice(&raw).map_err(|_| corrupt("configuration"))?;
        if stored.kind != "shamir"
            || validate(stored.secret_shares, stored.secret_threshold).is_err()
        {
            return Err(corrupt("configuration"));
        }
        Ok(Some(SealConfig {
            secret_shares: stored.secret_shares,
            secret_threshold: stored.secret_threshold,
        }))
    }

    pub async fn is_initialized(&self) -> Result<bool, SealError> {
        Ok(self.config().await?.is_some())
    }

    /// Validates 1 <= threshold <= shares <= 255 (and threshold > 1 when shares > 1, as Vault);
    /// makes KEK + root key, stores both entries, calls `barrier.initialize(&root)`, returns the
    /// shares. With `shares == 1` the single key is the KEK itself. Leaves the barrier
    /// unsealed (the core seals it).
    pub async fn initialize(
        &self,
        barrier: &Barrier,
        shares: u8,
        threshold: u8,
    ) -> Result<InitOutput, SealError> {
        validate(shares, threshold)?;
        let _one_at_a_time = self.init_lock.lock().await;
        if self.config().await?.is_some() || barrier.is_initialized().await? {
            return Err(SealError::AlreadyInitialized);
        }
        let kek = KeyBytes::random();
        let root = KeyBytes::random();
        let config = SealConfig {
            secret_shares: shares,
            secret_threshold: threshold,
        };
        self.backend
            .write(seal_entries(&kek, &root, config)?)
            .await?;
        if let Err(e) = barrier.initialize(&root).await {
            // Best effort: leave no seal behind for a keyring that was not written.
            let _ = self
                .backend
                .write(vec![
                    Op::Delete {
                        key: CONFIG_PATH.into(),
                    },
                    Op::Delete {
                        key: ROOT_KEY_PATH.into(),
                    },
                ])
                .await;
            return Err(e.into());
        }
        let keys = deal(&kek, config);
        *self.root.lock() = Some(root);
        self.reset();
        Ok(InitOutput { keys })
    }

    /// One unseal key (raw bytes; the HTTP layer decodes hex or base64). A duplicate share is
    /// ignored with no progress (as Vault). On reaching the threshold: combine, decrypt the
    /// root key (failure = [`SealError::InvalidKey`], progress reset), `barrier.unseal(root)`.
    pub async fn submit(&self, barrier: &Barrier, key: &[u8]) -> Result<UnsealProgress, SealError> {
        let config = self.config().await?.ok_or(SealError::NotInitialized)?;
        if !barrier.is_sealed() {
            return Ok(status(&config, false, &Progress::default()));
        }
        let parts = {
            let mut p = self.progress.lock();
            let first = p.shares.is_empty();
            let complete = p.shares.add(&config, key)?;
            if first {
                p.nonce = uuid::Uuid::new_v4().to_string();
            }
            if !complete {
                return Ok(status(&config, true, &p));
            }
            p.nonce.clear();
            p.shares.take()
        };
        let root = self.open_root(&config, parts).await.map_err(|e| match e {
            SealError::InvalidKey(m) => {
                SealError::InvalidKey(format!("{m}; unseal progress was reset"))
            }
            other => other,
        })?;
        barrier.unseal(&root).await?;
        *self.root.lock() = Some(root);
        Ok(status(&config, false, &Progress::default()))
    }

    /// Combine a full set of shares and open the stored root key with it.
    async fn open_root(&self, config: &SealConfig, parts: Shares) -> Result<KeyBytes, SealError> {
        let kek = combine(config, &parts.parts)?;
        drop(parts);
        let entry = self
            .backend
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(SealError::NotInitialized)?;
        let plain = open_with(&kek_cipher(&kek)?, ROOT_KEY_PATH, &entry).map_err(|_| {
            SealError::InvalidKey("the unseal keys do not open the root key".into())
        })?;
        if plain.len() != KEY_LEN {
            return Err(corrupt("root key"));
        }
        let mut root = KeyBytes([0; KEY_LEN]);
        root.0.copy_from_slice(&plain);
        Ok(root)
    }

    /// Check that a full set of shares (from [`Shares::add`]) is this seal's unseal key: it
    /// must open the stored root key. For `sys/generate-root`.
    pub async fn verify_shares(&self, parts: Shares) -> Result<(), SealError> {
        let config = self.config().await?.ok_or(SealError::NotInitialized)?;
        self.open_root(&config, parts).await.map(drop)
    }

    /// The `sys/generate-root` attempt (locked); `None` when there is none.
    pub fn root_generation(&self) -> parking_lot::MutexGuard<'_, Option<RootGeneration>> {
        self.root_generation.lock()
    }

    /// The `sys/rekey` attempt (locked); `None` when there is none.
    pub fn rekey_attempt(&self) -> parking_lot::MutexGuard<'_, Option<Rekey>> {
        self.rekey.lock()
    }

    /// Complete the quorum of the rekey attempt `nonce`: `parts` (its full set of current
    /// shares, from [`Quorum::submit`]) must open the stored root key; then a new KEK is made
    /// and split under the attempt's configuration. Without verification the attempt ends and
    /// the root key is stored sealed under the new KEK with the new configuration, in one
    /// atomic, durable write: the old shares no longer unseal. With verification the new keys
    /// wait in the attempt ([`Seal::rekey_verify`]). The root key and the keyring are
    /// unchanged. Shares that do not open the root key leave the attempt in place (its
    /// progress already reset).
    pub async fn rekey(&self, nonce: &str, parts: Shares) -> Result<RekeyDone, SealError> {
        let _one_at_a_time = self.init_lock.lock().await;
        let config = self.config().await?.ok_or(SealError::NotInitialized)?;
        let root = self.open_root(&config, parts).await?;
        let kek = KeyBytes::random();
        let (new, verification_nonce) = {
            let mut guard = self.rekey.lock();
            let attempt = guard
                .as_mut()
                .filter(|a| a.quorum.nonce == nonce && a.pending.is_none())
                .ok_or(SealError::NoRekey)?;
            let new = attempt.new;
            validate(new.secret_shares, new.secret_threshold)?;
            if attempt.verify {
                let quorum = Quorum::new();
                let verification_nonce = quorum.nonce.clone();
                attempt.pending = Some(PendingKeys {
                    kek: kek.clone(),
                    root: root.clone(),
                    quorum,
                });
                (new, Some(verification_nonce))
            } else {
                *guard = None;
                (new, None)
            }
        };
        if verification_nonce.is_none() {
            self.backend.write(seal_entries(&kek, &root, new)?).await?;
        }
        Ok(RekeyDone {
            keys: InitOutput {
                keys: deal(&kek, new),
            },
            config: new,
            verification_nonce,
        })
    }

    /// Finish a verified rekey: `parts` (a full set of the new shares, given back under the
    /// verification `nonce`) must rebuild the pending KEK; then the attempt ends and the new
    /// configuration and the root key sealed under the new KEK are written in one atomic,
    /// durable batch. A wrong set leaves the attempt waiting (its progress already reset).
    pub async fn rekey_verify(&self, nonce: &str, parts: Shares) -> Result<SealConfig, SealError> {
        let _one_at_a_time = self.init_lock.lock().await;
        let (kek, root, new) = {
            let mut guard = self.rekey.lock();
            let attempt = guard
                .as_ref()
                .filter(|a| a.pending.as_ref().is_some_and(|p| p.quorum.nonce == nonce))
                .ok_or(SealError::NoRekeyVerification)?;
            let pending = attempt.pending.as_ref().expect("filtered");
            let given = combine(&attempt.new, &parts.parts)?;
            if !bool::from(given.as_slice().ct_eq(&pending.kek.0)) {
                return Err(SealError::InvalidKey(
                    "the new unseal keys given do not rebuild the new unseal key".into(),
                ));
            }
            let attempt = guard.take().expect("checked above");
            let pending = attempt.pending.expect("checked above");
            (pending.kek, pending.root, attempt.new)
        };
        self.backend.write(seal_entries(&kek, &root, new)?).await?;
        Ok(new)
    }

    /// Forget the shares submitted so far.
    pub fn reset(&self) {
        *self.progress.lock() = Progress::default();
    }

    /// `(shares submitted so far, nonce of the attempt)`.
    pub fn progress(&self) -> (u8, String) {
        let p = self.progress.lock();
        (p.shares.count(), p.nonce.clone())
    }

    /// Root key while unsealed (needed by `barrier.rotate`); `None` when sealed.
    pub fn root_key(&self) -> Option<KeyBytes> {
        self.root.lock().clone()
    }

    /// `barrier.seal()`, forget the root key, reset progress.
    pub fn seal(&self, barrier: &Barrier) {
        barrier.seal();
        *self.root.lock() = None;
        *self.root_generation.lock() = None;
        *self.rekey.lock() = None;
        self.reset();
    }
}

fn status(config: &SealConfig, sealed: bool, p: &Progress) -> UnsealProgress {
    UnsealProgress {
        sealed,
        progress: p.shares.count(),
        threshold: config.secret_threshold,
        shares: config.secret_shares,
        nonce: p.nonce.clone(),
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;

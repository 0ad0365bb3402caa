//! Snapshots of the whole store (`sys/storage/snapshot`): save, verify, restore.
//!
//! The file format (entries as storage holds them, ciphertext, and a manifest) is
//! [`hush_api::snapshot`]; this module adds what needs the store's keys and its storage.
//!
//! # Authentication
//! The manifest (entry count, SHA-256 of the content, key terms) is authenticated with
//! HMAC-SHA256 under a key derived from the root key: `HKDF-Expand(root key, "hush snapshot
//! manifest mac v1", 32)` (RFC 5869; the extract step is skipped because the root key is
//! already 32 uniformly random bytes). The root key is the key every other key of the store
//! hangs from and does not change on `sys/rotate` or `sys/rekey`, so a store restored from a
//! snapshot, or a store unsealed with the same keys, can check it. The manifest also carries a
//! key id (`HKDF-Expand(root key, "hush snapshot key id v1", 8)`, hex), which says whether the
//! store's keys are the snapshot's without revealing anything about the key: a snapshot whose
//! key id differs needs `force`, and then only its integrity (the SHA-256, structure, counts)
//! is checked, not who made it.
//!
//! # Restore
//! The upload is spooled to a temporary file, then read twice: the first pass checks all of
//! it (structure, order, counts, hash, and the MAC unless forced) before anything is written;
//! the second feeds [`Core::seal_and_replace`], one storage transaction, and checks the hash
//! again, committing only if it still matches. Memory stays bounded by one entry plus the
//! channel between the passes and storage.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use hush_api::snapshot::{self as format, SnapshotError, Verified, Writer, MAC_LEN};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::state::Core;
use crate::barrier::seal::{CONFIG_PATH, ROOT_KEY_PATH};
use crate::barrier::{KeyBytes, KEYRING_PATH};
use crate::logical::LogicalError;
use crate::storage::{Import, STREAM_DEPTH};

/// Bytes of snapshot gathered before they are sent on as one chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

const MAC_INFO: &[u8] = b"hush snapshot manifest mac v1";
const KEY_ID_INFO: &[u8] = b"hush snapshot key id v1";

type HmacSha256 = Hmac<Sha256>;

/// HKDF-Expand (RFC 5869) of one block: `HMAC(prk, info || 0x01)`.
fn expand(root: &KeyBytes, info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(&root.0).expect("HMAC takes any key length");
    mac.update(info);
    mac.update(&[1]);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The key id the manifest carries.
pub fn key_id(root: &KeyBytes) -> String {
    hex::encode(&expand(root, KEY_ID_INFO)[..8])
}

fn manifest_mac(root: &KeyBytes) -> HmacSha256 {
    let key = expand(root, MAC_INFO);
    HmacSha256::new_from_slice(&key[..]).expect("HMAC takes any key length")
}

/// The MAC of `manifest` (as encoded) under `root`.
pub fn mac(root: &KeyBytes, manifest: &[u8]) -> [u8; MAC_LEN] {
    let mut m = manifest_mac(root);
    m.update(&format::mac_input(manifest));
    m.finalize().into_bytes().into()
}

/// Whether the manifest's MAC is right under `root` (compared in constant time).
fn mac_ok(root: &KeyBytes, manifest: &[u8], tag: &[u8]) -> bool {
    let mut m = manifest_mac(root);
    m.update(&format::mac_input(manifest));
    m.verify_slice(tag).is_ok()
}

fn root_key(core: &Core) -> Result<KeyBytes, LogicalError> {
    core.seal_handle().root_key().ok_or(LogicalError::Sealed)
}

/// A snapshot being saved: its bytes, in chunks, and how many entries storage held when it
/// started (for progress: the stream itself is the consistent count).
#[derive(Debug)]
pub struct Saving {
    pub chunks: mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
    pub estimate: u64,
}

/// Start a snapshot: one consistent export of storage, encoded as it is read. A storage
/// error ends the chunks with `Err` (the HTTP body is then cut short, and the file has no
/// manifest: no reader accepts it).
pub async fn save(core: &Core) -> Result<Saving, LogicalError> {
    let root = root_key(core)?;
    let backend = core.barrier().backend().clone();
    let estimate = backend.count_prefix("").await?;
    let mut entries = backend.export().await?;
    let storage_type = backend.kind();
    let (tx, chunks) = mpsc::channel(8);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut writer = Writer::new(&mut buf);
        while let Some(entry) = entries.recv().await {
            let step = entry
                .map_err(|e| e.to_string())
                .and_then(|(k, v)| writer.entry(&k, &v, &mut buf).map_err(|e| e.to_string()));
            if let Err(e) = step {
                tracing::error!(error = %e, "snapshot save failed");
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
            if buf.len() >= CHUNK_BYTES && tx.send(Ok(std::mem::take(&mut buf))).await.is_err() {
                tracing::warn!("snapshot save: the client went away");
                return;
            }
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let manifest = writer.manifest(storage_type, created, &key_id(&root));
        let bytes = serde_json::to_vec(&manifest).expect("the manifest serializes");
        Writer::tail(&bytes, &mac(&root, &bytes), &mut buf);
        if tx.send(Ok(buf)).await.is_ok() {
            tracing::info!(
                entries = manifest.entries,
                bytes = manifest.content_bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot saved"
            );
        }
    });
    Ok(Saving { chunks, estimate })
}

fn invalid(e: &SnapshotError) -> LogicalError {
    LogicalError::invalid(format!("invalid snapshot: {e}"))
}

/// Read all of the snapshot at `path`, checking it, and that it holds a store (the seal's
/// entries and the keyring). Blocking.
fn check_file(path: &Path) -> Result<Verified, LogicalError> {
    let file = std::fs::File::open(path)
        .map_err(|e| LogicalError::Internal(format!("cannot open the spooled snapshot: {e}")))?;
    let mut needed = [CONFIG_PATH, ROOT_KEY_PATH, KEYRING_PATH].map(|k| (k, false));
    let verified = format::verify(BufReader::with_capacity(1 << 20, file), |key, _| {
        for (k, seen) in needed.iter_mut() {
            *seen |= *k == key;
        }
    })
    .map_err(|e| invalid(&e))?;
    if let Some((missing, _)) = needed.iter().find(|(_, seen)| !seen) {
        return Err(LogicalError::invalid(format!(
            "invalid snapshot: it holds no {missing:?}: not a snapshot of an initialised Hush store"
        )));
    }
    Ok(verified)
}

/// How a manifest compares with this store's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticity {
    /// Same keys, and the MAC is right.
    Authentic,
    /// Made under other keys: only the integrity can be checked.
    OtherKeys,
    /// Same keys, wrong MAC: the manifest was altered.
    Forged,
}

fn authenticity(root: &KeyBytes, v: &Verified) -> Authenticity {
    let same_keys = v.manifest.key_id == key_id(root);
    if mac_ok(root, &v.manifest_bytes, &v.mac) {
        Authenticity::Authentic
    } else if same_keys {
        Authenticity::Forged
    } else {
        Authenticity::OtherKeys
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub entries: u64,
    pub authenticated: bool,
}

/// Restore the spooled snapshot at `path` (see the module docs). With `force`, a snapshot made
/// under other keys is accepted on its integrity alone.
pub async fn restore(core: &Core, path: PathBuf, force: bool) -> Result<Restored, LogicalError> {
    let root = root_key(core)?;
    let started = std::time::Instant::now();
    let first = path.clone();
    let verified = tokio::task::spawn_blocking(move || check_file(&first))
        .await
        .map_err(|e| LogicalError::Internal(format!("snapshot check failed: {e}")))??;
    let authenticated = match authenticity(&root, &verified) {
        Authenticity::Authentic => true,
        Authenticity::Forged => {
            return Err(LogicalError::invalid(
                "invalid snapshot: its manifest failed authentication with this store's keys \
                 (it was altered)",
            ))
        }
        Authenticity::OtherKeys if !force => {
            return Err(LogicalError::invalid(
                "the snapshot was made by a store with different keys, so its manifest cannot \
                 be authenticated here: use -force (sys/storage/snapshot-force) to restore it \
                 on the strength of its integrity check alone",
            ))
        }
        Authenticity::OtherKeys => false,
    };
    drop(root);
    tracing::info!(
        entries = verified.manifest.entries,
        authenticated,
        "snapshot verified, restoring"
    );
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    let want = verified.manifest_bytes.clone();
    let feeder = tokio::task::spawn_blocking(move || feed(&path, &want, &tx));
    let written = core.seal_and_replace(rx).await;
    let fed = feeder
        .await
        .map_err(|e| LogicalError::Internal(format!("snapshot restore failed: {e}")))?;
    let entries = match (written, fed) {
        (Ok(n), Ok(())) => n,
        (_, Err(e)) | (Err(e), Ok(())) => {
            tracing::error!(error = %e, "snapshot restore failed: storage is unchanged");
            return Err(e);
        }
    };
    tracing::info!(
        entries,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot restored; hushd is sealed and unseals with the snapshot's keys"
    );
    Ok(Restored {
        entries,
        authenticated,
    })
}

/// The second pass: every entry to storage, and [`Import::End`] only if the file is still the
/// one the first pass checked (same manifest, content matching it).
fn feed(path: &Path, manifest: &[u8], tx: &mpsc::Sender<Import>) -> Result<(), LogicalError> {
    let file = std::fs::File::open(path)
        .map_err(|e| LogicalError::Internal(format!("cannot open the spooled snapshot: {e}")))?;
    let mut reader =
        format::Reader::new(BufReader::with_capacity(1 << 20, file)).map_err(|e| invalid(&e))?;
    while let Some((key, value)) = reader.next_entry().map_err(|e| invalid(&e))? {
        if tx.blocking_send(Import::Entry(key, value)).is_err() {
            return Err(LogicalError::Internal(
                "storage stopped reading the snapshot".into(),
            ));
        }
    }
    let same = reader
        .verified()
        .is_some_and(|v| v.manifest_bytes == manifest);
    if !same {
        return Err(LogicalError::invalid(
            "invalid snapshot: it changed between the check and the restore",
        ));
    }
    tx.blocking_send(Import::End)
        .map_err(|_| LogicalError::Internal("storage stopped reading the snapshot".into()))
}

/// `sys/storage/snapshot/verify`: does this store's key authenticate `manifest` (as encoded
/// in the file) with `mac`?
pub fn verify_manifest(
    core: &Core,
    manifest: &[u8],
    tag: &[u8],
) -> Result<serde_json::Value, LogicalError> {
    let root = root_key(core)?;
    let parsed: format::Manifest = serde_json::from_slice(manifest)
        .map_err(|e| LogicalError::invalid(format!("invalid manifest: {e}")))?;
    if tag.len() != MAC_LEN {
        return Err(LogicalError::invalid(format!(
            "invalid mac: {MAC_LEN} bytes expected"
        )));
    }
    let same_keys = parsed.key_id == key_id(&root);
    let authentic = mac_ok(&root, manifest, tag);
    Ok(json!({
        "authentic": authentic,
        "same_keys": same_keys,
        "entries": parsed.entries,
    }))
}

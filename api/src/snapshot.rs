//! The snapshot file (`hush operator snapshot save|restore|inspect`, `sys/storage/snapshot`):
//! the store's encrypted entries, as storage holds them, and a manifest.
//!
//! ```text
//! "HUSHSNP1"                                     8 bytes, the magic (format version 1)
//! 'E' key_len:u32 key value_len:u32 value        one record per entry, keys strictly ascending
//! ...
//! 'M' manifest_len:u32 manifest                  JSON: Manifest
//! 'A' mac:[u8; 32]                               HMAC-SHA256 of "HUSHSNP1" || manifest
//! (end of file)
//! ```
//!
//! Integers are big-endian. `content_sha256` in the manifest is SHA-256 of every byte before
//! the `'M'` record (magic and entry records), so a changed, missing, added or reordered byte
//! of the content changes it; keys must also be strictly ascending, so two swapped entries
//! are refused as such. The manifest itself is authenticated by the MAC, whose key only a
//! store holding the snapshot's root key can derive (hushd computes and checks it); the
//! offline checks here ([`Reader`]) cover structure, counts and the hash.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first 8 bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"HUSHSNP1";
/// The manifest's `format`.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the manifest's MAC.
pub const MAC_LEN: usize = 32;
/// Longest key accepted in a snapshot.
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Largest value accepted in a snapshot (bounds what one entry may make a reader allocate).
pub const MAX_VALUE_LEN: usize = 256 * 1024 * 1024;
/// Largest manifest accepted.
pub const MAX_MANIFEST_LEN: usize = 1024 * 1024;
/// Keys under this prefix (the seal's own entries) are not barrier-encrypted: they are not
/// counted in the key terms.
const SEAL_PREFIX: &str = "core/seal/";

const TAG_ENTRY: u8 = b'E';
const TAG_MANIFEST: u8 = b'M';
const TAG_MAC: u8 = b'A';

/// What a snapshot says about its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Entry records in the file.
    pub entries: u64,
    /// Bytes hashed into `content_sha256` (magic and entry records).
    pub content_bytes: u64,
    /// Hex SHA-256 of the magic and every entry record.
    pub content_sha256: String,
    /// How many entries each key term encrypted (term 0: the keyring, under the root key).
    pub key_terms: Vec<KeyTerm>,
    /// The backend the snapshot was taken from (`sqlite`, `postgresql`, `inmem`).
    pub storage_type: String,
    /// When the snapshot was taken, Unix seconds.
    pub created_unix: u64,
    /// Hex id of the store's root key (a derived value, not the key): two stores with the
    /// same keys have the same id.
    pub key_id: String,
}

/// Entries per key term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTerm {
    pub term: u32,
    pub entries: u64,
}

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "not a Hush snapshot (the file does not start with {:?})",
        String::from_utf8_lossy(MAGIC)
    )]
    NotASnapshot,
    #[error("the snapshot is truncated ({0})")]
    Truncated(String),
    #[error("the snapshot is malformed: {0}")]
    Malformed(String),
    #[error("the snapshot's content does not match its manifest: {0}")]
    Mismatch(String),
    #[error("cannot read the snapshot: {0}")]
    Io(#[source] std::io::Error),
}

/// Counts, order and hash of the entry records, kept the same way by [`Writer`] and [`Reader`].
struct Tally {
    hasher: Sha256,
    entries: u64,
    bytes: u64,
    last_key: Option<String>,
    terms: BTreeMap<u32, u64>,
}

impl Tally {
    fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(MAGIC);
        Tally {
            hasher,
            entries: 0,
            bytes: MAGIC.len() as u64,
            last_key: None,
            terms: BTreeMap::new(),
        }
    }

    /// Check the order and the sizes of `key`, then hash its record.
    fn add(&mut self, key: &str, value: &[u8]) -> Result<(), SnapshotError> {
        if key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN {
            return Err(SnapshotError::Malformed(format!(
                "entry {} is larger than allowed",
                self.entries + 1
            )));
        }
        if self.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(SnapshotError::Malformed(format!(
                "entry {} is out of order or repeated (keys must be strictly ascending)",
                self.entries + 1
            )));
        }
        let header = record_header(key, value);
        self.hasher.update(header.0);
        self.hasher.update(key.as_bytes());
        self.hasher.update(header.1);
        self.hasher.update(value);
        self.bytes += (1 + 4 + key.len() + 4 + value.len()) as u64;
        self.entries += 1;
        if !key.starts_with(SEAL_PREFIX) {
            if let Some(term) = barrier_term(value) {
                *self.terms.entry(term).or_default() += 1;
            }
        }
        self.last_key = Some(key.to_string());
        Ok(())
    }

    fn sha256_hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    fn key_terms(&self) -> Vec<KeyTerm> {
        self.terms
            .iter()
            .map(|(term, entries)| KeyTerm {
                term: *term,
                entries: *entries,
            })
            .collect()
    }
}

/// `('E' key_len, value_len)` of one entry record.
fn record_header(key: &str, value: &[u8]) -> ([u8; 5], [u8; 4]) {
    let mut head = [TAG_ENTRY, 0, 0, 0, 0];
    head[1..].copy_from_slice(&(key.len() as u32).to_be_bytes());
    (head, (value.len() as u32).to_be_bytes())
}

/// The key term of a barrier entry (`[1][term: u32][nonce: 12][ciphertext + tag: >= 16]`).
fn barrier_term(value: &[u8]) -> Option<u32> {
    (value.len() >= 1 + 4 + 12 + 16 && value[0] == 1)
        .then(|| u32::from_be_bytes([value[1], value[2], value[3], value[4]]))
}

/// The bytes the manifest's MAC covers.
pub fn mac_input(manifest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + manifest.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(manifest);
    out
}

/// Encodes a snapshot into buffers the caller sends on (hushd streams them as the body).
pub struct Writer {
    tally: Tally,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("entries", &self.tally.entries)
            .finish()
    }
}

impl Writer {
    /// A new snapshot; its magic goes to `out`.
    pub fn new(out: &mut Vec<u8>) -> Writer {
        out.extend_from_slice(MAGIC);
        Writer {
            tally: Tally::new(),
        }
    }

    /// Append one entry; keys must come in strictly ascending order.
    pub fn entry(
        &mut self,
        key: &str,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SnapshotError> {
        self.tally.add(key, value)?;
        let (head, value_len) = record_header(key, value);
        out.extend_from_slice(&head);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&value_len);
        out.extend_from_slice(value);
        Ok(())
    }

    pub fn entries(&self) -> u64 {
        self.tally.entries
    }

    /// The manifest of what was appended.
    pub fn manifest(&self, storage_type: &str, created_unix: u64, key_id: &str) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            entries: self.tally.entries,
            content_bytes: self.tally.bytes,
            content_sha256: self.tally.sha256_hex(),
            key_terms: self.tally.key_terms(),
            storage_type: storage_type.to_string(),
            created_unix,
            key_id: key_id.to_string(),
        }
    }

    /// The closing records: the manifest (as encoded, the bytes the MAC covers) and the MAC.
    pub fn tail(manifest: &[u8], mac: &[u8; MAC_LEN], out: &mut Vec<u8>) {
        out.push(TAG_MANIFEST);
        out.extend_from_slice(&(manifest.len() as u32).to_be_bytes());
        out.extend_from_slice(manifest);
        out.push(TAG_MAC);
        out.extend_from_slice(mac);
    }
}

/// A snapshot whose structure, counts and hash were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// The manifest as it is in the file: the bytes its MAC covers.
    pub manifest_bytes: Vec<u8>,
    pub mac: [u8; MAC_LEN],
}

/// Reads a snapshot entry by entry, checking as it goes, with memory bounded by one entry.
/// [`Reader::next_entry`] returns `None` only once the manifest and MAC were read, the file
/// ended right after them, and the entries matched the manifest; [`Reader::verified`] then
/// holds them.
pub struct Reader<R> {
    r: R,
    tally: Tally,
    verified: Option<Verified>,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("entries", &self.tally.entries)
            .finish()
    }
}

fn read_err(e: std::io::Error, what: &str) -> SnapshotError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        SnapshotError::Truncated(format!("it ends inside {what}"))
    } else {
        SnapshotError::Io(e)
    }
}

impl<R: Read> Reader<R> {
    /// Check the magic.
    pub fn new(mut r: R) -> Result<Reader<R>, SnapshotError> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SnapshotError::NotASnapshot,
            _ => SnapshotError::Io(e),
        })?;
        if &magic != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        Ok(Reader {
            r,
            tally: Tally::new(),
            verified: None,
        })
    }

    /// Entries read so far.
    pub fn entries(&self) -> u64 {
        self.tally.entries
    }

    /// Content bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.tally.bytes
    }

    /// The checked manifest, once [`Reader::next_entry`] returned `None`.
    pub fn verified(&self) -> Option<&Verified> {
        self.verified.as_ref()
    }

    fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).map_err(|e| read_err(e, what))?;
        Ok(u32::from_be_bytes(b))
    }

    fn bytes_of(&mut self, len: usize, what: &str) -> Result<Vec<u8>, SnapshotError> {
        let mut buf = Vec::new();
        (&mut self.r)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| read_err(e, what))?;
        if buf.len() != len {
            return Err(SnapshotError::Truncated(format!("it ends inside {what}")));
        }
        Ok(buf)
    }

    /// The next entry, or `None` after a verified end.
    pub fn next_entry(&mut self) -> Result<Option<(String, Vec<u8>)>, SnapshotError> {
        if self.verified.is_some() {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        match self.r.read_exact(&mut tag) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(SnapshotError::Truncated(format!(
                    "it ends after {} entries, without its manifest",
                    self.tally.entries
                )))
            }
            Err(e) => return Err(SnapshotError::Io(e)),
        }
        match tag[0] {
            TAG_ENTRY => {
                let n = self.tally.entries + 1;
                let key_len = self.u32("an entry")? as usize;
                if key_len > MAX_KEY_LEN {
                    return Err(SnapshotError::Malformed(format!("entry {n}: key too long")));
                }
                let key = String::from_utf8(self.bytes_of(key_len, "an entry")?).map_err(|_| {
                    SnapshotError::Malformed(format!("entry {n}: the key is not UTF-8"))
                })?;
                let value_len = self.u32("an entry")? as usize;
                if value_len > MAX_VALUE_LEN {
                    return Err(SnapshotError::Malformed(format!(
                        "entry {n}: value too large"
                    )));
                }
                let value = self.bytes_of(value_len, "an entry")?;
                self.tally.add(&key, &value)?;
                Ok(Some((key, value)))
            }
            TAG_MANIFEST => {
                self.finish()?;
                Ok(None)
            }
            other => Err(SnapshotError::Malformed(format!(
                "unknown record type 0x{other:02x} after entry {}",
                self.tally.entries
            ))),
        }
    }

    /// After the `'M'` tag: the manifest, the MAC, the end of the file, and the comparison.
    fn finish(&mut self) -> Result<(), SnapshotError> {
        let len = self.u32("the manifest")? as usize;
        if len > MAX_MANIFEST_LEN {
            return Err(SnapshotError::Malformed("the manifest is too large".into()));
        }
        let manifest_bytes = self.bytes_of(len, "the manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| SnapshotError::Malformed(format!("the manifest is not valid: {e}")))?;
        let mut tag = [0u8; 1];
        self.r
            .read_exact(&mut tag)
            .map_err(|e| read_err(e, "the manifest's MAC"))?;
        if tag[0] != TAG_MAC {
            return Err(SnapshotError::Malformed(
                "the manifest is not followed by its MAC".into(),
            ));
        }
        let mut mac = [0u8; MAC_LEN];
        self.r
            .read_exact(&mut mac)
            .map_err(|e| read_err(e, "the manifest's MAC"))?;
        let mut extra = [0u8; 1];
        match self.r.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => {
                return Err(SnapshotError::Malformed(
                    "bytes follow the manifest's MAC".into(),
                ))
            }
            Err(e) => return Err(SnapshotError::Io(e)),
        }
        if manifest.format != FORMAT_VERSION {
            return Err(SnapshotError::Malformed(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                manifest.format
            )));
        }
        if manifest.entries != self.tally.entries {
            return Err(SnapshotError::Mismatch(format!(
                "the manifest lists {} entries, the file holds {}",
                manifest.entries, self.tally.entries
            )));
        }
        if manifest.content_bytes != self.tally.bytes {
            return Err(SnapshotError::Mismatch(format!(
                "the manifest lists {} content bytes, the file holds {}",
                manifest.content_bytes, self.tally.bytes
            )));
        }
        if manifest.content_sha256 != self.tally.sha256_hex() {
            return Err(SnapshotError::Mismatch(
                "the content's SHA-256 differs from the manifest's".into(),
            ));
        }
        if manifest.key_terms != self.tally.key_terms() {
            return Err(SnapshotError::Mismatch(
                "the key terms differ from the manifest's".into(),
            ));
        }
        self.verified = Some(Verified {
            manifest,
            manifest_bytes,
            mac,
        });
        Ok(())
    }
}

/// Read all of a snapshot, checking it; `on_entry` sees each entry as it is read.
pub fn verify<R: Read>(
    r: R,
    mut on_entry: impl FnMut(&str, &[u8]),
) -> Result<Verified, SnapshotError> {
    let mut reader = Reader::new(r)?;
    while let Some((key, value)) = reader.next_entry()? {
        on_entry(&key, &value);
    }
    Ok(reader.verified.take().expect("verified at the end"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        for (k, v) in entries {
            w.entry(k, v, &mut out).unwrap();
        }
        let m = serde_json::to_vec(&w.manifest("inmem", 1, "00")).unwrap();
        Writer::tail(&m, &[7; MAC_LEN], &mut out);
        out
    }

    fn ct(term: u32) -> Vec<u8> {
        let mut v = vec![1];
        v.extend_from_slice(&term.to_be_bytes());
        v.extend_from_slice(&[0; 28]);
        v
    }

    #[test]
    fn round_trip() {
        let a = ct(1);
        let b = ct(2);
        let file = sample(&[("a", &a[..]), ("b", &b[..]), ("core/seal/config", b"{}")]);
        let mut seen = Vec::new();
        let v = verify(&file[..], |k, _| seen.push(k.to_string())).unwrap();
        assert_eq!(seen, ["a", "b", "core/seal/config"]);
        assert_eq!(v.manifest.entries, 3);
        assert_eq!(
            v.manifest.key_terms,
            vec![
                KeyTerm {
                    term: 1,
                    entries: 1
                },
                KeyTerm {
                    term: 2,
                    entries: 1
                }
            ]
        );
        assert_eq!(v.mac, [7; MAC_LEN]);
    }

    #[test]
    fn every_damage_is_refused() {
        let a = ct(1);
        let b = ct(1);
        let file = sample(&[("a", &a[..]), ("b", &b[..])]);
        // Any single flipped byte of the content or the records' framing.
        let content = MAGIC.len() + 2 * (1 + 4 + 1 + 4 + a.len());
        for i in 0..content {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad[..], |_, _| {}).is_err(), "flip at {i}");
        }
        // Truncated anywhere.
        for len in 0..file.len() {
            assert!(verify(&file[..len], |_, _| {}).is_err(), "cut at {len}");
        }
        // Trailing bytes.
        let mut long = file.clone();
        long.push(0);
        assert!(verify(&long[..], |_, _| {}).is_err());
        // Out of order.
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.entry("b", b"", &mut out).unwrap();
        assert!(w.entry("a", b"", &mut out).is_err());
        assert!(w.entry("b", b"", &mut out).is_err());
    }
}

//! The hash chain over audit log lines, shared by hushd's file audit device (which writes it)
//! and `hush audit verify` (which checks it offline).
//!
//! Each line of an audit file is one JSON object in Vault's audit entry shape plus a field
//!
//! ```json
//! "hash_chain": {"seq": 7, "prev": "sha256:<hex>"}
//! ```
//!
//! where `seq` counts lines from 1 and `prev` is the SHA-256 of the previous line's exact bytes
//! (without its newline). The first line of a file has `seq` 1 and `prev` = [`GENESIS`].
//!
//! [`verify`] finds edited lines (the next line's `prev` no longer matches), deleted lines (a
//! `seq` gap) and reordered lines (a `seq` gap or a `prev` mismatch).
//!
//! # What the file alone cannot show
//!
//! Nothing in the file commits to its **last** line: deleting the last line(s), or editing the
//! last line, leaves a chain that verifies. hushd keeps each device's current `seq` and last
//! line hash in memory and reports them in `GET sys/audit` (`hash_chain`), so an operator can
//! compare the live head with the file (`hush audit verify FILE -last-hash sha256:...`).

use std::io::BufRead;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `prev` of the first line of a file: `sha256:` and 64 zeros.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Name of the chain field in each audit line.
pub const CHAIN_FIELD: &str = "hash_chain";

/// `sha256:<hex>` of a line's exact bytes; the caller strips the newline.
pub fn line_hash(line: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(line)))
}

/// The chain position of one line, as written in its `hash_chain` field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ChainLink {
    pub seq: u64,
    pub prev: String,
}

/// Read the `hash_chain` field of one line (without its newline).
pub fn parse_link(line: &[u8]) -> Result<ChainLink, LineError> {
    #[derive(Deserialize)]
    struct Probe {
        hash_chain: Option<ChainLink>,
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| LineError::BadJson(e.to_string()))?;
    if !value.is_object() {
        return Err(LineError::BadJson("the line is not a JSON object".into()));
    }
    let probe: Probe = serde_json::from_value(value).map_err(|_| LineError::MissingChain)?;
    probe.hash_chain.ok_or(LineError::MissingChain)
}

/// Why a single line cannot take part in a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not valid JSON ({0})")]
    BadJson(String),
    #[error("no well-formed \"hash_chain\" field with \"seq\" and \"prev\"")]
    MissingChain,
}

/// What an intact file holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifySummary {
    /// Number of lines checked.
    pub lines: u64,
    /// `seq` of the last line (0 for an empty file).
    pub last_seq: u64,
    /// Hash of the last line ([`GENESIS`] for an empty file). Compare it with the device's
    /// `hash_chain.last_hash` in `GET sys/audit` to detect a removed or edited tail.
    pub last_hash: String,
}

/// The first problem found; `line` numbers count from 1.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("line {line}: could not read the file: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    BadLine { line: u64, reason: LineError },
    #[error(
        "line {line}: sequence number is {found}, expected {expected}: \
         lines were deleted, inserted or reordered before this one"
    )]
    SeqGap {
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error(
        "line {line}: \"prev\" does not match the hash of the line before it \
         (expected {expected}, found {found}): the previous line was edited, or lines were \
         reordered"
    )]
    PrevMismatch {
        line: u64,
        expected: String,
        found: String,
    },
}

impl VerifyError {
    /// The number (from 1) of the first bad line.
    pub fn line(&self) -> u64 {
        match self {
            VerifyError::Io { line, .. }
            | VerifyError::BadLine { line, .. }
            | VerifyError::SeqGap { line, .. }
            | VerifyError::PrevMismatch { line, .. } => *line,
        }
    }
}

/// Check a whole audit file. Lines are split on `\n`; a final line without a newline is
/// checked like the others.
pub fn verify<R: BufRead>(r: R) -> Result<VerifySummary, VerifyError> {
    verify_with(r, None, |_| {})
}

/// As [`verify`], reading at most `limit` lines (a file still being written: up to the chain
/// head taken before reading) and handing each checked line (without its newline) to `visit`.
pub fn verify_with<R: BufRead>(
    mut r: R,
    limit: Option<u64>,
    mut visit: impl FnMut(&[u8]),
) -> Result<VerifySummary, VerifyError> {
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut prev_hash = GENESIS.to_string();
    let mut last_seq = 0u64;
    loop {
        if limit.is_some_and(|l| lines >= l) {
            break;
        }
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|source| VerifyError::Io {
                line: lines + 1,
                source,
            })?;
        if n == 0 {
            break;
        }
        lines += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let link = parse_link(line).map_err(|reason| VerifyError::BadLine {
            line: lines,
            reason,
        })?;
        if link.seq != last_seq + 1 {
            return Err(VerifyError::SeqGap {
                line: lines,
                expected: last_seq + 1,
                found: link.seq,
            });
        }
        if link.prev != prev_hash {
            return Err(VerifyError::PrevMismatch {
                line: lines,
                expected: prev_hash,
                found: link.prev,
            });
        }
        last_seq = link.seq;
        prev_hash = line_hash(line);
        visit(line);
    }
    Ok(VerifySummary {
        lines,
        last_seq,
        last_hash: prev_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a chained file of `n` lines, like the device writes it.
    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let line = serde_json::json!({
                    "time": "2025-01-01T00:00:00Z",
                    "type": "request",
                    "request": {"path": format!("secret/data/{seq}")},
                    "hash_chain": {"seq": seq, "prev": prev},
                })
                .to_string();
                prev = line_hash(line.as_bytes());
                line
            })
            .collect()
    }

    fn join(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn genesis_is_sha256_prefix_and_64_zeros() {
        assert_eq!(GENESIS.len(), "sha256:".len() + 64);
        assert!(GENESIS.starts_with("sha256:"));
        assert_eq!(line_hash(b"").len(), GENESIS.len());
        assert_eq!(
            line_hash(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn intact_file_verifies() {
        let lines = chain(5);
        let summary = verify(&join(&lines)[..]).unwrap();
        assert_eq!(summary.lines, 5);
        assert_eq!(summary.last_seq, 5);
        assert_eq!(summary.last_hash, line_hash(lines[4].as_bytes()));
    }

    #[test]
    fn empty_file_verifies_with_zero_lines() {
        let summary = verify(&b""[..]).unwrap();
        assert_eq!(summary.lines, 0);
        assert_eq!(summary.last_hash, GENESIS);
    }

    #[test]
    fn final_line_without_newline_is_checked() {
        let lines = chain(3);
        let mut bytes = join(&lines);
        bytes.pop();
        assert_eq!(verify(&bytes[..]).unwrap().lines, 3);
    }

    #[test]
    fn edited_line_is_found_at_the_next_line() {
        let mut lines = chain(4);
        lines[1] = lines[1].replace("secret/data/2", "secret/data/x");
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(
            matches!(err, VerifyError::PrevMismatch { line: 3, .. }),
            "{err}"
        );
        assert_eq!(err.line(), 3);
    }

    #[test]
    fn deleted_line_is_a_seq_gap() {
        let mut lines = chain(4);
        lines.remove(1);
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::SeqGap {
                    line: 2,
                    expected: 2,
                    found: 3
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn deleted_first_line_is_found() {
        let mut lines = chain(3);
        lines.remove(0);
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert_eq!(err.line(), 1);
    }

    #[test]
    fn reordered_lines_are_found() {
        let mut lines = chain(4);
        lines.swap(1, 2);
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(matches!(err, VerifyError::SeqGap { line: 2, .. }), "{err}");
    }

    #[test]
    fn renumbered_edit_is_still_found_by_prev() {
        // An attacker who rewrites seq too cannot fix prev without recomputing every later line.
        let mut lines = chain(3);
        lines.remove(1);
        lines[1] = lines[1].replace("\"seq\":3", "\"seq\":2");
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(
            matches!(err, VerifyError::PrevMismatch { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_json_and_missing_chain_are_named() {
        let mut lines = chain(2);
        lines.insert(1, "{not json".into());
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::BadLine {
                    line: 2,
                    reason: LineError::BadJson(_)
                }
            ),
            "{err}"
        );

        let lines = vec![r#"{"type":"request"}"#.to_string()];
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::BadLine {
                line: 1,
                reason: LineError::MissingChain
            }
        ));

        let lines = vec![r#"{"hash_chain":{"seq":"one","prev":"x"}}"#.to_string()];
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::BadLine {
                line: 1,
                reason: LineError::MissingChain
            }
        ));

        let lines = vec!["[1,2]".to_string()];
        let err = verify(&join(&lines)[..]).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::BadLine {
                line: 1,
                reason: LineError::BadJson(_)
            }
        ));
    }

    #[test]
    fn blank_line_is_bad_json() {
        let mut bytes = join(&chain(2));
        bytes.extend_from_slice(b"\n");
        assert_eq!(verify(&bytes[..]).unwrap_err().line(), 3);
    }

    #[test]
    fn wrong_genesis_is_found() {
        let line = r#"{"hash_chain":{"seq":1,"prev":"sha256:00"}}"#.to_string();
        let err = verify(&join(&[line])[..]).unwrap_err();
        assert!(matches!(err, VerifyError::PrevMismatch { line: 1, .. }));
    }

    #[test]
    fn removed_tail_is_not_visible_in_the_file_but_in_the_last_hash() {
        let lines = chain(4);
        let full = verify(&join(&lines)[..]).unwrap();
        let cut = verify(&join(&lines[..3])[..]).unwrap();
        assert_ne!(full.last_hash, cut.last_hash);
    }

    #[test]
    fn parse_link_reads_the_field() {
        let link = parse_link(br#"{"a":1,"hash_chain":{"seq":9,"prev":"sha256:ab"}}"#).unwrap();
        assert_eq!(
            link,
            ChainLink {
                seq: 9,
                prev: "sha256:ab".into()
            }
        );
    }
}

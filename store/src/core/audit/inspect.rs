//! What the compliance report learns from the audit devices themselves: each file device's
//! hash chain checked up to the head hushd holds in memory (so a file still being written is
//! read only as far as the head taken first, and a removed or edited tail shows), and, in the
//! same pass, counts of what the lines inside the report's window record.
//!
//! Only counts and accessors leave this module: paths are counted, not listed, and an
//! accessor is reported only when the caller asked about it (a dormancy check).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hush_api::audit::{verify_with, VerifyError};
use serde::Deserialize;

use super::file::{ChainHead, SinkSpec};

/// Where a device writes, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    File(PathBuf),
    Stdout,
    /// `file_path=discard`: nothing is kept.
    Discard,
}

/// How a device's chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every line up to hushd's head links to the one before, and the last is the head.
    Verified { lines: u64 },
    /// The first problem found.
    Broken(String),
    /// hushd cannot read back what it wrote (stdout, discard).
    NotVerifiable(String),
}

/// What the lines inside the window record (file devices only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Time of the first line of the file: how far back it can prove anything.
    pub first_line: Option<DateTime<Utc>>,
    /// Request entries in the window.
    pub requests: u64,
    /// Responses to `auth/*/login` requests with an error, in the window.
    pub failed_logins: u64,
    /// Distinct accessors (as written: HMAC'd unless `hmac_accessor=false`) of requests.
    pub identities: usize,
    /// Distinct request paths.
    pub paths: usize,
    /// Of the accessors asked about, those that made a request in the window.
    pub seen: BTreeSet<String>,
}

/// One device, inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInspection {
    pub path: String,
    pub sink: Sink,
    pub chain: ChainCheck,
    pub stats: WindowStats,
}

impl Sink {
    pub(super) fn of(spec: &SinkSpec) -> Sink {
        match spec {
            SinkSpec::File { path, .. } => Sink::File(path.clone()),
            SinkSpec::Stdout => Sink::Stdout,
            SinkSpec::Discard => Sink::Discard,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    time: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    auth: Option<LineAuth>,
    #[serde(default)]
    request: Option<LineRequest>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct LineAuth {
    #[serde(default)]
    accessor: String,
}

#[derive(Deserialize)]
struct LineRequest {
    #[serde(default)]
    path: String,
}

fn is_login(path: &str) -> bool {
    path.strip_prefix("auth/")
        .is_some_and(|rest| rest.split('/').any(|seg| seg == "login"))
}

/// Read `file` up to `head` (blocking): the chain check and the window's counts. `watch` maps
/// an accessor as the device writes it to the accessor asked about.
pub(super) fn inspect_file(
    file: &Path,
    head: &ChainHead,
    since: DateTime<Utc>,
    watch: &BTreeMap<String, String>,
) -> (ChainCheck, WindowStats) {
    let mut stats = WindowStats::default();
    if head.seq == 0 {
        return (ChainCheck::Verified { lines: 0 }, stats);
    }
    let reader = match std::fs::File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            return (
                ChainCheck::Broken(format!("cannot read {}: {e}", file.display())),
                stats,
            )
        }
    };
    let mut identities = HashSet::new();
    let mut paths = HashSet::new();
    let visit = |line: &[u8]| {
        let Ok(entry) = serde_json::from_slice::<Line>(line) else {
            return;
        };
        let Ok(time) = DateTime::parse_from_rfc3339(&entry.time) else {
            return;
        };
        let time = time.with_timezone(&Utc);
        stats.first_line.get_or_insert(time);
        if time < since {
            return;
        }
        let path = entry.request.map(|r| r.path).unwrap_or_default();
        match entry.kind.as_str() {
            "request" => {
                stats.requests += 1;
                if let Some(accessor) = entry.auth.map(|a| a.accessor) {
                    if let Some(asked) = watch.get(&accessor) {
                        stats.seen.insert(asked.clone());
                    }
                    if !accessor.is_empty() {
                        identities.insert(accessor);
                    }
                }
                paths.insert(path);
            }
            "response" if !entry.error.is_empty() && is_login(&path) => stats.failed_logins += 1,
            _ => {}
        }
    };
    let check = match verify_with(reader, Some(head.seq), visit) {
        Ok(summary) if summary.last_seq < head.seq => ChainCheck::Broken(format!(
            "{} ends at line {} but hushd has written {} lines to it: lines were removed",
            file.display(),
            summary.last_seq,
            head.seq
        )),
        Ok(summary) if summary.last_hash != head.last_hash => ChainCheck::Broken(format!(
            "line {} of {} is not the line hushd wrote (its hash differs from the chain head)",
            summary.last_seq,
            file.display()
        )),
        Ok(summary) => ChainCheck::Verified {
            lines: summary.lines,
        },
        Err(e @ VerifyError::Io { .. }) => ChainCheck::Broken(e.to_string()),
        Err(e) => ChainCheck::Broken(format!("{}: {e}", file.display())),
    };
    stats.identities = identities.len();
    stats.paths = paths.len();
    (check, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::file::ChainWriter;
    use serde_json::json;

    fn entry(
        time: &str,
        kind: &str,
        path: &str,
        accessor: &str,
        error: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        json!({"time": time, "type": kind, "auth": {"accessor": accessor},
               "request": {"path": path}, "error": error})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn counts_the_window_and_finds_a_removed_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let mut w = ChainWriter::new(SinkSpec::File {
            path: file.clone(),
            mode: None,
        });
        let old = "2020-01-01T00:00:00Z";
        let new = "2030-01-01T00:00:00Z";
        w.append(entry(
            old,
            "request",
            "secret/data/a",
            "hmac-sha256:old",
            "",
        ))
        .unwrap();
        w.append(entry(new, "request", "secret/data/a", "hmac-sha256:x", ""))
            .unwrap();
        w.append(entry(new, "request", "auth/approle/login", "", ""))
            .unwrap();
        w.append(entry(
            new,
            "response",
            "auth/approle/login",
            "",
            "invalid role or secret ID",
        ))
        .unwrap();
        w.append(entry(new, "request", "secret/data/b", "hmac-sha256:y", ""))
            .unwrap();
        let head = w.head().clone();
        let since = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let watch = BTreeMap::from([
            ("hmac-sha256:x".to_string(), "acc-x".to_string()),
            ("hmac-sha256:old".to_string(), "acc-old".to_string()),
        ]);
        let (check, stats) = inspect_file(&file, &head, since, &watch);
        assert_eq!(check, ChainCheck::Verified { lines: 5 });
        assert_eq!(stats.requests, 3);
        assert_eq!(stats.failed_logins, 1);
        assert_eq!(stats.identities, 2);
        assert_eq!(stats.paths, 3);
        assert_eq!(stats.seen, BTreeSet::from(["acc-x".to_string()]));
        assert_eq!(
            stats.first_line.unwrap().to_rfc3339(),
            "2020-01-01T00:00:00+00:00"
        );

        // A line written after the head was taken is not read.
        w.append(entry(new, "request", "secret/data/c", "", ""))
            .unwrap();
        let (check, _) = inspect_file(&file, &head, since, &watch);
        assert_eq!(check, ChainCheck::Verified { lines: 5 });

        // The tail removed: the head is further than the file.
        let text = std::fs::read_to_string(&file).unwrap();
        let kept: Vec<&str> = text.lines().take(3).collect();
        std::fs::write(&file, format!("{}\n", kept.join("\n"))).unwrap();
        let (check, _) = inspect_file(&file, &head, since, &watch);
        assert!(
            matches!(check, ChainCheck::Broken(ref m) if m.contains("removed")),
            "{check:?}"
        );
    }
}

//! `hush audit stats FILE [-path P] [-since D]`: per API path, how many requests were answered,
//! how many succeeded and failed, and by whom, from a file audit device's log.
//!
//! The file is read line by line (memory grows with the number of paths and identities, not
//! lines). Each request is counted once, from its `response` entry (the `request` entry before
//! it says nothing the response does not; `agent-access` and other entry types are skipped).
//! A response **failed** when its `error` is set or its `response.status` (hushd writes the
//! status of every error, so a 404 without a message counts) is 400 or more. The **identity**
//! is the token's `display_name` as logged (`root`, `token-alice`, `approle`...), else its
//! `entity_id`, else its accessor (HMAC'd unless the device logs accessors in clear), else
//! `(no token)`.

use std::collections::BTreeMap;
use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Which responses count.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A path prefix, or a glob when it holds `*` (`*` matches any run of characters, `/`
    /// included); a leading `/` is ignored.
    pub path: Option<String>,
    /// Only responses logged at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    fn path_matches(&self, path: &str) -> bool {
        match self.path.as_deref().map(|p| p.trim_start_matches('/')) {
            None | Some("") => true,
            Some(p) if p.contains('*') => glob(p, path),
            Some(prefix) => path.starts_with(prefix),
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Counts of one path, or of one identity on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, failed: bool) {
        self.total += 1;
        if failed {
            self.failed += 1;
        } else {
            self.successful += 1;
        }
    }
}

/// The counts of one path and of each identity on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathStats {
    #[serde(flatten)]
    pub counts: Counts,
    pub by_identity: BTreeMap<String, Counts>,
}

/// Path -> its stats, sorted by path.
pub type Stats = BTreeMap<String, PathStats>;

/// Why a file cannot be counted; `line` counts from 1.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("line {line}: could not read the file: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: not an audit log entry ({reason})")]
    NotAudit { line: u64, reason: String },
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Who sent a logged request (see the module doc).
pub fn identity(entry: &Value) -> String {
    ["/auth/display_name", "/auth/entity_id", "/auth/accessor"]
        .iter()
        .map(|p| text(entry, p))
        .find(|s| !s.is_empty())
        .unwrap_or("(no token)")
        .to_string()
}

/// Did the logged request fail?
pub fn failed(entry: &Value) -> bool {
    !text(entry, "/error").is_empty()
        || entry
            .pointer("/response/status")
            .and_then(Value::as_u64)
            .is_some_and(|s| s >= 400)
}

/// Count the responses of an audit log read from `r`.
pub fn collect(mut r: impl BufRead, filter: &Filter) -> Result<Stats, StatsError> {
    let mut stats = Stats::new();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        line += 1;
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(stats),
            Ok(_) => {}
            Err(source) => return Err(StatsError::Io { line, source }),
        }
        let raw = buf.trim_ascii();
        if raw.is_empty() {
            continue;
        }
        let not_audit = |reason: String| StatsError::NotAudit { line, reason };
        let entry: Value =
            serde_json::from_slice(raw).map_err(|e| not_audit(format!("invalid JSON: {e}")))?;
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| not_audit("no \"type\"".into()))?;
        if kind != "response" {
            continue;
        }
        let path = entry
            .pointer("/request/path")
            .and_then(Value::as_str)
            .ok_or_else(|| not_audit("a response without \"request.path\"".into()))?;
        if !filter.path_matches(path) {
            continue;
        }
        if let Some(since) = filter.since {
            let time = DateTime::parse_from_rfc3339(text(&entry, "/time"))
                .map_err(|_| not_audit("no RFC 3339 \"time\"".into()))?;
            if time < since {
                continue;
            }
        }
        let failed = failed(&entry);
        let at = stats.entry(path.to_string()).or_default();
        at.counts.add(failed);
        at.by_identity
            .entry(identity(&entry))
            .or_default()
            .add(failed);
    }
}

/// `-since`: a duration back from `now` (`90m`, `24h`, `7d`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(d) = hush_api::duration::parse(text) {
        let d = chrono::Duration::from_std(d).ok()?;
        return Some(
            now.checked_sub_signed(d)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        );
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The table: one row per path (identity `all`), then one per identity on it.
pub fn table(stats: &Stats) -> Vec<Vec<String>> {
    let row = |path: &str, who: &str, c: &Counts| {
        vec![
            path.to_string(),
            who.to_string(),
            c.total.to_string(),
            c.successful.to_string(),
            c.failed.to_string(),
        ]
    };
    let mut rows = Vec::new();
    for (path, s) in stats {
        rows.push(row(path, "all", &s.counts));
        for (who, c) in &s.by_identity {
            rows.push(row(path, who, c));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(
        kind: &str,
        path: &str,
        who: &str,
        error: &str,
        status: Option<u16>,
        time: &str,
    ) -> String {
        let mut e = json!({
            "time": time, "type": kind, "error": error,
            "auth": {"display_name": who, "accessor": "hmac-sha256:aa"},
            "request": {"path": path}, "response": {},
        });
        if let Some(s) = status {
            e["response"]["status"] = json!(s);
        }
        e.to_string()
    }

    const T1: &str = "2030-01-01T00:00:00.000000001Z";
    const T2: &str = "2030-01-02T00:00:00Z";

    fn log() -> String {
        [
            line("request", "secret/data/a", "root", "", None, T1),
            line("response", "secret/data/a", "root", "", None, T1),
            line(
                "response",
                "secret/data/a",
                "token-bob",
                "permission denied",
                Some(403),
                T1,
            ),
            line("response", "secret/data/a", "root", "", Some(404), T2),
            line("response", "secret/data/b/c", "", "", None, T2),
            json!({"time": T2, "type": "agent-access", "request": {"path": "secret/data/a"}})
                .to_string(),
            String::new(),
        ]
        .join("\n")
    }

    #[test]
    fn counts_responses_once_by_path_and_identity() {
        let stats = collect(log().as_bytes(), &Filter::default()).unwrap();
        let a = &stats["secret/data/a"];
        assert_eq!(
            a.counts,
            Counts {
                total: 3,
                successful: 1,
                failed: 2
            }
        );
        assert_eq!(
            a.by_identity["root"],
            Counts {
                total: 2,
                successful: 1,
                failed: 1
            }
        );
        assert_eq!(
            a.by_identity["token-bob"],
            Counts {
                total: 1,
                successful: 0,
                failed: 1
            }
        );
        // No display name: the accessor as logged.
        let b = &stats["secret/data/b/c"];
        assert_eq!(b.by_identity["hmac-sha256:aa"].total, 1);
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["secret/data/a"]["total"], 3);
        assert_eq!(json["secret/data/a"]["by_identity"]["root"]["failed"], 1);
        assert_eq!(table(&stats).len(), 2 + 1 + 2);
    }

    #[test]
    fn path_prefix_glob_and_since_filter() {
        let count = |path: Option<&str>, since: Option<&str>| {
            let f = Filter {
                path: path.map(str::to_string),
                since: since.map(|s| parse_since(s, Utc::now()).unwrap()),
            };
            collect(log().as_bytes(), &f)
                .unwrap()
                .values()
                .map(|s| s.counts.total)
                .sum::<u64>()
        };
        assert_eq!(count(None, None), 4);
        assert_eq!(count(Some("secret/data/b"), None), 1);
        assert_eq!(count(Some("/secret/data/"), None), 4);
        assert_eq!(count(Some("secret/*/c"), None), 1);
        assert_eq!(count(Some("*a"), None), 3);
        assert_eq!(count(Some("other/"), None), 0);
        assert_eq!(count(None, Some(T2)), 2);
        assert_eq!(count(None, Some("2030-01-01T12:00:00+02:00")), 2);
        // Everything in the log is in the future of `now - 1h`.
        assert_eq!(count(None, Some("1h")), 4);
    }

    #[test]
    fn since_takes_durations_and_rfc3339_only() {
        let now = Utc::now();
        assert_eq!(
            parse_since("7d", now),
            Some(now - chrono::Duration::days(7))
        );
        assert_eq!(
            parse_since("24h", now),
            Some(now - chrono::Duration::hours(24))
        );
        assert!(parse_since("2030-01-01T00:00:00Z", now).is_some());
        for bad in ["", "yesterday", "7 days", "2030-01-01"] {
            assert_eq!(parse_since(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn other_files_are_refused_with_the_line() {
        for (text, want) in [
            (
                "hello world\n",
                "line 1: not an audit log entry (invalid JSON",
            ),
            (
                "{\"a\": 1}\n",
                "line 1: not an audit log entry (no \"type\")",
            ),
            (
                "\n{\"type\": \"response\"}\n",
                "line 2: not an audit log entry (a response without",
            ),
        ] {
            let err = collect(text.as_bytes(), &Filter::default()).unwrap_err();
            assert!(err.to_string().starts_with(want), "{text:?}: {err}");
        }
        assert!(collect(&b""[..], &Filter::default()).unwrap().is_empty());
    }
}

//! The secret-leak check over every log the test suite produced.
//!
//! With `HUSH_TEST_LOG_DIR` set (`scripts/test` sets it to `target/test-logs`), the harness
//! keeps the stderr of every hushd, hush-agent, hush-injector and `hush` CLI it starts in that
//! directory instead of a temporary one, runs hushd and the agent at trace level for Hush's own
//! crates, and [`remember`]s every secret it sees go by: tokens and unseal keys in hushd's
//! answers, secret IDs, passwords, and the values of KV writes. After the tests,
//! `leak-grep DIR` ([`scan`]) looks for each remembered secret in each log and fails on any
//! hit, naming the file and line but never the secret (only its length and first characters).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::Value;

/// Where the logs and the remembered secrets go; unset: temporary directories, nothing kept.
pub const LOG_DIR_ENV: &str = "HUSH_TEST_LOG_DIR";

/// The log filter of hushd and hush-agent while the suite keeps its logs: Hush's own crates at
/// trace, their dependencies (hyper, rustls, h2...) at info.
pub const TRACE_FILTER: &str = "hush_store=trace,hushd=trace,hush_agent=trace,hush_api=trace,info";

/// Shorter values are not remembered: `root`, `v1` or `bar` are in logs as words, not leaks.
pub const MIN_SECRET_LEN: usize = 8;

/// JSON fields whose string values (or arrays of strings) are secrets wherever they appear.
const SECRET_FIELDS: &[&str] = &[
    "client_token",
    "secret_id",
    "password",
    "secret_key",
    "token",
    "encoded_token",
    "otp",
];

/// Secret fields at the top level of a body only (`sys/init`'s and `sys/rekey`'s unseal keys,
/// `sys/unseal`'s key): deeper down, `keys` is a LIST answer's names.
const TOP_LEVEL_SECRET_FIELDS: &[&str] = &["root_token", "keys", "keys_base64", "key"];

/// The directory logs and secrets go to, when the suite keeps them.
pub fn log_dir() -> Option<PathBuf> {
    std::env::var_os(LOG_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// A new log file path `DIR/logs/<test binary>-<pid>-<n>-<name>.log`, when logs are kept.
pub(crate) fn kept_log_path(name: &str) -> Option<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = log_dir()?.join("logs");
    std::fs::create_dir_all(&dir).ok()?;
    let exe = std::env::current_exe().ok();
    let binary = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("test");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Some(dir.join(format!("{binary}-{}-{n}-{name}.log", std::process::id())))
}

/// Remember `value` as a secret the logs must not hold (when logs are kept and it is long
/// enough to mean something).
pub fn remember(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let Some(dir) = log_dir() else { return };
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if !SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(value.to_string())
    {
        return;
    }
    let dir = dir.join("secrets");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    // One JSON string per line (a value may hold a newline), appended: one file per process.
    let line = format!("{}\n", Value::String(value.to_string()));
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.jsonl", std::process::id())))
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Remember the secrets of one exchange with hushd: the string leaves of a KV write's `data`
/// (a request to `.../data/...`) and every [`SECRET_FIELDS`] value in the request and answer.
pub fn remember_exchange(path: &str, request: Option<&Value>, answer: &Value) {
    if log_dir().is_none() {
        return;
    }
    if let Some(body) = request {
        if path.contains("/data/") {
            if let Some(data) = body.get("data") {
                strings(data, &mut |s| remember(s));
            }
        }
        secret_fields(body, &mut |s| remember(s));
    }
    secret_fields(answer, &mut |s| remember(s));
}

fn strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, f)),
        Value::Object(o) => o.values().for_each(|v| strings(v, f)),
        _ => {}
    }
}

fn secret_fields(v: &Value, f: &mut dyn FnMut(&str)) {
    if let Value::Object(o) = v {
        for (k, v) in o {
            if TOP_LEVEL_SECRET_FIELDS.contains(&k.as_str()) {
                strings(v, f);
            }
        }
    }
    nested_secret_fields(v, f);
}

fn nested_secret_fields(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                if SECRET_FIELDS.contains(&k.as_str()) && !v.is_object() {
                    strings(v, f);
                } else {
                    nested_secret_fields(v, f);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| nested_secret_fields(v, f)),
        _ => {}
    }
}

/// A remembered secret found in a log.
#[derive(Debug, PartialEq, Eq)]
pub struct Leak {
    pub file: PathBuf,
    pub line: usize,
    /// Which secret, without showing it: its first 3 characters and its length.
    pub secret: String,
}

/// What [`scan`] looked at and found.
#[derive(Debug, Default)]
pub struct Report {
    pub secrets: usize,
    pub files: usize,
    pub bytes: u64,
    pub leaks: Vec<Leak>,
}

/// Every remembered secret of `dir/secrets/*.jsonl`, looked for in every `dir/logs/*.log`.
pub fn scan(dir: &Path) -> std::io::Result<Report> {
    let mut secrets = BTreeSet::new();
    for file in files(&dir.join("secrets"), "jsonl")? {
        for line in std::fs::read_to_string(&file)?.lines() {
            if let Ok(Value::String(s)) = serde_json::from_str::<Value>(line) {
                secrets.insert(s);
            }
        }
    }
    let secrets: Vec<String> = secrets.into_iter().collect();
    let mut report = Report {
        secrets: secrets.len(),
        ..Report::default()
    };
    let logs = files(&dir.join("logs"), "log")?;
    report.files = logs.len();
    if secrets.is_empty() {
        return Ok(report);
    }
    let matcher = aho_corasick::AhoCorasick::new(&secrets).map_err(std::io::Error::other)?;
    for file in logs {
        let text = std::fs::read(&file)?;
        report.bytes += text.len() as u64;
        for hit in matcher.find_overlapping_iter(&text) {
            let secret = &secrets[hit.pattern().as_usize()];
            report.leaks.push(Leak {
                line: 1 + text[..hit.start()].iter().filter(|b| **b == b'\n').count(),
                file: file.clone(),
                secret: fingerprint(secret),
            });
        }
    }
    Ok(report)
}

/// `abc…(24 chars)`: enough to find the secret in the test, not enough to use it.
fn fingerprint(secret: &str) -> String {
    let head: String = secret.chars().take(3).collect();
    format!("{head}…({} chars)", secret.chars().count())
}

fn files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, sub: &str, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(name), text).unwrap();
    }

    #[test]
    fn a_secret_in_a_log_is_found_with_its_line_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "secrets",
            "1.jsonl",
            "\"hvs.SuperSecretToken1\"\n\"multi\\nline secret\"\n",
        );
        write(dir.path(), "logs", "a-hushd.log", "start\nok\n");
        write(
            dir.path(),
            "logs",
            "b-agent.log",
            "one\ntwo token=hvs.SuperSecretToken1 oops\n",
        );
        let report = scan(dir.path()).unwrap();
        assert_eq!((report.secrets, report.files), (2, 2));
        assert_eq!(
            report.leaks,
            vec![Leak {
                file: dir.path().join("logs/b-agent.log"),
                line: 2,
                secret: "hvs…(21 chars)".into(),
            }]
        );
    }

    #[test]
    fn clean_logs_and_no_secrets_report_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "logs", "a.log", "hvs.SuperSecretToken1\n");
        assert!(scan(dir.path()).unwrap().leaks.is_empty());
        write(
            dir.path(),
            "secrets",
            "1.jsonl",
            "\"something-else-entirely\"\n",
        );
        assert!(scan(dir.path()).unwrap().leaks.is_empty());
    }

    #[test]
    fn the_secrets_of_an_exchange_are_picked_out() {
        let mut seen = Vec::new();
        let answer = serde_json::json!({
            "auth": {"client_token": "hvs.abc", "accessor": "not-a-secret", "policies": ["default"]},
            "keys": ["k1", "k2"],
            "wrap_info": {"token": "hvs.wrapping"},
            "data": {"secret_id": "sid", "ttl": 30, "keys": ["app/", "db"]},
        });
        secret_fields(&answer, &mut |s| seen.push(s.to_string()));
        seen.sort();
        assert_eq!(seen, ["hvs.abc", "hvs.wrapping", "k1", "k2", "sid"]);
    }
}

//! A webhook's configuration (`sys/webhooks/:name`): what is stored behind the barrier, how a
//! write is validated (every rule a 400 naming the field), and what a read shows (never the
//! HMAC secret: `secret_set: true`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroize;

use crate::logical::events::glob_matches;
use crate::logical::fields::{field_str, field_u64, list_field};
use crate::logical::{Data, LogicalError};

/// The event types a webhook may ask for (`*`: all of them).
pub const EVENT_TYPES: &[&str] = &[
    "kv.write",
    "kv.delete",
    "kv.destroy",
    "kv.rollback",
    "rotation.succeeded",
    "rotation.failed",
    "lease.revoked",
    "lease.expired",
    "login.failed",
    "seal",
    "unseal",
    "audit.failed",
    "agent.stale",
];

/// Attempts per delivery when the write gives none.
pub const DEFAULT_MAX_ATTEMPTS: u64 = 10;
/// The most attempts a webhook may ask for.
pub const MAX_MAX_ATTEMPTS: u64 = 50;
/// Deliveries waiting per webhook when the write gives no `max_pending`.
pub const DEFAULT_MAX_PENDING: u64 = 10_000;
/// The most deliveries a webhook may keep waiting.
pub const MAX_MAX_PENDING: u64 = 100_000;
/// Webhooks one store may hold.
pub const MAX_WEBHOOKS: usize = 100;

const MAX_URL: usize = 2048;
const MAX_CA_PEM: usize = 64 * 1024;
const MAX_GLOBS: usize = 64;
const MAX_GLOB: usize = 512;
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 1024;
const FIELDS: &[&str] = &[
    "url",
    "ca_pem",
    "events",
    "paths",
    "secret",
    "max_attempts",
    "max_pending",
];

/// One webhook as stored (`config/<name>`). The secret is wiped from memory when dropped and
/// never shown by `Debug` or [`StoredWebhook::public`].
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredWebhook {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    pub events: Vec<String>,
    /// Globs over API paths; empty: every path.
    #[serde(default)]
    pub paths: Vec<String>,
    pub secret: String,
    pub max_attempts: u64,
    pub max_pending: u64,
    pub created: chrono::DateTime<chrono::Utc>,
    pub updated: chrono::DateTime<chrono::Utc>,
}

impl Drop for StoredWebhook {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for StoredWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredWebhook")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl StoredWebhook {
    /// What a read answers: everything but the secret, which shows as `secret_set`.
    pub fn public(&self) -> Value {
        json!({
            "url": self.url,
            "ca_pem": self.ca_pem.clone().unwrap_or_default(),
            "events": self.events,
            "paths": self.paths,
            "secret_set": !self.secret.is_empty(),
            "max_attempts": self.max_attempts,
            "max_pending": self.max_pending,
            "created": self.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "updated": self.updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// Does this webhook want `event_type` at API path `path`?
    pub fn wants(&self, event_type: &str, path: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event_type)
            && (self.paths.is_empty() || self.paths.iter().any(|g| glob_matches(g, path)))
    }
}

/// Webhook names: 1-64 letters, digits, `-`, `_`, `.` (not only dots).
pub fn check_name(name: &str) -> Result<(), LogicalError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.bytes().all(|b| b == b'.');
    if ok {
        Ok(())
    } else {
        Err(LogicalError::invalid(format!(
            "invalid webhook name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The webhook a write of `data` makes: fields not given keep their value in `existing`
/// (a first write must give `url`, `events` and `secret`).
pub fn from_write(
    data: &Data,
    existing: Option<&StoredWebhook>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StoredWebhook, LogicalError> {
    if let Some(unknown) = data.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(LogicalError::invalid(format!(
            "unknown field {unknown:?} (fields: {})",
            FIELDS.join(", ")
        )));
    }
    let url = match field_str(data, "url")? {
        Some(u) => check_url(u)?,
        None => existing
            .map(|e| e.url.clone())
            .ok_or_else(|| LogicalError::invalid("missing url (an http:// or https:// URL)"))?,
    };
    let ca_pem = match field_str(data, "ca_pem")? {
        Some(p) if p.trim().is_empty() => None,
        Some(p) => {
            check_ca_pem(p)?;
            Some(p.to_string())
        }
        None => existing.and_then(|e| e.ca_pem.clone()),
    };
    if ca_pem.is_some() && !url.starts_with("https://") {
        return Err(LogicalError::invalid(
            "ca_pem: given for an http:// url (a CA applies to https:// only)",
        ));
    }
    let events = match list_field(data, "events")? {
        Some(list) => check_events(list)?,
        None => existing.map(|e| e.events.clone()).ok_or_else(|| {
            LogicalError::invalid("missing events (a list of event types, or [\"*\"] for all)")
        })?,
    };
    let paths = match list_field(data, "paths")? {
        Some(list) => check_globs(list)?,
        None => existing.map(|e| e.paths.clone()).unwrap_or_default(),
    };
    let secret = match data.get("secret") {
        Some(Value::String(s)) => {
            if s.len() < MIN_SECRET {
                return Err(LogicalError::invalid(format!(
                    "secret: at least {MIN_SECRET} bytes"
                )));
            }
            if s.len() > MAX_SECRET {
                return Err(LogicalError::invalid(format!(
                    "secret: at most {MAX_SECRET} bytes"
                )));
            }
            s.clone()
        }
        Some(Value::Null) | None => existing.map(|e| e.secret.clone()).ok_or_else(|| {
            LogicalError::invalid(format!(
                "missing secret (the HMAC key deliveries are signed with, at least {MIN_SECRET} bytes)"
            ))
        })?,
        Some(_) => return Err(LogicalError::invalid("secret must be a string")),
    };
    let bounded = |key: &str, max: u64, default: u64, old: Option<u64>| match field_u64(data, key)?
    {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(LogicalError::invalid(format!(
            "{key}: {n} is out of range (1 to {max})"
        ))),
        None => Ok(old.unwrap_or(default)),
    };
    let max_attempts = bounded(
        "max_attempts",
        MAX_MAX_ATTEMPTS,
        DEFAULT_MAX_ATTEMPTS,
        existing.map(|e| e.max_attempts),
    )?;
    let max_pending = bounded(
        "max_pending",
        MAX_MAX_PENDING,
        DEFAULT_MAX_PENDING,
        existing.map(|e| e.max_pending),
    )?;
    Ok(StoredWebhook {
        url,
        ca_pem,
        events,
        paths,
        secret,
        max_attempts,
        max_pending,
        created: existing.map_or(now, |e| e.created),
        updated: now,
    })
}

/// An absolute http(s) URL with a host, no user info (it would be read back) and no fragment.
fn check_url(raw: &str) -> Result<String, LogicalError> {
    let bad = |why: &str| LogicalError::invalid(format!("url: {raw:?} {why}"));
    if raw.len() > MAX_URL {
        return Err(LogicalError::invalid(format!(
            "url: longer than {MAX_URL} bytes"
        )));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds user info: put credentials in the secret or the receiver, not the URL",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("has a #fragment"));
    }
    Ok(url.to_string())
}

/// One or more PEM certificates that parse as X.509.
pub fn check_ca_pem(pem: &str) -> Result<(), LogicalError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use x509_cert::der::Decode;
    if pem.len() > MAX_CA_PEM {
        return Err(LogicalError::invalid(format!(
            "ca_pem: longer than {MAX_CA_PEM} bytes"
        )));
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| LogicalError::invalid("ca_pem: not valid PEM"))?;
    if certs.is_empty() {
        return Err(LogicalError::invalid(
            "ca_pem: no CERTIFICATE block (-----BEGIN CERTIFICATE-----)",
        ));
    }
    for (i, c) in certs.iter().enumerate() {
        x509_cert::Certificate::from_der(c.as_ref()).map_err(|_| {
            LogicalError::invalid(format!(
                "ca_pem: certificate {} is not an X.509 certificate",
                i + 1
            ))
        })?;
    }
    Ok(())
}

fn check_events(list: Vec<String>) -> Result<Vec<String>, LogicalError> {
    if list.is_empty() {
        return Err(LogicalError::invalid(
            "events: empty (a list of event types, or [\"*\"] for all)",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for e in list {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(LogicalError::invalid(format!(
                "events: unknown event type {e:?} (one of {}, or *)",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Globs over API paths: `*` matches any run of characters (`/` included); nothing else is
/// special, so `?`, `[`, `]`, `{`, `}` are refused rather than taken literally.
fn check_globs(list: Vec<String>) -> Result<Vec<String>, LogicalError> {
    if list.len() > MAX_GLOBS {
        return Err(LogicalError::invalid(format!(
            "paths: {} globs, at most {MAX_GLOBS}",
            list.len()
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for g in list {
        let bad = |why: &str| {
            LogicalError::invalid(format!(
                "paths: {g:?} {why} (a glob over API paths such as secret/data/app/*)"
            ))
        };
        if g.len() > MAX_GLOB {
            return Err(bad(&format!("is longer than {MAX_GLOB} bytes")));
        }
        if g.starts_with('/') {
            return Err(bad("starts with /"));
        }
        if g.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("holds whitespace or control characters"));
        }
        if g.chars().any(|c| "?[]{}".contains(c)) {
            return Err(bad("uses ? [ ] { }: only * is a wildcard"));
        }
        if g.contains("**") {
            return Err(bad("has ** (one * already matches across /)"));
        }
        if g.split('/').any(|s| s == "." || s == "..") {
            return Err(bad("has a . or .. segment"));
        }
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        v.as_object().unwrap().clone()
    }

    fn ok_write() -> Value {
        json!({
            "url": "https://hooks.example.com/hush",
            "events": ["kv.write", "seal"],
            "paths": "secret/data/app/*, secret/data/db",
            "secret": "0123456789abcdef",
        })
    }

    fn err(v: Value) -> String {
        from_write(&data(v), None, chrono::Utc::now())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_write_is_validated_and_the_secret_never_shows() {
        let w = from_write(&data(ok_write()), None, chrono::Utc::now()).unwrap();
        assert_eq!(w.paths, vec!["secret/data/app/*", "secret/data/db"]);
        assert_eq!(w.max_attempts, DEFAULT_MAX_ATTEMPTS);
        let shown = w.public().to_string();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert_eq!(w.public()["secret_set"], true);
        assert!(!format!("{w:?}").contains("0123456789abcdef"));
        // An update keeps the secret and what it does not name.
        let u = from_write(&data(json!({"max_attempts": 3})), Some(&w), w.created).unwrap();
        assert_eq!((u.secret.as_str(), u.max_attempts), ("0123456789abcdef", 3));
        assert_eq!(u.events, w.events);
    }

    #[test]
    fn bad_fields_are_400s_naming_them() {
        let with = |k: &str, v: Value| {
            let mut d = ok_write();
            d[k] = v;
            err(d)
        };
        assert!(with("url", json!("ftp://x/y")).contains("not an http:// or https:// URL"));
        assert!(with("url", json!("not a url")).contains("is not a URL"));
        assert!(with("url", json!("https://u:p@h/")).contains("user info"));
        assert!(with("events", json!(["kv.writ"])).contains("unknown event type \"kv.writ\""));
        assert!(with("events", json!([])).contains("events: empty"));
        assert!(with("paths", json!(["secret/[a]"])).contains("only * is a wildcard"));
        assert!(with("paths", json!(["/secret/*"])).contains("starts with /"));
        assert!(with("paths", json!(["a/**"])).contains("has **"));
        assert!(with("secret", json!("short")).contains("at least 16 bytes"));
        assert!(with("max_attempts", json!(0)).contains("out of range (1 to 50)"));
        assert!(with("max_attempts", json!(51)).contains("out of range"));
        assert!(with("ca_pem", json!("junk")).contains("no CERTIFICATE block"));
        assert!(with(
            "ca_pem",
            json!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        )
        .contains("not an X.509 certificate"));
        assert!(with("bogus", json!(1)).contains("unknown field \"bogus\""));
        let mut d = ok_write();
        d.as_object_mut().unwrap().remove("secret");
        assert!(err(d).contains("missing secret"));
        assert!(check_name("a/b").is_err() && check_name("..").is_err());
        assert!(check_name("deploy-hook_1.x").is_ok());
    }

    #[test]
    fn events_and_path_globs_filter() {
        let w = from_write(&data(ok_write()), None, chrono::Utc::now()).unwrap();
        assert!(w.wants("kv.write", "secret/data/app/x/y"));
        assert!(w.wants("kv.write", "secret/data/db"));
        assert!(!w.wants("kv.write", "secret/data/dbx"));
        assert!(!w.wants("kv.delete", "secret/data/app/x"));
        let mut all = ok_write();
        all["events"] = json!("*");
        all["paths"] = json!([]);
        let w = from_write(&data(all), None, chrono::Utc::now()).unwrap();
        assert!(w.wants("lease.expired", "anything/at/all"));
    }
}

//! Text helpers of the database engine: statement templates, generated usernames, list
//! fields, `allowed_roles` globs, SQL identifier quoting and the scrubbing of
//! secrets out of database error messages.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroize;

use crate::logical::{Data, LogicalError};

/// Characters of generated usernames' random part (letters and digits).
const USERNAME_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Length of generated passwords without a `password_policy` (Vault's default policy, whose
/// characters are safe inside a single-quoted SQL literal, a URL and a shell word, at 24
/// characters instead of its 20).
pub(super) const PASSWORD_LEN: usize = 24;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub(super) const MAX_USERNAME_LEN: usize = 63;

/// A stored secret string (a root or static-role password): zeroized on drop, redacted in
/// Debug, stored as a plain JSON string behind the barrier.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub(super) struct SecretText(String);

impl SecretText {
    pub(super) fn new(s: impl Into<String>) -> Self {
        SecretText(s.into())
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Replace `{{key}}` (also written `{{ key }}`) by its value, for each pair.
pub(super) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (key, value) in vars {
        for pattern in [format!("{{{{{key}}}}}"), format!("{{{{ {key} }}}}")] {
            if out.contains(&pattern) {
                out = out.replace(&pattern, value);
            }
        }
    }
    out
}

/// A statements field: a JSON list of strings, or one string holding one or more statements
/// (Vault's weak typing; never split on commas, which SQL holds).
pub(super) fn statements_field(
    data: &Data,
    key: &str,
) -> Result<Option<Vec<String>>, LogicalError> {
    let bad = || LogicalError::invalid(format!("{key} must be a string or a list of strings"));
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(Vec::new())),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .filter(|r| r.as_ref().map_or(true, |s| !s.trim().is_empty()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A string field, `None` when absent; 400 when it is not a string.
pub(super) fn str_field(data: &Data, key: &str) -> Result<Option<String>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(LogicalError::invalid(format!("{key} must be a string"))),
    }
}

/// Names of configs and roles: Vault's `\w(([\w-.]+)?\w)?`.
pub(super) fn check_name(kind: &str, name: &str) -> Result<(), LogicalError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = name.as_bytes();
    let ok = match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            word(first)
                && word(last)
                && name.len() <= 128
                && bytes.iter().all(|&b| word(b) || b == b'-' || b == b'.')
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LogicalError::invalid(format!(
            "invalid {kind} name {name:?}: use letters, digits, '_', '-' and '.'"
        )))
    }
}

/// Keep what is safe inside a quoted identifier and cut to `max` characters.
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// Vault's PostgreSQL username: `v-<display name, 8>-<role, 8>-<random 20>-<unix time>`,
/// cut to 63 characters.
pub(super) fn generate_username(display_name: &str, role: &str, now: DateTime<Utc>) -> String {
    let mut rng = rand::rng();
    let random: String = (0..20)
        .map(|_| char::from(USERNAME_ALPHABET[rng.random_range(0..USERNAME_ALPHABET.len())]))
        .collect();
    let name = format!(
        "v-{}-{}-{random}-{}",
        sanitize(display_name, 8),
        sanitize(role, 8),
        now.timestamp()
    );
    name.chars().take(MAX_USERNAME_LEN).collect()
}

/// `allowed_roles` entries: `*` alone, or globs with `*` anywhere.
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `{{expiration}}` as Vault renders it for PostgreSQL: `2006-01-02 15:04:05+0000`.
pub(super) fn expiration_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%z").to_string()
}

/// A double-quoted SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Replace each secret (and its percent-encoded form) in a message by `[redacted]`.
pub(super) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(secret, "[redacted]");
        let encoded =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        out = out.replace(&encoded, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_replaces_both_spellings_and_leaves_others() {
        let s = render(
            "CREATE ROLE \"{{name}}\" PASSWORD '{{ password }}' {{other}}",
            &[("name", "u1"), ("password", "p")],
        );
        assert_eq!(s, "CREATE ROLE \"u1\" PASSWORD 'p' {{other}}");
    }

    #[test]
    fn statements_take_string_or_list() {
        let d = json!({"a": "SELECT 1, 2; SELECT 3", "b": ["x", "", "y"], "c": 3});
        let d = d.as_object().unwrap();
        assert_eq!(
            statements_field(d, "a").unwrap(),
            Some(vec!["SELECT 1, 2; SELECT 3".to_string()])
        );
        assert_eq!(
            statements_field(d, "b").unwrap(),
            Some(vec!["x".to_string(), "y".to_string()])
        );
        assert!(statements_field(d, "c").is_err());
        assert_eq!(statements_field(d, "none").unwrap(), None);
    }

    #[test]
    fn usernames_follow_vault_and_fit_postgres() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let u = generate_username("token-with-a-long-name", "readonly-role", now);
        assert!(u.starts_with("v-token-wi-readonly-"), "{u}");
        assert!(u.len() <= MAX_USERNAME_LEN);
        let u = generate_username("a\"b", "r", now);
        assert!(
            u.starts_with("v-a-b-r-") && u.ends_with("-1700000000"),
            "{u}"
        );
        assert!(!u.contains('"'));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("ro", "ro"));
        assert!(!glob_match("ro", "rw"));
        assert!(glob_match("app-*", "app-ro"));
        assert!(!glob_match("app-*", "other"));
        assert!(glob_match("*-ro", "app-ro"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXc"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn names() {
        assert!(check_name("role", "ro").is_ok());
        assert!(check_name("role", "my-role.v1_2").is_ok());
        assert!(check_name("role", "").is_err());
        assert!(check_name("role", "a/b").is_err());
        assert!(check_name("role", "-x").is_err());
    }

    #[test]
    fn scrub_hides_plain_and_encoded_secrets() {
        let msg = "failed for postgres://root:p%40ss@host and p@ss";
        let out = scrub(msg, &["p@ss", ""]);
        assert!(!out.contains("p@ss") && !out.contains("p%40ss"), "{out}");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let t = DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(expiration_text(t), "1970-01-01 00:00:00+0000");
    }
}

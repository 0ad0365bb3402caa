//! Parsing of request parameters the way Vault's framework does it (weakly typed: the query
//! string gives `"3"` where a JSON body gives `3`), signed duration fields (over the shared
//! [`crate::logical::duration`] parser), timestamps, and the key path rules.
//!
//! Error messages may quote a parameter's value only for parameters that can never hold a
//! secret (versions, durations, flags); secret data is never quoted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::logical::duration;
use crate::logical::{Data, LogicalError, Request};

/// The longest value quoted back in an error message.
const QUOTE_MAX: usize = 64;

/// Quote a (non-secret) parameter value for an error message, shortened.
fn quote(value: &Value) -> String {
    let mut s = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.len() > QUOTE_MAX {
        let mut cut = QUOTE_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn conversion_error(field: &str, value: &Value, expected: &str) -> LogicalError {
    LogicalError::invalid(format!(
        "error converting input {} for field {field:?}: {expected}",
        quote(value)
    ))
}

/// An integer parameter. Absent, `null` and `""` give `None`.
pub fn int_field(data: &Data, field: &str) -> Result<Option<i64>, LogicalError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_int(v).ok_or_else(|| conversion_error(field, v, "expected an integer")),
    }
}

/// An integer from a JSON number (integral) or a decimal string. `Some(None)` for `""`.
fn parse_int(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Some(i))
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(Some(f as i64))
            }
        }
        Value::String(s) if s.trim().is_empty() => Some(None),
        Value::String(s) => s.trim().parse::<i64>().ok().map(Some),
        _ => None,
    }
}

/// A non-negative integer that fits in `u32` (`max_versions`).
pub fn u32_field(data: &Data, field: &str) -> Result<Option<u32>, LogicalError> {
    match int_field(data, field)? {
        None => Ok(None),
        Some(i) => u32::try_from(i).map(Some).map_err(|_| {
            LogicalError::invalid(format!(
                "{field} must be between 0 and {}, got {i}",
                u32::MAX
            ))
        }),
    }
}

/// A boolean parameter: JSON bool, Go's `strconv.ParseBool` spellings, or a number.
pub fn bool_field(data: &Data, field: &str) -> Result<Option<bool>, LogicalError> {
    let Some(v) = data.get(field) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim() {
            "" => return Ok(None),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| conversion_error(field, v, "expected a boolean"))
}

/// A signed duration in whole seconds (KV keeps a negative `delete_version_after`): a number
/// of seconds or a string [`duration::parse_secs`] reads (`"3h25m19s"`, `"1.5h"`, `"-1s"`).
pub fn duration_field(data: &Data, field: &str) -> Result<Option<i64>, LogicalError> {
    let Some(v) = data.get(field) else {
        return Ok(None);
    };
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(_) => parse_int(v).flatten(),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => duration::parse_secs(s.trim()),
        _ => None,
    };
    secs.map(Some)
        .ok_or_else(|| conversion_error(field, v, "expected a duration"))
}

/// A list of version numbers as Vault's `TypeCommaIntSlice` takes it: `[1, 2]`, `["1","2"]`,
/// `"1,2"` or `3`. Negative numbers name no version and are dropped.
pub fn versions_field(data: &Data) -> Result<Vec<u64>, LogicalError> {
    let bad = |v: &Value| conversion_error("versions", v, "expected a list of integers");
    let mut out = Vec::new();
    let mut push = |v: &Value, item: &Value| -> Result<(), LogicalError> {
        let parts: Vec<Value> = match item {
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect(),
            other => vec![other.clone()],
        };
        for part in parts {
            let n = parse_int(&part).flatten().ok_or_else(|| bad(v))?;
            if let Ok(n) = u64::try_from(n) {
                out.push(n);
            }
        }
        Ok(())
    };
    match data.get("versions") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Array(items)) => {
            for item in items {
                push(v, item)?;
            }
        }
        Some(v @ (Value::String(_) | Value::Number(_))) => push(v, v)?,
        Some(v) => return Err(bad(v)),
    }
    Ok(out)
}

/// RFC 3339 with nanoseconds, as Vault prints timestamps.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An optional timestamp: `""` when unset, as Vault prints `deletion_time`.
pub fn ts_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(ts).unwrap_or_default()
}

/// Vault's warning for body parameters the endpoint does not know.
pub fn ignored_params_warning(req: &Request, known: &[&str]) -> Option<String> {
    let unknown: Vec<&str> = req
        .data
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    (!unknown.is_empty()).then(|| {
        format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        )
    })
}

/// Check a secret's key path: not empty, no empty, `.` or `..` segments, no trailing `/`.
pub fn validate_key(key: &str) -> Result<(), LogicalError> {
    if key.is_empty() {
        return Err(LogicalError::invalid("missing path"));
    }
    if key.ends_with('/') {
        return Err(LogicalError::invalid(format!(
            "invalid path {key:?}: a secret path must not end in '/'"
        )));
    }
    validate_segments(key)
}

/// Check a folder path for listing: empty (the root) or segments each followed by `/`.
pub fn validate_folder(folder: &str) -> Result<(), LogicalError> {
    match folder.strip_suffix('/') {
        None if folder.is_empty() => Ok(()),
        Some(inner) => validate_segments(inner),
        None => validate_segments(folder),
    }
}

fn validate_segments(path: &str) -> Result<(), LogicalError> {
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err(LogicalError::invalid(format!(
                "invalid path {path:?}: empty path segment"
            )));
        }
        if seg == "." || seg == ".." {
            return Err(LogicalError::invalid(format!(
                "invalid path {path:?}: '.' and '..' segments are not allowed"
            )));
        }
        if seg.chars().any(char::is_control) {
            return Err(LogicalError::invalid(format!(
                "invalid path {path:?}: control characters are not allowed"
            )));
        }
    }
    Ok(())
}

/// Vault only accepts `application/merge-patch+json` for PATCH (it answers 415 otherwise).
pub fn check_patch_content_type(req: &Request) -> Result<(), PatchContentTypeError> {
    let raw = req.content_type.as_deref().unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.is_empty() {
        return Err(PatchContentTypeError::Missing);
    }
    if media != MERGE_PATCH {
        return Err(PatchContentTypeError::Unsupported(media));
    }
    Ok(())
}

pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// Why a PATCH request's content type was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchContentTypeError {
    /// 400, as Vault answers when the header is missing.
    #[error("PATCH requires Content-Type of {MERGE_PATCH}, none provided")]
    Missing,
    /// 415 Unsupported Media Type.
    #[error("PATCH requires Content-Type of {MERGE_PATCH}, provided {0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Data {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ints_from_numbers_and_strings() {
        let d = data(json!({"a": 3, "b": "7", "c": "x", "d": 2.5, "e": "", "f": null, "g": 4.0}));
        assert_eq!(int_field(&d, "a").unwrap(), Some(3));
        assert_eq!(int_field(&d, "b").unwrap(), Some(7));
        assert!(int_field(&d, "c").is_err());
        assert!(int_field(&d, "d").is_err());
        assert_eq!(int_field(&d, "e").unwrap(), None);
        assert_eq!(int_field(&d, "f").unwrap(), None);
        assert_eq!(int_field(&d, "g").unwrap(), Some(4));
        assert_eq!(int_field(&d, "missing").unwrap(), None);
        assert!(u32_field(&data(json!({"m": -1})), "m").is_err());
    }

    #[test]
    fn bools_like_go() {
        let d = data(json!({"a": true, "b": "false", "c": "yes", "d": 1, "e": [true]}));
        assert_eq!(bool_field(&d, "a").unwrap(), Some(true));
        assert_eq!(bool_field(&d, "b").unwrap(), Some(false));
        assert!(bool_field(&d, "c").is_err());
        assert_eq!(bool_field(&d, "d").unwrap(), Some(true));
        assert!(bool_field(&d, "e").is_err());
    }

    #[test]
    fn signed_duration_fields() {
        let d = json!({"a": "3h", "b": 60, "c": "soon", "d": true, "n": "-1s", "m": -5});
        let mut d = data(d);
        d.extend(data(json!({"e": "", "f": null, "g": 4.0})));
        assert_eq!(duration_field(&d, "a").unwrap(), Some(10800));
        assert_eq!(duration_field(&d, "b").unwrap(), Some(60));
        assert!(duration_field(&d, "c").is_err());
        assert!(duration_field(&d, "d").is_err());
        assert_eq!(duration_field(&d, "n").unwrap(), Some(-1));
        assert_eq!(duration_field(&d, "m").unwrap(), Some(-5));
        assert_eq!(duration_field(&d, "e").unwrap(), Some(0));
        assert_eq!(duration_field(&d, "f").unwrap(), None);
        assert_eq!(duration_field(&d, "g").unwrap(), Some(4));
        assert_eq!(duration_field(&d, "missing").unwrap(), None);
    }

    #[test]
    fn version_lists_in_every_shape() {
        assert_eq!(
            versions_field(&data(json!({"versions": [1, 2]}))).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            versions_field(&data(json!({"versions": ["3", "4"]}))).unwrap(),
            vec![3, 4]
        );
        assert_eq!(
            versions_field(&data(json!({"versions": "5, 6"}))).unwrap(),
            vec![5, 6]
        );
        assert_eq!(
            versions_field(&data(json!({"versions": 7}))).unwrap(),
            vec![7]
        );
        assert_eq!(
            versions_field(&data(json!({"versions": [-1]}))).unwrap(),
            Vec::<u64>::new()
        );
        assert!(versions_field(&data(json!({}))).unwrap().is_empty());
        assert!(versions_field(&data(json!({"versions": ["x"]}))).is_err());
        assert!(versions_field(&data(json!({"versions": {"a": 1}}))).is_err());
    }

    #[test]
    fn key_paths() {
        assert!(validate_key("app/db").is_ok());
        for bad in ["", "app/", "a//b", "./a", "a/../b", "/a", "a/\u{7}"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_folder("").is_ok());
        assert!(validate_folder("app/").is_ok());
        assert!(validate_folder("app/x/").is_ok());
        assert!(validate_folder("app//").is_err());
        assert!(validate_folder("../").is_err());
    }

    #[test]
    fn patch_content_type() {
        let mut req = Request::new(crate::logical::Operation::Patch, "secret/data/x");
        assert_eq!(
            check_patch_content_type(&req),
            Err(PatchContentTypeError::Missing)
        );
        req.content_type = Some("application/json".into());
        assert!(matches!(
            check_patch_content_type(&req),
            Err(PatchContentTypeError::Unsupported(m)) if m == "application/json"
        ));
        req.content_type = Some("application/merge-patch+json; charset=utf-8".into());
        assert!(check_patch_content_type(&req).is_ok());
    }
}

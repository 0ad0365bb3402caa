//! The one set of readers of request fields every endpoint shares: integers and booleans as
//! JSON or query-string text, durations (seconds or Go duration strings), lists (arrays or
//! comma-separated strings) and names. Field values here never hold secrets, so errors may
//! name the field.

use serde_json::Value;

use super::duration::parse_secs;
use super::{Data, LogicalError};

/// Read an unsigned integer field given as a JSON number or a decimal string (query strings).
pub fn field_u64(data: &Data, key: &str) -> Result<Option<u64>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| LogicalError::invalid(format!("{key} must be a non-negative integer"))),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| LogicalError::invalid(format!("{key} must be a non-negative integer"))),
        Some(_) => Err(LogicalError::invalid(format!(
            "{key} must be a non-negative integer"
        ))),
    }
}

/// Read a boolean field given as JSON `true`/`false` or the strings "true"/"false"/"1"/"0".
pub fn field_bool(data: &Data, key: &str) -> Result<Option<bool>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" | "t" | "True" => Ok(Some(true)),
            "false" | "0" | "f" | "False" | "" => Ok(Some(false)),
            _ => Err(LogicalError::invalid(format!("{key} must be a boolean"))),
        },
        Some(_) => Err(LogicalError::invalid(format!("{key} must be a boolean"))),
    }
}

/// A non-negative duration field in seconds: a whole number of seconds or a duration string.
/// Absent, `null` and `""` give `None`; anything else that is not a duration of zero or more
/// is a 400 naming the field.
pub fn field_secs(data: &Data, key: &str) -> Result<Option<u64>, LogicalError> {
    let bad = |why: &str| LogicalError::invalid(format!("invalid value for {key:?}: {why}"));
    let negative = || bad("a duration must not be negative");
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match parse_secs(s.trim()) {
            Some(secs) => u64::try_from(secs).map(Some).map_err(|_| negative()),
            None => Err(bad(
                "must be a duration such as \"90s\" or \"1h30m\", or a number of seconds",
            )),
        },
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(_)) => Err(negative()),
            (None, None) => Err(bad("must be a whole number of seconds")),
        },
        Some(_) => Err(bad(
            "must be a duration such as \"1h\" or a number of seconds",
        )),
    }
}

/// A string field as written, not trimmed (Vault's `TypeString`: a PEM reads back with its
/// final newline). Absent and `null` give `None`; another type is a 400 naming the field.
pub fn field_str<'a>(data: &'a Data, key: &str) -> Result<Option<&'a str>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(LogicalError::invalid(format!("{key} must be a string"))),
    }
}

/// Role names: letters, digits, `-`, `_`, `.`, `@`; at most 128 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// A list given as a JSON array of strings or a comma-separated string.
pub fn list_field(data: &Data, key: &str) -> Result<Option<Vec<String>>, LogicalError> {
    let bad = || LogicalError::invalid(format!("{key} must be a list of strings"));
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_string()).ok_or_else(bad))
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_fields() {
        let d = json!({"a": "3", "b": 4, "c": "x", "t": "true", "f": false})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(field_u64(&d, "a").unwrap(), Some(3));
        assert_eq!(field_u64(&d, "b").unwrap(), Some(4));
        assert!(field_u64(&d, "c").is_err());
        assert_eq!(field_u64(&d, "zz").unwrap(), None);
        assert_eq!(field_bool(&d, "t").unwrap(), Some(true));
        assert_eq!(field_bool(&d, "f").unwrap(), Some(false));
        assert!(field_bool(&d, "c").is_err());
        let p = json!({"pem": " x\n", "n": 5, "z": null});
        let p = p.as_object().unwrap();
        assert_eq!(field_str(p, "pem").unwrap(), Some(" x\n"), "not trimmed");
        assert_eq!(field_str(p, "z").unwrap(), None);
        let err = field_str(p, "n").unwrap_err();
        assert_eq!(
            (err.status(), err.to_string()),
            (400, "n must be a string".into())
        );
    }

    #[test]
    fn fields_read_numbers_and_strings() {
        let d = json!({"ttl": "1h", " t": " 90s ", "n": 30, "z": 0, "e": "", "null": null});
        let d = d.as_object().unwrap();
        assert_eq!(field_secs(d, "ttl").unwrap(), Some(3600));
        assert_eq!(field_secs(d, " t").unwrap(), Some(90));
        assert_eq!(field_secs(d, "n").unwrap(), Some(30));
        assert_eq!(field_secs(d, "z").unwrap(), Some(0));
        assert_eq!(field_secs(d, "e").unwrap(), None);
        assert_eq!(field_secs(d, "null").unwrap(), None);
        assert_eq!(field_secs(d, "missing").unwrap(), None);
    }

    #[test]
    fn fields_refuse_bad_and_negative_values_naming_the_field() {
        let d = json!({"bad": "soon", "neg": -1, "negs": "-3s", "frac": 1.5, "flag": true,
                       "list": ["1h"]});
        let d = d.as_object().unwrap();
        for key in ["bad", "neg", "negs", "frac", "flag", "list"] {
            let err = field_secs(d, key).unwrap_err();
            assert_eq!(err.status(), 400, "{key}");
            assert!(err.to_string().contains(&format!("\"{key}\"")), "{err}");
        }
        assert!(field_secs(d, "neg")
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }

    #[test]
    fn names() {
        assert!(valid_name("web-app_1.x@y"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"a".repeat(129)));
    }
}

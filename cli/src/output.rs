//! Printing: vault-style `Key/Value` tables or JSON.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde_json::Value;

/// A value as the table shows it: strings bare, anything else as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "n/a".to_string(),
        other => other.to_string(),
    }
}

/// A two-column table with a `Key`/`Value` header, keys padded like the vault CLI.
pub fn table<K: AsRef<str>, V: AsRef<str>>(rows: &[(K, V)]) -> String {
    kv_table(("Key", "Value"), rows)
}

/// A two-column table with the given header.
pub fn kv_table<K: AsRef<str>, V: AsRef<str>>(header: (&str, &str), rows: &[(K, V)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.as_ref().chars().count())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        let pad = width - k.chars().count() + 4;
        out.push_str(k);
        if v.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(v);
            out.push('\n');
        }
    };
    line(header.0, header.1);
    line(&"-".repeat(header.0.len()), &"-".repeat(header.1.len()));
    for (k, v) in rows {
        line(k.as_ref(), v.as_ref());
    }
    out
}

/// A table with a header and a dashed rule, columns padded like the vault CLI's lists.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(w - cell.chars().count() + 4));
            }
        }
        out.push('\n');
        out
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let rule: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let mut out = line(&head) + &line(&rule);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Rows of a JSON object, keys sorted.
pub fn object_rows(v: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let mut rows: Vec<_> = v.iter().map(|(k, v)| (k.clone(), value_text(v))).collect();
    rows.sort();
    rows
}

/// `== Title ==` banner over a section.
pub fn section(title: &str) -> String {
    format!("====== {title} ======\n")
}

/// Pretty JSON on stdout.
pub fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Print one field's value raw (for `$(...)`): no newline unless stdout is a terminal, like
/// the vault CLI's `-field`.
pub fn print_field(v: &Value) -> anyhow::Result<()> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if out.is_terminal() {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Seconds as the vault CLI shows durations: `768h`, `1h30m`, `45s`, `∞` for 0.
pub fn fmt_duration(secs: u64) -> String {
    if secs == 0 {
        return "∞".to_string();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_pads_keys() {
        let t = table(&[("a", "1"), ("longer_key", "2")]);
        assert_eq!(
            t,
            "Key           Value\n---           -----\na             1\nlonger_key    2\n"
        );
    }

    #[test]
    fn values_show_bare_strings_and_json_otherwise() {
        assert_eq!(value_text(&json!("x")), "x");
        assert_eq!(value_text(&json!(["a"])), r#"["a"]"#);
        assert_eq!(value_text(&json!(3)), "3");
        assert_eq!(value_text(&Value::Null), "n/a");
    }

    #[test]
    fn durations_read_like_vaults() {
        assert_eq!(fmt_duration(0), "∞");
        assert_eq!(fmt_duration(45), "45s");
        assert_eq!(fmt_duration(3600), "1h");
        assert_eq!(fmt_duration(5400), "1h30m");
        assert_eq!(fmt_duration(2_764_800), "768h");
    }

    #[test]
    fn object_rows_are_sorted() {
        let m = json!({"b": 1, "a": "x"});
        assert_eq!(
            object_rows(m.as_object().unwrap()),
            [
                ("a".to_string(), "x".to_string()),
                ("b".to_string(), "1".to_string())
            ]
        );
    }
}

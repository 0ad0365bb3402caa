//! Vault's policy syntax, in HCL or JSON, into a [`Policy`].
//!
//! Both syntaxes are first flattened into the same shape (a list of path blocks, each a list of
//! key/value pairs, duplicates kept) so that one validator checks them. Keys that Vault knows but
//! hushd cannot enforce (parameter constraints, wrapping TTL bounds, control groups, MFA) are
//! refused: a policy that silently grants more than it says would be a security hole.

use serde_json::Value;

use super::{normalize_name, Capabilities, PathRule, Policy, PolicyError};

/// Keys Vault accepts in a path block that hushd does not enforce.
const UNENFORCED_KEYS: &[&str] = &[
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "control_group",
    "mfa_methods",
];

/// One `path` block before validation.
struct RawBlock {
    pattern: String,
    entries: Vec<(String, Value)>,
}

/// Parse `text` (HCL, or JSON when it starts with `{`) as the policy `name`.
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let name = normalize_name(name)?;
    let blocks = if text.trim_start().starts_with('{') {
        flatten_json(text)?
    } else {
        flatten_hcl(text)?
    };

    let mut rules: Vec<PathRule> = Vec::new();
    for block in blocks {
        let pattern = check_pattern(&block.pattern)?;
        let caps = block_capabilities(&block)?;
        let types = event_types(&block)?;
        match rules.iter_mut().find(|r| r.pattern == pattern) {
            Some(rule) => {
                rule.capabilities = rule.capabilities.merge(caps);
                for t in types {
                    if !rule.subscribe_event_types.contains(&t) {
                        rule.subscribe_event_types.push(t);
                    }
                }
            }
            None => rules.push(PathRule {
                pattern,
                capabilities: caps,
                subscribe_event_types: types,
            }),
        }
    }
    Ok(Policy {
        name,
        raw: text.to_string(),
        rules,
    })
}

fn path_err(pattern: &str, msg: impl Into<String>) -> PolicyError {
    PolicyError::Path {
        path: pattern.to_string(),
        msg: msg.into(),
    }
}

/// Check a pattern's wildcards and strip leading slashes.
fn check_pattern(written: &str) -> Result<String, PolicyError> {
    let pattern = written.trim_start_matches('/');
    if pattern.is_empty() {
        return Err(path_err(written, "the path must not be empty"));
    }
    if pattern.contains("{{") {
        return Err(path_err(
            written,
            "templated policy paths are not supported",
        ));
    }
    if let Some(i) = pattern.find('*') {
        if i != pattern.len() - 1 {
            return Err(path_err(
                written,
                "\"*\" is only allowed as the last character",
            ));
        }
    }
    let stem = pattern.strip_suffix('*').unwrap_or(pattern);
    // `+*` at the end is a `+` segment followed by the prefix glob, so checking the stem
    // covers it.
    if stem.split('/').any(|seg| seg.contains('+') && seg != "+") {
        return Err(path_err(written, "\"+\" must be a whole path segment"));
    }
    Ok(pattern.to_string())
}

/// Capabilities granted by one block, from `capabilities` and the old `policy` form.
fn block_capabilities(block: &RawBlock) -> Result<Capabilities, PolicyError> {
    let p = &block.pattern;
    let mut caps = Capabilities::NONE;
    for (key, value) in &block.entries {
        match key.as_str() {
            "capabilities" => {
                let Value::Array(items) = value else {
                    return Err(path_err(p, "\"capabilities\" must be a list of strings"));
                };
                for item in items {
                    let Value::String(name) = item else {
                        return Err(path_err(p, "\"capabilities\" must be a list of strings"));
                    };
                    let cap = Capabilities::from_name(name).ok_or_else(|| {
                        path_err(
                            p,
                            format!(
                                "unknown capability {name:?} (valid: create, read, update, \
                                 patch, delete, list, sudo, deny, subscribe)"
                            ),
                        )
                    })?;
                    caps = caps.merge(cap);
                }
            }
            // Read by `event_types`.
            "subscribe_event_types" => {}
            "policy" => {
                let Value::String(level) = value else {
                    return Err(path_err(p, "\"policy\" must be a string"));
                };
                caps = caps.merge(legacy_policy(p, level)?);
            }
            k if UNENFORCED_KEYS.contains(&k) => {
                return Err(path_err(
                    p,
                    format!(
                        "{k:?} is not supported by hushd and would not be enforced; remove it \
                         (the policy is refused rather than applied partially)"
                    ),
                ));
            }
            k => return Err(path_err(p, format!("unknown key {k:?}"))),
        }
    }
    Ok(caps)
}

/// `subscribe_event_types`: a list of event-type globs (`kv-v2/data-*`, `*`).
fn event_types(block: &RawBlock) -> Result<Vec<String>, PolicyError> {
    let p = &block.pattern;
    let bad = || {
        path_err(
            p,
            "\"subscribe_event_types\" must be a list of event types or globs, e.g. [\"kv-v2/data-*\"]",
        )
    };
    let mut out = Vec::new();
    for (key, value) in &block.entries {
        if key != "subscribe_event_types" {
            continue;
        }
        let Value::Array(items) = value else {
            return Err(bad());
        };
        for item in items {
            match item {
                Value::String(t)
                    if !t.trim().is_empty()
                        && !t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    out.push(t.clone());
                }
                _ => return Err(bad()),
            }
        }
    }
    Ok(out)
}

/// Vault's pre-0.9 `policy = "..."` shorthand.
fn legacy_policy(pattern: &str, level: &str) -> Result<Capabilities, PolicyError> {
    let read = Capabilities::READ | Capabilities::LIST;
    let write = read | Capabilities::UPDATE | Capabilities::CREATE | Capabilities::DELETE;
    match level {
        "deny" => Ok(Capabilities::DENY),
        "read" => Ok(read),
        "write" => Ok(write),
        "sudo" => Ok(write | Capabilities::SUDO),
        other => Err(path_err(
            pattern,
            format!("invalid \"policy\" value {other:?} (valid: deny, read, write, sudo)"),
        )),
    }
}

// ---- JSON ----

fn flatten_json(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| PolicyError::Syntax(format!("invalid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(PolicyError::TopLevel(
            "a JSON policy must be an object".into(),
        ));
    };
    let mut blocks = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "path" => match value {
                Value::Object(paths) => json_paths(paths, &mut blocks)?,
                // HCL1's JSON form may give a list of single-path objects.
                Value::Array(items) => {
                    for item in items {
                        let Value::Object(paths) = item else {
                            return Err(PolicyError::TopLevel(
                                "\"path\" must be an object of path blocks".into(),
                            ));
                        };
                        json_paths(paths, &mut blocks)?;
                    }
                }
                _ => {
                    return Err(PolicyError::TopLevel(
                        "\"path\" must be an object of path blocks".into(),
                    ))
                }
            },
            "name" => {}
            other => {
                return Err(PolicyError::TopLevel(format!(
                    "unknown top-level key {other:?} (only \"path\" blocks are allowed)"
                )))
            }
        }
    }
    Ok(blocks)
}

fn json_paths(
    paths: serde_json::Map<String, Value>,
    blocks: &mut Vec<RawBlock>,
) -> Result<(), PolicyError> {
    for (pattern, body) in paths {
        let bodies = match body {
            Value::Object(map) => vec![map],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(map) => Ok(map),
                    _ => Err(path_err(&pattern, "the block must be an object")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(path_err(&pattern, "the block must be an object")),
        };
        for map in bodies {
            blocks.push(RawBlock {
                pattern: pattern.clone(),
                entries: map.into_iter().collect(),
            });
        }
    }
    Ok(())
}

// ---- HCL ----

fn flatten_hcl(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    check_nesting(text)?;
    let body = hcl::parse(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    let mut blocks = Vec::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) => {
                if attr.key() != "name" {
                    return Err(PolicyError::TopLevel(format!(
                        "unknown top-level key {:?} (only \"path\" blocks are allowed)",
                        attr.key()
                    )));
                }
            }
            hcl::Structure::Block(block) => {
                if block.identifier() != "path" {
                    return Err(PolicyError::TopLevel(format!(
                        "unknown top-level block {:?} (only \"path\" blocks are allowed)",
                        block.identifier()
                    )));
                }
                let [label] = block.labels() else {
                    return Err(PolicyError::TopLevel(
                        "a path block needs exactly one label: path \"<pattern>\" { ... }".into(),
                    ));
                };
                let pattern = label.as_str().to_string();
                let mut entries = Vec::new();
                for inner in block.body.into_inner() {
                    match inner {
                        hcl::Structure::Attribute(attr) => {
                            let value = hcl_value(&pattern, attr.key(), attr.expr())?;
                            entries.push((attr.key().to_string(), value));
                        }
                        // A nested block is never valid; report it by name so unenforced
                        // keys get their clear message.
                        hcl::Structure::Block(nested) => {
                            entries.push((nested.identifier().to_string(), Value::Null));
                        }
                    }
                }
                blocks.push(RawBlock { pattern, entries });
            }
        }
    }
    Ok(blocks)
}

/// A literal HCL expression as JSON; anything computed is refused.
/// How deep blocks, lists and objects may nest in an HCL policy. A Vault policy needs 4 at most
/// (`path { allowed_parameters = { key = [...] } }`); hcl-rs's parser backtracks exponentially
/// on deep unfinished nesting (found by fuzzing: 450 bytes nested 17 deep took seconds of CPU),
/// so deeper text is refused before it is parsed.
const MAX_NESTING: usize = 8;

/// Refuse HCL nested deeper than [`MAX_NESTING`] (brackets in strings and comments not counted).
fn check_nesting(text: &str) -> Result<(), PolicyError> {
    let (mut depth, mut in_string, mut escaped, mut comment) = (0usize, false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if comment {
            comment = c != '\n';
        } else if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else {
            match c {
                '"' => in_string = true,
                '#' => comment = true,
                '/' if chars.peek() == Some(&'/') => comment = true,
                '{' | '[' | '(' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(PolicyError::Syntax(format!(
                            "blocks, lists and objects nest deeper than {MAX_NESTING} levels"
                        )));
                    }
                }
                '}' | ']' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

fn hcl_value(pattern: &str, key: &str, expr: &hcl::Expression) -> Result<Value, PolicyError> {
    use hcl::Expression as E;
    Ok(match expr {
        E::Null => Value::Null,
        E::Bool(b) => Value::Bool(*b),
        E::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        E::String(s) => Value::String(s.clone()),
        E::Array(items) => Value::Array(
            items
                .iter()
                .map(|e| hcl_value(pattern, key, e))
                .collect::<Result<_, _>>()?,
        ),
        E::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let k = match k {
                    hcl::ObjectKey::Identifier(id) => id.as_str().to_string(),
                    hcl::ObjectKey::Expression(E::String(s)) => s.clone(),
                    _ => {
                        return Err(path_err(
                            pattern,
                            format!("{key:?}: object keys must be literal"),
                        ))
                    }
                };
                out.insert(k, hcl_value(pattern, key, v)?);
            }
            Value::Object(out)
        }
        E::Parenthesis(inner) => hcl_value(pattern, key, inner)?,
        _ => {
            return Err(path_err(
                pattern,
                format!("{key:?}: only literal values are allowed (no variables or templates)"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &Policy, pattern: &str) -> Vec<&'static str> {
        p.rules
            .iter()
            .find(|r| r.pattern == pattern)
            .expect("rule")
            .capabilities
            .names()
    }

    #[test]
    fn deep_nesting_is_refused_before_the_hcl_parser_backtracks() {
        // Found by fuzzing (fuzz/corpus/policy/regression-deep-nesting): seconds of CPU in
        // hcl-rs for 454 bytes.
        let text = include_str!("../../../../fuzz/corpus/policy/regression-deep-nesting");
        let err = Policy::parse("x", text).unwrap_err().to_string();
        assert!(err.contains("nest deeper than 8 levels"), "{err}");
        // Brackets in strings and comments do not count.
        let ok = r#"
# {{{{{{{{{{ [[[[[[[[[
path "secret/data/[[[[[[[[[((((" {
  capabilities = ["create", "update"] // ((((((((( {{{{{{{{{
}
"#;
        assert_eq!(Policy::parse("x", ok).unwrap().rules.len(), 1);
    }

    #[test]
    fn parses_hcl() {
        let text = r#"
            # comment
            path "secret/data/*" {
              capabilities = ["create", "read", "update", "patch", "delete"]
            }
            // another comment
            path "/secret/metadata/+" { capabilities = ["list"] }
        "#;
        let p = Policy::parse("Dev", text).unwrap();
        assert_eq!(p.name, "dev");
        assert_eq!(p.raw, text);
        assert_eq!(
            caps(&p, "secret/data/*"),
            vec!["create", "delete", "patch", "read", "update"]
        );
        assert_eq!(caps(&p, "secret/metadata/+"), vec!["list"]);
    }

    #[test]
    fn parses_json_and_matches_hcl() {
        let json = r#"{"path": {"secret/*": {"capabilities": ["read", "list"]},
                                "sys/mounts": {"capabilities": ["deny"]}}}"#;
        let hcl = r#"
            path "secret/*" { capabilities = ["read", "list"] }
            path "sys/mounts" { capabilities = ["deny"] }
        "#;
        let a = Policy::parse("a", json).unwrap();
        let b = Policy::parse("a", hcl).unwrap();
        assert_eq!(a.rules, b.rules);
        let arr = r#"{"path": [{"secret/*": {"capabilities": ["read"]}}]}"#;
        assert_eq!(
            caps(&Policy::parse("a", arr).unwrap(), "secret/*"),
            vec!["read"]
        );
    }

    #[test]
    fn duplicate_blocks_union_and_deny_wins() {
        let text = r#"
            path "a" { capabilities = ["read"] }
            path "a" { capabilities = ["update"] }
            path "b" { capabilities = ["read", "deny"] }
        "#;
        let p = Policy::parse("x", text).unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(caps(&p, "a"), vec!["read", "update"]);
        assert_eq!(caps(&p, "b"), vec!["deny"]);
    }

    #[test]
    fn legacy_policy_form_maps_to_capabilities() {
        let p = Policy::parse("x", r#"path "a/*" { policy = "write" }"#).unwrap();
        assert_eq!(
            caps(&p, "a/*"),
            vec!["create", "delete", "list", "read", "update"]
        );
        let p = Policy::parse("x", r#"path "a" { policy = "sudo" }"#).unwrap();
        assert!(caps(&p, "a").contains(&"sudo"));
        let err = Policy::parse("x", r#"path "a" { policy = "admin" }"#).unwrap_err();
        assert!(err.to_string().contains("\"admin\""), "{err}");
    }

    #[test]
    fn unknown_capability_is_named() {
        let err = Policy::parse(
            "x",
            r#"path "secret/*" { capabilities = ["read", "reed"] }"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"reed\"") && msg.contains("secret/*"),
            "{msg}"
        );
    }

    #[test]
    fn subscribe_and_its_event_types_parse_in_hcl_and_json() {
        let hcl = r#"
            path "secret/data/*" {
              capabilities = ["read", "subscribe"]
              subscribe_event_types = ["kv-v2/data-*", "kv-v2/metadata-write"]
            }
            path "secret/data/*" { subscribe_event_types = ["kv-v2/data-*", "kv-v1/*"] }
        "#;
        let json = r#"{"path": {"secret/data/*": {"capabilities": ["read", "subscribe"],
            "subscribe_event_types": ["kv-v2/data-*", "kv-v2/metadata-write", "kv-v1/*"]}}}"#;
        for text in [hcl, json] {
            let p = Policy::parse("events", text).unwrap();
            assert_eq!(caps(&p, "secret/data/*"), vec!["read", "subscribe"]);
            assert_eq!(
                p.rules[0].subscribe_event_types,
                ["kv-v2/data-*", "kv-v2/metadata-write", "kv-v1/*"]
            );
        }
        for bad in [
            r#"path "a" { subscribe_event_types = "kv*" }"#,
            r#"path "a" { subscribe_event_types = [""] }"#,
            r#"path "a" { subscribe_event_types = ["kv *"] }"#,
            r#"path "a" { subscribe_event_types = [1] }"#,
            r#"{"path": {"a": {"subscribe_event_types": {"kv": true}}}}"#,
        ] {
            let err = Policy::parse("x", bad).unwrap_err();
            assert!(
                err.to_string().contains("subscribe_event_types"),
                "{bad}: {err}"
            );
            assert_eq!(crate::logical::LogicalError::from(err).status(), 400);
        }
        let err = Policy::parse("x", r#"path "a" { capabilities = ["subscrib"] }"#).unwrap_err();
        assert!(err.to_string().contains("subscribe)"), "{err}");
    }

    #[test]
    fn unenforced_keys_are_refused() {
        for key in [
            "allowed_parameters",
            "denied_parameters",
            "required_parameters",
        ] {
            let text = format!(
                "path \"secret/*\" {{\n capabilities = [\"update\"]\n {key} = {{ \"foo\" = [] }}\n}}\n"
            );
            let msg = Policy::parse("x", &text).unwrap_err().to_string();
            assert!(msg.contains(key) && msg.contains("not supported"), "{msg}");
        }
        let text = "path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1h\"\n}\n";
        assert!(Policy::parse("x", text)
            .unwrap_err()
            .to_string()
            .contains("min_wrapping_ttl"));
        let json = r#"{"path": {"a": {"capabilities": ["read"], "max_wrapping_ttl": "1h"}}}"#;
        assert!(Policy::parse("x", json)
            .unwrap_err()
            .to_string()
            .contains("max_wrapping_ttl"));
        // As a nested block too.
        let nested = r#"path "a" {
            capabilities = ["read"]
            control_group { max_ttl = "1h" }
        }"#;
        assert!(Policy::parse("x", nested)
            .unwrap_err()
            .to_string()
            .contains("control_group"));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let bad = [
            r#"path "a" { capabilities = "read" }"#,
            r#"path "a" { capabilities = [1] }"#,
            r#"path "a" { foo = 1 }"#,
            r#"path "a/*/b" { capabilities = ["read"] }"#,
            r#"path "a/b+c" { capabilities = ["read"] }"#,
            r#"path "" { capabilities = ["read"] }"#,
            r#"path "a" "b" { capabilities = ["read"] }"#,
            r#"path "identity/{{identity.entity.id}}" { capabilities = ["read"] }"#,
            r#"path "a" { capabilities = [var.x] }"#,
            r#"other "a" { capabilities = ["read"] }"#,
            r#"rules = 1"#,
            r#"path "a" { capabilities = ["read"] "#,
            r#"{"path": {"a": {"capabilities": ["read"]}}, "extra": 1}"#,
            r#"{"path": "a"}"#,
            r#"{"path": {"a": 1}}"#,
            r#"{"path": "#,
        ];
        for text in bad {
            assert!(Policy::parse("x", text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn wildcard_forms_are_accepted() {
        let text = r#"
            path "*" { capabilities = ["read"] }
            path "a/+/b" { capabilities = ["read"] }
            path "a/+*" { capabilities = ["read"] }
            path "a/+/b*" { capabilities = ["read"] }
        "#;
        assert_eq!(Policy::parse("x", text).unwrap().rules.len(), 4);
    }

    #[test]
    fn empty_policy_and_name_attribute_are_fine() {
        assert!(Policy::parse("x", "").unwrap().rules.is_empty());
        assert!(Policy::parse("x", "name = \"x\"\n")
            .unwrap()
            .rules
            .is_empty());
        assert!(Policy::parse("a/b", "").is_err());
    }
}

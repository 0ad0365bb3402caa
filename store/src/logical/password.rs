//! Password policies: Vault's policy syntax (`sys/policies/password`), its checks, and the
//! generator every password hushd makes goes through.
//!
//! A policy is HCL (or the JSON HCL also reads):
//!
//! ```hcl
//! length = 20
//! rule "charset" {
//!   charset   = "abcdefghijklmnopqrstuvwxyz"
//!   min-chars = 1
//! }
//! ```
//!
//! **Generation** is Vault's: each candidate is `length` characters drawn independently and
//! uniformly from the union of the rules' charsets, and a candidate that misses a rule's
//! `min-chars` is thrown away (rejection sampling), so every string that satisfies the rules is
//! equally likely: no position or character is favoured, unlike placing the required
//! characters and shuffling. Indexes come from `rand`'s `Uniform` (Lemire's method with
//! rejection: unbiased) over the thread's CSPRNG (`rand::rng()`, ChaCha12 seeded and reseeded
//! from the OS). A policy whose rules are rarely met would spin: as Vault, a draw gives up
//! after [`GENERATE_TIMEOUT`], and a policy is stored only if 10 draws finish within it.
//! Rejected candidates are overwritten in one zeroized buffer; the result is `Zeroizing`.

use std::time::{Duration, Instant};

use rand::distr::{Distribution, Uniform};
use serde_json::Value;
use zeroize::Zeroizing;

/// Shortest and longest `length` a stored policy may have (Vault's bounds).
pub const MIN_LENGTH: usize = 4;
pub const MAX_LENGTH: usize = 100;
/// Most distinct characters in the union of a policy's charsets (Vault's limit).
pub const MAX_CHARSET: usize = 256;
/// How long one draw may take before it gives up (Vault: 1 s).
pub const GENERATE_TIMEOUT: Duration = Duration::from_secs(1);

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

/// One `rule "charset"`: at least `min_chars` characters of `charset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

impl CharsetRule {
    fn count(&self, candidate: &[char]) -> usize {
        candidate
            .iter()
            .filter(|c| self.charset.contains(c))
            .count()
    }
}

/// A parsed, checked password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
    /// The union of the rules' charsets, sorted, without repeats.
    charset: Vec<char>,
}

/// What is wrong with a policy's text; shown after `invalid password policy: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn bad(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

/// A draw that did not satisfy the rules within [`GENERATE_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out generating string")]
pub struct GenerateTimeout;

/// Vault's printable: letters, marks, numbers, punctuation, symbols and the ASCII space.
fn printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace()) && !('\u{200b}'..='\u{200f}').contains(&c)
}

impl PasswordPolicy {
    /// A policy from its parts, checked as a parsed one is (but without the length bounds,
    /// which apply to stored policies only).
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> Result<Self, PolicyError> {
        if length == 0 {
            return Err(bad("length must be > 0"));
        }
        let needed: usize = rules.iter().map(|r| r.min_chars).sum();
        if length < needed {
            return Err(bad(format!(
                "specified rules require at least {needed} characters but {length} is specified"
            )));
        }
        let mut charset: Vec<char> = rules.iter().flat_map(|r| r.charset.clone()).collect();
        charset.sort_unstable();
        charset.dedup();
        if charset.is_empty() {
            return Err(bad("no charset specified"));
        }
        if charset.iter().any(|&c| !printable(c)) {
            return Err(bad("non-printable character in charset"));
        }
        if charset.len() > MAX_CHARSET {
            return Err(bad(format!(
                "charset is too long: limited to {MAX_CHARSET} characters, the rules hold {}",
                charset.len()
            )));
        }
        Ok(PasswordPolicy {
            length,
            rules,
            charset,
        })
    }

    /// Vault's default policy at `length` (raised to 4, the rules' minimum): at least one
    /// lower-case letter, one upper-case letter, one digit and one `-`.
    pub fn default_with_length(length: usize) -> Self {
        let rule = |chars: &str| CharsetRule {
            charset: chars.chars().collect(),
            min_chars: 1,
        };
        PasswordPolicy::new(
            length.max(4),
            vec![rule(LOWER), rule(UPPER), rule(DIGITS), rule("-")],
        )
        .expect("the default policy is valid")
    }

    /// Parse a policy document: HCL, or JSON when it starts with `{`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let (length, rules) = if text.trim_start().starts_with('{') {
            parse_json(text)?
        } else {
            parse_hcl(text)?
        };
        PasswordPolicy::new(length, rules)
    }

    /// The union of the rules' charsets (sorted, no repeats).
    pub fn charset(&self) -> &[char] {
        &self.charset
    }

    /// Does `password` have the policy's length, only its characters, and meet every rule?
    pub fn satisfied_by(&self, password: &str) -> bool {
        let chars: Vec<char> = password.chars().collect();
        chars.len() == self.length
            && chars.iter().all(|c| self.charset.binary_search(c).is_ok())
            && self.rules.iter().all(|r| r.count(&chars) >= r.min_chars)
    }

    /// Draw a password; give up after `timeout`.
    pub fn generate_within(&self, timeout: Duration) -> Result<Zeroizing<String>, GenerateTimeout> {
        let start = Instant::now();
        let pick = Uniform::new(0, self.charset.len()).expect("a non-empty charset");
        let mut rng = rand::rng();
        let mut candidate = Zeroizing::new(vec!['\0'; self.length]);
        for attempt in 0u64.. {
            for slot in candidate.iter_mut() {
                *slot = self.charset[pick.sample(&mut rng)];
            }
            if self
                .rules
                .iter()
                .all(|r| r.min_chars == 0 || r.count(&candidate) >= r.min_chars)
            {
                let mut out = Zeroizing::new(String::with_capacity(self.length * 4));
                out.extend(candidate.iter());
                return Ok(out);
            }
            if attempt % 256 == 255 && start.elapsed() >= timeout {
                break;
            }
        }
        Err(GenerateTimeout)
    }

    /// Draw a password within [`GENERATE_TIMEOUT`].
    pub fn generate(&self) -> Result<Zeroizing<String>, GenerateTimeout> {
        self.generate_within(GENERATE_TIMEOUT)
    }

    /// Vault's check before storing: `length` within [`MIN_LENGTH`]..=[`MAX_LENGTH`].
    pub fn check_length(&self) -> Result<(), PolicyError> {
        if (MIN_LENGTH..=MAX_LENGTH).contains(&self.length) {
            Ok(())
        } else {
            Err(bad(format!(
                "passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters"
            )))
        }
    }
}

/// A password from Vault's default policy (at least one lower-case letter, upper-case
/// letter, digit and `-`) of `length` characters (at least 4). The default policy meets its
/// rules in about one draw in four, so this never times out.
pub fn generate_default(length: usize) -> Zeroizing<String> {
    let policy = PasswordPolicy::default_with_length(length);
    loop {
        if let Ok(p) = policy.generate_within(Duration::from_secs(3600)) {
            return p;
        }
    }
}

fn length_of(key: &str, n: Option<i64>) -> Result<usize, PolicyError> {
    let n = n.ok_or_else(|| bad(format!("{key} must be an integer")))?;
    usize::try_from(n).map_err(|_| bad(format!("{key} must not be negative")))
}

// ---- HCL ----

fn hcl_int(key: &str, expr: &hcl::Expression) -> Result<usize, PolicyError> {
    match expr {
        hcl::Expression::Number(n) => length_of(key, n.as_i64()),
        _ => Err(bad(format!("{key} must be an integer"))),
    }
}

fn parse_hcl(text: &str) -> Result<(usize, Vec<CharsetRule>), PolicyError> {
    let body = hcl::parse(text).map_err(|e| bad(format!("unable to decode: {e}")))?;
    let mut length = 0;
    let mut rules = Vec::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) if attr.key() == "length" => {
                length = hcl_int("length", attr.expr())?;
            }
            hcl::Structure::Attribute(attr) => {
                return Err(bad(format!(
                    "unknown key {:?}: a policy holds \"length\" and \"rule\" blocks",
                    attr.key()
                )))
            }
            hcl::Structure::Block(block) if block.identifier() == "rule" => {
                let kind = match block.labels() {
                    [label] => label.as_str().to_string(),
                    _ => {
                        return Err(bad(
                            "a rule needs exactly one label: rule \"charset\" { ... }",
                        ))
                    }
                };
                if kind != "charset" {
                    return Err(unknown_rule(&kind));
                }
                let mut charset = None;
                let mut min_chars = 0;
                for inner in block.body.into_inner() {
                    match inner {
                        hcl::Structure::Attribute(a) if a.key() == "charset" => match a.expr() {
                            hcl::Expression::String(s) => charset = Some(s.chars().collect()),
                            _ => return Err(bad("charset must be a string")),
                        },
                        hcl::Structure::Attribute(a) if a.key() == "min-chars" => {
                            min_chars = hcl_int("min-chars", a.expr())?;
                        }
                        hcl::Structure::Attribute(a) => return Err(unknown_rule_key(a.key())),
                        hcl::Structure::Block(b) => return Err(unknown_rule_key(b.identifier())),
                    }
                }
                rules.push(charset_rule(charset, min_chars)?);
            }
            hcl::Structure::Block(block) => {
                return Err(bad(format!(
                    "unknown block {:?}: a policy holds \"length\" and \"rule\" blocks",
                    block.identifier()
                )))
            }
        }
    }
    Ok((length, rules))
}

fn unknown_rule(kind: &str) -> PolicyError {
    bad(format!(
        "unable to parse rules: unrecognized rule type {kind:?}: hushd knows \"charset\""
    ))
}

fn unknown_rule_key(key: &str) -> PolicyError {
    bad(format!(
        "unable to parse rule charset: unknown key {key:?}: a charset rule holds \"charset\" and \"min-chars\""
    ))
}

fn charset_rule(charset: Option<Vec<char>>, min_chars: usize) -> Result<CharsetRule, PolicyError> {
    match charset {
        Some(c) if !c.is_empty() => Ok(CharsetRule {
            charset: c,
            min_chars,
        }),
        _ => Err(bad(
            "unable to parse rule charset: charset is missing or empty",
        )),
    }
}

// ---- JSON (HCL's JSON form) ----

fn parse_json(text: &str) -> Result<(usize, Vec<CharsetRule>), PolicyError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("unable to decode: {e}")))?;
    let Value::Object(top) = value else {
        return Err(bad("unable to decode: the policy must be an object"));
    };
    let mut length = 0;
    let mut rules = Vec::new();
    for (key, v) in top {
        match key.as_str() {
            "length" => length = length_of("length", v.as_i64())?,
            "rule" => json_rules(v, &mut rules)?,
            other => {
                return Err(bad(format!(
                    "unknown key {other:?}: a policy holds \"length\" and \"rule\" blocks"
                )))
            }
        }
    }
    Ok((length, rules))
}

/// `"rule"`: `{"charset": BODY}`, `{"charset": [BODY, ...]}`, or a list of those.
fn json_rules(v: Value, rules: &mut Vec<CharsetRule>) -> Result<(), PolicyError> {
    match v {
        Value::Array(items) => items.into_iter().try_for_each(|i| json_rules(i, rules)),
        Value::Object(map) => {
            for (kind, body) in map {
                if kind != "charset" {
                    return Err(unknown_rule(&kind));
                }
                let bodies = match body {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for body in bodies {
                    let Value::Object(fields) = body else {
                        return Err(bad("unable to parse rule charset: it must be an object"));
                    };
                    let mut charset = None;
                    let mut min_chars = 0;
                    for (k, v) in fields {
                        match k.as_str() {
                            "charset" => match v {
                                Value::String(s) => charset = Some(s.chars().collect()),
                                _ => return Err(bad("charset must be a string")),
                            },
                            "min-chars" => min_chars = length_of("min-chars", v.as_i64())?,
                            other => return Err(unknown_rule_key(other)),
                        }
                    }
                    rules.push(charset_rule(charset, min_chars)?);
                }
            }
            Ok(())
        }
        _ => Err(bad("unable to parse rules: \"rule\" must be an object")),
    }
}

#[cfg(test)]
mod tests;

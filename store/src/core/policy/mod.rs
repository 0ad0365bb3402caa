//! ACL policies: parsing (HCL and JSON), the policy store, and evaluation of a token's merged
//! ACL against a request path.
//!
//! # Layout
//!
//! - this file: the parsed [`Policy`], its [`PathRule`]s and the [`Capabilities`] bit set;
//! - [`parse`]: Vault's HCL and JSON policy syntax into a [`Policy`], refusing anything we
//!   cannot enforce;
//! - [`acl`]: the merged [`Acl`] of a token's policies and Vault's path-matching priority;
//! - [`store`]: the [`PolicyStore`] kept behind the barrier, with the built-in `default`
//!   policy and a cache of ACLs.

use std::fmt;

pub mod acl;
pub mod parse;
pub mod store;

pub use acl::Acl;
pub use store::{PolicyStore, DEFAULT_POLICY};

use crate::logical::LogicalError;

/// Name of the built-in policy that grants everything. It has no rules and cannot be written.
pub const ROOT_POLICY: &str = "root";
/// Name of the built-in policy attached to tokens unless they opt out.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// A set of capabilities, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const CREATE: Capabilities = Capabilities(1);
    pub const READ: Capabilities = Capabilities(1 << 1);
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const DENY: Capabilities = Capabilities(1 << 7);
    /// Vault 1.15+: receive events about the path (with `subscribe_event_types`).
    pub const SUBSCRIBE: Capabilities = Capabilities(1 << 8);

    /// Names in a stable order (the order Vault reports them in, before sorting).
    const NAMES: [(&'static str, Capabilities); 9] = [
        ("create", Capabilities::CREATE),
        ("read", Capabilities::READ),
        ("update", Capabilities::UPDATE),
        ("patch", Capabilities::PATCH),
        ("delete", Capabilities::DELETE),
        ("list", Capabilities::LIST),
        ("sudo", Capabilities::SUDO),
        ("deny", Capabilities::DENY),
        ("subscribe", Capabilities::SUBSCRIBE),
    ];

    /// The capability named `name`, as written in a policy.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    pub fn contains(self, other: Capabilities) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_deny(self) -> bool {
        self.contains(Capabilities::DENY)
    }

    /// Union, where `deny` wins: a set holding `deny` holds nothing else.
    pub fn merge(self, other: Capabilities) -> Capabilities {
        let all = Capabilities(self.0 | other.0);
        if all.is_deny() {
            Capabilities::DENY
        } else {
            all
        }
    }

    /// The names of the capabilities in the set, sorted.
    pub fn names(self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Self::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect();
        out.sort_unstable();
        out
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// One `path "<pattern>" { ... }` block, after merging duplicates within the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The pattern as written, minus any leading `/`: exact, `*`-suffixed prefix, or with
    /// `+` segments.
    pub pattern: String,
    pub capabilities: Capabilities,
    /// `subscribe_event_types`: globs of the event types the `subscribe` capability covers
    /// here (none: no events).
    pub subscribe_event_types: Vec<String>,
}

/// A parsed ACL policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Lower-cased name.
    pub name: String,
    /// The text as the client wrote it; returned as Vault's `policy` / `rules` field.
    pub raw: String,
    /// One rule per distinct pattern, in the order first seen.
    pub rules: Vec<PathRule>,
}

impl Policy {
    /// Parse Vault's HCL or JSON policy syntax. See [`parse`].
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        parse::parse_policy(name, text)
    }

    /// The built-in `root` policy: no rules; an ACL holding it allows everything.
    pub fn root() -> Policy {
        Policy {
            name: ROOT_POLICY.to_string(),
            raw: String::new(),
            rules: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.name == ROOT_POLICY
    }
}

/// Why a policy was refused. Every variant is the client's fault (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is neither valid HCL nor valid JSON.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    /// Something at the top level other than `path` blocks.
    #[error("failed to parse policy: {0}")]
    TopLevel(String),
    /// A path block is wrong; `msg` says how.
    #[error("failed to parse policy: path {path:?}: {msg}")]
    Path { path: String, msg: String },
    /// The policy name is not acceptable.
    #[error("{0}")]
    Name(String),
}

impl From<PolicyError> for LogicalError {
    fn from(e: PolicyError) -> Self {
        LogicalError::InvalidRequest(e.to_string())
    }
}

/// Lower-case and check a policy name: non-empty, at most 128 characters, no `/`, no `..`,
/// no control characters.
pub fn normalize_name(name: &str) -> Result<String, PolicyError> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Err(PolicyError::Name("policy name must not be empty".into()));
    }
    if name.chars().count() > 128 {
        return Err(PolicyError::Name(
            "policy name must be at most 128 characters".into(),
        ));
    }
    if name.contains('/') || name.contains("..") || name == "." {
        return Err(PolicyError::Name(
            "policy name must not contain \"/\" or \"..\"".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(PolicyError::Name(
            "policy name must not contain control characters".into(),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_in_merge() {
        let rw = Capabilities::READ | Capabilities::UPDATE;
        assert_eq!(rw.merge(Capabilities::LIST), rw | Capabilities::LIST);
        assert_eq!(rw.merge(Capabilities::DENY), Capabilities::DENY);
        assert_eq!(Capabilities::DENY.merge(rw), Capabilities::DENY);
    }

    #[test]
    fn names_are_sorted_and_known() {
        let c = Capabilities::UPDATE | Capabilities::CREATE | Capabilities::READ;
        assert_eq!(c.names(), vec!["create", "read", "update"]);
        assert_eq!(Capabilities::from_name("patch"), Some(Capabilities::PATCH));
        assert_eq!(Capabilities::from_name("root"), None);
        assert!(!Capabilities::NONE.contains(Capabilities::NONE));
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(normalize_name(" Admins ").unwrap(), "admins");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("a/b").is_err());
        assert!(normalize_name("..").is_err());
        assert!(normalize_name("a..b").is_err());
        assert!(normalize_name(&"x".repeat(129)).is_err());
        assert!(normalize_name(&"x".repeat(128)).is_ok());
        assert!(normalize_name("a\nb").is_err());
    }
}

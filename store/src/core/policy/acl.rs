//! The merged ACL of a set of policies, and Vault's rules for choosing the one pattern that
//! governs a request path.
//!
//! Rules for the same pattern string are unioned across policies, `deny` winning. For a path,
//! an exact pattern wins; otherwise, among the matching `*` / `+` patterns, the one with the
//! highest priority does, by (in order): the later first wildcard position, not ending in
//! `*`, fewer `+` segments, the longer pattern, the lexically greater pattern. A LIST of
//! `foo/` also considers patterns matching `foo`, as Vault does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Capabilities, Policy};
use crate::logical::events::glob_matches;
use crate::logical::Operation;

/// A pattern with `*` (prefix glob, last character only) and/or `+` (one segment).
#[derive(Debug)]
struct WildRule {
    /// The pattern without its trailing `*`.
    stem: String,
    /// Ends in `*`: anything may follow the stem.
    prefix: bool,
    /// The stem's segments, when it has `+` segments.
    segments: Option<Vec<String>>,
    /// Byte offset of the first `+` or `*`.
    first_wildcard: usize,
    /// Number of `+` segments.
    plus_count: usize,
    caps: Capabilities,
    /// The pattern as written.
    pattern: String,
}

impl WildRule {
    fn new(pattern: &str, caps: Capabilities) -> WildRule {
        let prefix = pattern.ends_with('*');
        let stem = pattern.strip_suffix('*').unwrap_or(pattern).to_string();
        let segments: Vec<String> = stem.split('/').map(str::to_string).collect();
        let plus_count = segments.iter().filter(|s| *s == "+").count();
        WildRule {
            first_wildcard: pattern.find(['+', '*']).unwrap_or(pattern.len()),
            segments: (plus_count > 0).then_some(segments),
            plus_count,
            prefix,
            stem,
            caps,
            pattern: pattern.to_string(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        let Some(segments) = &self.segments else {
            return self.prefix && path.starts_with(&self.stem);
        };
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < segments.len() || (!self.prefix && parts.len() != segments.len()) {
            return false;
        }
        let last = segments.len() - 1;
        segments
            .iter()
            .zip(&parts)
            .enumerate()
            .all(|(i, (seg, part))| {
                seg == "+"
                    || seg == part
                    || (self.prefix && i == last && part.starts_with(seg.as_str()))
            })
    }

    /// Greater is preferred.
    fn priority(&self) -> (usize, bool, Reverse<usize>, usize, &str) {
        (
            self.first_wildcard,
            !self.prefix,
            Reverse(self.plus_count),
            self.stem.len(),
            &self.stem,
        )
    }
}

/// The merged rules of a token's policies.
#[derive(Debug)]
pub struct Acl {
    root: bool,
    /// Merged rules by pattern, as written: the source of `exact` and `wild`.
    merged: BTreeMap<String, Capabilities>,
    exact: HashMap<String, Capabilities>,
    wild: Vec<WildRule>,
    /// `subscribe_event_types` by pattern, unioned across policies.
    event_types: HashMap<String, Vec<String>>,
}

impl Acl {
    /// Merge `policies`. Holding the `root` policy makes a root ACL.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        if policies.iter().any(|p| p.is_root()) {
            return Acl::root();
        }
        let mut merged: BTreeMap<String, Capabilities> = BTreeMap::new();
        let mut event_types: HashMap<String, Vec<String>> = HashMap::new();
        for rule in policies.iter().flat_map(|p| &p.rules) {
            let entry = merged.entry(rule.pattern.clone()).or_default();
            *entry = entry.merge(rule.capabilities);
            if !rule.subscribe_event_types.is_empty() {
                let types = event_types.entry(rule.pattern.clone()).or_default();
                for t in &rule.subscribe_event_types {
                    if !types.contains(t) {
                        types.push(t.clone());
                    }
                }
            }
        }
        let mut exact = HashMap::new();
        let mut wild = Vec::new();
        for (pattern, caps) in &merged {
            if pattern.ends_with('*') || pattern.split('/').any(|s| s == "+") {
                wild.push(WildRule::new(pattern, *caps));
            } else {
                exact.insert(pattern.clone(), *caps);
            }
        }
        Acl {
            root: false,
            merged,
            exact,
            wild,
            event_types,
        }
    }

    /// An ACL that allows everything.
    pub fn root() -> Acl {
        Acl {
            root: true,
            merged: BTreeMap::new(),
            exact: HashMap::new(),
            wild: Vec::new(),
            event_types: HashMap::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The merged rules, by pattern (empty for root).
    pub fn rules(&self) -> &BTreeMap<String, Capabilities> {
        &self.merged
    }

    /// The capabilities of the governing rule for `path`, or `None` when no rule matches.
    /// `list` enables Vault's trailing-slash leniency for LIST requests.
    fn governing(&self, path: &str, list: bool) -> Option<Capabilities> {
        self.governing_rule(path, list).map(|(_, caps)| caps)
    }

    /// The governing rule for `path`: its pattern and capabilities.
    fn governing_rule(&self, path: &str, list: bool) -> Option<(&str, Capabilities)> {
        let path = path.trim_start_matches('/');
        let trimmed = if list { path.strip_suffix('/') } else { None };
        // Vault lists `path/` whether or not the client sent the slash (`vault list
        // cubbyhole` is governed by `cubbyhole/*`).
        let slashed = (list && !path.ends_with('/')).then(|| format!("{path}/"));
        let slashed = slashed.as_deref();
        if let Some((pattern, caps)) = self.exact.get_key_value(path) {
            return Some((pattern, *caps));
        }
        if let Some((pattern, caps)) = trimmed
            .or(slashed)
            .and_then(|t| self.exact.get_key_value(t))
        {
            return Some((pattern, *caps));
        }
        self.wild
            .iter()
            .filter(|r| {
                r.matches(path)
                    || trimmed.is_some_and(|t| r.matches(t))
                    || slashed.is_some_and(|t| r.matches(t))
            })
            .max_by(|a, b| a.priority().cmp(&b.priority()))
            .map(|r| (r.pattern.as_str(), r.caps))
    }

    /// May this token receive an event of `event_type` about `path` (Vault 1.15+)? Root: yes.
    /// Otherwise the rule governing `path` must grant `read` (it could read what changed)
    /// and `subscribe`, and list a `subscribe_event_types` glob matching `event_type`.
    pub fn allows_event(&self, path: &str, event_type: &str) -> bool {
        if self.root {
            return true;
        }
        let Some((pattern, caps)) = self.governing_rule(path, false) else {
            return false;
        };
        !caps.is_deny()
            && caps.contains(Capabilities::READ)
            && caps.contains(Capabilities::SUBSCRIBE)
            && self
                .event_types
                .get(pattern)
                .is_some_and(|types| types.iter().any(|g| glob_matches(g, event_type)))
    }

    /// Vault's `sys/capabilities-self` answer for `path`: `["root"]` for a root ACL, `["deny"]`
    /// when nothing matches or the rule denies, otherwise the granted capabilities, sorted.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_string()];
        }
        match self.governing(path, true) {
            Some(caps) if !caps.is_deny() && !caps.is_empty() => {
                caps.names().into_iter().map(str::to_string).collect()
            }
            _ => vec!["deny".to_string()],
        }
    }

    /// Whether `op` on `path` is allowed; `needs_sudo` also requires the `sudo` capability.
    pub fn allows(&self, path: &str, op: Operation, needs_sudo: bool) -> bool {
        if self.root {
            return true;
        }
        let Some(caps) = self.governing(path, op == Operation::List) else {
            return false;
        };
        if caps.is_deny() {
            return false;
        }
        let needed = match op {
            Operation::Create => Capabilities::CREATE,
            Operation::Read => Capabilities::READ,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
            // Lease operations come from the expiration manager, never through an ACL.
            Operation::Renew | Operation::Revoke => return false,
        };
        caps.contains(needed) && (!needs_sudo || caps.contains(Capabilities::SUDO))
    }

    /// Root, or `sudo` on `path` (Vault's "root or sudo privileges" checks).
    pub fn has_sudo(&self, path: &str) -> bool {
        self.root
            || self
                .governing(path, false)
                .is_some_and(|c| !c.is_deny() && c.contains(Capabilities::SUDO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Arc<Policy>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Policy::parse(&format!("p{i}"), t).unwrap()))
            .collect();
        Acl::new(&policies)
    }

    fn rule(pattern: &str, caps: &str) -> String {
        format!("path \"{pattern}\" {{ capabilities = [{caps}] }}\n")
    }

    #[test]
    fn nothing_matching_is_deny() {
        let a = acl(&[&rule("secret/a", "\"read\"")]);
        assert_eq!(a.capabilities("secret/b"), vec!["deny"]);
        assert!(!a.allows("secret/b", Operation::Read, false));
        assert!(a.allows("secret/a", Operation::Read, false));
        assert!(!a.allows("secret/a", Operation::Update, false));
        assert!(!a.is_root());
        // An empty capability list also answers deny.
        let a = acl(&[&rule("x", "")]);
        assert_eq!(a.capabilities("x"), vec!["deny"]);
    }

    #[test]
    fn root_allows_everything() {
        let a = Acl::new(&[Arc::new(Policy::root())]);
        assert!(a.is_root());
        assert_eq!(a.capabilities("anything"), vec!["root"]);
        assert!(a.allows("sys/seal", Operation::Update, true));
        assert!(a.has_sudo("sys/seal"));
    }

    #[test]
    fn star_is_a_prefix_and_matches_empty_rest() {
        let a = acl(&[&rule("secret/*", "\"read\"")]);
        assert!(a.allows("secret/", Operation::Read, false));
        assert!(a.allows("secret/a/b/c", Operation::Read, false));
        assert!(!a.allows("secre", Operation::Read, false));
        let a = acl(&[&rule("secret/fo*", "\"read\"")]);
        assert!(a.allows("secret/foo/bar", Operation::Read, false));
        assert!(!a.allows("secret/bar", Operation::Read, false));
    }

    #[test]
    fn plus_matches_exactly_one_segment() {
        let a = acl(&[&rule("secret/+/config", "\"read\"")]);
        assert!(a.allows("secret/app/config", Operation::Read, false));
        assert!(!a.allows("secret/a/b/config", Operation::Read, false));
        assert!(!a.allows("secret/config", Operation::Read, false));
        assert!(!a.allows("secret/app/config/x", Operation::Read, false));
        let a = acl(&[&rule("secret/+/con*", "\"read\"")]);
        assert!(a.allows("secret/app/config/x", Operation::Read, false));
        assert!(!a.allows("secret/app/other", Operation::Read, false));
        let a = acl(&[&rule("secret/+*", "\"read\"")]);
        assert!(a.allows("secret/a/b/c", Operation::Read, false));
        assert!(!a.allows("other/a", Operation::Read, false));
    }

    #[test]
    fn exact_beats_any_wildcard() {
        let a = acl(&[
            &rule("secret/a", "\"read\""),
            &rule("secret/*", "\"update\""),
        ]);
        assert_eq!(a.capabilities("secret/a"), vec!["read"]);
        assert_eq!(a.capabilities("secret/b"), vec!["update"]);
    }

    #[test]
    fn priority_later_first_wildcard_wins() {
        // foo/bar/+/baz over foo/+/bar/baz; foo/a* over foo/+.
        let a = acl(&[
            &rule("foo/+/bar/baz", "\"read\""),
            &rule("foo/bar/+/baz", "\"update\""),
        ]);
        assert_eq!(a.capabilities("foo/bar/bar/baz"), vec!["update"]);
        let a = acl(&[&rule("foo/+", "\"read\""), &rule("foo/a*", "\"update\"")]);
        assert_eq!(a.capabilities("foo/ab"), vec!["update"]);
        // Longer glob prefix wins over shorter.
        let a = acl(&[
            &rule("secret/*", "\"read\""),
            &rule("secret/app/*", "\"update\""),
        ]);
        assert_eq!(a.capabilities("secret/app/x"), vec!["update"]);
        assert_eq!(a.capabilities("secret/other"), vec!["read"]);
    }

    #[test]
    fn priority_not_ending_in_star_wins() {
        let a = acl(&[
            &rule("foo/+/bar", "\"read\""),
            &rule("foo/+/ba*", "\"update\""),
        ]);
        assert_eq!(a.capabilities("foo/x/bar"), vec!["read"]);
        let a = acl(&[&rule("foo/+", "\"read\""), &rule("foo/*", "\"update\"")]);
        // Same first wildcard position (4): the non-glob wins.
        assert_eq!(a.capabilities("foo/x"), vec!["read"]);
        assert_eq!(a.capabilities("foo/x/y"), vec!["update"]);
    }

    #[test]
    fn priority_fewer_plus_segments_wins() {
        let a = acl(&[
            &rule("foo/+/+/baz", "\"read\""),
            &rule("foo/+/bar/baz", "\"update\""),
        ]);
        assert_eq!(a.capabilities("foo/x/bar/baz"), vec!["update"]);
    }

    #[test]
    fn priority_longer_wins() {
        let a = acl(&[
            &rule("foo/+/bar/b*", "\"read\""),
            &rule("foo/+/bar/ba*", "\"update\""),
        ]);
        assert_eq!(a.capabilities("foo/x/bar/baz"), vec!["update"]);
    }

    #[test]
    fn priority_lexically_greater_wins() {
        // Both: first wildcard at 0, no glob, two `+`, length 5; only the text differs, and
        // "+/a/+" > "+/+/b" ('a' sorts after '+').
        let a = acl(&[&rule("+/a/+", "\"read\""), &rule("+/+/b", "\"update\"")]);
        assert_eq!(a.capabilities("x/a/b"), vec!["read"]);
        let a = acl(&[&rule("+/+/b", "\"update\""), &rule("+/a/+", "\"read\"")]);
        assert_eq!(a.capabilities("x/a/b"), vec!["read"]);
    }

    #[test]
    fn events_need_read_subscribe_and_a_matching_event_type_on_the_governing_rule() {
        let a = acl(&[
            r#"path "secret/data/*" {
                 capabilities = ["read", "subscribe"]
                 subscribe_event_types = ["kv-v2/data-*"]
            }"#,
            r#"path "secret/data/b" { capabilities = ["read"] }"#,
            r#"path "secret/data/c" {
                 capabilities = ["subscribe"]
                 subscribe_event_types = ["*"]
            }"#,
            r#"path "secret/data/d" { capabilities = ["read", "subscribe"] }"#,
            "path \"secret/data/e/*\" {\n capabilities = [\"deny\"]\n subscribe_event_types = [\"*\"]\n}",
        ]);
        assert!(a.allows_event("secret/data/a", "kv-v2/data-write"));
        assert!(a.allows_event("secret/data/x/y", "kv-v2/data-delete"));
        assert!(!a.allows_event("secret/data/a", "kv-v2/metadata-write"));
        // The exact rule governs: read only, no subscribe.
        assert!(!a.allows_event("secret/data/b", "kv-v2/data-write"));
        // Subscribe without read: the token could not read what changed.
        assert!(!a.allows_event("secret/data/c", "kv-v2/data-write"));
        // No subscribe_event_types: no events.
        assert!(!a.allows_event("secret/data/d", "kv-v2/data-write"));
        assert!(!a.allows_event("secret/data/e/f", "kv-v2/data-write"));
        assert!(!a.allows_event("other/data/a", "kv-v2/data-write"));
        // Event types union across policies for the same pattern.
        let u = acl(&[
            "path \"s/*\" {\n capabilities = [\"read\", \"subscribe\"]\n subscribe_event_types = [\"kv-v1/*\"]\n}",
            r#"path "s/*" { subscribe_event_types = ["kv-v2/*"] }"#,
        ]);
        assert!(u.allows_event("s/x", "kv-v1/write") && u.allows_event("s/x", "kv-v2/delete"));
        assert!(!u.allows_event("s/x", "database/rotate"));
        assert!(Acl::root().allows_event("anything", "database/rotate"));
    }

    #[test]
    fn rules_for_the_same_pattern_union_across_policies() {
        let a = acl(&[&rule("secret/*", "\"read\""), &rule("secret/*", "\"list\"")]);
        assert_eq!(a.capabilities("secret/x"), vec!["list", "read"]);
    }

    #[test]
    fn deny_wins_across_policies() {
        let a = acl(&[
            &rule("secret/*", "\"read\", \"update\""),
            &rule("secret/*", "\"deny\""),
        ]);
        assert_eq!(a.capabilities("secret/x"), vec!["deny"]);
        assert!(!a.allows("secret/x", Operation::Read, false));
        // A more specific allow still governs its own path.
        let a = acl(&[
            &rule("secret/*", "\"deny\""),
            &rule("secret/open", "\"read\""),
        ]);
        assert!(a.allows("secret/open", Operation::Read, false));
    }

    #[test]
    fn list_matches_with_and_without_trailing_slash() {
        let a = acl(&[&rule("secret/metadata/*", "\"list\"")]);
        assert!(a.allows("secret/metadata/", Operation::List, false));
        assert!(a.allows("secret/metadata", Operation::List, false));
        let a = acl(&[&rule("secret/metadata", "\"list\"")]);
        assert!(a.allows("secret/metadata/", Operation::List, false));
        // Only for LIST.
        let a = acl(&[&rule("secret/metadata", "\"read\"")]);
        assert!(!a.allows("secret/metadata/", Operation::Read, false));
        let a = acl(&[&rule("+/metadata", "\"list\"")]);
        assert!(a.allows("secret/metadata/", Operation::List, false));
        assert!(!acl(&[&rule("secret/other", "\"list\"")]).allows(
            "secret/metadata/",
            Operation::List,
            false
        ));
    }

    #[test]
    fn sudo_is_required_when_asked() {
        let a = acl(&[
            &rule("sys/audit/*", "\"update\""),
            &rule("sys/seal", "\"update\", \"sudo\""),
        ]);
        assert!(a.allows("sys/audit/x", Operation::Update, false));
        assert!(!a.allows("sys/audit/x", Operation::Update, true));
        assert!(a.allows("sys/seal", Operation::Update, true));
        assert!(a.has_sudo("sys/seal"));
        assert!(!a.has_sudo("sys/audit/x"));
    }

    #[test]
    fn operations_map_to_capabilities() {
        let ops = [
            (Operation::Create, "create"),
            (Operation::Read, "read"),
            (Operation::Update, "update"),
            (Operation::Patch, "patch"),
            (Operation::Delete, "delete"),
            (Operation::List, "list"),
        ];
        for (op, cap) in ops {
            let a = acl(&[&rule("p/*", &format!("\"{cap}\""))]);
            for (other, _) in ops {
                assert_eq!(
                    a.allows("p/x", other, false),
                    other == op,
                    "{cap} vs {other:?}"
                );
            }
        }
    }

    #[test]
    fn leading_slash_in_request_path_is_ignored() {
        let a = acl(&[&rule("secret/a", "\"read\"")]);
        assert!(a.allows("/secret/a", Operation::Read, false));
    }
}

//! Evidence about ACL policies: which stored policies grant every path (`*`), and which grant
//! `sudo`, on a glob (broad) or on exact paths (as needed). The built-in `root` policy is
//! not stored: root tokens are counted with the tokens that never expire.

use crate::core::policy::{Capabilities, ROOT_POLICY};
use crate::core::state::Unsealed;
use crate::logical::LogicalError;

/// A policy rule the report names: policy, pattern, capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub policy: String,
    pub pattern: String,
    pub capabilities: Vec<&'static str>,
}

impl Grant {
    pub fn describe(&self) -> String {
        format!(
            "policy {} grants [{}] on \"{}\"",
            self.policy,
            self.capabilities.join(", "),
            self.pattern
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct PolicyEvidence {
    /// Stored policies (`default` included, `root` not).
    pub names: Vec<String>,
    /// Rules on a pattern that matches every path.
    pub everything: Vec<Grant>,
    /// `sudo` on a glob pattern (ends with `*` or holds a `+` segment).
    pub broad_sudo: Vec<Grant>,
    /// `sudo` on exact paths.
    pub exact_sudo: Vec<Grant>,
}

/// A pattern that matches every path: `*`, `+*`, `+/*`, ...
fn matches_everything(pattern: &str) -> bool {
    let p = pattern.trim_start_matches('/');
    p == "*"
        || p.split('/')
            .all(|seg| seg == "+" || seg == "*" || seg == "+*")
            && p.ends_with('*')
}

fn is_glob(pattern: &str) -> bool {
    pattern.ends_with('*') || pattern.split('/').any(|seg| seg == "+")
}

pub async fn gather(st: &Unsealed) -> Result<PolicyEvidence, LogicalError> {
    let mut ev = PolicyEvidence::default();
    for name in st.policies.list().await? {
        if name == ROOT_POLICY {
            continue;
        }
        let Some(policy) = st.policies.get(&name).await? else {
            continue;
        };
        for rule in &policy.rules {
            if rule.capabilities.is_deny() || rule.capabilities.is_empty() {
                continue;
            }
            let grant = Grant {
                policy: name.clone(),
                pattern: rule.pattern.clone(),
                capabilities: rule.capabilities.names(),
            };
            if matches_everything(&rule.pattern) {
                ev.everything.push(grant.clone());
            }
            if rule.capabilities.contains(Capabilities::SUDO) {
                if is_glob(&rule.pattern) {
                    ev.broad_sudo.push(grant);
                } else {
                    ev.exact_sudo.push(grant);
                }
            }
        }
        ev.names.push(name);
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_counts_as_everything_and_as_a_glob() {
        for p in ["*", "/*", "+/*", "+/+/*"] {
            assert!(super::matches_everything(p), "{p}");
        }
        for p in ["secret/*", "sys/audit", "+/data/*", ""] {
            assert!(!super::matches_everything(p), "{p}");
        }
        assert!(super::is_glob("sys/*"));
        assert!(super::is_glob("secret/+/x"));
        assert!(!super::is_glob("sys/audit/file"));
    }
}

//! The policy store: named ACL policies kept behind the barrier (one entry per policy, in the
//! view the core gives it), the built-in `root` and `default` policies, and a cache of merged
//! ACLs keyed by the sorted list of policy names.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{normalize_name, Acl, Policy, DEFAULT_POLICY_NAME, ROOT_POLICY};
use crate::barrier::BarrierView;
use crate::logical::LogicalError;

/// The built-in `default` policy, written on first open. Operators may change it but not
/// delete it. Vault's templated identity paths are left out: hushd has no identity store.
pub const DEFAULT_POLICY: &str = r#"# Look up this token's own properties.
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Renew this token.
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Revoke this token.
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Ask which capabilities this token has on a path.
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# The merged ACL of this token, for UIs.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Renew a lease given its id (old and new paths).
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Look up a lease given its id.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Agents report their access events and state upstream (sys/agents/report).
path "sys/agents/report" {
    capabilities = ["create", "update"]
}

# This token's own cubbyhole.
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping.
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# General-purpose tools.
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
"#;

/// Cap on cached ACLs; the cache is simply emptied when it fills.
const MAX_CACHED_ACLS: usize = 4096;

/// How a policy is stored.
#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
}

#[derive(Default)]
struct Cache {
    /// Bumped on every change; a lookup that started before a change does not fill the cache.
    generation: u64,
    policies: HashMap<String, Arc<Policy>>,
    acls: HashMap<Vec<String>, Arc<Acl>>,
}

/// Named ACL policies behind the barrier.
pub struct PolicyStore {
    view: BarrierView,
    cache: Mutex<Cache>,
    /// Serialises writers so the cache always ends up agreeing with storage.
    write_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl PolicyStore {
    /// Open the store over `view`, writing the built-in `default` policy if it is absent.
    pub async fn open(view: BarrierView) -> Result<PolicyStore, LogicalError> {
        let store = PolicyStore {
            view,
            cache: Mutex::new(Cache::default()),
            write_lock: tokio::sync::Mutex::new(()),
        };
        if store.view.get(DEFAULT_POLICY_NAME).await?.is_none() {
            store.set(DEFAULT_POLICY_NAME, DEFAULT_POLICY).await?;
        }
        Ok(store)
    }

    /// The policy `name` (case-insensitive). `root` is answered with its empty built-in
    /// form; a name that cannot exist is simply not found.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, LogicalError> {
        let Ok(name) = normalize_name(name) else {
            return Ok(None);
        };
        if name == ROOT_POLICY {
            return Ok(Some(Arc::new(Policy::root())));
        }
        let generation = {
            let cache = self.cache.lock();
            if let Some(p) = cache.policies.get(&name) {
                return Ok(Some(p.clone()));
            }
            cache.generation
        };
        let Some(stored) = self.view.get_json::<StoredPolicy>(&name).await? else {
            return Ok(None);
        };
        let policy = Policy::parse(&name, &stored.policy).map_err(|e| {
            LogicalError::Internal(format!("stored policy {name:?} no longer parses: {e}"))
        })?;
        let policy = Arc::new(policy);
        let mut cache = self.cache.lock();
        if cache.generation == generation {
            cache.policies.insert(name, policy.clone());
        }
        Ok(Some(policy))
    }

    /// Parse and store `text` as `name`. Parse errors are 400s; `root` cannot be written.
    pub async fn set(&self, name: &str, text: &str) -> Result<Arc<Policy>, LogicalError> {
        let name = normalize_name(name)?;
        if name == ROOT_POLICY {
            return Err(LogicalError::invalid("cannot update root policy"));
        }
        let policy = Arc::new(Policy::parse(&name, text)?);
        let _writer = self.write_lock.lock().await;
        let stored = StoredPolicy {
            name: name.clone(),
            policy: text.to_string(),
        };
        self.view.put_json(&name, &stored).await?;
        let mut cache = self.cache.lock();
        cache.generation += 1;
        cache.acls.clear();
        cache.policies.insert(name, policy.clone());
        Ok(policy)
    }

    /// Delete `name`. Deleting a policy that does not exist succeeds; `root` and `default`
    /// cannot be deleted.
    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        let name = normalize_name(name)?;
        if name == ROOT_POLICY {
            return Err(LogicalError::invalid("cannot delete root policy"));
        }
        if name == DEFAULT_POLICY_NAME {
            return Err(LogicalError::invalid("cannot delete default policy"));
        }
        let _writer = self.write_lock.lock().await;
        self.view.delete(&name).await?;
        let mut cache = self.cache.lock();
        cache.generation += 1;
        cache.acls.clear();
        cache.policies.remove(&name);
        Ok(())
    }

    /// Every policy name, sorted, including `root`.
    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        let mut names: Vec<String> = self
            .view
            .list("")
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/'))
            .collect();
        names.push(ROOT_POLICY.to_string());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The merged ACL of `names`. Names that do not exist are skipped; `root` gives a root
    /// ACL. Cached by the sorted, de-duplicated name list until a policy changes.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, LogicalError> {
        let mut key: Vec<String> = names
            .iter()
            .filter_map(|n| normalize_name(n).ok())
            .collect();
        key.sort();
        key.dedup();
        let generation = {
            let cache = self.cache.lock();
            if let Some(acl) = cache.acls.get(&key) {
                return Ok(acl.clone());
            }
            cache.generation
        };
        let acl = if key.iter().any(|n| n == ROOT_POLICY) {
            Arc::new(Acl::root())
        } else {
            let mut policies = Vec::with_capacity(key.len());
            for name in &key {
                if let Some(p) = self.get(name).await? {
                    policies.push(p);
                }
            }
            Arc::new(Acl::new(&policies))
        };
        let mut cache = self.cache.lock();
        if cache.generation == generation {
            if cache.acls.len() >= MAX_CACHED_ACLS {
                cache.acls.clear();
            }
            cache.acls.insert(key, acl.clone());
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logical::Operation;

    async fn store() -> (PolicyStore, BarrierView) {
        let backend = Arc::new(crate::storage::MemoryBackend::new());
        let barrier = Arc::new(crate::barrier::Barrier::new(backend));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        let view = BarrierView::new(barrier, "sys/policy/");
        (PolicyStore::open(view.clone()).await.unwrap(), view)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn default_policy_is_written_once_and_kept() {
        let (ps, view) = store().await;
        let d = ps.get("default").await.unwrap().unwrap();
        assert_eq!(d.raw, DEFAULT_POLICY);
        let acl = ps.acl(&names(&["default"])).await.unwrap();
        assert!(acl.allows("auth/token/lookup-self", Operation::Read, false));
        assert!(acl.allows("auth/token/renew-self", Operation::Update, false));
        assert!(acl.allows("auth/token/revoke-self", Operation::Update, false));
        assert!(acl.allows("sys/capabilities-self", Operation::Update, false));
        assert!(acl.allows("sys/internal/ui/resultant-acl", Operation::Read, false));
        assert!(!acl.allows("secret/data/x", Operation::Read, false));

        // A changed default survives a reopen.
        ps.set("default", r#"path "x" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        let again = PolicyStore::open(view).await.unwrap();
        assert!(again
            .get("default")
            .await
            .unwrap()
            .unwrap()
            .raw
            .contains("path \"x\""));
    }

    #[tokio::test]
    async fn set_get_list_delete() {
        let (ps, _) = store().await;
        let text = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
        ps.set("Dev", text).await.unwrap();
        let p = ps.get("DEV").await.unwrap().unwrap();
        assert_eq!(p.name, "dev");
        assert_eq!(p.raw, text);
        assert_eq!(ps.list().await.unwrap(), names(&["default", "dev", "root"]));
        ps.delete("dev").await.unwrap();
        assert!(ps.get("dev").await.unwrap().is_none());
        assert_eq!(ps.list().await.unwrap(), names(&["default", "root"]));
        // Deleting what is not there succeeds.
        ps.delete("dev").await.unwrap();
    }

    #[tokio::test]
    async fn bad_writes_are_400() {
        let (ps, _) = store().await;
        let bad = ps
            .set("x", r#"path "a" { capabilities = ["fly"] }"#)
            .await
            .unwrap_err();
        assert_eq!(bad.status(), 400);
        assert!(bad.to_string().contains("\"fly\""));
        assert_eq!(ps.set("root", "").await.unwrap_err().status(), 400);
        assert_eq!(ps.delete("root").await.unwrap_err().status(), 400);
        assert_eq!(ps.delete("default").await.unwrap_err().status(), 400);
        assert_eq!(ps.set("a/b", "").await.unwrap_err().status(), 400);
        assert_eq!(ps.set("..", "").await.unwrap_err().status(), 400);
        assert_eq!(ps.set("", "").await.unwrap_err().status(), 400);
        assert!(ps.get("a/b").await.unwrap().is_none());
        assert!(ps.get("x").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn root_policy_reads_empty_and_gives_root_acl() {
        let (ps, _) = store().await;
        let root = ps.get("root").await.unwrap().unwrap();
        assert!(root.rules.is_empty() && root.raw.is_empty());
        let acl = ps.acl(&names(&["default", "root"])).await.unwrap();
        assert!(acl.is_root());
    }

    #[tokio::test]
    async fn acl_skips_missing_and_is_invalidated_on_change() {
        let (ps, _) = store().await;
        ps.set("a", r#"path "secret/*" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        let acl1 = ps.acl(&names(&["a", "missing"])).await.unwrap();
        assert!(acl1.allows("secret/x", Operation::Read, false));
        // Cached: same Arc for the same set in another order.
        let acl2 = ps.acl(&names(&["missing", "A", "a"])).await.unwrap();
        assert!(Arc::ptr_eq(&acl1, &acl2));

        ps.set("a", r#"path "secret/*" { capabilities = ["deny"] }"#)
            .await
            .unwrap();
        let acl3 = ps.acl(&names(&["a", "missing"])).await.unwrap();
        assert!(!acl3.allows("secret/x", Operation::Read, false));

        ps.set("missing", r#"path "other" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        let acl4 = ps.acl(&names(&["a", "missing"])).await.unwrap();
        assert!(acl4.allows("other", Operation::Read, false));

        ps.delete("missing").await.unwrap();
        let acl5 = ps.acl(&names(&["a", "missing"])).await.unwrap();
        assert!(!acl5.allows("other", Operation::Read, false));
    }

    #[tokio::test]
    async fn policies_are_stored_encrypted_under_the_view() {
        let backend = Arc::new(crate::storage::MemoryBackend::new());
        let barrier = Arc::new(crate::barrier::Barrier::new(backend.clone()));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        let ps = PolicyStore::open(BarrierView::new(barrier, "sys/policy/"))
            .await
            .unwrap();
        ps.set(
            "marker",
            r#"path "very-distinct-marker" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
        use crate::storage::Backend;
        let keys = backend.scan_prefix("sys/policy/").await.unwrap();
        assert!(keys.contains(&"sys/policy/marker".to_string()));
        for k in keys {
            let raw = backend.get(&k).await.unwrap().unwrap();
            assert!(!String::from_utf8_lossy(&raw).contains("very-distinct-marker"));
        }
    }
}

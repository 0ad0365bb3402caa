//! The mount table and routing: a request path goes to the longest matching mount.
//!
//! The table is stored behind the barrier at [`MOUNTS_PATH`]; each mount's engine gets its own
//! barrier view at `logical/<uuid>/`. `sys/` and `auth/token/` are built in.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::token::TokenStore;
use super::{sys, Core, Unsealed};
use crate::barrier::{Barrier, BarrierView};
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

pub const MOUNTS_PATH: &str = "core/mounts";

/// Lease TTL settings of a mount, in seconds (0 = system default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: u64,
    #[serde(default)]
    pub max_lease_ttl: u64,
}

/// One mounted secrets engine, as stored and as `sys/mounts` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With trailing slash, e.g. `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub options: serde_json::Map<String, Value>,
    #[serde(default)]
    pub config: MountConfig,
    pub created: chrono::DateTime<Utc>,
}

impl MountEntry {
    /// The JSON `sys/mounts` answers with for this mount.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "config": {
                "default_lease_ttl": self.config.default_lease_ttl,
                "max_lease_ttl": self.config.max_lease_ttl,
                "force_no_cache": false,
            },
            "options": self.options,
            "local": false,
            "seal_wrap": false,
            "external_entropy_access": false,
            "plugin_version": "",
            "running_plugin_version": "",
        })
    }
}

#[derive(Clone)]
struct Mounted {
    entry: Arc<MountEntry>,
    backend: Arc<dyn LogicalBackend>,
}

/// Where a request goes.
pub enum Target {
    /// The built-in `sys/` backend.
    Sys,
    /// A mounted backend.
    Mount(Arc<MountEntry>, Arc<dyn LogicalBackend>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.mount_point())
    }
}

impl Target {
    pub fn mount_point(&self) -> &str {
        match self {
            Target::Sys => "sys/",
            Target::Mount(e, _) => &e.path,
        }
    }

    pub fn mount_type(&self) -> &str {
        match self {
            Target::Sys => "system",
            Target::Mount(e, _) => &e.kind,
        }
    }

    pub fn unauthenticated_paths(&self) -> &'static [&'static str] {
        match self {
            Target::Sys => sys::UNAUTHENTICATED_PATHS,
            Target::Mount(_, b) => b.unauthenticated_paths(),
        }
    }

    pub fn root_paths(&self) -> &'static [&'static str] {
        match self {
            Target::Sys => sys::ROOT_PATHS,
            Target::Mount(_, b) => b.root_paths(),
        }
    }

    /// Paths any valid token may use regardless of policy.
    pub fn is_always_allowed(&self, rel: &str, _op: Operation) -> bool {
        match self {
            Target::Sys => crate::logical::path_matches_any(rel, sys::ANY_TOKEN_PATHS),
            Target::Mount(..) => false,
        }
    }

    pub async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        match self {
            Target::Sys => Ok(None),
            Target::Mount(_, b) => b.exists(req).await,
        }
    }

    pub async fn handle(
        &self,
        core: &Core,
        st: &Unsealed,
        req: &Request,
    ) -> Result<Response, LogicalError> {
        match self {
            Target::Sys => sys::handle(core, st, req).await,
            Target::Mount(_, b) => b.handle(req).await,
        }
    }
}

/// The mount table with live backends.
pub struct Router {
    barrier: Arc<Barrier>,
    tokens: Arc<TokenStore>,
    /// Sorted by path length, longest first.
    mounts: ArcSwap<Vec<Mounted>>,
    changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<String> = self
            .mounts
            .load()
            .iter()
            .map(|m| m.entry.path.clone())
            .collect();
        f.debug_struct("Router").field("mounts", &paths).finish()
    }
}

/// Paths that cannot be mounted over.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

fn token_mount_entry() -> MountEntry {
    MountEntry {
        path: "auth/token/".into(),
        kind: "token".into(),
        description: "token based credentials".into(),
        uuid: "token".into(),
        accessor: "auth_token_builtin".into(),
        options: Default::default(),
        config: MountConfig::default(),
        created: chrono::DateTime::UNIX_EPOCH,
    }
}

impl Router {
    /// Load the stored mount table and start every engine.
    pub async fn load(
        barrier: Arc<Barrier>,
        tokens: Arc<TokenStore>,
    ) -> Result<Self, LogicalError> {
        let entries: Vec<MountEntry> = match barrier.get(MOUNTS_PATH).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|_| {
                LogicalError::Internal("the stored mount table does not parse".into())
            })?,
            None => Vec::new(),
        };
        let router = Router {
            barrier,
            tokens,
            mounts: ArcSwap::from_pointee(Vec::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        let mut mounted = vec![Mounted {
            entry: Arc::new(token_mount_entry()),
            backend: router.tokens.clone() as Arc<dyn LogicalBackend>,
        }];
        for entry in entries {
            let backend = router.start(&entry).await?;
            mounted.push(Mounted {
                entry: Arc::new(entry),
                backend,
            });
        }
        router.publish(mounted);
        Ok(router)
    }

    fn publish(&self, mut mounted: Vec<Mounted>) {
        mounted.sort_by_key(|m| std::cmp::Reverse(m.entry.path.len()));
        self.mounts.store(Arc::new(mounted));
    }

    async fn start(&self, entry: &MountEntry) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
        let view = BarrierView::new(self.barrier.clone(), format!("logical/{}/", entry.uuid));
        if entry.path.starts_with("auth/") {
            return crate::auth::new_backend(&entry.kind, view).await;
        }
        crate::engines::new_backend(&entry.kind, view).await
    }

    /// Find the target of a request path.
    pub fn route(&self, path: &str) -> Result<Target, LogicalError> {
        if path == "sys" || path.starts_with("sys/") {
            return Ok(Target::Sys);
        }
        let mounts = self.mounts.load();
        for m in mounts.iter() {
            if path.starts_with(&m.entry.path) || format!("{path}/") == m.entry.path {
                return Ok(Target::Mount(m.entry.clone(), m.backend.clone()));
            }
        }
        Err(LogicalError::NotFound(format!(
            "no handler for route \"{path}\": nothing is mounted there"
        )))
    }

    /// Secrets engine mounts (not auth), sorted by path.
    pub fn secret_mounts(&self) -> Vec<MountEntry> {
        let mut v: Vec<MountEntry> = self
            .mounts
            .load()
            .iter()
            .filter(|m| !m.entry.path.starts_with("auth/"))
            .map(|m| (*m.entry).clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Auth mounts, sorted by path.
    pub fn auth_mounts(&self) -> Vec<MountEntry> {
        let mut v: Vec<MountEntry> = self
            .mounts
            .load()
            .iter()
            .filter(|m| m.entry.path.starts_with("auth/"))
            .map(|m| (*m.entry).clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    pub fn get(&self, path: &str) -> Option<MountEntry> {
        let path = normalize_mount_path(path);
        self.mounts
            .load()
            .iter()
            .find(|m| m.entry.path == path)
            .map(|m| (*m.entry).clone())
    }

    async fn persist(&self, mounted: &[Mounted]) -> Result<(), LogicalError> {
        let entries: Vec<&MountEntry> = mounted
            .iter()
            .filter(|m| m.entry.kind != "token")
            .map(|m| m.entry.as_ref())
            .collect();
        self.barrier
            .put(MOUNTS_PATH, serde_json::to_vec(&entries).expect("json"))
            .await?;
        Ok(())
    }

    /// Enable a secrets engine at `path`.
    pub async fn mount(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: Value,
    ) -> Result<MountEntry, LogicalError> {
        let path = normalize_mount_path(path);
        validate_mount_path(&path)?;
        let (kind, options) = crate::engines::normalize_kind(kind, options)?;
        self.insert(path, kind, description, options).await
    }

    /// Enable the auth method `kind` at `auth/<path>`.
    pub async fn mount_auth(
        &self,
        path: &str,
        kind: &str,
        description: &str,
    ) -> Result<MountEntry, LogicalError> {
        let rel = normalize_mount_path(path);
        validate_mount_path(&rel)?;
        if !crate::auth::SUPPORTED_TYPES.contains(&kind) {
            return Err(match kind {
                "" => LogicalError::invalid("missing auth method type"),
                "token" => LogicalError::invalid("the token auth method is built in at auth/token"),
                other => crate::auth::unsupported(other),
            });
        }
        let path = format!("auth/{rel}");
        self.insert(path, kind.to_string(), description, Default::default())
            .await
    }

    async fn insert(
        &self,
        path: String,
        kind: String,
        description: &str,
        options: serde_json::Map<String, Value>,
    ) -> Result<MountEntry, LogicalError> {
        let _guard = self.changes.lock().await;
        let current = self.mounts.load_full();
        if let Some(m) = current
            .iter()
            .find(|m| m.entry.path.starts_with(&path) || path.starts_with(&m.entry.path))
        {
            return Err(LogicalError::invalid(format!(
                "path is already in use at {}",
                m.entry.path
            )));
        }
        let uuid = uuid::Uuid::new_v4().to_string();
        let entry = MountEntry {
            path: path.clone(),
            accessor: format!("{}_{}", kind, &uuid[..8]),
            kind,
            description: description.to_string(),
            uuid,
            options,
            config: MountConfig::default(),
            created: Utc::now(),
        };
        let backend = self.start(&entry).await?;
        let mut next: Vec<Mounted> = current.iter().cloned().collect();
        next.push(Mounted {
            entry: Arc::new(entry.clone()),
            backend,
        });
        self.persist(&next).await?;
        self.publish(next);
        tracing::info!(path = %entry.path, kind = %entry.kind, "mount enabled");
        Ok(entry)
    }

    /// Disable the mount at `path` and delete its data.
    pub async fn unmount(&self, path: &str) -> Result<(), LogicalError> {
        let path = normalize_mount_path(path);
        let _guard = self.changes.lock().await;
        let current = self.mounts.load_full();
        let Some(found) = current.iter().find(|m| m.entry.path == path).cloned() else {
            // Vault answers 204 for a path with no mount.
            return Ok(());
        };
        if found.entry.kind == "token" {
            return Err(LogicalError::invalid("the token store cannot be disabled"));
        }
        let next: Vec<Mounted> = current
            .iter()
            .filter(|m| m.entry.path != path)
            .cloned()
            .collect();
        self.persist(&next).await?;
        self.publish(next);
        found.backend.cleanup().await;
        BarrierView::new(
            self.barrier.clone(),
            format!("logical/{}/", found.entry.uuid),
        )
        .clear()
        .await?;
        tracing::info!(path = %path, "mount disabled");
        Ok(())
    }

    /// Change a mount's TTLs or description.
    pub async fn tune(
        &self,
        path: &str,
        config: Option<MountConfig>,
        description: Option<String>,
    ) -> Result<(), LogicalError> {
        let path = normalize_mount_path(path);
        let _guard = self.changes.lock().await;
        let current = self.mounts.load_full();
        let mut next: Vec<Mounted> = current.iter().cloned().collect();
        let m = next
            .iter_mut()
            .find(|m| m.entry.path == path)
            .ok_or_else(|| LogicalError::invalid(format!("no mount at {path}")))?;
        if let Some(c) = config {
            if c.max_lease_ttl != 0 && c.default_lease_ttl > c.max_lease_ttl {
                return Err(LogicalError::invalid(
                    "default_lease_ttl cannot be greater than max_lease_ttl",
                ));
            }
            Arc::make_mut(&mut m.entry).config = c;
        }
        if let Some(d) = description {
            Arc::make_mut(&mut m.entry).description = d;
        }
        self.persist(&next).await?;
        self.publish(next);
        Ok(())
    }

    /// Stop every engine (on seal).
    pub async fn cleanup(&self) {
        for m in self.mounts.load().iter() {
            m.backend.cleanup().await;
        }
    }
}

/// `secret` and `/secret/` both become `secret/`.
pub fn normalize_mount_path(path: &str) -> String {
    let p = path.trim_matches('/');
    format!("{p}/")
}

fn validate_mount_path(path: &str) -> Result<(), LogicalError> {
    if path == "/" {
        return Err(LogicalError::invalid("mount path must not be empty"));
    }
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains("//") {
        return Err(LogicalError::invalid(format!(
            "invalid mount path {path:?}"
        )));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(LogicalError::invalid(format!(
            "invalid mount path {path:?}: use letters, digits, '-', '_', '.' and '/'"
        )));
    }
    if RESERVED.iter().any(|r| path.starts_with(r)) {
        return Err(LogicalError::invalid(format!(
            "cannot mount under reserved path {path:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_normalised_and_checked() {
        assert_eq!(normalize_mount_path("/secret"), "secret/");
        assert_eq!(normalize_mount_path("a/b/"), "a/b/");
        assert!(validate_mount_path("/").is_err());
        assert!(validate_mount_path("a/../b/").is_err());
        assert!(validate_mount_path("sys/").is_err());
        assert!(validate_mount_path("auth/x/").is_err());
        assert!(validate_mount_path("we ird/").is_err());
        assert!(validate_mount_path("team-a/kv/").is_ok());
    }
}

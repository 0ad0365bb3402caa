//! The mount table and routing: a request path goes to the longest matching mount.
//!
//! The table is stored behind the barrier at [`MOUNTS_PATH`]; each mount's engine gets its own
//! barrier view at `logical/<uuid>/`, and is started from the [`Registry`] of backend types.
//! `auth/token/` is built in; `sys/` is not a mount: the core serves it before routing.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use serde_json::Value;

use super::expiration::LeaseBackends;
use super::mount::{normalize_mount_path, MountConfig, MountEntry};
use super::registry::Registry;
use super::token::TokenStore;
use crate::barrier::{Barrier, BarrierView};
use crate::logical::events::{EventPublisher, EventSink, PluginInfo};
use crate::logical::paths::PathSpec;
use crate::logical::system_view::SystemViewRef;
use crate::logical::{LogicalBackend, LogicalError};

pub const MOUNTS_PATH: &str = "core/mounts";

#[derive(Clone)]
struct Mounted {
    entry: Arc<MountEntry>,
    backend: Arc<dyn LogicalBackend>,
}

/// A mount as the OpenAPI document describes it.
#[derive(Debug)]
pub struct Described {
    pub entry: MountEntry,
    pub paths: &'static [PathSpec],
    pub root_paths: &'static [&'static str],
    pub unauthenticated_paths: &'static [&'static str],
}

/// The mount table with live backends.
pub struct Router {
    barrier: Arc<Barrier>,
    tokens: Arc<TokenStore>,
    backends: Arc<Registry>,
    events: Arc<dyn EventSink>,
    /// What backends may ask of the core (password policies), handed to each at start.
    system: SystemViewRef,
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

/// `cubbyhole/`: built in as in Vault (per-token storage; response wrapping keeps wrapped
/// answers there), started from the registry's `cubbyhole` type when it has one.
fn cubbyhole_mount_entry() -> MountEntry {
    MountEntry {
        path: "cubbyhole/".into(),
        kind: "cubbyhole".into(),
        description: "per-token private secret storage".into(),
        uuid: "cubbyhole".into(),
        accessor: "cubbyhole_builtin".into(),
        options: Default::default(),
        config: MountConfig::default(),
        created: chrono::DateTime::UNIX_EPOCH,
    }
}

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
    /// Load the stored mount table and start every engine from `backends`.
    pub async fn load(
        barrier: Arc<Barrier>,
        tokens: Arc<TokenStore>,
        backends: Arc<Registry>,
        events: Arc<dyn EventSink>,
        system: SystemViewRef,
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
            backends,
            events,
            system,
            mounts: ArcSwap::from_pointee(Vec::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        let mut mounted = vec![Mounted {
            entry: Arc::new(token_mount_entry()),
            backend: router.tokens.clone() as Arc<dyn LogicalBackend>,
        }];
        if router.backends.engine_types().contains(&"cubbyhole") {
            let entry = cubbyhole_mount_entry();
            let backend = router.start(&entry).await?;
            mounted.push(Mounted {
                entry: Arc::new(entry),
                backend,
            });
        }
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
        let events = EventPublisher::new(
            self.events.clone(),
            PluginInfo {
                mount_class: if entry.path.starts_with("auth/") {
                    "auth"
                } else {
                    "secret"
                }
                .into(),
                mount_accessor: entry.accessor.clone(),
                mount_path: entry.path.clone(),
                plugin: entry.kind.clone(),
            },
        );
        self.backends
            .start(entry, view, events, self.system.clone())
            .await
    }

    /// The mount serving a request path and its backend (`sys/` is never mounted).
    pub fn route(
        &self,
        path: &str,
    ) -> Result<(Arc<MountEntry>, Arc<dyn LogicalBackend>), LogicalError> {
        let mounts = self.mounts.load();
        for m in mounts.iter() {
            if path.starts_with(&m.entry.path) || format!("{path}/") == m.entry.path {
                return Ok((m.entry.clone(), m.backend.clone()));
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

    /// Every mount with its backend's route table, sudo and unauthenticated paths, sorted
    /// by path: what `sys/internal/specs/openapi` describes.
    pub fn described(&self) -> Vec<Described> {
        let mut v: Vec<Described> = self
            .mounts
            .load()
            .iter()
            .map(|m| Described {
                entry: (*m.entry).clone(),
                paths: m.backend.paths(),
                root_paths: m.backend.root_paths(),
                unauthenticated_paths: m.backend.unauthenticated_paths(),
            })
            .collect();
        v.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
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
            // The built-in mounts are made at each load, never stored.
            .filter(|m| m.entry.kind != "token" && m.entry.kind != "cubbyhole")
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
        let (kind, options) = self.backends.check_engine(kind, options)?;
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
        self.backends.check_auth(kind)?;
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

    /// Move the mount at `from` to `to` (`sys/remount`): the same engine, accessor and data
    /// (kept under the mount's uuid), at a new path; the engine is restarted there. Secrets
    /// mounts move among secrets mounts, auth methods among `auth/` paths. The caller moves
    /// the leases.
    pub async fn remount(&self, from: &str, to: &str) -> Result<MountEntry, LogicalError> {
        let from = normalize_mount_path(from);
        let to = normalize_mount_path(to);
        match (from.strip_prefix("auth/"), to.strip_prefix("auth/")) {
            (Some(_), None) => {
                return Err(LogicalError::invalid(
                    "cannot remount auth mount to non-auth mount",
                ))
            }
            (None, Some(_)) => {
                return Err(LogicalError::invalid(
                    "cannot remount non-auth mount to auth mount",
                ))
            }
            (Some(_), Some(to_rel)) => validate_mount_path(&normalize_mount_path(to_rel))?,
            (None, None) => validate_mount_path(&to)?,
        }
        let _guard = self.changes.lock().await;
        let current = self.mounts.load_full();
        let Some(found) = current.iter().find(|m| m.entry.path == from).cloned() else {
            return Err(LogicalError::invalid(format!(
                "no matching mount at {from:?}"
            )));
        };
        if found.entry.kind == "token" {
            return Err(LogicalError::invalid("cannot remount the token store"));
        }
        if let Some(m) = current.iter().find(|m| {
            m.entry.path != from && (m.entry.path.starts_with(&to) || to.starts_with(&m.entry.path))
        }) {
            return Err(LogicalError::invalid(format!(
                "path is already in use at {}",
                m.entry.path
            )));
        }
        let mut entry = (*found.entry).clone();
        entry.path = to.clone();
        let backend = self.start(&entry).await?;
        let mut next: Vec<Mounted> = current
            .iter()
            .filter(|m| m.entry.path != from)
            .cloned()
            .collect();
        next.push(Mounted {
            entry: Arc::new(entry.clone()),
            backend,
        });
        self.persist(&next).await?;
        self.publish(next);
        found.backend.cleanup().await;
        tracing::info!(from = %from, to = %to, kind = %entry.kind, "mount moved");
        Ok(entry)
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

    /// Change a secrets engine mount's options (`sys/mounts/:path/tune`), checked as for a
    /// new mount. With `restart` the mount's backend is closed (requests in flight finish
    /// first) and started again from the new options, as Vault reloads a kv mount whose
    /// version is raised. The new entry is stored before the new backend starts, so after a
    /// crash part-way the next start finishes what it began (the kv upgrade resumes).
    pub async fn set_options(
        &self,
        path: &str,
        options: serde_json::Map<String, Value>,
        restart: bool,
    ) -> Result<(), LogicalError> {
        let path = normalize_mount_path(path);
        let _guard = self.changes.lock().await;
        let current = self.mounts.load_full();
        let mut next: Vec<Mounted> = current.iter().cloned().collect();
        let idx = next
            .iter()
            .position(|m| m.entry.path == path)
            .ok_or_else(|| LogicalError::invalid(format!("no mount at {path}")))?;
        let old = next[idx].clone();
        let (_, options) = self
            .backends
            .check_engine(&old.entry.kind, Value::Object(options))?;
        Arc::make_mut(&mut next[idx].entry).options = options;
        if !restart {
            self.persist(&next).await?;
            self.publish(next);
            return Ok(());
        }
        old.backend.cleanup().await;
        if let Err(err) = self.persist(&next).await {
            // Nothing changed yet: a fresh backend over the old options.
            let mut back: Vec<Mounted> = current.iter().cloned().collect();
            back[idx].backend = self.start(&old.entry).await?;
            self.publish(back);
            return Err(err);
        }
        match self.start(&next[idx].entry).await {
            Ok(backend) => {
                next[idx].backend = backend;
                self.publish(next);
                tracing::info!(path = %path, "mount restarted with new options");
                Ok(())
            }
            Err(err) => {
                // The new options are stored and the start may have done part of its work
                // (a kv upgrade moves secret by secret): going back could hide what moved.
                // The closed backend stays and the next start (restart or unseal) resumes.
                tracing::error!(path = %path, error = %err, "mount restart with new options failed");
                Err(LogicalError::Internal(format!(
                    "the mount at {path} could not start with its new options ({err}); \
                     it resumes when hushd restarts or is unsealed again"
                )))
            }
        }
    }

    /// Stop every engine (on seal).
    pub async fn cleanup(&self) {
        for m in self.mounts.load().iter() {
            m.backend.cleanup().await;
        }
    }
}

impl LeaseBackends for Router {
    fn lease_backend(&self, path: &str) -> Option<(Arc<MountEntry>, Arc<dyn LogicalBackend>)> {
        self.route(path).ok()
    }
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

//! The KV secrets engine: version 2 (Vault's `kv-v2` HTTP API, [`KvBackend`]) and version 1
//! (plain read/write/delete/list, [`KvV1Backend`]). [`open`] picks one from the mount's
//! `options.version` (absent: 1, as in Vault); a version 2 engine opening over version 1
//! data upgrades it (`upgrade`).
//!
//! # Layout
//!
//! - `v1`: the version 1 engine.
//! - `upgrade`: version 1 data -> version 2, per secret, crash-safe.
//! - `config`: `config`, the mount-wide settings (max versions, cas, delete-after).
//! - `data`: `data/:path` (read, write, patch, soft delete) and `subkeys/:path`.
//! - `metadata`: `metadata/:path` (read, write, patch, delete, list) and the stored
//!   per-key metadata with its version window.
//! - `versions`: `delete/`, `undelete/` and `destroy/` of chosen versions.
//! - `rotation`: pending versions for `sys/rotation` (the `Rotatable` side of the engine).
//! - `params`: Vault-style weakly typed parameters, signed duration fields, path rules.
//!
//! # Storage (below the mount's view)
//!
//! - `config`: the mount config (JSON).
//! - `metadata/<path>`: one key's metadata (JSON); listing `metadata/` shows the user's tree.
//! - `versions/<sha256-hex of path>/<version, 20 digits>`: one version's data (JSON object).
//!   Hashing the path keeps `a` and `a/b` apart and keeps data out of the listed tree.
//!
//! Every change to a key (new version, pruned versions, metadata) is one atomic
//! [`BarrierView::write`] batch. Read-modify-write of a key is serialised by a lock stripe
//! chosen by the key's hash, so concurrent writers never lose a version or both pass one
//! check-and-set; readers share the stripe so they never see a half-pruned key.
//!
//! # Compatibility notes
//!
//! - A failed check-and-set is a 400 with "check-and-set parameter did not match the current
//!   version", as Vault answers (hvac raises `InvalidRequest`; clients match on it).
//! - PATCH with another Content-Type than `application/merge-patch+json` answers 415 with a
//!   Vault error body (a raw response with a status), 400 when the header is missing.
//! - A deleted or destroyed version reads as 404 *with* a body (`Response::with_status`).
//! - `max_versions`: the key's setting, else the mount's, else 10 (as Vault documents it).

mod config;
mod data;
mod metadata;
mod params;
mod rotation;
mod upgrade;
mod v1;
mod versions;

pub use v1::KvV1Backend;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use std::sync::Arc;

use crate::barrier::BarrierView;
use crate::logical::events::EventPublisher;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

use self::metadata::KeyMetadata;
use self::params::PatchContentTypeError;

/// Number of lock stripes (one per first byte of a key's SHA-256).
const STRIPES: usize = 256;

/// The KV v2 engine mounted at one path.
pub struct KvBackend {
    view: BarrierView,
    stripes: Box<[RwLock<()>]>,
    /// Serialises read-modify-write of `config`.
    config_lock: Mutex<()>,
    /// The mount's handle on the event bus.
    events: EventPublisher,
    /// Seconds added to the wall clock (tests move time forward with it).
    #[cfg(test)]
    clock_offset: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for KvBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvBackend")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

/// What a request path below the mount names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Config,
    Data(&'a str),
    Metadata(&'a str),
    Delete(&'a str),
    Undelete(&'a str),
    Destroy(&'a str),
    Subkeys(&'a str),
}

impl<'a> Route<'a> {
    /// The route of `rel`. The core's gate has checked it against [`PATHS`] already; this
    /// splits off the key path.
    fn parse(rel: &'a str) -> Option<Route<'a>> {
        let (head, rest) = match rel.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (rel, None),
        };
        Some(match (head, rest) {
            ("config", None) => Route::Config,
            // `LIST secret/metadata` without the slash lists the root.
            ("metadata", rest) => Route::Metadata(rest.unwrap_or("")),
            ("data", Some(p)) => Route::Data(p),
            ("delete", Some(p)) => Route::Delete(p),
            ("undelete", Some(p)) => Route::Undelete(p),
            ("destroy", Some(p)) => Route::Destroy(p),
            ("subkeys", Some(p)) => Route::Subkeys(p),
            _ => return None,
        })
    }
}

const VERSIONS: &[Field] = &[Field::req("versions", Kind::Integers, "The versions.")];

/// The routes of a KV v2 mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("config", "config", Ops::RW, "The mount's KV settings.").body(&[
        Field::opt(
            "max_versions",
            Kind::Integer,
            "Versions kept per key (0: 10).",
        ),
        Field::opt(
            "cas_required",
            Kind::Boolean,
            "Every write must give `cas`.",
        ),
        Field::opt(
            "delete_version_after",
            Kind::Duration,
            "Delete versions this old.",
        ),
    ]),
    PathSpec::new(
        "metadata",
        "metadata-root",
        Ops::LIST,
        "List the keys at the root.",
    ),
    PathSpec::new(
        "metadata/{path+}",
        "metadata",
        Ops::RWD.with(Ops::LIST).with(Ops::PATCH),
        "A key's metadata and versions; LIST lists keys below it.",
    )
    .body(&[
        Field::opt("max_versions", Kind::Integer, "Versions kept of this key."),
        Field::opt("cas_required", Kind::Boolean, "Writes must give `cas`."),
        Field::opt(
            "delete_version_after",
            Kind::Duration,
            "Delete versions this old.",
        ),
        Field::opt("custom_metadata", Kind::Object, "String pairs."),
    ]),
    PathSpec::new(
        "data/{path+}",
        "data",
        Ops::RWD.with(Ops::PATCH),
        "Read, write, patch or soft-delete a key's latest version.",
    )
    .body(&[
        Field::req("data", Kind::Object, "The secret's fields."),
        Field::opt(
            "options",
            Kind::Object,
            "`cas`: the version this write replaces.",
        ),
    ])
    .query(&[Field::opt(
        "version",
        Kind::Integer,
        "The version to read (0: latest).",
    )]),
    PathSpec::new(
        "delete/{path+}",
        "delete",
        Ops::WRITE,
        "Soft-delete versions.",
    )
    .body(VERSIONS),
    PathSpec::new(
        "undelete/{path+}",
        "undelete",
        Ops::WRITE,
        "Restore soft-deleted versions.",
    )
    .body(VERSIONS),
    PathSpec::new(
        "destroy/{path+}",
        "destroy",
        Ops::WRITE,
        "Destroy versions for good.",
    )
    .body(VERSIONS),
    PathSpec::new(
        "subkeys/{path+}",
        "subkeys",
        Ops::READ,
        "A version's keys without values.",
    )
    .query(&[
        Field::opt("version", Kind::Integer, "The version (0: latest)."),
        Field::opt("depth", Kind::Integer, "How deep to go (0: all)."),
    ]),
];

/// A validated key path and the hash that names its version folder and lock stripe.
#[derive(Debug, Clone)]
struct KeyRef<'a> {
    path: &'a str,
    hash: [u8; 32],
}

impl<'a> KeyRef<'a> {
    fn new(path: &'a str) -> Result<Self, LogicalError> {
        params::validate_key(path)?;
        Ok(KeyRef {
            path,
            hash: Sha256::digest(path.as_bytes()).into(),
        })
    }

    fn meta_key(&self) -> String {
        format!("metadata/{}", self.path)
    }

    fn versions_prefix(&self) -> String {
        format!("versions/{}/", hex::encode(self.hash))
    }

    fn version_key(&self, version: u64) -> String {
        format!("{}{version:020}", self.versions_prefix())
    }
}

impl KvBackend {
    /// Open the engine over its mount's view, upgrading any version 1 data left there; fails
    /// if the stored config is unreadable.
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        let kv = KvBackend {
            view,
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            config_lock: Mutex::new(()),
            events: EventPublisher::none(),
            #[cfg(test)]
            clock_offset: std::sync::atomic::AtomicI64::new(0),
        };
        kv.load_config().await?;
        upgrade::migrate(&kv).await?;
        Ok(kv)
    }

    /// Publish this engine's changes to `events`.
    pub fn with_events(mut self, events: EventPublisher) -> Self {
        self.events = events;
        self
    }

    /// Publish `kv-v2/<operation>` for `key`, made through `<route>/<key>`, once its write
    /// committed. Callers hold the key's write lock, so one key's events leave in commit
    /// order. `meta`: the key's metadata after the write, for the version numbers.
    fn publish(&self, operation: &str, route: &str, key: &KeyRef<'_>, meta: Option<&KeyMetadata>) {
        let mut extra = Vec::new();
        if let Some(m) = meta {
            extra.push(("current_version", m.current_version.to_string()));
            extra.push(("oldest_version", m.oldest_version.to_string()));
        }
        self.events.publish(
            &format!("kv-v2/{operation}"),
            &format!("{route}/{}", key.path),
            Some(&format!("data/{}", key.path)),
            &extra,
        );
    }

    fn now(&self) -> DateTime<Utc> {
        #[cfg(test)]
        {
            let offset = self.clock_offset.load(std::sync::atomic::Ordering::SeqCst);
            Utc::now() + chrono::TimeDelta::seconds(offset)
        }
        #[cfg(not(test))]
        Utc::now()
    }

    /// Move this engine's clock forward (tests of `delete_version_after`).
    #[cfg(test)]
    fn advance_clock(&self, secs: i64) {
        self.clock_offset
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    fn stripe(&self, key: &KeyRef<'_>) -> &RwLock<()> {
        &self.stripes[usize::from(key.hash[0]) % STRIPES]
    }

    async fn load_meta(&self, key: &KeyRef<'_>) -> Result<Option<KeyMetadata>, LogicalError> {
        Ok(self.view.get_json(&key.meta_key()).await?)
    }
}

/// Start the kv engine a mount's options ask for: version 2 when `options.version` is 2,
/// else version 1 (Vault's default for `kv` and `generic`).
pub async fn open(
    view: BarrierView,
    options: serde_json::Map<String, serde_json::Value>,
    events: EventPublisher,
) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
    match super::kv_version(&options)?.as_deref() {
        None | Some("1") => Ok(Arc::new(KvV1Backend::new(view).with_events(events))),
        Some("2") => Ok(Arc::new(KvBackend::new(view).await?.with_events(events))),
        Some(other) => Err(LogicalError::invalid(format!(
            "invalid kv version {other:?}: hushd serves kv versions 1 and 2"
        ))),
    }
}

/// LIST of the folder `path` (`""`: the root) among the keys under `under` in `view`; an
/// empty folder is a 404, as in Vault.
async fn list_folder(
    view: &BarrierView,
    under: &str,
    path: &str,
) -> Result<Response, LogicalError> {
    let folder = if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    params::validate_folder(&folder)?;
    let keys = view.list(&format!("{under}{folder}")).await?;
    if keys.is_empty() {
        return Err(LogicalError::NotFound(String::new()));
    }
    Ok(Response::list(keys))
}

/// The per-version metadata object Vault returns from writes and inside reads.
fn version_json(meta: &KeyMetadata, version: u64) -> serde_json::Value {
    let vm = meta.versions.get(&version);
    json!({
        "created_time": vm.map(|v| params::ts(&v.created_time)).unwrap_or_default(),
        "custom_metadata": meta.custom_metadata_json(),
        "deletion_time": vm.map(|v| params::ts_opt(&v.deletion_time)).unwrap_or_default(),
        "destroyed": vm.is_some_and(|v| v.destroyed),
        "version": version,
    })
}

/// Vault refuses PATCH bodies that are not JSON merge patches: 415 for a wrong type (sent as
/// a Vault error body with that status), 400 when the header is missing.
fn patch_content_type_refusal(req: &Request) -> Result<Option<Response>, LogicalError> {
    match params::check_patch_content_type(req) {
        Ok(()) => Ok(None),
        Err(e @ PatchContentTypeError::Missing) => Err(LogicalError::invalid(e.to_string())),
        Err(e @ PatchContentTypeError::Unsupported(_)) => Ok(Some(
            Response::raw(json!({ "errors": [e.to_string()] })).with_status(415),
        )),
    }
}

#[async_trait]
impl LogicalBackend for KvBackend {
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let route = Route::parse(req.rel_path()).ok_or(LogicalError::UnsupportedPath)?;
        if req.operation == Operation::Patch {
            if let Some(refusal) = patch_content_type_refusal(req)? {
                return Ok(refusal);
            }
        }
        match route {
            Route::Config => config::handle(self, req).await,
            Route::Data(path) => data::handle(self, req, path).await,
            Route::Subkeys(path) => data::subkeys(self, req, path).await,
            Route::Metadata(path) => metadata::handle(self, req, path).await,
            Route::Delete(path) => versions::delete(self, req, path).await,
            Route::Undelete(path) => versions::undelete(self, req, path).await,
            Route::Destroy(path) => versions::destroy(self, req, path).await,
        }
    }

    /// `Some(metadata exists)` for `data/` and `metadata/` paths, so the core can tell a
    /// create from an update; `None` elsewhere.
    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let path = match Route::parse(req.rel_path()) {
            Some(Route::Data(p) | Route::Metadata(p)) => p,
            _ => return Ok(None),
        };
        let Ok(key) = KeyRef::new(path) else {
            return Ok(None);
        };
        Ok(Some(self.load_meta(&key).await?.is_some()))
    }

    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    fn rotatable(&self) -> Option<&dyn crate::logical::rotation::Rotatable> {
        Some(self)
    }
}

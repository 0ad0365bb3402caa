//! KV version 1 (Vault's "passthrough" backend): a secret is one JSON object at a path; a
//! write replaces it whole, a delete removes it, LIST shows a folder. No versions, no
//! metadata, no check-and-set.
//!
//! # Storage (below the mount's view)
//!
//! - `passthrough/<path>`: the secret (JSON object). The prefix keeps version 1 data apart
//!   from version 2's `metadata/` and `versions/`, so an upgrade
//!   ([`super::upgrade`]) finds exactly the keys it has to move.
//!
//! # Compatibility notes
//!
//! - A read answers `lease_duration` from the secret's `ttl` (else `lease`) field, a hint to
//!   the reader to read again, as Vault does; no lease is registered. Without one (or when it
//!   does not parse) the mount's default lease TTL applies (the core fills it in).
//! - A write with no fields is a 400 "missing data fields"; a missing secret reads as a 404
//!   with `{"errors": []}`; PATCH is not part of KV version 1 (405).
//! - While the mount is upgraded to version 2 (`sys/mounts/:path/tune` with
//!   `options.version=2`) the old engine is closed: requests that reach it answer 400 with
//!   Vault's "Upgrading from non-versioned to versioned data" message.

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::params::validate_key;
use crate::barrier::BarrierView;
use crate::logical::events::EventPublisher;
use crate::logical::fields::field_secs;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LeaseInfo, LogicalBackend, LogicalError, Operation, Request, Response};

/// Where version 1 secrets live in the mount's view.
pub(super) const PREFIX: &str = "passthrough/";

/// Vault's answer while a mount is being upgraded to version 2.
const UPGRADING: &str = "Upgrading from non-versioned to versioned data. This backend will be \
                         unavailable for a brief period and will resume service shortly.";

/// The KV version 1 engine mounted at one path.
pub struct KvV1Backend {
    view: BarrierView,
    /// `true` once the engine is closed (the mount is upgraded or removed). Every request
    /// holds the read side, so closing waits for writes in flight.
    closed: RwLock<bool>,
    /// The mount's handle on the event bus.
    events: EventPublisher,
}

impl std::fmt::Debug for KvV1Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvV1Backend")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

fn stored_key(path: &str) -> Result<String, LogicalError> {
    validate_key(path)?;
    Ok(format!("{PREFIX}{path}"))
}

/// The TTL hint of a secret: its `ttl` field, else `lease`; 0 (the mount default) when
/// neither is a duration.
fn ttl_hint(data: &Map<String, Value>) -> u64 {
    let key = if data.contains_key("ttl") {
        "ttl"
    } else {
        "lease"
    };
    field_secs(data, key).ok().flatten().unwrap_or(0)
}

impl KvV1Backend {
    pub fn new(view: BarrierView) -> Self {
        KvV1Backend {
            view,
            closed: RwLock::new(false),
            events: EventPublisher::none(),
        }
    }

    /// Publish this engine's changes to `events`.
    pub fn with_events(mut self, events: EventPublisher) -> Self {
        self.events = events;
        self
    }

    async fn read(&self, path: &str) -> Result<Response, LogicalError> {
        let Some(raw) = self.view.get(&stored_key(path)?).await? else {
            return Err(LogicalError::NotFound(String::new()));
        };
        let data: Map<String, Value> = serde_json::from_slice(&raw)
            .map_err(|_| LogicalError::Internal("stored secret is not a JSON object".into()))?;
        let lease_duration = ttl_hint(&data);
        let mut resp = Response::data(Value::Object(data));
        // A hint without a lease: the core applies the mount's default and max.
        resp.lease = Some(LeaseInfo {
            lease_id: String::new(),
            lease_duration,
            renewable: false,
        });
        Ok(resp)
    }

    async fn write(&self, req: &Request, path: &str) -> Result<Response, LogicalError> {
        let key = stored_key(path)?;
        if req.data.is_empty() {
            return Err(LogicalError::invalid("missing data fields"));
        }
        let plaintext = serde_json::to_vec(&req.data)
            .map_err(|_| LogicalError::Internal("could not encode the secret".into()))?;
        // The barrier wipes this buffer once it is encrypted.
        self.view.put(&key, plaintext).await?;
        self.events.publish("kv-v1/write", path, Some(path), &[]);
        Ok(Response::empty())
    }

    async fn delete(&self, path: &str) -> Result<Response, LogicalError> {
        self.view.delete(&stored_key(path)?).await?;
        self.events.publish("kv-v1/delete", path, None, &[]);
        Ok(Response::empty())
    }

    async fn list(&self, path: &str) -> Result<Response, LogicalError> {
        super::list_folder(&self.view, PREFIX, path).await
    }
}

#[async_trait]
impl LogicalBackend for KvV1Backend {
    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(LogicalError::invalid(UPGRADING));
        }
        // `LIST kv1` (no slash) names the mount's root.
        let root = req.path.len() + 1 == req.mount_point.len()
            && req.mount_point.starts_with(req.path.as_str());
        let path = if root { "" } else { req.rel_path() };
        match req.operation {
            Operation::Read => self.read(path).await,
            Operation::Create | Operation::Update => self.write(req, path).await,
            Operation::Delete => self.delete(path).await,
            Operation::List => self.list(path).await,
            Operation::Patch | Operation::Renew | Operation::Revoke => {
                Err(LogicalError::UnsupportedOperation)
            }
        }
    }

    /// Does the secret exist (so the core can tell a create from an update)?
    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let Ok(key) = stored_key(req.rel_path()) else {
            return Ok(None);
        };
        Ok(Some(self.view.get(&key).await?.is_some()))
    }

    /// Close the engine: wait for requests in flight, then refuse new ones.
    async fn cleanup(&self) {
        *self.closed.write().await = true;
    }
}

/// The routes of the mount: its root lists, any other path is one secret.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("", "root", Ops::LIST, "List the keys at the root."),
    PathSpec::new(
        "{path+}",
        "secret",
        Ops::RWD.with(Ops::LIST),
        "Read, write or delete a secret; LIST lists the keys below it.",
    )
    .body(&[Field::opt(
        "ttl",
        Kind::Duration,
        "Any other fields are the secret's own (JSON object).",
    )]),
];

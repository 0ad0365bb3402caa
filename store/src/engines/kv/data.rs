//! `data/:path` (read, write, JSON merge patch, soft delete) and `subkeys/:path`.
//!
//! Secret values only live in the version entries; they are parsed into the response and
//! never appear in errors or logs. Raw decrypted bytes stay in `Zeroizing` buffers and the
//! barrier wipes the plaintext it encrypts.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::config::{with_optional_warning, Config};
use super::metadata::{KeyMetadata, VersionMeta};
use super::params::{ignored_params_warning, int_field};
use super::{version_json, KeyRef, KvBackend};
use crate::logical::{Data, LogicalError, Operation, Request, Response};

/// Vault's cap on `subkeys` depth.
const MAX_SUBKEYS_DEPTH: i64 = 100;

pub(super) async fn handle(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    if req.operation == Operation::List {
        // KV v2 lists keys under `metadata/`; there is no list on `data/`.
        return Err(LogicalError::UnsupportedPath);
    }
    let key = KeyRef::new(path)?;
    match req.operation {
        Operation::Read => read(kv, req, &key).await,
        Operation::Update | Operation::Create => write(kv, req, &key).await,
        Operation::Patch => patch(kv, req, &key).await,
        Operation::Delete => soft_delete_latest(kv, &key).await,
        Operation::List => Err(LogicalError::UnsupportedPath),
        // KV secrets carry no lease.
        Operation::Renew | Operation::Revoke => Err(LogicalError::UnsupportedOperation),
    }
}

/// The `version` query parameter: absent or `<= 0` means the current version.
fn requested_version(req: &Request) -> Result<Option<u64>, LogicalError> {
    Ok(int_field(&req.data, "version")?
        .filter(|&v| v > 0)
        .map(i64::unsigned_abs))
}

/// What reading one version found.
enum Lookup {
    /// No such key or version: a plain 404.
    Missing,
    /// Deleted or destroyed: 404 with the version's metadata.
    Gone(KeyMetadata, u64),
    Live(KeyMetadata, u64, Map<String, Value>),
}

/// The `label` query parameter (hush's own, beside `version`): `current`, `previous` or
/// `pending`, the versions a rotation labels.
fn requested_label(req: &Request) -> Result<Option<&str>, LogicalError> {
    match req.data.get("label") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(l)) if matches!(l.as_str(), "current" | "previous" | "pending") => {
            Ok(Some(l))
        }
        Some(_) => Err(LogicalError::invalid(
            "label must be one of \"current\", \"previous\" or \"pending\"",
        )),
    }
}

/// Read a version's metadata and, when it is live, its data. Holds the key's read lock.
async fn lookup(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Lookup, LogicalError> {
    let requested = requested_version(req)?;
    let label = requested_label(req)?;
    if requested.is_some() && label.is_some() {
        return Err(LogicalError::invalid("give version or label, not both"));
    }
    let _guard = kv.stripe(key).read().await;
    let Some(meta) = kv.load_meta(key).await? else {
        return Ok(Lookup::Missing);
    };
    let version = match label {
        Some(l) => match meta.label(l) {
            Some(v) => v,
            None => return Ok(Lookup::Missing),
        },
        None => requested.unwrap_or(meta.current_version),
    };
    let Some(vm) = meta.versions.get(&version) else {
        return Ok(Lookup::Missing);
    };
    if vm.is_gone(kv.now()) {
        return Ok(Lookup::Gone(meta, version));
    }
    let data = load_version_data(kv, key, version).await?;
    Ok(Lookup::Live(meta, version, data))
}

pub(super) async fn load_version_data(
    kv: &KvBackend,
    key: &KeyRef<'_>,
    version: u64,
) -> Result<Map<String, Value>, LogicalError> {
    let raw = kv
        .view
        .get(&key.version_key(version))
        .await?
        .ok_or_else(|| LogicalError::Internal("could not find version data".into()))?;
    serde_json::from_slice(&raw)
        .map_err(|_| LogicalError::Internal("stored version data is not a JSON object".into()))
}

async fn read(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    match lookup(kv, req, key).await? {
        Lookup::Missing => Err(LogicalError::NotFound(String::new())),
        Lookup::Gone(meta, v) => Ok(Response::data(json!({
            "data": null,
            "metadata": version_json(&meta, v),
        }))
        .with_status(404)),
        Lookup::Live(meta, v, data) => Ok(Response::data(json!({
            "data": data,
            "metadata": version_json(&meta, v),
        }))),
    }
}

pub(super) async fn subkeys(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    if req.operation != Operation::Read {
        return Err(LogicalError::UnsupportedOperation);
    }
    let key = KeyRef::new(path)?;
    let depth = int_field(&req.data, "depth")?.unwrap_or(0);
    if depth < 0 {
        return Err(LogicalError::invalid(
            "depth must be a non-negative integer",
        ));
    }
    let depth = if depth == 0 {
        MAX_SUBKEYS_DEPTH
    } else {
        depth.min(MAX_SUBKEYS_DEPTH)
    };
    match lookup(kv, req, &key).await? {
        Lookup::Missing => Err(LogicalError::NotFound(String::new())),
        Lookup::Gone(meta, v) => Ok(Response::data(json!({
            "subkeys": null,
            "metadata": version_json(&meta, v),
        }))
        .with_status(404)),
        Lookup::Live(meta, v, mut data) => {
            strip_values(&mut data, 1, depth);
            Ok(Response::data(json!({
                "subkeys": data,
                "metadata": version_json(&meta, v),
            })))
        }
    }
}

/// Replace every leaf (and every map deeper than `max_depth`) with `null`, in place.
fn strip_values(map: &mut Map<String, Value>, depth: i64, max_depth: i64) {
    for value in map.values_mut() {
        match value {
            Value::Object(inner) if !inner.is_empty() && depth < max_depth => {
                strip_values(inner, depth + 1, max_depth)
            }
            other => *other = Value::Null,
        }
    }
}

/// The `data` object of a write or patch body.
fn body_data(req: &Request) -> Result<&Map<String, Value>, LogicalError> {
    match req.data.get("data") {
        None | Some(Value::Null) => Err(LogicalError::invalid("no data provided")),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(LogicalError::invalid(
            "error converting input for field \"data\": expected a JSON object",
        )),
    }
}

/// Vault's check-and-set rule: with `options.cas` the write needs `cas == current_version`
/// (0: the key has no version yet); without it, it needs neither the mount nor the key to
/// require cas. A mismatch is a 400, as in Vault.
fn check_cas(data: &Data, config: &Config, meta: &KeyMetadata) -> Result<(), LogicalError> {
    let cas = match data.get("options") {
        None | Some(Value::Null) => None,
        // As Vault's weak decoding: `null` reads as 0, numbers and numeric strings as such.
        Some(Value::Object(options)) => match options.get("cas") {
            None => None,
            Some(Value::Null) => Some(0),
            Some(_) => match int_field(options, "cas") {
                Ok(Some(n)) => Some(n),
                _ => {
                    return Err(LogicalError::invalid(
                        "error parsing check-and-set parameter",
                    ))
                }
            },
        },
        Some(_) => {
            return Err(LogicalError::invalid(
                "error converting input for field \"options\": expected a JSON object",
            ))
        }
    };
    match cas {
        Some(cas) if u64::try_from(cas).ok() == Some(meta.current_version) => Ok(()),
        Some(_) => Err(LogicalError::invalid(
            "check-and-set parameter did not match the current version",
        )),
        None if config.cas_required || meta.cas_required => Err(LogicalError::invalid(
            "check-and-set parameter required for this call",
        )),
        None => Ok(()),
    }
}

/// Append a version with `data` to `meta` and write it, the metadata, the pruning of old
/// versions and `extra` ops as one batch. The caller holds the key's write lock. `event`:
/// the operation to publish once committed (`data-write`, `data-patch`; `None`: none).
#[allow(clippy::too_many_arguments)]
pub(super) async fn commit_version(
    kv: &KvBackend,
    key: &KeyRef<'_>,
    mut meta: KeyMetadata,
    config: &Config,
    data: &Map<String, Value>,
    now: DateTime<Utc>,
    extra: Vec<crate::storage::Op>,
    event: Option<&str>,
) -> Result<Response, LogicalError> {
    let vm = VersionMeta {
        created_time: now,
        deletion_time: config.deletion_time(now, &meta),
        destroyed: false,
        rotation_failed: false,
    };
    let (version, pruned) = meta.add_version(vm, config);
    write_version(kv, key, &meta, version, &pruned, data, extra).await?;
    if let Some(operation) = event {
        kv.publish(operation, "data", key, Some(&meta));
    }
    Ok(Response::data(version_json(&meta, version)))
}

/// Write `version`'s `data`, the key's metadata and the deletion of `pruned` versions (plus
/// `extra` ops) as one batch.
pub(super) async fn write_version(
    kv: &KvBackend,
    key: &KeyRef<'_>,
    meta: &KeyMetadata,
    version: u64,
    pruned: &[u64],
    data: &Map<String, Value>,
    extra: Vec<crate::storage::Op>,
) -> Result<(), LogicalError> {
    let mut ops = extra;
    ops.reserve(pruned.len() + 2);
    ops.push(kv.view.put_json_op(&key.meta_key(), meta)?);
    for v in pruned {
        ops.push(kv.view.delete_op(&key.version_key(*v))?);
    }
    let plaintext = serde_json::to_vec(data)
        .map_err(|_| LogicalError::Internal("could not encode version data".into()))?;
    // The barrier wipes this buffer once it is encrypted.
    ops.push(kv.view.put_op(&key.version_key(version), plaintext)?);
    kv.view.write(ops).await?;
    Ok(())
}

const WRITE_FIELDS: &[&str] = &["data", "options"];

async fn write(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let data = body_data(req)?;
    let warning = ignored_params_warning(req, WRITE_FIELDS);
    let config = kv.load_config().await?;

    let _guard = kv.stripe(key).write().await;
    let now = kv.now();
    let meta = match kv.load_meta(key).await? {
        Some(m) => m,
        None => KeyMetadata::new(key.path, now),
    };
    check_cas(&req.data, &config, &meta)?;
    let resp = commit_version(
        kv,
        key,
        meta,
        &config,
        data,
        now,
        Vec::new(),
        Some("data-write"),
    )
    .await?;
    Ok(with_optional_warning(resp, warning))
}

/// JSON merge patch (RFC 7396) of the current version into a new version.
async fn patch(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let patch = body_data(req)?;
    let warning = ignored_params_warning(req, WRITE_FIELDS);
    let config = kv.load_config().await?;

    let _guard = kv.stripe(key).write().await;
    let meta = kv
        .load_meta(key)
        .await?
        .ok_or_else(|| LogicalError::NotFound(String::new()))?;
    check_cas(&req.data, &config, &meta)?;
    let current = meta.current_version;
    let Some(vm) = meta.versions.get(&current) else {
        return Err(LogicalError::NotFound(String::new()));
    };
    let now = kv.now();
    if vm.is_gone(now) {
        return Ok(Response::data(version_json(&meta, current)).with_status(404));
    }
    let mut doc = Value::Object(load_version_data(kv, key, current).await?);
    json_patch::merge(&mut doc, &Value::Object(patch.clone()));
    let Value::Object(merged) = doc else {
        return Err(LogicalError::Internal(
            "merge patch did not give an object".into(),
        ));
    };
    let resp = commit_version(
        kv,
        key,
        meta,
        &config,
        &merged,
        now,
        Vec::new(),
        Some("data-patch"),
    )
    .await?;
    Ok(with_optional_warning(resp, warning))
}

/// `DELETE data/:path`: mark the latest version deleted (undo with `undelete/`).
async fn soft_delete_latest(kv: &KvBackend, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let _guard = kv.stripe(key).write().await;
    let Some(mut meta) = kv.load_meta(key).await? else {
        return Ok(Response::empty());
    };
    let now = kv.now();
    let current = meta.current_version;
    match meta.versions.get_mut(&current) {
        Some(vm) if !vm.is_gone(now) => vm.deletion_time = Some(now),
        _ => return Ok(Response::empty()),
    }
    kv.view.put_json(&key.meta_key(), &meta).await?;
    kv.publish("data-delete", "data", key, Some(&meta));
    Ok(Response::empty())
}

//! `metadata/:path`: a key's settings and version history, and listing of the key tree.
//!
//! [`KeyMetadata`] is also the heart of the version window: [`KeyMetadata::add_version`]
//! numbers a new version and drops the ones that fall out of `max_versions`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::config::{with_optional_warning, Config, DEFAULT_MAX_VERSIONS};
use super::params::{bool_field, duration_field, ignored_params_warning, ts, ts_opt, u32_field};
use super::{KeyRef, KvBackend};
use crate::logical::duration;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Vault's limits on `custom_metadata`.
const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;
const CUSTOM_PREFIX: &str = "custom_metadata validation failed";

/// The settable fields of `metadata/:path`.
const FIELDS: &[&str] = &[
    "max_versions",
    "cas_required",
    "delete_version_after",
    "custom_metadata",
];

/// One version's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct VersionMeta {
    pub created_time: DateTime<Utc>,
    /// Set by a soft delete or by `delete_version_after`; the version reads as deleted once
    /// this time has passed.
    pub deletion_time: Option<DateTime<Utc>>,
    /// The data is gone for good.
    pub destroyed: bool,
    /// A rotation wrote this version as pending and then failed: it never becomes current.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotation_failed: bool,
}

impl VersionMeta {
    pub fn is_deleted(&self, now: DateTime<Utc>) -> bool {
        self.deletion_time.is_some_and(|t| t <= now)
    }

    /// Deleted or destroyed: a read answers 404 with the metadata.
    pub fn is_gone(&self, now: DateTime<Utc>) -> bool {
        self.destroyed || self.is_deleted(now)
    }
}

/// A key's stored metadata (not secret: no data values in here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeyMetadata {
    pub key: String,
    pub versions: BTreeMap<u64, VersionMeta>,
    pub current_version: u64,
    /// As in Vault: 0 until the window first fills, then the oldest version kept.
    pub oldest_version: u64,
    pub created_time: DateTime<Utc>,
    pub updated_time: DateTime<Utc>,
    /// 0: use the mount's setting.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0: use the mount's setting.
    pub delete_version_after: i64,
    pub custom_metadata: BTreeMap<String, String>,
    /// The highest version number given out; 0: `current_version` (a rotation's pending
    /// version is newer than the current one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub latest_version: u64,
    /// A rotation's version not yet current (sys/rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_version: Option<u64>,
    /// The version a rotation's finish replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl KeyMetadata {
    pub fn new(key: &str, now: DateTime<Utc>) -> Self {
        KeyMetadata {
            key: key.to_string(),
            versions: BTreeMap::new(),
            current_version: 0,
            oldest_version: 0,
            created_time: now,
            updated_time: now,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: BTreeMap::new(),
            latest_version: 0,
            pending_version: None,
            previous_version: None,
        }
    }

    /// The highest version number given out.
    pub fn latest(&self) -> u64 {
        self.latest_version.max(self.current_version)
    }

    /// Versions kept: the key's setting, else the mount's, else 10.
    pub fn effective_max_versions(&self, config: &Config) -> u32 {
        [self.max_versions, config.max_versions]
            .into_iter()
            .find(|&m| m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS)
    }

    /// Record a new version and make it current; returns its number and the versions that
    /// fell out of the window (their data must be deleted in the same batch).
    pub fn add_version(&mut self, vm: VersionMeta, config: &Config) -> (u64, Vec<u64>) {
        let (version, pruned) = self.append(vm, config);
        self.current_version = version;
        (version, pruned)
    }

    /// Record a rotation's pending version (readers keep the current one). A pending version
    /// left by an earlier attempt is marked failed.
    pub fn add_pending(&mut self, vm: VersionMeta, config: &Config) -> (u64, Vec<u64>) {
        if let Some(old) = self.pending_version.take() {
            if let Some(v) = self.versions.get_mut(&old) {
                v.rotation_failed = true;
            }
        }
        let (version, pruned) = self.append(vm, config);
        self.pending_version = Some(version);
        (version, pruned)
    }

    /// Number a new version and drop the ones outside the window, except the versions a
    /// label still points at.
    fn append(&mut self, vm: VersionMeta, config: &Config) -> (u64, Vec<u64>) {
        let version = self.latest() + 1;
        self.latest_version = version;
        self.updated_time = vm.created_time;
        self.versions.insert(version, vm);

        let max = u64::from(self.effective_max_versions(config));
        let mut pruned = Vec::new();
        if version - self.oldest_version >= max {
            let last_dropped = version - max;
            let kept = [
                Some(self.current_version),
                self.pending_version,
                self.previous_version,
            ];
            pruned = self
                .versions
                .range(..=last_dropped)
                .map(|(v, _)| *v)
                .filter(|v| !kept.contains(&Some(*v)))
                .collect();
            for v in &pruned {
                self.versions.remove(v);
            }
            if self.previous_version.is_some_and(|p| pruned.contains(&p)) {
                self.previous_version = None;
            }
            self.oldest_version = last_dropped + 1;
        }
        (version, pruned)
    }

    /// The version a rotation label names (`current`, `previous`, `pending`); `None`: the
    /// label is unknown or points nowhere.
    pub fn label(&self, label: &str) -> Option<u64> {
        match label {
            "current" => Some(self.current_version),
            "previous" => self.previous_version,
            "pending" => self.pending_version,
            _ => None,
        }
    }

    /// `custom_metadata` as Vault prints it: `null` when there is none.
    pub fn custom_metadata_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            Value::Null
        } else {
            json!(self.custom_metadata)
        }
    }

    fn to_json(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(v, vm)| {
                let mut entry = json!({
                    "created_time": ts(&vm.created_time),
                    "deletion_time": ts_opt(&vm.deletion_time),
                    "destroyed": vm.destroyed,
                });
                if vm.rotation_failed {
                    entry["rotation_failed"] = true.into();
                }
                (v.to_string(), entry)
            })
            .collect();
        let mut out = json!({
            "cas_required": self.cas_required,
            "created_time": ts(&self.created_time),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata_json(),
            "delete_version_after": duration::format_secs(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": ts(&self.updated_time),
            "versions": versions,
        });
        // Keys a rotation touched also show their labels (hush's own field).
        if self.pending_version.is_some() || self.previous_version.is_some() {
            out["labels"] = json!({
                "current": self.current_version,
                "previous": self.previous_version,
                "pending": self.pending_version,
            });
        }
        out
    }
}

pub(super) async fn handle(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    if req.operation == Operation::List {
        return list(kv, path).await;
    }
    let key = KeyRef::new(path)?;
    match req.operation {
        Operation::Read => read(kv, &key).await,
        Operation::Update | Operation::Create => write(kv, req, &key).await,
        Operation::Patch => patch(kv, req, &key).await,
        Operation::Delete => delete(kv, &key).await,
        Operation::List | Operation::Renew | Operation::Revoke => {
            Err(LogicalError::UnsupportedOperation)
        }
    }
}

async fn list(kv: &KvBackend, path: &str) -> Result<Response, LogicalError> {
    super::list_folder(&kv.view, "metadata/", path).await
}

async fn read(kv: &KvBackend, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let _guard = kv.stripe(key).read().await;
    let meta = kv
        .load_meta(key)
        .await?
        .ok_or_else(|| LogicalError::NotFound(String::new()))?;
    Ok(Response::data(meta.to_json()))
}

/// The parsed settable fields of a metadata write or patch.
struct Settings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after: Option<i64>,
    /// For a write: the new map. For a patch: the merge patch (`null` values remove keys).
    custom_metadata: Option<Map<String, Value>>,
    /// A patch may set `custom_metadata` to `null` to remove it all.
    clear_custom_metadata: bool,
}

impl Settings {
    fn parse(req: &Request) -> Result<Self, LogicalError> {
        let delete_version_after = duration_field(&req.data, "delete_version_after")?;
        if delete_version_after.is_some_and(|d| d < 0) {
            return Err(LogicalError::invalid(
                "delete_version_after cannot be negative",
            ));
        }
        let (custom_metadata, clear_custom_metadata) = match req.data.get("custom_metadata") {
            None => (None, false),
            Some(Value::Null) => (None, req.operation == Operation::Patch),
            Some(Value::Object(m)) => (Some(m.clone()), false),
            Some(_) => {
                return Err(LogicalError::invalid(format!(
                    "{CUSTOM_PREFIX}: custom_metadata must be a JSON object of strings"
                )))
            }
        };
        Ok(Settings {
            max_versions: u32_field(&req.data, "max_versions")?,
            cas_required: bool_field(&req.data, "cas_required")?,
            delete_version_after,
            custom_metadata,
            clear_custom_metadata,
        })
    }

    fn is_empty(&self) -> bool {
        self.max_versions.is_none()
            && self.cas_required.is_none()
            && self.delete_version_after.is_none()
            && self.custom_metadata.is_none()
            && !self.clear_custom_metadata
    }

    /// Vault warns when a key turns `cas_required` off while the mount requires it.
    fn cas_warning(&self, config: &Config) -> Option<String> {
        (self.cas_required == Some(false) && config.cas_required).then(|| {
            "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.".to_string()
        })
    }

    fn apply_scalars(&self, meta: &mut KeyMetadata) {
        if let Some(m) = self.max_versions {
            meta.max_versions = m;
        }
        if let Some(c) = self.cas_required {
            meta.cas_required = c;
        }
        if let Some(d) = self.delete_version_after {
            meta.delete_version_after = d;
        }
    }
}

/// One custom metadata value as a string, as Vault's weak decoding does.
fn custom_value(key: &str, v: &Value) -> Result<String, LogicalError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(LogicalError::invalid(format!(
            "{CUSTOM_PREFIX}: value for key {key:?} must be a string"
        ))),
    }
}

fn printable(s: &str) -> bool {
    s.chars()
        .all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace()))
}

/// Check Vault's limits; all problems are reported at once, in Vault's multi-error format.
fn validate_custom_metadata(map: &BTreeMap<String, String>) -> Result<(), LogicalError> {
    let mut errs = Vec::new();
    if map.len() > MAX_CUSTOM_KEYS {
        errs.push(format!(
            "{CUSTOM_PREFIX}: payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}",
            map.len()
        ));
    } else {
        for (k, v) in map {
            if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
                errs.push(format!(
                    "{CUSTOM_PREFIX}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                    k.len()
                ));
            }
            if v.is_empty() || v.len() > MAX_CUSTOM_VALUE_LEN {
                errs.push(format!(
                    "{CUSTOM_PREFIX}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}",
                    v.len()
                ));
            }
            if !printable(k) {
                errs.push(format!(
                    "{CUSTOM_PREFIX}: key {k:?} contains unprintable characters"
                ));
            }
            if !printable(v) {
                errs.push(format!(
                    "{CUSTOM_PREFIX}: value for key {k:?} contains unprintable characters"
                ));
            }
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let n = errs.len();
    let noun = if n == 1 { "error" } else { "errors" };
    let list: String = errs.iter().map(|e| format!("\t* {e}\n")).collect();
    Err(LogicalError::invalid(format!(
        "{n} {noun} occurred:\n{list}\n"
    )))
}

fn custom_map(
    patch: &Map<String, Value>,
    skip_nulls: bool,
) -> Result<BTreeMap<String, String>, LogicalError> {
    let mut out = BTreeMap::new();
    for (k, v) in patch {
        if skip_nulls && v.is_null() {
            continue;
        }
        out.insert(k.clone(), custom_value(k, v)?);
    }
    Ok(out)
}

async fn write(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let settings = Settings::parse(req)?;
    let warning = ignored_params_warning(req, FIELDS);
    if settings.is_empty() {
        return Ok(with_optional_warning(Response::empty(), warning));
    }
    let custom = match &settings.custom_metadata {
        Some(m) => {
            let map = custom_map(m, false)?;
            validate_custom_metadata(&map)?;
            Some(map)
        }
        None => None,
    };
    let config = kv.load_config().await?;

    let _guard = kv.stripe(key).write().await;
    let mut meta = match kv.load_meta(key).await? {
        Some(m) => m,
        None => KeyMetadata::new(key.path, kv.now()),
    };
    settings.apply_scalars(&mut meta);
    if let Some(map) = custom {
        meta.custom_metadata = map;
    }
    kv.view.put_json(&key.meta_key(), &meta).await?;
    kv.publish("metadata-write", "metadata", key, Some(&meta));

    let resp = with_optional_warning(Response::empty(), settings.cas_warning(&config));
    Ok(with_optional_warning(resp, warning))
}

async fn patch(kv: &KvBackend, req: &Request, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let settings = Settings::parse(req)?;
    let warning = ignored_params_warning(req, FIELDS);
    if let Some(m) = &settings.custom_metadata {
        validate_custom_metadata(&custom_map(m, true)?)?;
    }
    let config = kv.load_config().await?;

    let _guard = kv.stripe(key).write().await;
    let mut meta = kv
        .load_meta(key)
        .await?
        .ok_or_else(|| LogicalError::NotFound(String::new()))?;
    settings.apply_scalars(&mut meta);
    if settings.clear_custom_metadata {
        meta.custom_metadata.clear();
    }
    if let Some(m) = &settings.custom_metadata {
        // RFC 7396 on a flat map: null removes, anything else sets.
        for (k, v) in m {
            if v.is_null() {
                meta.custom_metadata.remove(k);
            } else {
                meta.custom_metadata.insert(k.clone(), custom_value(k, v)?);
            }
        }
        validate_custom_metadata(&meta.custom_metadata)?;
    }
    kv.view.put_json(&key.meta_key(), &meta).await?;
    kv.publish("metadata-patch", "metadata", key, Some(&meta));

    let resp = with_optional_warning(Response::empty(), settings.cas_warning(&config));
    Ok(with_optional_warning(resp, warning))
}

/// Remove the key for good: metadata and every version's data, in one batch.
async fn delete(kv: &KvBackend, key: &KeyRef<'_>) -> Result<Response, LogicalError> {
    let _guard = kv.stripe(key).write().await;
    if kv.load_meta(key).await?.is_none() {
        return Ok(Response::empty());
    }
    let mut ops = Vec::new();
    for k in kv.view.scan_prefix(&key.versions_prefix()).await? {
        ops.push(kv.view.delete_op(&k)?);
    }
    ops.push(kv.view.delete_op(&key.meta_key())?);
    kv.view.write(ops).await?;
    kv.publish("metadata-delete", "metadata", key, None);
    Ok(Response::empty())
}

//! The audit broker and the `file` audit device: one HMAC'd, hash-chained JSON line per
//! request and per response.
//!
//! # Layout
//!
//! - this module: [`AuditBroker`], the table of enabled devices (kept behind the barrier at
//!   `core/audit/table`, with each device's HMAC salt), option checking, fan-out of entries.
//! - `entry`: Vault's audit entry shape, with every secret string HMAC'd.
//! - `file`: the output and its hash chain ([`hush_api::audit`] describes the format).
//! - [`history`]: when devices were enabled and disabled (`core/audit/history`), written with
//!   each change of the table, so a stretch without any device can be proven afterwards.
//! - [`inspect`]: the compliance report's look at each device: the chain checked up to the
//!   head in memory, and counts of what the lines of a window record.
//!
//! # Rules (Vault's)
//!
//! - When devices are enabled and none can record an entry, the request fails with
//!   [`LogicalError::AuditFailed`]; when only some fail, a warning is logged and work goes on.
//! - Nothing in clear: data strings, tokens and accessors are `hmac-sha256:<hex>` under the
//!   device's salt; `sys/audit-hash` ([`AuditBroker::hash`]) computes the same for a value an
//!   operator looks for.
//! - The file alone cannot show a removed or edited *last* line; [`AuditBroker::list`] reports
//!   each device's chain head (`hash_chain.seq`, `hash_chain.last_hash`) to compare with.

mod entry;
mod file;
pub mod history;
pub mod inspect;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroize;

use crate::barrier::BarrierView;
use crate::logical::{LogicalError, Request, Response};
use entry::{format_time, Formatter, Salt};
#[doc(hidden)]
pub use file::chained_lines;
use file::{DeviceWriter, SinkSpec};
use history::{AuditAction, AuditHistory, HISTORY_KEY};
use inspect::{ChainCheck, DeviceInspection, Sink, WindowStats};

/// Storage key of the device table inside the broker's view.
const TABLE_KEY: &str = "table";

/// Options the `file` device accepts. `path` is the old name of `file_path`, which Vault
/// still accepts (`file_path` wins when both are given).
const KNOWN_OPTIONS: &[&str] = &[
    "file_path",
    "path",
    "mode",
    "hmac_accessor",
    "format",
    "log_raw",
];

/// One enabled device.
struct Device {
    path: String,
    description: String,
    options: BTreeMap<String, String>,
    spec: SinkSpec,
    salt: Salt,
    hmac_accessor: bool,
    /// The device's writer thread, which owns the output and the hash chain.
    writer: DeviceWriter,
}

impl Device {
    fn formatter(&self) -> Formatter<'_> {
        Formatter {
            salt: &self.salt,
            hmac_accessor: self.hmac_accessor,
        }
    }

    fn stored(&self) -> StoredDevice {
        StoredDevice {
            path: self.path.clone(),
            kind: "file".into(),
            description: self.description.clone(),
            options: self.options.clone(),
            local: false,
            salt: self.salt.to_hex(),
        }
    }
}

/// A device as kept in the table. The salt is hex and wiped on drop.
#[derive(Serialize, Deserialize)]
struct StoredDevice {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    description: String,
    options: BTreeMap<String, String>,
    local: bool,
    salt: String,
}

impl Drop for StoredDevice {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

#[derive(Serialize, Deserialize, Default)]
struct StoredTable {
    devices: Vec<StoredDevice>,
}

type DeviceMap = BTreeMap<String, Arc<Device>>;

/// Fans each request and response out to the enabled audit devices.
pub struct AuditBroker {
    view: BarrierView,
    devices: ArcSwap<DeviceMap>,
    /// Serialises enable/disable so the stored table and the live map agree.
    config_lock: tokio::sync::Mutex<()>,
    /// Counts device writes that fail.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Told of device writes that fail (`audit.failed`, rate-limited per device).
    webhooks: Option<Arc<crate::core::webhooks::Webhooks>>,
}

impl std::fmt::Debug for AuditBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditBroker")
            .field("devices", &self.devices.load().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `file`, `/file/` -> `file/`.
fn normalise_path(path: &str) -> Result<String, LogicalError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(LogicalError::invalid("missing audit device path"));
    }
    if trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(LogicalError::invalid(format!(
            "invalid audit device path {path:?}"
        )));
    }
    Ok(format!("{trimmed}/"))
}

/// Go's `strconv.ParseBool`, which Vault uses for options.
fn parse_bool(key: &str, v: &str) -> Result<bool, LogicalError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(LogicalError::invalid(format!(
            "option {key} must be true or false, got {v:?}"
        ))),
    }
}

/// Check the options of a `file` device.
fn parse_options(options: &BTreeMap<String, String>) -> Result<(SinkSpec, bool), LogicalError> {
    if let Some(unknown) = options
        .keys()
        .find(|k| !KNOWN_OPTIONS.contains(&k.as_str()))
    {
        return Err(LogicalError::invalid(format!(
            "unknown option {unknown:?} for the file audit device; known options: {}",
            KNOWN_OPTIONS.join(", ")
        )));
    }
    let file_path = options
        .get("file_path")
        .or_else(|| options.get("path"))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| LogicalError::invalid("file_path is required for the file audit device"))?;
    if let Some(format) = options.get("format") {
        if format != "json" {
            return Err(LogicalError::invalid(format!(
                "unsupported format {format:?}: hushd writes \"json\" only"
            )));
        }
    }
    if let Some(raw) = options.get("log_raw") {
        if parse_bool("log_raw", raw)? {
            return Err(LogicalError::invalid(
                "log_raw=true is not supported: hushd never writes secrets in clear to audit devices",
            ));
        }
    }
    let hmac_accessor = match options.get("hmac_accessor") {
        Some(v) => parse_bool("hmac_accessor", v)?,
        None => true,
    };
    let mode = match options.get("mode").map(String::as_str) {
        None => Some(0o600),
        Some(m) => {
            let bits = u32::from_str_radix(m, 8)
                .ok()
                .filter(|b| *b <= 0o7777)
                .ok_or_else(|| {
                    LogicalError::invalid(format!("invalid mode {m:?}: want octal like 0600"))
                })?;
            if bits & 0o111 != 0 {
                return Err(LogicalError::invalid(format!(
                    "invalid mode {m:?}: audit files cannot be executable"
                )));
            }
            (bits != 0).then_some(bits)
        }
    };
    let spec = match file_path.as_str() {
        "stdout" => SinkSpec::Stdout,
        "discard" => SinkSpec::Discard,
        p => SinkSpec::File {
            path: PathBuf::from(p),
            mode,
        },
    };
    Ok((spec, hmac_accessor))
}

impl AuditBroker {
    /// Load the enabled devices from `view` and open them. A device that cannot be opened
    /// stays enabled (a warning is logged): it fails its writes, and retries opening at each.
    pub async fn open(view: BarrierView) -> Result<Self, LogicalError> {
        let table: StoredTable = view.get_json(TABLE_KEY).await?.unwrap_or_default();
        let mut map = DeviceMap::new();
        for stored in &table.devices {
            let (spec, hmac_accessor) = parse_options(&stored.options)?;
            let salt = Salt::from_hex(&stored.salt).ok_or_else(|| {
                LogicalError::Internal(format!("audit device {} has a malformed salt", stored.path))
            })?;
            let device = build_device(stored, spec, salt, hmac_accessor)?;
            if let Err(e) = device.writer.open().await {
                tracing::warn!(device = %stored.path, error = %e, "audit device could not be opened");
            }
            map.insert(stored.path.clone(), Arc::new(device));
        }
        // The history starts here on a store that has none (a new store: at its init).
        if view.get(HISTORY_KEY).await?.is_none() {
            let begun = AuditHistory::begin(chrono::Utc::now(), map.keys().cloned());
            if let Err(e) = view.put_json(HISTORY_KEY, &begun).await {
                tracing::warn!(error = %e, "cannot start the audit device history");
            }
        }
        Ok(AuditBroker {
            view,
            devices: ArcSwap::from_pointee(map),
            config_lock: tokio::sync::Mutex::new(()),
            metrics: None,
            webhooks: None,
        })
    }

    /// Count each failed device write in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Emit `audit.failed` to `webhooks` when a device write fails.
    pub fn with_webhooks(mut self, webhooks: Arc<crate::core::webhooks::Webhooks>) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// Enable a device at `path` (`sys/audit/:path`). Only `kind` `file` exists.
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: BTreeMap<String, String>,
    ) -> Result<(), LogicalError> {
        let path = normalise_path(path)?;
        if kind != "file" {
            return Err(LogicalError::invalid(format!(
                "unsupported audit device type {kind:?}: hushd supports \"file\""
            )));
        }
        let (spec, hmac_accessor) = parse_options(&options)?;
        let _guard = self.config_lock.lock().await;
        let current = self.devices.load_full();
        if current.contains_key(&path) {
            return Err(LogicalError::invalid(format!(
                "path already in use: {path}"
            )));
        }
        if let SinkSpec::File { path: file, .. } = &spec {
            if let Some(other) = current.values().find(|d| same_file(&d.spec, file)) {
                return Err(LogicalError::invalid(format!(
                    "file_path {} is already written by audit device {}",
                    file.display(),
                    other.path
                )));
            }
        }
        let stored = StoredDevice {
            path: path.clone(),
            kind: kind.into(),
            description: description.into(),
            options,
            local: false,
            salt: String::new(),
        };
        let device = build_device(&stored, spec, Salt::random(), hmac_accessor)?;
        device
            .writer
            .open()
            .await
            .map_err(|e| LogicalError::invalid(e.to_string()))?;
        let mut next = (*current).clone();
        next.insert(path.clone(), Arc::new(device));
        self.persist(&next, &path, AuditAction::Enable).await?;
        self.devices.store(Arc::new(next));
        Ok(())
    }

    /// Disable the device at `path`. Disabling a path that has no device is not an error.
    pub async fn disable(&self, path: &str) -> Result<(), LogicalError> {
        let path = normalise_path(path)?;
        let _guard = self.config_lock.lock().await;
        let current = self.devices.load_full();
        if !current.contains_key(&path) {
            return Ok(());
        }
        let mut next = (*current).clone();
        next.remove(&path);
        self.persist(&next, &path, AuditAction::Disable).await?;
        self.devices.store(Arc::new(next));
        Ok(())
    }

    /// Store the table and the change in the history, in one atomic write.
    async fn persist(
        &self,
        devices: &DeviceMap,
        path: &str,
        action: AuditAction,
    ) -> Result<(), LogicalError> {
        let table = StoredTable {
            devices: devices.values().map(|d| d.stored()).collect(),
        };
        let now = chrono::Utc::now();
        let mut history = match self.view.get_json::<AuditHistory>(HISTORY_KEY).await? {
            Some(h) => h,
            // Not written at open (a storage error then): it starts with this change.
            None => AuditHistory::begin(now, self.devices.load().keys().cloned()),
        };
        history.record(now, path, action);
        self.view
            .write(vec![
                self.view.put_json_op(TABLE_KEY, &table)?,
                self.view.put_json_op(HISTORY_KEY, &history)?,
            ])
            .await?;
        Ok(())
    }

    /// When devices were enabled and disabled (`None`: never recorded).
    pub async fn history(&self) -> Result<Option<AuditHistory>, LogicalError> {
        Ok(self.view.get_json(HISTORY_KEY).await?)
    }

    /// Each device: its chain checked up to the head in memory, and what its lines at or
    /// after `since` record. `watch`: accessors whose requests in the window are reported
    /// back ([`WindowStats::seen`]). Reads every file device's whole file (on blocking threads).
    pub async fn inspect(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        watch: &[String],
    ) -> Vec<DeviceInspection> {
        let devices = self.devices.load_full();
        let mut out = Vec::with_capacity(devices.len());
        for device in devices.values() {
            let sink = Sink::of(&device.spec);
            let (chain, stats) = match &sink {
                Sink::File(file) => {
                    let head = device.writer.head();
                    let forms: BTreeMap<String, String> = watch
                        .iter()
                        .map(|a| (device.formatter().accessor_as_written(a), a.clone()))
                        .collect();
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || {
                        inspect::inspect_file(&file, &head, since, &forms)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        (
                            ChainCheck::Broken(format!("the check stopped: {e}")),
                            WindowStats::default(),
                        )
                    })
                }
                Sink::Stdout => (
                    ChainCheck::NotVerifiable(
                        "writes to hushd's stdout: verify it where stdout is collected \
                         (hush audit verify FILE)"
                            .into(),
                    ),
                    WindowStats::default(),
                ),
                Sink::Discard => (
                    ChainCheck::NotVerifiable("file_path=discard keeps nothing".into()),
                    WindowStats::default(),
                ),
            };
            out.push(DeviceInspection {
                path: device.path.clone(),
                sink,
                chain,
                stats,
            });
        }
        out
    }

    /// Vault's `GET sys/audit` body: `{"file/": {type, description, options, path, local}}`,
    /// plus `hash_chain: {seq, last_hash}`, the device's chain head.
    pub fn list(&self) -> Value {
        let map: Map<String, Value> = self
            .devices
            .load()
            .iter()
            .map(|(path, d)| {
                let head = d.writer.head();
                let entry = json!({
                    "type": "file",
                    "description": d.description,
                    "options": d.options,
                    "path": path,
                    "local": false,
                    "hash_chain": { "seq": head.seq, "last_hash": head.last_hash },
                });
                (path.clone(), entry)
            })
            .collect();
        Value::Object(map)
    }

    pub fn is_enabled(&self) -> bool {
        !self.devices.load().is_empty()
    }

    /// `sys/audit-hash/:path`: the HMAC of `input` as device `path` writes it.
    pub async fn hash(&self, path: &str, input: &str) -> Result<String, LogicalError> {
        let path = normalise_path(path)?;
        let devices = self.devices.load();
        let device = devices
            .get(&path)
            .ok_or_else(|| LogicalError::invalid(format!("unknown audit backend {path:?}")))?;
        Ok(device.salt.hmac(input))
    }

    /// Close every file; each reopens at its next write (log rotation on SIGHUP).
    pub async fn reopen(&self) {
        for device in self.devices.load().values() {
            device.writer.close();
        }
    }

    /// Record a request before it is handled.
    pub async fn log_request(&self, req: &Request) -> Result<(), LogicalError> {
        let time = format_time(chrono::Utc::now());
        self.fan_out(req, "request", |d| {
            vec![d.formatter().request_entry(req, &time)]
        })
        .await
    }

    /// Record the answer (or the error) to a request.
    pub async fn log_response(
        &self,
        req: &Request,
        resp: Result<&Response, &LogicalError>,
    ) -> Result<(), LogicalError> {
        let time = format_time(chrono::Utc::now());
        self.fan_out(req, "response", |d| {
            vec![d.formatter().response_entry(req, resp, &time)]
        })
        .await
    }

    /// Record entries of a type of their own (`agent-access`: one per access an agent
    /// reported), each with the `auth` and `request` sections of `req`, the request that
    /// carried them. `body` goes under `field` in clear: the caller puts nothing secret in it
    /// (the hash chain covers it). Same rule as requests: when devices are enabled and none
    /// could record every entry, [`LogicalError::AuditFailed`].
    pub async fn log_entries(
        &self,
        req: &Request,
        kind: &str,
        field: &str,
        bodies: &[Value],
    ) -> Result<(), LogicalError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let time = format_time(chrono::Utc::now());
        self.fan_out(req, kind, |d| {
            bodies
                .iter()
                .map(|body| d.formatter().typed_entry(req, &time, kind, field, body))
                .collect()
        })
        .await
    }

    /// Write the entries `build` makes for each device; a device counts as written when all
    /// of its entries were.
    async fn fan_out(
        &self,
        req: &Request,
        kind: &str,
        build: impl Fn(&Device) -> Vec<Map<String, Value>>,
    ) -> Result<(), LogicalError> {
        let devices = self.devices.load_full();
        if devices.is_empty() {
            return Ok(());
        }
        let mut written = 0usize;
        let mut failed = Vec::new();
        let mut reasons = Vec::new();
        for device in devices.values() {
            match device.writer.append_many(build(device)).await {
                Ok(()) => written += 1,
                Err(e) => {
                    failed.push(device.path.clone());
                    reasons.push(failure_reason(&device.path, &e));
                    if let Some(m) = &self.metrics {
                        m.audit_write_failed();
                    }
                    tracing::warn!(
                        device = %device.path,
                        request_id = %req.id,
                        entry = kind,
                        error = %e,
                        "audit device could not record an entry"
                    );
                }
            }
        }
        if let Some(hooks) = &self.webhooks {
            for device in failed {
                let mut data = serde_json::Map::new();
                data.insert("device".into(), device.clone().into());
                data.insert("entry".into(), kind.into());
                data.insert("request_refused".into(), (written == 0).into());
                let key = limit_key(&device);
                let path = format!("sys/audit/{}", device.trim_end_matches('/'));
                hooks.emit_limited(key, "audit.failed", path, data);
            }
        }
        if written == 0 {
            tracing::error!(request_id = %req.id, entry = kind, "no audit device could record an entry");
            return Err(LogicalError::AuditFailed(reasons.join("; ")));
        }
        Ok(())
    }
}

/// Why `device` could not write, for the refused request's error: the disk-full case says
/// what to do; other errors as the device saw them (they name no entry or value).
fn failure_reason(device: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull {
        format!(
            "{device}: no space left on the disk holding its file; free space there and \
             requests are served again"
        )
    } else {
        format!("{device}: {e}")
    }
}

/// The rate-limit key of a device's `audit.failed` events.
fn limit_key(device: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ("audit.failed", device).hash(&mut h);
    h.finish()
}

fn build_device(
    stored: &StoredDevice,
    spec: SinkSpec,
    salt: Salt,
    hmac_accessor: bool,
) -> Result<Device, LogicalError> {
    let writer = DeviceWriter::start(spec.clone(), &stored.path).map_err(|e| {
        LogicalError::Internal(format!("cannot start the audit writer thread: {e}"))
    })?;
    Ok(Device {
        path: stored.path.clone(),
        description: stored.description.clone(),
        options: stored.options.clone(),
        writer,
        spec,
        salt,
        hmac_accessor,
    })
}

/// Do two devices write the same file? Compares canonical paths when both exist.
fn same_file(spec: &SinkSpec, file: &std::path::Path) -> bool {
    let SinkSpec::File { path, .. } = spec else {
        return false;
    };
    match (std::fs::canonicalize(path), std::fs::canonicalize(file)) {
        (Ok(a), Ok(b)) => a == b,
        _ => path == file,
    }
}

#[cfg(test)]
mod tests;

//! `config`: the mount-wide settings every key falls back to.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::metadata::KeyMetadata;
use super::params::{bool_field, duration_field, ignored_params_warning, u32_field};
use super::KvBackend;
use crate::logical::duration;
use crate::logical::{LogicalError, Operation, Request, Response};

const CONFIG_KEY: &str = "config";

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub(super) const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The stored mount config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Config {
    /// 0: not set (keys keep [`DEFAULT_MAX_VERSIONS`] unless they say otherwise).
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0: not set; negative: `delete_version_after` disabled for every key.
    pub delete_version_after: i64,
}

impl Config {
    /// When a version created (or undeleted) at `from` is to be deleted: `from` plus the
    /// smaller of the mount's and the key's non-zero `delete_version_after`, as Vault does.
    pub fn deletion_time(&self, from: DateTime<Utc>, meta: &KeyMetadata) -> Option<DateTime<Utc>> {
        if self.delete_version_after < 0 {
            return None;
        }
        let secs = match (self.delete_version_after, meta.delete_version_after) {
            (0, 0) => return None,
            (0, m) => m,
            (c, 0) => c,
            (c, m) => c.min(m),
        };
        if secs <= 0 {
            return None;
        }
        from.checked_add_signed(TimeDelta::try_seconds(secs)?)
    }
}

impl KvBackend {
    pub(super) async fn load_config(&self) -> Result<Config, LogicalError> {
        Ok(self.view.get_json(CONFIG_KEY).await?.unwrap_or_default())
    }
}

pub(super) async fn handle(kv: &KvBackend, req: &Request) -> Result<Response, LogicalError> {
    match req.operation {
        Operation::Read => read(kv).await,
        Operation::Update | Operation::Create => write(kv, req).await,
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

async fn read(kv: &KvBackend) -> Result<Response, LogicalError> {
    let config = kv.load_config().await?;
    Ok(Response::data(json!({
        "cas_required": config.cas_required,
        "delete_version_after": duration::format_secs(config.delete_version_after),
        "max_versions": config.max_versions,
    })))
}

async fn write(kv: &KvBackend, req: &Request) -> Result<Response, LogicalError> {
    let max_versions = u32_field(&req.data, "max_versions")?;
    let cas_required = bool_field(&req.data, "cas_required")?;
    let delete_version_after = duration_field(&req.data, "delete_version_after")?;
    let warning = ignored_params_warning(
        req,
        &["max_versions", "cas_required", "delete_version_after"],
    );
    if max_versions.is_none() && cas_required.is_none() && delete_version_after.is_none() {
        return Ok(with_optional_warning(Response::empty(), warning));
    }

    let _guard = kv.config_lock.lock().await;
    let mut config = kv.load_config().await?;
    if let Some(m) = max_versions {
        config.max_versions = m;
    }
    if let Some(c) = cas_required {
        config.cas_required = c;
    }
    if let Some(d) = delete_version_after {
        // A negative duration disables delete-after everywhere; Vault keeps it as -1s.
        config.delete_version_after = d.max(-1);
    }
    kv.view.put_json(CONFIG_KEY, &config).await?;
    Ok(with_optional_warning(Response::empty(), warning))
}

pub(super) fn with_optional_warning(resp: Response, warning: Option<String>) -> Response {
    match warning {
        Some(w) => resp.with_warning(w),
        None => resp,
    }
}

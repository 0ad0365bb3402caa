//! A mount as stored in the mount table and shown by `sys/mounts`: its path, type, TTL
//! tuning. The router keeps the table; the expiration manager and logins read the tuning.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// `secret` and `/secret/` both become `secret/`.
pub fn normalize_mount_path(path: &str) -> String {
    let p = path.trim_matches('/');
    format!("{p}/")
}

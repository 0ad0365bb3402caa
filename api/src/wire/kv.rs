//! KV version 2 shapes (`MOUNT/data`, `MOUNT/metadata`, `MOUNT/delete|undelete|destroy`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Data;

/// Metadata of one version, returned by writes and inside reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KvVersionMetadata {
    pub created_time: String,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Empty when the version is not deleted.
    pub deletion_time: String,
    pub destroyed: bool,
    pub version: u64,
}

/// `data` of `GET MOUNT/data/PATH`. `data` is `None` for a deleted or destroyed version.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KvSecret {
    pub data: Option<Data>,
    pub metadata: KvVersionMetadata,
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key names only: the values are the secrets.
        let keys: Option<Vec<&String>> = self.data.as_ref().map(|d| d.keys().collect());
        f.debug_struct("KvSecret")
            .field("keys", &keys)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// `options` of a KV write.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvWriteOptions {
    /// Check-and-set: the write only succeeds if the current version is this one (0: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<u64>,
}

/// Body of `POST`/`PATCH MOUNT/data/PATH`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct KvWriteRequest {
    pub data: Data,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<KvWriteOptions>,
}

impl std::fmt::Debug for KvWriteRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvWriteRequest")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("options", &self.options)
            .finish()
    }
}

/// One version in `KvMetadata::versions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KvVersionInfo {
    pub created_time: String,
    pub deletion_time: String,
    pub destroyed: bool,
}

/// `data` of `GET MOUNT/metadata/PATH`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KvMetadata {
    pub cas_required: bool,
    pub created_time: String,
    pub current_version: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub delete_version_after: String,
    pub max_versions: u64,
    pub oldest_version: u64,
    pub updated_time: String,
    /// Keyed by version number as a string, as Vault sends it.
    pub versions: BTreeMap<String, KvVersionInfo>,
}

/// Body of `POST MOUNT/metadata/PATH`; unset fields are left as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvMetadataUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_version_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// Body of `MOUNT/delete|undelete|destroy/PATH`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvVersions {
    pub versions: Vec<u64>,
}

/// Split `secret/app/db` into the mount (`secret`) and the path below it (`app/db`), as the
/// vault CLI does for KV v2 when no `-mount` is given.
pub fn split_mount(full: &str) -> Option<(&str, &str)> {
    let full = full.trim_matches('/');
    let (mount, path) = full.split_once('/').unwrap_or((full, ""));
    (!mount.is_empty()).then_some((mount, path))
}

/// `MOUNT/KIND/PATH` with the slashes tidied.
pub fn kv_path(mount: &str, kind: &str, path: &str) -> String {
    let mount = mount.trim_matches('/');
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        format!("{mount}/{kind}")
    } else {
        format!("{mount}/{kind}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_mount_takes_the_first_segment() {
        assert_eq!(split_mount("secret/app/db"), Some(("secret", "app/db")));
        assert_eq!(split_mount("/secret/app/"), Some(("secret", "app")));
        assert_eq!(split_mount("secret"), Some(("secret", "")));
        assert_eq!(split_mount("/"), None);
        assert_eq!(split_mount(""), None);
    }

    #[test]
    fn kv_path_builds_vault_paths() {
        assert_eq!(kv_path("secret", "data", "app/db"), "secret/data/app/db");
        assert_eq!(kv_path("secret/", "metadata", ""), "secret/metadata");
        assert_eq!(kv_path("kv", "metadata", "dir/"), "kv/metadata/dir/");
    }

    #[test]
    fn read_of_deleted_version_has_no_data() {
        let s: KvSecret = serde_json::from_value(json!({
            "data": null,
            "metadata": {"created_time": "t", "deletion_time": "t2", "destroyed": false,
                         "version": 2, "custom_metadata": null}
        }))
        .unwrap();
        assert!(s.data.is_none());
        assert_eq!(s.metadata.version, 2);
    }

    #[test]
    fn secret_debug_shows_keys_not_values() {
        let s: KvSecret =
            serde_json::from_value(json!({"data": {"password": "hunter2"}, "metadata": {}}))
                .unwrap();
        let dbg = format!("{s:?}");
        assert!(
            dbg.contains("password") && !dbg.contains("hunter2"),
            "{dbg}"
        );
    }

    #[test]
    fn write_request_omits_unset_options() {
        let mut data = Data::new();
        data.insert("k".into(), "v".into());
        let req = KvWriteRequest {
            data: data.clone(),
            options: None,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"data": {"k": "v"}})
        );
        let req = KvWriteRequest {
            data,
            options: Some(KvWriteOptions { cas: Some(0) }),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap()["options"],
            json!({"cas": 0})
        );
        assert!(!format!("{req:?}").contains("\"v\""));
    }

    #[test]
    fn metadata_parses_versions_map() {
        let m: KvMetadata = serde_json::from_value(json!({
            "current_version": 2, "max_versions": 0, "oldest_version": 1,
            "versions": {"1": {"created_time": "a", "deletion_time": "", "destroyed": true}}
        }))
        .unwrap();
        assert!(m.versions["1"].destroyed);
        assert_eq!(m.current_version, 2);
    }
}

//! The `gcp` method's configuration (`config`) and the Google key sources built from it.
//!
//! hushd verifies tokens from their signatures alone, so it needs only two public documents:
//! Google's OAuth2 certificates (`{api}/oauth2/v3/certs`, for GCE identity tokens) and each
//! service account's public keys (`{api}/service_accounts/v1/metadata/jwk/{email}`, for
//! `signJwt` tokens). `{api}` is `https://www.googleapis.com` unless `custom_endpoint.api`
//! replaces it; `custom_endpoint_ca_pem` (a hush extension) makes hushd trust a private CA for
//! it instead of the system roots. The IAM, Resource Manager and Compute endpoints Vault can
//! also override are refused: hushd never calls those APIs.
//!
//! `credentials` (a service-account key JSON) is accepted and stored, sealed by the barrier,
//! for compatibility with Vault's API; hushd does not use it, never returns it and never logs
//! it ([`Credentials`] has a redacting `Debug` and is zeroized on drop).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::jws::{JwtError, RemoteKeySet};
use crate::auth::metadata::{metadata_fields, shown_fields};
use crate::logical::fields::{field_str, list_field};
use crate::logical::{Data, LogicalError};

/// Google's API base.
pub const DEFAULT_API: &str = "https://www.googleapis.com";

/// What hvac's `configure` sends by default as `google_certs_endpoint`.
const DEFAULT_CERTS: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// Service accounts whose keys are cached at once; the cache starts over when full.
const MAX_CACHED_ACCOUNTS: usize = 256;

/// The token metadata an IAM login may carry (Vault's `iam_metadata` fields; all by default).
pub const IAM_METADATA: [&str; 4] = [
    "project_id",
    "role",
    "service_account_email",
    "service_account_id",
];
/// The token metadata a GCE login may carry (Vault's `gce_metadata` fields; all by default).
pub const GCE_METADATA: [&str; 9] = [
    "instance_creation_timestamp",
    "instance_id",
    "instance_name",
    "project_id",
    "project_number",
    "role",
    "service_account_email",
    "service_account_id",
    "zone",
];

/// A service-account key JSON: stored, never shown.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(String);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[none]"
        } else {
            "[redacted]"
        })
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Credentials {
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// What `GET config` shows of the key, as Vault does: `project_id`, `client_email`,
    /// `client_id` and `private_key_id` when present and non-empty, never `private_key`.
    fn shown(&self) -> Map<String, Value> {
        /// The public fields of a service-account key JSON (the rest is skipped unread).
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Public {
            project_id: String,
            client_email: String,
            client_id: String,
            private_key_id: String,
        }
        let p: Public = serde_json::from_str(&self.0).unwrap_or_default();
        [
            ("project_id", p.project_id),
            ("client_email", p.client_email),
            ("client_id", p.client_id),
            ("private_key_id", p.private_key_id),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect()
    }
}

/// The stored configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GcpConfig {
    pub credentials: Credentials,
    /// `role_id` or `unique_id` (kept for Vault compatibility; hushd has no identity store).
    pub iam_alias: String,
    /// `role_id` or `instance_id` (as `iam_alias`).
    pub gce_alias: String,
    /// `custom_endpoint.api`: empty for [`DEFAULT_API`].
    pub api_endpoint: String,
    /// PEM CA bundle trusted for the API endpoint instead of the system roots.
    pub custom_endpoint_ca_pem: String,
    /// Vault's deprecated `google_certs_endpoint`: the GCE certificates URL, when not the default.
    pub google_certs_endpoint: String,
    /// The metadata fields IAM logins put on their tokens; `None`: all ([`IAM_METADATA`]).
    pub iam_metadata: Option<Vec<String>>,
    /// The metadata fields GCE logins put on their tokens; `None`: all ([`GCE_METADATA`]).
    pub gce_metadata: Option<Vec<String>>,
}

impl Default for GcpConfig {
    fn default() -> Self {
        GcpConfig {
            credentials: Credentials::default(),
            iam_alias: "role_id".into(),
            gce_alias: "role_id".into(),
            api_endpoint: String::new(),
            custom_endpoint_ca_pem: String::new(),
            google_certs_endpoint: String::new(),
            iam_metadata: None,
            gce_metadata: None,
        }
    }
}

fn text(data: &Data, key: &str) -> Result<Option<String>, LogicalError> {
    Ok(field_str(data, key)?.map(|s| s.trim().to_string()))
}

/// `custom_endpoint` as an object or a JSON string holding one; only `api` is accepted.
fn custom_endpoint(data: &Data) -> Result<Option<String>, LogicalError> {
    let bad = || LogicalError::invalid("custom_endpoint must be an object like {\"api\": URL}");
    let v = match data.get("custom_endpoint") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Some(String::new())),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(v) => v.clone(),
    };
    let Value::Object(m) = v else {
        return Err(bad());
    };
    let mut api = String::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("api", Value::String(s)) => api = s.trim().trim_end_matches('/').to_string(),
            ("api", _) => return Err(bad()),
            (other, _) => {
                return Err(LogicalError::invalid(format!(
                    "custom_endpoint.{other} is not supported: hushd verifies tokens from their \
                     signatures and calls no Google API besides the key documents at \"api\""
                )))
            }
        }
    }
    Ok(Some(api))
}

impl GcpConfig {
    /// Apply a `config` write: fields present replace the stored ones.
    pub fn update(&mut self, data: &Data) -> Result<(), LogicalError> {
        if let Some(c) = text(data, "credentials")? {
            if !c.is_empty() && !matches!(serde_json::from_str::<Value>(&c), Ok(Value::Object(_))) {
                return Err(LogicalError::invalid(
                    "credentials must be a service account key in JSON",
                ));
            }
            self.credentials = Credentials(c);
        }
        for (key, slot, allowed) in [
            ("iam_alias", &mut self.iam_alias, ["role_id", "unique_id"]),
            ("gce_alias", &mut self.gce_alias, ["role_id", "instance_id"]),
        ] {
            if let Some(v) = text(data, key)? {
                let v = if v.is_empty() { "role_id".into() } else { v };
                if !allowed.contains(&v.as_str()) {
                    return Err(LogicalError::invalid(format!(
                        "invalid {key} {v:?}: want {} or {}",
                        allowed[0], allowed[1]
                    )));
                }
                *slot = v;
            }
        }
        for (key, slot, allowed) in [
            ("iam_metadata", &mut self.iam_metadata, &IAM_METADATA[..]),
            ("gce_metadata", &mut self.gce_metadata, &GCE_METADATA[..]),
        ] {
            if let Some(fields) = list_field(data, key)? {
                *slot = metadata_fields(key, fields, allowed)?;
            }
        }
        if let Some(api) = custom_endpoint(data)? {
            self.api_endpoint = api;
        }
        if let Some(ca) = field_str(data, "custom_endpoint_ca_pem")? {
            self.custom_endpoint_ca_pem = ca.to_string();
        }
        if let Some(url) = text(data, "google_certs_endpoint")? {
            self.google_certs_endpoint = if url == DEFAULT_CERTS {
                String::new()
            } else {
                url
            };
        }
        Ok(())
    }

    pub fn api(&self) -> &str {
        if self.api_endpoint.is_empty() {
            DEFAULT_API
        } else {
            &self.api_endpoint
        }
    }

    /// Where GCE identity tokens' keys are.
    pub fn gce_certs_url(&self) -> String {
        if self.google_certs_endpoint.is_empty() {
            format!("{}/oauth2/v3/certs", self.api())
        } else {
            self.google_certs_endpoint.clone()
        }
    }

    fn ca(&self) -> Option<&str> {
        Some(self.custom_endpoint_ca_pem.as_str()).filter(|s| !s.trim().is_empty())
    }

    /// Keeps only the metadata fields configured for the login type (`gce` or IAM).
    pub fn select_metadata(&self, gce: bool, metadata: &mut BTreeMap<String, String>) {
        let chosen = if gce {
            &self.gce_metadata
        } else {
            &self.iam_metadata
        };
        if let Some(fields) = chosen {
            metadata.retain(|k, _| fields.contains(k));
        }
    }

    /// `GET config`: everything but the credentials, of which only the public fields.
    pub fn to_json(&self) -> Value {
        let mut endpoint = Map::new();
        if !self.api_endpoint.is_empty() {
            endpoint.insert("api".into(), json!(self.api_endpoint));
        }
        let mut shown = json!({
            "iam_alias": self.iam_alias,
            "gce_alias": self.gce_alias,
            "iam_metadata": shown_fields(&self.iam_metadata, &IAM_METADATA),
            "gce_metadata": shown_fields(&self.gce_metadata, &GCE_METADATA),
            "custom_endpoint": endpoint,
            "custom_endpoint_ca_pem": self.custom_endpoint_ca_pem,
            "google_certs_endpoint": self.gce_certs_url(),
        });
        if let Value::Object(m) = &mut shown {
            m.extend(self.credentials.shown());
        }
        shown
    }
}

/// The key documents of one configuration, cached.
#[derive(Debug)]
pub struct Google {
    api: String,
    ca_pem: Option<String>,
    gce: RemoteKeySet,
    iam: Mutex<HashMap<String, Arc<RemoteKeySet>>>,
}

impl Google {
    /// Check the URLs and the CA bundle; nothing is fetched yet.
    pub fn new(cfg: &GcpConfig) -> Result<Google, JwtError> {
        let ca = cfg.ca();
        Ok(Google {
            api: cfg.api().to_string(),
            ca_pem: ca.map(str::to_string),
            gce: RemoteKeySet::new(&cfg.gce_certs_url(), ca)?,
            iam: Mutex::new(HashMap::new()),
        })
    }

    /// Google's OAuth2 certificates (GCE identity tokens).
    pub fn gce_keys(&self) -> &RemoteKeySet {
        &self.gce
    }

    /// The public keys of the service account `email` (the caller checked its characters).
    pub fn iam_keys(&self, email: &str) -> Result<Arc<RemoteKeySet>, JwtError> {
        let mut map = self.iam.lock();
        if let Some(k) = map.get(email) {
            return Ok(k.clone());
        }
        if map.len() >= MAX_CACHED_ACCOUNTS {
            map.clear();
        }
        let url = format!("{}/service_accounts/v1/metadata/jwk/{email}", self.api);
        let keys = Arc::new(RemoteKeySet::new(&url, self.ca_pem.as_deref())?);
        map.insert(email.to_string(), keys.clone());
        Ok(keys)
    }

    /// Forget a service account's keys (after a failed fetch: it may not exist).
    pub fn forget(&self, email: &str) {
        self.iam.lock().remove(email);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Data {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn updates_merge_and_hide_the_credentials() {
        let mut c = GcpConfig::default();
        c.update(&data(
            json!({"credentials": "{\"private_key\": \"sekrit\"}",
                              "custom_endpoint": {"api": "https://google.test/"},
                              "google_certs_endpoint": DEFAULT_CERTS}),
        ))
        .unwrap();
        assert!(c.credentials.is_set());
        assert_eq!(c.api(), "https://google.test");
        assert_eq!(c.gce_certs_url(), "https://google.test/oauth2/v3/certs");
        c.update(&data(json!({"iam_alias": "unique_id"}))).unwrap();
        assert!(c.credentials.is_set(), "kept when not given");
        let shown = c.to_json().to_string();
        assert!(!shown.contains("sekrit") && !format!("{c:?}").contains("sekrit"));
        assert!(
            c.to_json().get("project_id").is_none(),
            "absent fields are not shown"
        );
        assert_eq!(c.to_json()["custom_endpoint"]["api"], "https://google.test");
        let back: GcpConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(GcpConfig::default().gce_certs_url(), DEFAULT_CERTS);
    }

    #[test]
    fn config_shows_the_public_fields_of_the_credentials() {
        let key = json!({"type": "service_account", "project_id": "proj-1",
                         "private_key_id": "kid-9", "private_key": "-----BEGIN PRIVATE KEY-----sekrit",
                         "client_email": "sa@proj-1.iam.gserviceaccount.com",
                         "client_id": "10123", "token_uri": "https://oauth2.test/token"});
        let mut c = GcpConfig::default();
        c.update(&data(json!({"credentials": key.to_string()})))
            .unwrap();
        let shown = c.to_json();
        assert_eq!(shown["project_id"], "proj-1");
        assert_eq!(shown["client_email"], "sa@proj-1.iam.gserviceaccount.com");
        assert_eq!(shown["client_id"], "10123");
        assert_eq!(shown["private_key_id"], "kid-9");
        assert!(!shown.to_string().contains("sekrit"));
        assert!(shown.get("token_uri").is_none() && shown.get("private_key").is_none());
        // Fields of the wrong type show nothing rather than failing the read.
        c.update(&data(json!({"credentials": "{\"project_id\": 5}"})))
            .unwrap();
        assert!(c.to_json().get("project_id").is_none());
    }

    #[test]
    fn metadata_fields_are_chosen_restored_and_checked() {
        let mut c = GcpConfig::default();
        assert_eq!(c.to_json()["iam_metadata"], json!(IAM_METADATA));
        c.update(&data(
            json!({"iam_metadata": ["role", "project_id", "role"],
                               "gce_metadata": ""}),
        ))
        .unwrap();
        assert_eq!(c.to_json()["iam_metadata"], json!(["project_id", "role"]));
        assert_eq!(c.to_json()["gce_metadata"], json!([]));
        let full = || -> BTreeMap<String, String> {
            GCE_METADATA
                .iter()
                .map(|k| (k.to_string(), "x".to_string()))
                .collect()
        };
        let mut m = full();
        c.select_metadata(false, &mut m);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["project_id", "role"]);
        let mut m = full();
        c.select_metadata(true, &mut m);
        assert!(m.is_empty());
        c.update(&data(json!({"gce_metadata": "default"}))).unwrap();
        let mut m = full();
        c.select_metadata(true, &mut m);
        assert_eq!(m.len(), GCE_METADATA.len(), "default: every field");
        for (bad, want) in [
            (json!({"iam_metadata": ["zone"]}), "unknown field \"zone\""),
            (
                json!({"gce_metadata": ["default", "zone"]}),
                "cannot be combined",
            ),
            (json!({"iam_metadata": 5}), "list of strings"),
        ] {
            let err = c.clone().update(&data(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert!(err.to_string().contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            json!({"credentials": "not json"}),
            json!({"iam_alias": "email"}),
            json!({"gce_alias": "unique_id"}),
            json!({"custom_endpoint": {"compute": "https://c.test"}}),
            json!({"custom_endpoint": "[1]"}),
            json!({"custom_endpoint": {"api": 5}}),
            json!({"credentials": 5}),
        ] {
            let mut c = GcpConfig::default();
            let err = c.update(&data(bad.clone())).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert!(!err.to_string().contains("not json"), "{err}");
        }
        let mut c = GcpConfig::default();
        c.update(&data(
            json!({"custom_endpoint": {"api": "http://google.test"}}),
        ))
        .unwrap();
        assert!(matches!(Google::new(&c), Err(JwtError::Key(_))));
        let mut c = GcpConfig::default();
        c.update(&data(json!({"custom_endpoint_ca_pem": "garbage"})))
            .unwrap();
        assert!(matches!(Google::new(&c), Err(JwtError::Key(_))));
    }
}

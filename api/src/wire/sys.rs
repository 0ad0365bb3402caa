//! `sys/` shapes: init, seal status, unseal, key status.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::expose;

/// `GET sys/seal-status`, also the answer of `sys/unseal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    /// Threshold.
    pub t: u32,
    /// Number of shares.
    pub n: u32,
    /// Shares entered so far.
    pub progress: u32,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub recovery_seal: bool,
    pub storage_type: String,
}

/// `PUT sys/init` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitRequest {
    pub secret_shares: u32,
    pub secret_threshold: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgp_keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_token_pgp_key: Option<String>,
}

impl Default for InitRequest {
    /// Vault's defaults: 5 shares, threshold 3.
    fn default() -> Self {
        InitRequest {
            secret_shares: 5,
            secret_threshold: 3,
            pgp_keys: None,
            root_token_pgp_key: None,
        }
    }
}

/// `PUT sys/init` answer: the unseal key shares and the initial root token.
#[derive(Serialize, Deserialize, Default)]
pub struct InitResponse {
    /// Shares, hex.
    #[serde(default, serialize_with = "expose::serialize_vec")]
    pub keys: Vec<SecretString>,
    /// The same shares, base64.
    #[serde(default, serialize_with = "expose::serialize_vec")]
    pub keys_base64: Vec<SecretString>,
    #[serde(serialize_with = "expose::serialize")]
    pub root_token: SecretString,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("root_token", &"[redacted]")
            .finish()
    }
}

/// `GET sys/init`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitStatus {
    pub initialized: bool,
}

/// `PUT sys/unseal` body: one key share, or `reset` to throw away the shares entered so far.
#[derive(Serialize, Deserialize, Default)]
pub struct UnsealRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose::serialize_opt"
    )]
    pub key: Option<SecretString>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub migrate: bool,
}

impl std::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

/// `GET sys/key-status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryptions: Option<u64>,
    /// Hush: the oldest term an entry may still be under (`term` once the rewrap is done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_term: Option<u32>,
    /// Hush: the rewrap's last walk (entries moved to the newest term after a rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrap: Option<RewrapStatus>,
}

/// The rewrap's walk in `sys/key-status` (Hush's own field).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RewrapStatus {
    pub target_term: u32,
    pub complete: bool,
    pub entries_scanned: u64,
    pub entries_rewrapped: u64,
    pub entries_unreadable: u64,
    pub started_time: String,
    pub finished_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn seal_status_parses_vault_body() {
        let s: SealStatus = serde_json::from_value(json!({
            "type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
            "progress": 1, "nonce": "n", "version": "1.15.0", "migration": false,
            "recovery_seal": false, "storage_type": "raft"
        }))
        .unwrap();
        assert_eq!((s.t, s.n, s.progress), (3, 5, 1));
        assert!(s.sealed);
        assert_eq!(s.seal_type, "shamir");
    }

    #[test]
    fn init_response_keeps_secrets_out_of_debug() {
        let r: InitResponse = serde_json::from_value(json!({
            "keys": ["aa11"], "keys_base64": ["qhE="], "root_token": "hvs.root"
        }))
        .unwrap();
        assert_eq!(r.root_token.expose_secret(), "hvs.root");
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("aa11") && !dbg.contains("hvs.root"), "{dbg}");
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["keys"][0], "aa11");
        assert!(serde_json::from_value::<InitResponse>(json!({"keys": []})).is_err());
    }

    #[test]
    fn unseal_request_shapes() {
        let r = UnsealRequest {
            key: Some("k1".into()),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"key": "k1"}));
        assert!(!format!("{r:?}").contains("k1"));
        let r = UnsealRequest {
            reset: true,
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"reset": true}));
    }

    #[test]
    fn init_request_defaults_to_five_of_three() {
        let body = serde_json::to_value(InitRequest::default()).unwrap();
        assert_eq!(body, json!({"secret_shares": 5, "secret_threshold": 3}));
    }
}

/// `sys/generate-root/attempt` and `sys/generate-root/update` answers.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct GenerateRootStatus {
    pub started: bool,
    pub nonce: String,
    pub progress: u32,
    pub required: u32,
    pub complete: bool,
    /// The new root token XOR the OTP, base64 (once complete).
    pub encoded_token: String,
    pub encoded_root_token: String,
    pub pgp_fingerprint: String,
    /// The OTP the server made, in the answer to a start without one; else empty.
    #[serde(serialize_with = "expose::serialize")]
    pub otp: SecretString,
    pub otp_length: u32,
}

impl std::fmt::Debug for GenerateRootStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateRootStatus")
            .field("started", &self.started)
            .field("nonce", &self.nonce)
            .field("progress", &self.progress)
            .field("required", &self.required)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

/// `PUT sys/rekey/init` body: the new unseal keys' count and threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RekeyRequest {
    pub secret_shares: u32,
    pub secret_threshold: u32,
    /// The new keys take effect only once a quorum of them is given back (`sys/rekey/verify`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_verification: bool,
}

/// `sys/rekey/init` status and `sys/rekey/update` answers (and `sys/rekey/verify`'s, which have
/// a subset of the fields). While in progress: `t`/`n` are the new threshold and count,
/// `required` how many current shares complete it; once complete, the new keys (shown once),
/// with `verification_nonce` when they must be given back before they take effect.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RekeyStatus {
    pub started: bool,
    pub nonce: String,
    pub t: u32,
    pub n: u32,
    pub progress: u32,
    pub required: u32,
    pub pgp_fingerprints: Option<Vec<String>>,
    pub backup: bool,
    pub verification_required: bool,
    pub verification_nonce: String,
    pub complete: bool,
    /// The new shares, hex (once complete).
    #[serde(serialize_with = "expose::serialize_vec")]
    pub keys: Vec<SecretString>,
    /// The same shares, base64.
    #[serde(serialize_with = "expose::serialize_vec")]
    pub keys_base64: Vec<SecretString>,
}

impl std::fmt::Debug for RekeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyStatus")
            .field("started", &self.started)
            .field("nonce", &self.nonce)
            .field("t", &self.t)
            .field("n", &self.n)
            .field("progress", &self.progress)
            .field("required", &self.required)
            .field("complete", &self.complete)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod rekey_tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn rekey_status_reads_vaults_answers_and_hides_keys() {
        let s: RekeyStatus = serde_json::from_value(json!({
            "started": true, "nonce": "n1", "t": 2, "n": 3, "progress": 1, "required": 3,
            "pgp_fingerprints": null, "backup": false, "verification_required": false
        }))
        .unwrap();
        assert_eq!((s.t, s.n, s.progress, s.required), (2, 3, 1, 3));
        assert!(!s.complete && s.keys.is_empty());
        let done: RekeyStatus = serde_json::from_value(json!({
            "complete": true, "nonce": "n1", "keys": ["aa11"], "keys_base64": ["qhE="],
            "backup": false, "verification_required": false
        }))
        .unwrap();
        assert!(done.complete);
        assert_eq!(done.keys_base64[0].expose_secret(), "qhE=");
        assert!(!format!("{done:?}").contains("aa11"));
    }
}

//! `sys/` helpers: init, seal and unseal, key rotation, policies, audit devices.

use std::collections::BTreeMap;

use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{data_of, top_or_data, Body, Client};
use crate::error::ClientError;
use crate::wire::sys::{
    GenerateRootStatus, InitRequest, InitResponse, InitStatus, KeyStatus, RekeyRequest,
    RekeyStatus, SealStatus, UnsealRequest,
};
use crate::wire::{ListData, PolicyData};

/// Path of ACL policies (what the vault CLI uses).
const POLICIES: &str = "sys/policies/acl";

/// One enabled audit device, as `GET sys/audit` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditDevice {
    /// Device type (`file`).
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub path: String,
    /// Options as given at enable time (`file_path`, ...).
    pub options: BTreeMap<String, String>,
    /// Head of the device's hash chain (a hushd extension): compare with the file's last line.
    pub hash_chain: Option<AuditChainHead>,
}

/// `hash_chain` of an audit device: sequence number and hash of the last line written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditChainHead {
    pub seq: u64,
    pub last_hash: String,
}

impl Client {
    /// `GET sys/init`.
    pub async fn init_status(&self) -> Result<bool, ClientError> {
        let body = self.call(Method::GET, "sys/init", &[], None).await?;
        Ok(top_or_data::<InitStatus>("sys/init", body)?.initialized)
    }

    /// `PUT sys/init`: the key shares and root token. Shown once; keep them safe.
    pub async fn init(&self, req: &InitRequest) -> Result<InitResponse, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| super::decode_error("sys/init", &e))?;
        let reply = self
            .call(Method::PUT, "sys/init", &[], Some(Body::Json(&body)))
            .await?;
        top_or_data("sys/init", reply)
    }

    /// `GET sys/seal-status` (no token needed).
    pub async fn seal_status(&self) -> Result<SealStatus, ClientError> {
        let body = self.call(Method::GET, "sys/seal-status", &[], None).await?;
        top_or_data("sys/seal-status", body)
    }

    /// `PUT sys/unseal` with one key share.
    pub async fn unseal(&self, key: SecretString) -> Result<SealStatus, ClientError> {
        self.unseal_request(&UnsealRequest {
            key: Some(key),
            ..Default::default()
        })
        .await
    }

    /// `PUT sys/unseal` with `reset`: forget the shares entered so far.
    pub async fn unseal_reset(&self) -> Result<SealStatus, ClientError> {
        self.unseal_request(&UnsealRequest {
            reset: true,
            ..Default::default()
        })
        .await
    }

    async fn unseal_request(&self, req: &UnsealRequest) -> Result<SealStatus, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| super::decode_error("sys/unseal", &e))?;
        let reply = self
            .call(Method::PUT, "sys/unseal", &[], Some(Body::Json(&body)))
            .await?;
        top_or_data("sys/unseal", reply)
    }

    /// `GET sys/generate-root/attempt` (no token needed).
    pub async fn generate_root_status(&self) -> Result<GenerateRootStatus, ClientError> {
        let path = "sys/generate-root/attempt";
        top_or_data(path, self.call(Method::GET, path, &[], None).await?)
    }

    /// `PUT sys/generate-root/attempt`: start, with the caller's OTP or (`None`) one the
    /// server makes and answers in `otp`.
    pub async fn generate_root_init(
        &self,
        otp: Option<&SecretString>,
    ) -> Result<GenerateRootStatus, ClientError> {
        use secrecy::ExposeSecret;
        let path = "sys/generate-root/attempt";
        let body = match otp {
            Some(otp) => json!({ "otp": otp.expose_secret() }),
            None => json!({}),
        };
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Json(&body)))
            .await?;
        top_or_data(path, reply)
    }

    /// `PUT sys/generate-root/update` with one unseal key share and the attempt's nonce.
    pub async fn generate_root_update(
        &self,
        key: &SecretString,
        nonce: &str,
    ) -> Result<GenerateRootStatus, ClientError> {
        use secrecy::ExposeSecret;
        let path = "sys/generate-root/update";
        let body = json!({ "key": key.expose_secret(), "nonce": nonce });
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Json(&body)))
            .await?;
        top_or_data(path, reply)
    }

    /// `DELETE sys/generate-root/attempt`: cancel the attempt.
    pub async fn generate_root_cancel(&self) -> Result<(), ClientError> {
        self.call(Method::DELETE, "sys/generate-root/attempt", &[], None)
            .await
            .map(drop)
    }

    /// `GET sys/rekey/init` (no token needed).
    pub async fn rekey_status(&self) -> Result<RekeyStatus, ClientError> {
        let path = "sys/rekey/init";
        top_or_data(path, self.call(Method::GET, path, &[], None).await?)
    }

    /// `PUT sys/rekey/init`: start a rekey of the unseal keys to `req`'s count and threshold.
    pub async fn rekey_init(&self, req: &RekeyRequest) -> Result<RekeyStatus, ClientError> {
        let path = "sys/rekey/init";
        let body = serde_json::to_value(req).map_err(|e| super::decode_error(path, &e))?;
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Json(&body)))
            .await?;
        top_or_data(path, reply)
    }

    /// `PUT sys/rekey/update` with one current unseal key share and the attempt's nonce; the
    /// answer holds the new keys once the threshold is reached.
    pub async fn rekey_update(
        &self,
        key: &SecretString,
        nonce: &str,
    ) -> Result<RekeyStatus, ClientError> {
        use secrecy::ExposeSecret;
        let path = "sys/rekey/update";
        let body = json!({ "key": key.expose_secret(), "nonce": nonce });
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Json(&body)))
            .await?;
        top_or_data(path, reply)
    }

    /// `GET sys/rekey/verify`: the verification of new keys in progress.
    pub async fn rekey_verify_status(&self) -> Result<RekeyStatus, ClientError> {
        let path = "sys/rekey/verify";
        top_or_data(path, self.call(Method::GET, path, &[], None).await?)
    }

    /// `PUT sys/rekey/verify` with one of the new key shares and the verification's nonce; the
    /// rekey takes effect once the new threshold is reached (`complete`).
    pub async fn rekey_verify(
        &self,
        key: &SecretString,
        nonce: &str,
    ) -> Result<RekeyStatus, ClientError> {
        use secrecy::ExposeSecret;
        let path = "sys/rekey/verify";
        let body = json!({ "key": key.expose_secret(), "nonce": nonce });
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Json(&body)))
            .await?;
        top_or_data(path, reply)
    }

    /// `DELETE sys/rekey/verify`: restart the verification (new nonce, no progress).
    pub async fn rekey_verify_restart(&self) -> Result<RekeyStatus, ClientError> {
        let path = "sys/rekey/verify";
        top_or_data(path, self.call(Method::DELETE, path, &[], None).await?)
    }

    /// `DELETE sys/rekey/init`: cancel the rekey in progress.
    pub async fn rekey_cancel(&self) -> Result<(), ClientError> {
        self.call(Method::DELETE, "sys/rekey/init", &[], None)
            .await
            .map(drop)
    }

    /// `PUT sys/seal`.
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.call(Method::PUT, "sys/seal", &[], None)
            .await
            .map(drop)
    }

    /// `PUT sys/rotate`: a new encryption key term.
    pub async fn rotate(&self) -> Result<(), ClientError> {
        self.call(Method::PUT, "sys/rotate", &[], None)
            .await
            .map(drop)
    }

    /// `GET sys/key-status`.
    pub async fn key_status(&self) -> Result<KeyStatus, ClientError> {
        let body = self.call(Method::GET, "sys/key-status", &[], None).await?;
        top_or_data("sys/key-status", body)
    }

    /// `PUT sys/policies/acl/NAME`.
    pub async fn policy_write(&self, name: &str, policy: &str) -> Result<(), ClientError> {
        self.write(&format!("{POLICIES}/{name}"), &json!({ "policy": policy }))
            .await
            .map(drop)
    }

    /// `GET sys/policies/acl/NAME`: the policy text, `None` if there is no such policy.
    pub async fn policy_read(&self, name: &str) -> Result<Option<String>, ClientError> {
        let path = format!("{POLICIES}/{name}");
        match self.read(&path).await? {
            None => Ok(None),
            some => Ok(Some(data_of::<PolicyData>(&path, some)?.policy)),
        }
    }

    /// `LIST sys/policies/acl`.
    pub async fn policy_list(&self) -> Result<Vec<String>, ClientError> {
        match self.list(POLICIES).await? {
            None => Ok(Vec::new()),
            some => Ok(data_of::<ListData>(POLICIES, some)?.keys),
        }
    }

    /// `DELETE sys/policies/acl/NAME`.
    pub async fn policy_delete(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("{POLICIES}/{name}")).await.map(drop)
    }

    /// `PUT sys/audit/PATH`: enable an audit device of type `kind` (`file`) with `options`
    /// (for `file`: `file_path`, ...).
    pub async fn audit_enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let body = json!({ "type": kind, "description": description, "options": options });
        self.write(&format!("sys/audit/{}", path.trim_matches('/')), &body)
            .await
            .map(drop)
    }

    /// `GET sys/audit`: the enabled devices by path (`file/`).
    pub async fn audit_list(&self) -> Result<BTreeMap<String, AuditDevice>, ClientError> {
        let body = self.call(Method::GET, "sys/audit", &[], None).await?;
        match body {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(mut top)) => {
                // Vault answers with the devices at the top level and again under `data`.
                let devices = match top.remove("data") {
                    Some(Value::Object(data)) => data,
                    _ => top,
                };
                devices
                    .into_iter()
                    .filter(|(_, v)| v.is_object() && v.get("type").is_some())
                    .map(|(k, v)| super::from_value("sys/audit", v).map(|d| (k, d)))
                    .collect()
            }
            Some(_) => Err(ClientError::Decode {
                path: "sys/audit".into(),
                reason: "want a JSON object".into(),
            }),
        }
    }

    /// `DELETE sys/audit/PATH`: disable an audit device (its file is kept).
    pub async fn audit_disable(&self, path: &str) -> Result<(), ClientError> {
        self.delete(&format!("sys/audit/{}", path.trim_matches('/')))
            .await
            .map(drop)
    }
}

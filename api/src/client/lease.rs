//! Lease helpers (`sys/leases/...`): what an agent holding dynamic secrets needs.

use serde_json::json;

use super::Client;
use crate::error::ClientError;

/// A lease's terms after a renewal (Vault's top-level `lease_id`, `lease_duration`,
/// `renewable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTerms {
    pub lease_id: String,
    /// Seconds granted from now.
    pub lease_duration: u64,
    pub renewable: bool,
}

impl Client {
    /// `PUT sys/leases/renew`: ask for `increment` more seconds from now (the store may grant
    /// less: the lease's max TTL caps it).
    pub async fn lease_renew(
        &self,
        lease_id: &str,
        increment: u64,
    ) -> Result<LeaseTerms, ClientError> {
        let path = "sys/leases/renew";
        let r = self
            .write(path, &json!({"lease_id": lease_id, "increment": increment}))
            .await?
            .ok_or_else(|| ClientError::Decode {
                path: path.to_string(),
                reason: "the renewal has no body".into(),
            })?;
        Ok(LeaseTerms {
            lease_id: r.lease_id,
            lease_duration: r.lease_duration,
            renewable: r.renewable,
        })
    }

    /// `PUT sys/leases/revoke`: end the lease now (the store drops the credential).
    pub async fn lease_revoke(&self, lease_id: &str) -> Result<(), ClientError> {
        self.write("sys/leases/revoke", &json!({ "lease_id": lease_id }))
            .await
            .map(|_| ())
    }
}

impl Client {
    /// `PUT sys/leases/lookup`: the lease's remaining TTL in seconds and whether it renews.
    pub async fn lease_lookup(&self, lease_id: &str) -> Result<(u64, bool), ClientError> {
        let path = "sys/leases/lookup";
        let r = self
            .write(path, &json!({ "lease_id": lease_id }))
            .await?
            .and_then(|r| r.data)
            .ok_or_else(|| ClientError::Decode {
                path: path.to_string(),
                reason: "the lookup has no data".into(),
            })?;
        let ttl = r
            .get("ttl")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let renewable = r
            .get("renewable")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok((ttl, renewable))
    }
}

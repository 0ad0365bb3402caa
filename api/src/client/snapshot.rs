//! `sys/storage/snapshot`: save (a streamed download), restore (a streamed upload) and the
//! server-side check of a manifest's authentication. These requests have no overall timeout
//! (a large snapshot takes as long as it takes); the connect timeout still applies.

use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{Client, RawReply};
use crate::error::{transport, ClientError};

/// How long one snapshot request may take at most.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl Client {
    fn snapshot_request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = self.url(path, &[])?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(SNAPSHOT_TIMEOUT)
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                ClientError::Build("the token holds characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        Ok(req)
    }

    /// An error reply as the API's error (its `errors`).
    async fn snapshot_error(resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        RawReply {
            status,
            body,
            non_json: None,
        }
        .into_error()
    }

    /// `GET sys/storage/snapshot`: the response, whose body is the snapshot (read it with
    /// `chunk()`), once the server accepted the request.
    pub async fn snapshot_save(&self) -> Result<reqwest::Response, ClientError> {
        let path = "sys/storage/snapshot";
        let url = self.url(path, &[])?;
        let resp = self
            .snapshot_request(Method::GET, path)?
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        if !resp.status().is_success() {
            return Err(Self::snapshot_error(resp).await);
        }
        Ok(resp)
    }

    /// `POST sys/storage/snapshot` (or `snapshot-force`) with `body`, `len` bytes.
    pub async fn snapshot_restore(
        &self,
        body: reqwest::Body,
        len: u64,
        force: bool,
    ) -> Result<(), ClientError> {
        let path = if force {
            "sys/storage/snapshot-force"
        } else {
            "sys/storage/snapshot"
        };
        let url = self.url(path, &[])?;
        let resp = self
            .snapshot_request(Method::POST, path)?
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        if !resp.status().is_success() {
            return Err(Self::snapshot_error(resp).await);
        }
        Ok(())
    }

    /// `POST sys/storage/snapshot/verify`: does the server's key authenticate this manifest?
    /// Answers `{"authentic": bool, "same_keys": bool, "entries": n}`.
    pub async fn snapshot_verify(&self, manifest: &[u8], mac: &[u8]) -> Result<Value, ClientError> {
        let body = json!({
            "manifest": base64::engine::general_purpose::STANDARD.encode(manifest),
            "mac": hex::encode(mac),
        });
        let resp = self.write("sys/storage/snapshot/verify", &body).await?;
        Ok(resp
            .and_then(|r| r.data)
            .map(Value::Object)
            .unwrap_or(Value::Null))
    }
}

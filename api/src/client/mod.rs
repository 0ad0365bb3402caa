//! The HTTP client for hushd (or any server speaking Vault's API).
//!
//! Generic calls ([`Client::read`], [`Client::write`], [`Client::list`], [`Client::delete`],
//! [`Client::patch`]) take the path after `/v1/`; typed helpers for `sys/`, KV v2, policies and
//! tokens live in the submodules. The token goes in `X-Vault-Token`, marked sensitive; it is
//! never part of `Debug` or of an error.

mod agents;
mod kv;
mod lease;
mod reports;
mod snapshot;
mod sys;
mod token;

pub use lease::LeaseTerms;
pub use sys::{AuditChainHead, AuditDevice};

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{transport, ClientError};
use crate::wire::{ErrorBody, VaultResponse};

/// Content type of `PATCH` requests (JSON merge patch, as Vault wants).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// Install ring as the process-wide rustls provider, once. Every Hush program calls this
/// (directly or through [`Client::new`]) so all of them use the same crypto stack.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already the default: keep that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A connection to one server, with an optional token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    /// Sent as `X-Vault-Wrap-TTL`: the server answers with `wrap_info` only.
    wrap_ttl: Option<String>,
    /// Each request's deadline (connect, send, and the whole reply), when shorter than the
    /// built-in 60 s.
    request_timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A reply of any status, before interpretation.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// The JSON body, if there was one that parsed.
    pub body: Option<Value>,
    /// A short excerpt of a body that was not JSON.
    pub non_json: Option<String>,
}

impl RawReply {
    fn errors(&self) -> Vec<String> {
        if let Some(body) = &self.body {
            if let Ok(e) = serde_json::from_value::<ErrorBody>(body.clone()) {
                return e.errors;
            }
        }
        self.non_json.iter().cloned().collect()
    }

    fn into_error(self) -> ClientError {
        ClientError::Api {
            status: self.status,
            errors: self.errors(),
        }
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A 404 that still carries `data` (a deleted KV version) counts as an answer.
    fn has_data(&self) -> bool {
        self.body
            .as_ref()
            .and_then(|b| b.get("data"))
            .is_some_and(|d| !d.is_null())
    }
}

/// A body to send.
#[derive(Debug, Clone)]
pub enum Body<'a> {
    Json(&'a Value),
    MergePatch(&'a Value),
    /// JSON already encoded (a body sent again on retry is encoded once, and shared).
    Encoded(bytes::Bytes),
}

/// Parse a server address: `http(s)://host[:port][/prefix]`.
fn parse_addr(addr: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::Address {
        addr: addr.to_string(),
        reason: reason.into(),
    };
    let url = Url::parse(addr.trim())
        .map_err(|e| bad(&format!("{e}; want a URL like https://127.0.0.1:8200")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(
            "the scheme must be http or https, e.g. https://127.0.0.1:8200",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("an address has no query or fragment"));
    }
    Ok(url)
}

/// A JSON decode error without the offending value (it could be a secret).
pub(crate) fn decode_error(path: &str, e: &serde_json::Error) -> ClientError {
    let msg = e.to_string();
    let reason = match msg.split_once(", expected") {
        Some((head, expected)) if head.starts_with("invalid") => {
            let kind = head.split(':').next().unwrap_or(head);
            format!("{kind}, expected{expected}")
        }
        _ => msg,
    };
    ClientError::Decode {
        path: path.to_string(),
        reason,
    }
}

pub(crate) fn from_value<T: DeserializeOwned>(path: &str, v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| decode_error(path, &e))
}

impl Client {
    /// A client for `addr` (e.g. `https://127.0.0.1:8200`). With `ca_cert`, only the PEM
    /// certificates in that file are trusted (as the vault CLI's `-ca-cert`); without it,
    /// the platform's roots.
    pub fn new(
        addr: &str,
        ca_cert: Option<&Path>,
        token: Option<SecretString>,
    ) -> Result<Client, ClientError> {
        install_crypto_provider();
        let base = parse_addr(addr)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hush/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaCertRead {
                path: path.into(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaCert {
                    path: path.into(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaCert {
                    path: path.into(),
                    reason: "no PEM certificate in the file".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client {
            http,
            base,
            token,
            wrap_ttl: None,
            request_timeout: None,
        })
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        self.base.as_str()
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn set_token(&mut self, token: Option<SecretString>) {
        self.token = token;
    }

    /// The same connection with another token.
    pub fn with_token(&self, token: Option<SecretString>) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token,
            wrap_ttl: self.wrap_ttl.clone(),
            request_timeout: self.request_timeout,
        }
    }

    /// The same client with every request (its reply read whole) cut after `timeout`: a
    /// server or network that stalls fails the request with a transport error instead of
    /// holding the caller for the built-in 60 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = Some(timeout);
        self
    }

    /// The same client asking for every answer wrapped for `ttl` (`X-Vault-Wrap-TTL`, e.g.
    /// `5m`): replies then carry `wrap_info` instead of their data.
    pub fn with_wrap_ttl(&self, ttl: Option<String>) -> Client {
        Client {
            wrap_ttl: ttl,
            ..self.with_token(self.token.clone())
        }
    }

    /// `BASE/v1/PATH`, each segment escaped; a trailing `/` is kept.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ClientError::Address {
                addr: self.base.to_string(),
                reason: "cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .push("v1")
            .extend(path.trim_start_matches('/').split('/'));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Send one request and return the reply whatever its status; only transport failures
    /// are errors.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> Result<RawReply, ClientError> {
        let url = self.url(path, query)?;
        let mut req = self
            .http
            .request(method, url.clone())
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                ClientError::Build("the token holds characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if let Some(ttl) = &self.wrap_ttl {
            req = req.header("X-Vault-Wrap-TTL", ttl.as_str());
        }
        if let Some(timeout) = self.request_timeout {
            req = req.timeout(timeout);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(v),
            Some(Body::Encoded(bytes)) => req.header(CONTENT_TYPE, "application/json").body(bytes),
            Some(Body::MergePatch(v)) => {
                let bytes = serde_json::to_vec(v).map_err(|e| decode_error(path, &e))?;
                req.header(CONTENT_TYPE, MERGE_PATCH).body(bytes)
            }
            None => req,
        };
        let resp = req.send().await.map_err(|e| transport(&url, &e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| transport(&url, &e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(RawReply {
                status,
                body: None,
                non_json: None,
            });
        }
        Ok(match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => RawReply {
                status,
                body: Some(body),
                non_json: None,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let excerpt: String = text.trim().chars().take(200).collect();
                RawReply {
                    status,
                    body: None,
                    non_json: Some(excerpt),
                }
            }
        })
    }

    /// A request whose non-2xx replies are errors; the body of a 2xx reply, if any.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> Result<Option<Value>, ClientError> {
        let reply = self.raw(method, path, query, body).await?;
        if !reply.is_success() {
            return Err(reply.into_error());
        }
        if reply.body.is_none() && reply.non_json.is_some() {
            return Err(ClientError::Decode {
                path: path.to_string(),
                reason: "the body is not JSON".into(),
            });
        }
        Ok(reply.body)
    }

    fn envelope(path: &str, body: Option<Value>) -> Result<Option<VaultResponse>, ClientError> {
        body.map(|b| from_value(path, b)).transpose()
    }

    /// A read-like request: 404 without data is `Ok(None)`, as in Vault's client.
    async fn read_like(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<VaultResponse>, ClientError> {
        let reply = self.raw(method, path, query, None).await?;
        if reply.status == 404 {
            if reply.has_data() {
                return Self::envelope(path, reply.body);
            }
            if reply.errors().is_empty() {
                return Ok(None);
            }
        }
        if !reply.is_success() {
            return Err(reply.into_error());
        }
        Self::envelope(path, reply.body)
    }

    /// `GET /v1/PATH`. `None` when nothing is there.
    pub async fn read(&self, path: &str) -> Result<Option<VaultResponse>, ClientError> {
        self.read_like(Method::GET, path, &[]).await
    }

    /// `GET /v1/PATH?query`.
    pub async fn read_with_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<VaultResponse>, ClientError> {
        self.read_like(Method::GET, path, query).await
    }

    /// `LIST /v1/PATH`. `None` when there is nothing below `path`.
    pub async fn list(&self, path: &str) -> Result<Option<VaultResponse>, ClientError> {
        let list = Method::from_bytes(b"LIST").expect("LIST is a valid method token");
        self.read_like(list, path, &[]).await
    }

    /// `PUT /v1/PATH` with a JSON body. `None` for 204.
    pub async fn write(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Option<VaultResponse>, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| decode_error(path, &e))?;
        self.write_encoded(path, body.into()).await
    }

    /// `PUT /v1/PATH` with a body already encoded as JSON. `None` for 204.
    pub async fn write_encoded(
        &self,
        path: &str,
        json: bytes::Bytes,
    ) -> Result<Option<VaultResponse>, ClientError> {
        let reply = self
            .call(Method::PUT, path, &[], Some(Body::Encoded(json)))
            .await?;
        Self::envelope(path, reply)
    }

    /// `DELETE /v1/PATH`.
    pub async fn delete(&self, path: &str) -> Result<Option<VaultResponse>, ClientError> {
        let reply = self.call(Method::DELETE, path, &[], None).await?;
        Self::envelope(path, reply)
    }

    /// `PATCH /v1/PATH` with a JSON merge patch.
    pub async fn patch(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Option<VaultResponse>, ClientError> {
        let body = serde_json::to_value(body).map_err(|e| decode_error(path, &e))?;
        let reply = self
            .call(Method::PATCH, path, &[], Some(Body::MergePatch(&body)))
            .await?;
        Self::envelope(path, reply)
    }
}

/// The `data` of a response as `T`; an error if there is none.
pub(crate) fn data_of<T: DeserializeOwned>(
    path: &str,
    resp: Option<VaultResponse>,
) -> Result<T, ClientError> {
    let data = resp
        .and_then(|r| r.data)
        .ok_or_else(|| ClientError::Decode {
            path: path.to_string(),
            reason: "the response has no data".into(),
        })?;
    from_value(path, Value::Object(data))
}

/// `sys/` endpoints answer with top-level fields, some also with `data`: take `data` when it
/// is an object, else the top level.
pub(crate) fn top_or_data<T: DeserializeOwned>(
    path: &str,
    body: Option<Value>,
) -> Result<T, ClientError> {
    let body = body.ok_or_else(|| ClientError::Decode {
        path: path.to_string(),
        reason: "the response is empty".into(),
    })?;
    match body.get("data") {
        Some(data @ Value::Object(_)) => from_value(path, data.clone()),
        _ => from_value(path, body),
    }
}

/// Tests that need no server. The client against a real hushd is in `tests/tests/api_client.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_addresses_and_ca_files_are_rejected() {
        for addr in [
            "127.0.0.1:8200",
            "ftp://h",
            "not a url",
            "http://h/?q=1",
            "http://",
        ] {
            let err = Client::new(addr, None, None).unwrap_err();
            assert!(matches!(err, ClientError::Address { .. }), "{addr}: {err}");
        }
        let err =
            Client::new("https://h", Some(Path::new("/nonexistent/ca.pem")), None).unwrap_err();
        assert!(matches!(err, ClientError::CaCertRead { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "no pem here").unwrap();
        let err = Client::new("https://h", Some(&empty), None).unwrap_err();
        assert!(matches!(err, ClientError::CaCert { .. }), "{err}");
        assert!(Client::new("https://h:8200/", None, None).is_ok());
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Client::new("https://h:8200", None, Some("hvs.sekret".into())).unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hvs.sekret") && dbg.contains("h:8200"),
            "{dbg}"
        );
        assert!(c.has_token());
        assert!(!c.with_token(None).has_token());
    }

    #[test]
    fn urls_keep_the_prefix_and_escape_segments() {
        let c = Client::new("http://h:1/prefix/", None, None).unwrap();
        let url = c.url("secret/data/a b", &[]).unwrap();
        assert_eq!(url.as_str(), "http://h:1/prefix/v1/secret/data/a%20b");
        let url = c.url("/secret/metadata/dir/", &[("version", "2")]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/v1/secret/metadata/dir/?version=2"
        );
        let c = Client::new("http://h:1", None, None).unwrap();
        assert_eq!(c.url("sys/health", &[]).unwrap().path(), "/v1/sys/health");
    }

    #[test]
    fn decode_errors_do_not_echo_values() {
        let e = serde_json::from_str::<u64>(r#""hunter2""#).unwrap_err();
        let err = decode_error("sys/key-status", &e);
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("sys/key-status"), "{err}");
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let reply = RawReply {
            status: 403,
            body: Some(serde_json::json!({"errors": ["permission denied"]})),
            non_json: None,
        };
        let err = reply.into_error();
        assert_eq!(err.status(), Some(403));
        assert_eq!(err.errors(), ["permission denied"]);
        let reply = RawReply {
            status: 502,
            body: None,
            non_json: Some("bad gateway".into()),
        };
        assert_eq!(reply.into_error().errors(), ["bad gateway"]);
    }
}

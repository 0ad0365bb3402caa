//! One signed POST to a webhook: the HTTP client (rustls, the webhook's `ca_pem` or the
//! system roots), the signature headers and what a failure says (never the URL, a header or
//! a body: a receiver's URL may itself be a credential).
//!
//! Headers of every request:
//! - `X-Hush-Delivery: ID`: the delivery id, the same on every retry (receivers dedup on it);
//! - `X-Hush-Timestamp: UNIX_SECONDS`: when this attempt was made;
//! - `X-Hush-Signature: sha256=HEX`: HMAC-SHA256, keyed with the webhook's secret, over the
//!   bytes `TIMESTAMP` `.` `BODY` (the timestamp header's text, a dot, the raw body).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_DELIVERY: &str = "X-Hush-Delivery";
pub const HEADER_TIMESTAMP: &str = "X-Hush-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Hush-Signature";

/// How long one queued delivery attempt may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one synchronous [`super::Webhooks::call`] may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a receiver's answer read (a `call`'s JSON answer).
const MAX_ANSWER: usize = 1024 * 1024;

/// Why a POST did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver answered with this status.
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// No answer: refused, DNS, timeout, TLS (the text says which).
    #[error("{0}")]
    Transport(String),
}

/// The HTTP client of one webhook: no redirects (a signed body goes to the configured URL
/// only); with `ca_pem`, only its certificates are trusted.
pub fn client(ca_pem: Option<&str>) -> Result<reqwest::Client, String> {
    hush_api::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("hushd/", env!("CARGO_PKG_VERSION"), " webhooks"))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem.filter(|p| !p.trim().is_empty()) {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|_| "ca_pem: not valid PEM".to_string())?;
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|_| "cannot build the webhook's HTTP client".to_string())
}

/// `sha256=HEX` of HMAC-SHA256(`secret`, `TIMESTAMP.BODY`).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST `body` (JSON) to `url`, signed with `secret` at `timestamp`; the answer's body
/// (at most [`MAX_ANSWER`] bytes) on a 2xx.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    delivery_id: &str,
    timestamp: i64,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, SendError> {
    let resp = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_DELIVERY, delivery_id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_SIGNATURE, sign(secret, timestamp, body))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| SendError::Transport(crate::tls::describe(&e)))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(SendError::Status(status));
    }
    let mut out = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SendError::Transport(crate::tls::describe(&e)))?
    {
        if out.len() + chunk.len() > MAX_ANSWER {
            return Err(SendError::Transport(format!(
                "the receiver's answer is over {MAX_ANSWER} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'key-0123456789abcdef'
        let sig = sign(b"key-0123456789abcdef", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=8a091117e0b1ccf5034d0d8c06ab42b29a4451a72f95b56f22afaf6bfb7af0d3"
        );
        assert_ne!(
            sig,
            sign(b"key-0123456789abcdef", 1_700_000_001, br#"{"a":1}"#)
        );
        assert_ne!(
            sig,
            sign(b"another-key-0123456", 1_700_000_000, br#"{"a":1}"#)
        );
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_without_the_url() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/hook-with-a-secret-token");
        let err = post(
            &client(None).unwrap(),
            &url,
            b"k",
            "id",
            1,
            b"{}",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, SendError::Transport("connection refused".into()));
    }
}

//! Sending the client's signed GetCallerIdentity request to STS.
//!
//! The request is rebuilt: `POST` to the mount's configured `sts_endpoint` (never to the URL
//! the client named), with the client's body, its `Authorization` header and the headers it
//! signed. `Host` is the one the client signed (its `Host` header, else its URL's host), so
//! a request signed for `sts.amazonaws.com` can be checked by an endpoint reached at another
//! address (a VPC endpoint, a proxy, a test server): the signature covers the Host, not the
//! address hushd connects to. Redirects are not followed, the answer is capped at
//! [`MAX_ANSWER`] and the call times out after [`TIMEOUT`].

use std::sync::OnceLock;
use std::time::Duration;

use super::iam::{error_code, parse_caller_identity, CallerIdentity, SignedRequest};
use crate::logical::LogicalError;

/// Where GetCallerIdentity goes when `sts_endpoint` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://sts.amazonaws.com";

/// Largest STS answer read.
pub const MAX_ANSWER: usize = 64 * 1024;

const TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> Result<&'static reqwest::Client, LogicalError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    hush_api::install_crypto_provider();
    let c = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| LogicalError::Internal("cannot build the STS HTTP client".into()))?;
    Ok(CLIENT.get_or_init(|| c))
}

fn upstream(what: impl std::fmt::Display) -> LogicalError {
    LogicalError::invalid(format!("error making upstream request: {what}"))
}

/// Ask STS who signed `req`. A refusal by STS (bad signature, expired credentials) is a
/// 400 naming STS's error code; an unreachable STS is a 500. Neither echoes a header.
pub async fn get_caller_identity(
    endpoint: &str,
    req: &SignedRequest,
) -> Result<CallerIdentity, LogicalError> {
    let endpoint = if endpoint.is_empty() {
        DEFAULT_ENDPOINT
    } else {
        endpoint
    };
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|_| LogicalError::Internal("sts_endpoint is not a URL".into()))?;
    if url.path().is_empty() {
        url.set_path("/");
    }
    let mut builder = client()?.post(url).body(req.body.clone());
    if let Some(host) = req.host() {
        builder = builder.header(reqwest::header::HOST, host);
    }
    for (name, value) in req.forward_headers() {
        builder = builder.header(name, value);
    }
    let mut resp = builder.send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "STS timed out"
        } else if e.is_connect() {
            "cannot connect to STS"
        } else if e.is_builder() {
            "a header of iam_request_headers is not valid HTTP"
        } else {
            "the request to STS failed"
        };
        if e.is_builder() {
            upstream(why)
        } else {
            LogicalError::Internal(format!("error making upstream request: {why}"))
        }
    })?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| upstream("reading the STS answer failed"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(upstream("the STS answer is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    if status != 200 {
        return Err(upstream(match error_code(&body) {
            Some(code) => format!("received error code {status} from STS ({code})"),
            None => format!("received error code {status} from STS"),
        }));
    }
    parse_caller_identity(&body).map_err(upstream)
}

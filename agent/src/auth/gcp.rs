//! The GCE identity token for `--auth gcp`: asked of the instance's metadata server at each
//! login (Google signs a fresh one, valid one hour, for the audience we name).
//!
//! `GET http://{host}/computeMetadata/v1/instance/service-accounts/default/identity
//! ?audience=http://vault/{role}&format=full` with `Metadata-Flavor: Google`. The metadata
//! server speaks plain HTTP on a link-local address that only the instance reaches; that is
//! how every GCE client gets its tokens. `format=full` adds the `google.compute_engine`
//! claims (project, zone, instance) a `gce` role checks. No proxy, no redirects, a 10 s
//! timeout and a size cap. The token lives in a zeroized buffer and is never logged.

use std::time::Duration;

use zeroize::Zeroizing;

use super::error::AuthError;

/// Largest identity token accepted (they are about 1 KiB).
const MAX_TOKEN: usize = 64 * 1024;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The metadata URL for `host` (no query: [`identity_token`] adds it).
pub fn identity_url(host: &str) -> String {
    format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/identity")
}

/// The audience hushd's `gcp` method wants for `role`.
pub fn audience(role: &str) -> String {
    format!("http://vault/{role}")
}

/// Fetch an identity token for `role` from the metadata server at `host`.
pub async fn identity_token(host: &str, role: &str) -> Result<Zeroizing<String>, AuthError> {
    let url = identity_url(host);
    let fail = |reason: String| AuthError::Metadata {
        url: url.clone(),
        reason,
    };
    // Plain HTTP, but reqwest still wants the process's rustls provider in place.
    hush_api::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|_| fail("cannot build the HTTP client".into()))?;
    let mut full = reqwest::Url::parse(&url).map_err(|_| fail("not a valid URL".into()))?;
    full.query_pairs_mut()
        .append_pair("audience", &audience(role))
        .append_pair("format", "full");
    let mut resp = http
        .get(full)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| {
            fail(if e.is_timeout() {
                "timed out".into()
            } else {
                "cannot connect".into()
            })
        })?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP status {}", resp.status().as_u16())));
    }
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| fail("body read failed".into()))?
    {
        if body.len() + chunk.len() > MAX_TOKEN {
            return Err(fail("the answer is too large for a token".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&body).map_err(|_| fail("the answer is not text".into()))?;
    let token = text.trim();
    if token.is_empty() || token.split('.').count() != 3 {
        return Err(fail("the answer is not a JWT".into()));
    }
    Ok(Zeroizing::new(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot metadata server answering `body` with `status`; returns its host and the
    /// request it saw.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (host, task)
    }

    #[tokio::test]
    async fn asks_with_the_audience_and_the_metadata_header() {
        let (host, seen) = serve_once("200 OK", "aaa.bbb.ccc\n").await;
        let t = identity_token(&host, "web").await.unwrap();
        assert_eq!(t.as_str(), "aaa.bbb.ccc");
        let req = seen.await.unwrap().to_lowercase();
        assert!(
            req.starts_with(
                "get /computemetadata/v1/instance/service-accounts/default/identity?audience=http%3a%2f%2fvault%2fweb&format=full "
            ),
            "{req}"
        );
        assert!(req.contains("metadata-flavor: google"), "{req}");
    }

    #[tokio::test]
    async fn refusals_and_non_tokens_are_errors_without_the_body() {
        let (host, _) = serve_once("404 Not Found", "no such account").await;
        let e = identity_token(&host, "web").await.unwrap_err().to_string();
        assert!(e.contains("HTTP status 404") && e.contains(&host), "{e}");
        let (host, _) = serve_once("200 OK", "secret-looking-garbage").await;
        let e = identity_token(&host, "web").await.unwrap_err().to_string();
        assert!(e.contains("not a JWT") && !e.contains("garbage"), "{e}");
        let e = identity_token("127.0.0.1:9", "web").await.unwrap_err();
        assert!(e.to_string().contains("cannot connect"), "{e}");
    }
}

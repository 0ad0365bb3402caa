//! Keys fetched from a JWKS URL, and OIDC discovery.
//!
//! [`RemoteKeySet`] fetches the JWKS over HTTPS (reqwest on rustls with ring; a configured CA
//! bundle replaces the system roots, as Vault's `jwks_ca_pem` / `oidc_discovery_ca_pem` do:
//! see [`super::tls`]).
//! Redirects are not followed, bodies are capped at [`MAX_BODY`], requests time out after
//! 10 s.
//!
//! Caching: the fetched set is kept for `max_age` (default 1 hour) and then refetched on the
//! next use. A token whose `kid` no configured key carries triggers a refetch (the issuer may
//! have rotated keys), but at most once per `min_refetch` (default 10 s) so that a stream of
//! tokens with made-up `kid`s cannot turn hushd into a request amplifier against the issuer.
//! Concurrent refetches are collapsed into one. If a refetch fails while older keys are
//! cached, the older keys keep serving (a warning is logged) rather than failing every login.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::Value;

pub use super::tls::http_client;
use super::{check_claims, parse, tls, verify_parsed, Claims, JwtError, KeySet, Validation};

/// Largest JWKS or discovery document accepted.
pub const MAX_BODY: usize = 1024 * 1024;

struct Cached {
    keys: Arc<KeySet>,
    fetched: Instant,
}

/// A JWKS URL with a cache of its keys.
pub struct RemoteKeySet {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    fetch_lock: tokio::sync::Mutex<()>,
    max_age: Duration,
    min_refetch: Duration,
}

impl std::fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeySet")
            .field("url", &self.url)
            .field("max_age", &self.max_age)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

fn check_https(url: &str) -> Result<(), JwtError> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Ok(()),
        _ => Err(JwtError::Key(format!("{url:?} is not an https URL"))),
    }
}

/// GET a JSON document, capped at [`MAX_BODY`].
async fn get_json(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, JwtError> {
    let fail = |what: &str| JwtError::Fetch(format!("{url}: {what}"));
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(&tls::describe(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(&format!("HTTP status {}", resp.status().as_u16())));
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(fail("document too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| fail("body read failed"))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(fail("document too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl KeySet {
    /// Fetch a JWKS once (no cache); see [`RemoteKeySet`] for the cached form.
    pub async fn from_jwks_url(url: &str, ca_pem: Option<&str>) -> Result<KeySet, JwtError> {
        check_https(url)?;
        let http = http_client(ca_pem)?;
        KeySet::from_jwks(&get_json(&http, url).await?)
    }
}

impl RemoteKeySet {
    /// A key set for `url` (https only), trusting `ca_pem` when given. Nothing is fetched yet.
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Self, JwtError> {
        check_https(url)?;
        Ok(RemoteKeySet {
            url: url.to_string(),
            http: http_client(ca_pem)?,
            cache: RwLock::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            max_age: Duration::from_secs(3600),
            min_refetch: Duration::from_secs(10),
        })
    }

    /// Change how long keys are kept and the least time between refetches.
    pub fn with_intervals(mut self, max_age: Duration, min_refetch: Duration) -> Self {
        self.max_age = max_age;
        self.min_refetch = min_refetch;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn cached(&self) -> Option<(Arc<KeySet>, Instant)> {
        self.cache
            .read()
            .as_ref()
            .map(|c| (c.keys.clone(), c.fetched))
    }

    /// The keys: cached while younger than `max_age`, else fetched.
    pub async fn keys(&self) -> Result<Arc<KeySet>, JwtError> {
        match self.cached() {
            Some((keys, at)) if at.elapsed() < self.max_age => Ok(keys),
            _ => self.refresh(self.max_age).await,
        }
    }

    /// Fetch again unless the last fetch is younger than `min_age` (so concurrent callers share
    /// one fetch).
    async fn refresh(&self, min_age: Duration) -> Result<Arc<KeySet>, JwtError> {
        let _guard = self.fetch_lock.lock().await;
        let stale = self.cached();
        if let Some((keys, at)) = &stale {
            // Another caller fetched while we waited, or the rate limit holds.
            if at.elapsed() < min_age {
                return Ok(keys.clone());
            }
        }
        let fetched = get_json(&self.http, &self.url)
            .await
            .and_then(|body| KeySet::from_jwks(&body));
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.cache.write() = Some(Cached {
                    keys: keys.clone(),
                    fetched: Instant::now(),
                });
                Ok(keys)
            }
            Err(e) => match stale {
                Some((keys, _)) => {
                    tracing::warn!(url = %self.url, error = %e, "JWKS refetch failed; keeping the cached keys");
                    // Do not retry on every request: count the failed attempt as a fetch.
                    *self.cache.write() = Some(Cached {
                        keys: keys.clone(),
                        fetched: Instant::now(),
                    });
                    Ok(keys)
                }
                None => Err(e),
            },
        }
    }

    /// Verify a token, refetching the JWKS once (rate-limited) if no key has its `kid`.
    pub async fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: u64,
    ) -> Result<Claims, JwtError> {
        // The algorithm is refused before any fetch happens.
        let parsed = parse(token, &validation.algorithms)?;
        let keys = self.keys().await?;
        let result = match verify_parsed(&parsed, &keys) {
            Err(JwtError::NoMatchingKey)
                if parsed.kid.as_deref().is_some_and(|k| !keys.has_kid(k)) =>
            {
                let keys = self.refresh(self.min_refetch).await?;
                verify_parsed(&parsed, &keys)
            }
            other => other,
        };
        result?;
        check_claims(&parsed.claims, validation, now)?;
        Ok(parsed.claims)
    }
}

/// What OIDC discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
}

/// OIDC discovery: fetch `<discovery_url>/.well-known/openid-configuration`, check that its
/// `issuer` is the discovery URL (OpenID Connect Discovery 1.0, section 4.3; a trailing `/`
/// is ignored on both), and return it with the `jwks_uri` (https only).
pub async fn discover(discovery_url: &str, ca_pem: Option<&str>) -> Result<Discovery, JwtError> {
    check_https(discovery_url)?;
    let base = discovery_url.trim_end_matches('/');
    let http = http_client(ca_pem)?;
    let url = format!("{base}/.well-known/openid-configuration");
    let body = get_json(&http, &url).await?;
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| JwtError::Fetch(format!("{url}: not JSON")))?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| JwtError::Fetch(format!("{url}: no {name:?}")))
    };
    let issuer = field("issuer")?;
    if issuer.trim_end_matches('/') != base {
        return Err(JwtError::Fetch(format!(
            "{url}: issuer {issuer:?} is not the discovery URL"
        )));
    }
    let jwks_uri = field("jwks_uri")?;
    check_https(&jwks_uri)?;
    Ok(Discovery { issuer, jwks_uri })
}

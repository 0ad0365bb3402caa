//! The WebSocket to `sys/events/subscribe/TYPES?json=true`: TCP, then (for `https://`) TLS
//! with rustls over ring (the agent's one crypto stack), trusting `--ca-cert` alone when given
//! (as the HTTP client does) or the system roots; the token in `X-Vault-Token`, marked sensitive.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

/// Longest wait for the TCP connection, TLS and the upgrade together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream the WebSocket runs over (plain TCP or TLS).
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) type Socket = WebSocketStream<Box<dyn Io>>;

/// Why no subscription was made.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    /// The store answered, without events for us: no such endpoint (an older store: 404, 405),
    /// not allowed (403), a request it does not take (400), or no WebSocket upgrade (a proxy).
    #[error("the store offers no events here (HTTP {status})")]
    Unavailable { status: u16 },
    /// Worth another try soon: unreachable, TLS, a 5xx, a broken upgrade.
    #[error("{0}")]
    Transient(String),
    /// The address or the CA file cannot be used (the HTTP client says the same).
    #[error("{0}")]
    Setup(String),
    /// A `307`/`308` to this URL (followed by [`open`]).
    #[error("redirected to {0}")]
    Redirect(String),
}

/// Where to connect, from the server address (`http(s)://host[:port][/prefix]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// A path prefix before `/v1`, without a trailing `/`.
    pub prefix: String,
}

impl Target {
    pub fn parse(addr: &str) -> Result<Target, ConnectError> {
        let bad = |why: &str| ConnectError::Setup(format!("server address {addr:?}: {why}"));
        let addr = addr.trim();
        let (tls, rest) = if let Some(r) = addr.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = addr.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("not http(s)://"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().map_err(|_| bad("bad port"))?),
                None => (host, default_port),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// The target of a redirect's `Location` (`http(s)://host:port[/prefix]/v1/...`): the
    /// prefix is what comes before `/v1/`. Only the `http(s)` scheme the agent was given
    /// matters for TLS: the same settings are used.
    pub fn from_location(location: &str) -> Result<Target, ConnectError> {
        let base = match location.find("/v1/") {
            Some(i) => &location[..i],
            None => {
                return Err(ConnectError::Transient(format!(
                    "the subscription was redirected to {location:?}, not an API address"
                )))
            }
        };
        Target::parse(base)
    }

    /// The subscription's URL.
    pub fn url(&self, event_types: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{host}:{}{}/v1/sys/events/subscribe/{event_types}?json=true",
            self.port, self.prefix
        )
    }
}

/// The TLS settings: only the certificates of `ca_cert` when given, else the system roots.
pub(super) fn tls_config(
    ca_cert: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let bad = |why: String| {
                ConnectError::Setup(format!("CA certificate {}: {why}", path.display()))
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system root rustls cannot parse is skipped, as the HTTP client does.
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The upgrade is an HTTP/1.1 request.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Most redirects followed for one subscription (an HA standby sends to the active node).
const MAX_REDIRECTS: usize = 3;

/// Open the subscription, following a store's `307`/`308` (an HA standby names the active node)
/// as the HTTP client does.
pub(super) async fn open(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    token: &SecretString,
    event_types: &str,
) -> Result<Socket, ConnectError> {
    let follow = async {
        let mut target = target.clone();
        for _ in 0..MAX_REDIRECTS {
            match open_inner(&target, tls, token, event_types).await {
                Err(ConnectError::Redirect(location)) => {
                    target = Target::from_location(&location)?;
                    tracing::debug!(host = %target.host, port = target.port, "subscription redirected");
                }
                other => return other,
            }
        }
        Err(ConnectError::Transient(format!(
            "more than {MAX_REDIRECTS} redirects for the subscription"
        )))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, follow).await {
        Ok(Err(ConnectError::Redirect(_))) => Err(ConnectError::Transient(
            "the subscription was redirected in a loop".into(),
        )),
        Ok(r) => r,
        Err(_) => Err(ConnectError::Transient(format!(
            "no subscription within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

async fn open_inner(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    token: &SecretString,
    event_types: &str,
) -> Result<Socket, ConnectError> {
    let transient = |what: &str, e: &dyn std::fmt::Display| {
        ConnectError::Transient(format!("{what} {}:{}: {e}", target.host, target.port))
    };
    let mut request = target
        .url(event_types)
        .into_client_request()
        .map_err(|e| ConnectError::Setup(e.to_string()))?;
    let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
        ConnectError::Setup("the token holds characters not allowed in a header".into())
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert("X-Vault-Token", value);
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| transient("cannot connect to", &e))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match (target.tls, tls) {
        (true, Some(config)) => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| ConnectError::Setup(format!("server name {}: {e}", target.host)))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| transient("TLS with", &e))?;
            Box::new(tls)
        }
        (true, None) => return Err(ConnectError::Setup("https without TLS settings".into())),
        (false, _) => Box::new(tcp),
    };
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(reply)) => {
            let status = reply.status().as_u16();
            if status == 307 || status == 308 {
                if let Some(location) = reply
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                {
                    return Err(ConnectError::Redirect(location.to_string()));
                }
            }
            if status == 429 || status >= 500 {
                Err(ConnectError::Transient(format!(
                    "the store answered HTTP {status} to the subscription"
                )))
            } else {
                Err(ConnectError::Unavailable { status })
            }
        }
        // A 200 (or another answer) without the upgrade: something in between does not pass
        // WebSockets on.
        Err(WsError::Protocol(e)) => {
            tracing::debug!(error = %e, "the subscription was not upgraded to a WebSocket");
            Err(ConnectError::Unavailable { status: 0 })
        }
        Err(e) => Err(transient("subscribing at", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_redirects() {
        let t =
            Target::from_location("https://10.0.0.6:8200/v1/sys/events/subscribe/kv*?json=true")
                .unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.prefix.as_str()),
            (true, "10.0.0.6", 8200, "")
        );
        let t = Target::from_location("http://h:1/vault/v1/sys/events/subscribe/x").unwrap();
        assert_eq!(t.prefix, "/vault");
        assert!(matches!(
            Target::from_location("http://h:1/elsewhere"),
            Err(ConnectError::Transient(_))
        ));
    }

    #[test]
    fn targets_from_addresses() {
        let t = Target::parse("https://127.0.0.1:8200").unwrap();
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "127.0.0.1".into(),
                port: 8200,
                prefix: String::new()
            }
        );
        assert_eq!(
            t.url("kv*"),
            "wss://127.0.0.1:8200/v1/sys/events/subscribe/kv*?json=true"
        );
        let t = Target::parse("http://[::1]:8200/vault/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8200, false));
        assert_eq!(
            t.url("*"),
            "ws://[::1]:8200/vault/v1/sys/events/subscribe/*?json=true"
        );
        assert_eq!(Target::parse("https://hushd").unwrap().port, 443);
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("https://:1").is_err());
        assert!(Target::parse("https://h:port").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let e = tls_config(Some(&path)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}

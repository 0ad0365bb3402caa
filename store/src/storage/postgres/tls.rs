//! TLS to PostgreSQL over rustls (the ring provider, as everywhere in hushd), shared by the
//! PostgreSQL storage backend and the database secrets engine, with libpq's `sslmode` meanings:
//!
//! - `require` / `prefer`: encrypted, the certificate not checked (libpq's behaviour without a
//!   root certificate). With `sslrootcert` given, `require` checks the chain as `verify-ca`.
//! - `verify-ca`: the chain must lead to `sslrootcert` (or the system roots); any host name.
//! - `verify-full`: the chain and the host name.

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use tokio_postgres::config::SslMode;

use crate::tls::{CertCheck, Verifier};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    None,
    Chain,
    Full,
}

/// The TLS options of a connection string, taken out of it (the client does not know
/// `verify-ca`, `verify-full` or `sslrootcert`): `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslParams {
    pub mode: Option<String>,
    pub root_cert: Option<String>,
}

impl SslParams {
    /// libpq's `sslmode` (`default` when unset) as the client's mode and how much of the
    /// server's certificate to check (`None`: no TLS).
    pub fn resolve(&self, default: &str) -> Result<(SslMode, Option<Verify>), String> {
        Ok(match self.mode.as_deref().unwrap_or(default) {
            "disable" => (SslMode::Disable, None),
            "allow" | "prefer" => (SslMode::Prefer, Some(Verify::None)),
            m @ ("require" | "verify-ca" | "verify-full") => (
                SslMode::Require,
                Some(match m {
                    "verify-full" => Verify::Full,
                    "verify-ca" => Verify::Chain,
                    _ if self.root_cert.is_some() => Verify::Chain,
                    _ => Verify::None,
                }),
            ),
            other => {
                return Err(format!(
                "invalid sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            ))
            }
        })
    }
}

/// Remove `sslmode` and `sslrootcert` from a URL's query or a key=value string; refuse
/// client-certificate options (not supported).
pub fn take_ssl_params(url: &str) -> Result<(String, SslParams), String> {
    let mut params = SslParams::default();
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => params.mode = Some(value.to_string()),
            "sslrootcert" => params.root_cert = Some(value.to_string()),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "option {key} is not supported: hushd logs in with a password"
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, params))
}

/// A `MakeTlsConnect` for `verify` (`None`: plain TCP), as deadpool's manager takes it.
pub fn manager(
    config: tokio_postgres::Config,
    verify: Option<Verify>,
    root_cert: Option<&str>,
    manager_config: deadpool_postgres::ManagerConfig,
) -> Result<deadpool_postgres::Manager, String> {
    Ok(match verify {
        None => {
            deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
        Some(v) => deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(client_config(v, root_cert)?),
            manager_config,
        ),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots: the PEM file `root_cert` when given, else the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read sslrootcert {path:?}: {e}"))?;
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: CertificateDer<'static> =
                    cert.map_err(|e| format!("bad certificate in sslrootcert {path:?}: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("bad certificate in sslrootcert {path:?}: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err("no root certificate to verify the database server with".into());
    }
    Ok(store)
}

/// A rustls client config for `verify`.
pub fn client_config(
    verify: Verify,
    root_cert: Option<&str>,
) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match verify {
        Verify::Full => builder
            .with_root_certificates(roots(root_cert)?)
            .with_no_client_auth(),
        Verify::Chain => {
            let inner = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Verifier::new(ChainOnly { inner }, &provider))
                .with_no_client_auth()
        }
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Verifier::new(Unverified, &provider))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `verify-ca`: the WebPKI checks less the host name.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl CertCheck for ChainOnly {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
}

/// `require`: any certificate, but the handshake signatures are still checked.
#[derive(Debug)]
struct Unverified;

impl CertCheck for Unverified {
    fn check(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_build_and_bad_roots_are_refused() {
        assert!(client_config(Verify::None, None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let path = path.to_str().unwrap();
        assert!(client_config(Verify::Full, Some(path)).is_ok());
        assert!(client_config(Verify::Chain, Some(path)).is_ok());
        let err = client_config(Verify::Full, Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(client_config(Verify::Full, empty.to_str()).is_err());
    }
}

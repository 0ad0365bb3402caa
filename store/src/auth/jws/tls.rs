//! The outbound HTTPS client of the auth methods (OIDC discovery, JWKS, Google's key documents,
//! Kubernetes TokenReview), and what a failed request tells the operator.
//!
//! Without a CA bundle the client trusts the system roots. With one (`jwks_ca_pem`,
//! `oidc_discovery_ca_pem`, `kubernetes_ca_cert`, `custom_endpoint_ca_pem`) it trusts those
//! certificates only, as Vault does, and like Vault (Go's `crypto/x509`, where a certificate
//! found in the root pool is a chain of its own) it also accepts a server whose certificate
//! *is* one of them byte for byte: a self-signed certificate with `basicConstraints CA:TRUE`,
//! which `openssl req -x509` makes by default, and which WebPKI alone refuses as a CA used as
//! an end entity. Such a pinned certificate must still be valid now and name the host, and the
//! handshake signature still proves the server holds its key.
//!
//! [`describe`] turns a reqwest error into what failed (refused, DNS, timeout, the TLS alert or
//! certificate problem) without the request body or headers, so bearer tokens never show.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, RootCertStore};

use super::JwtError;
use crate::tls::{CertCheck, Verifier};

const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTPS client trusting `ca_pem` only when given (non-blank), else the system roots.
/// No redirects, https only, a 10 s timeout.
pub fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, JwtError> {
    hush_api::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true);
    if let Some(pem) = ca_pem.filter(|p| !p.trim().is_empty()) {
        b = b.tls_backend_preconfigured(client_config(pem)?);
    }
    b.build()
        .map_err(|_| JwtError::Fetch("cannot build the HTTPS client".into()))
}

/// The certificates of a PEM bundle (other PEM sections are skipped); at least one.
fn parse_bundle(pem: &str) -> Result<Vec<CertificateDer<'static>>, JwtError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| JwtError::Key("CA bundle is not PEM certificates".into()))?;
    if certs.is_empty() {
        return Err(JwtError::Key("CA bundle holds no certificate".into()));
    }
    Ok(certs)
}

/// A rustls config trusting exactly the certificates of `pem` (as roots, or pinned).
fn client_config(pem: &str) -> Result<rustls::ClientConfig, JwtError> {
    let certs = parse_bundle(pem)?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            JwtError::Key(format!(
                "CA bundle: certificate {} is not usable: {e}",
                i + 1
            ))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| JwtError::Key(format!("CA bundle: {e}")))?;
    let verifier = Verifier::new(
        TrustedOrPinned {
            inner,
            pinned: certs,
        },
        &provider,
    );
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JwtError::Key(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// WebPKI against the given roots; failing that, the server's certificate may be one of them.
#[derive(Debug)]
struct TrustedOrPinned {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl CertCheck for TrustedOrPinned {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chained =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if chained.is_ok()
            || !self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return chained;
        }
        check_validity(end_entity, now)?;
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

/// A pinned certificate's validity period must hold `now`.
fn check_validity(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let v = &cert.tbs_certificate.validity;
    let now = Duration::from_secs(now.as_secs());
    if now < v.not_before.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > v.not_after.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

pub use crate::tls::describe;

//! rustls server-certificate verifiers that differ only in how they judge the certificate
//! (PostgreSQL's `sslmode`s, the auth methods' CA bundles with pinned certificates): each is a
//! [`CertCheck`] inside a [`Verifier`], which always checks the handshake signatures with the
//! provider's algorithms, as rustls's own WebPKI verifier does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How a server's certificate is judged ([`ServerCertVerifier::verify_server_cert`]).
pub trait CertCheck: std::fmt::Debug + Send + Sync {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error>;
}

/// A [`CertCheck`] with the handshake signatures checked by `provider`'s algorithms.
#[derive(Debug)]
pub struct Verifier<C> {
    check: C,
    algorithms: WebPkiSupportedAlgorithms,
}

impl<C: CertCheck + 'static> Verifier<C> {
    pub fn new(check: C, provider: &CryptoProvider) -> Arc<Verifier<C>> {
        Arc::new(Verifier {
            check,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl<C: CertCheck> ServerCertVerifier for Verifier<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check
            .check(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What failed in a request, for an error message: the TLS problem (an untrusted or expired
/// certificate, a name mismatch, an alert), a refused connection, a DNS failure, a timeout.
/// Built from the error's causes, which hold no request headers or body.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut deepest = None;
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return format!("TLS handshake failed: {}", tls_problem(tls));
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                return "connection refused".into();
            }
            // An io::Error's `source` skips the error it wraps: walk into that one.
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
        deepest = Some(err);
    }
    match deepest {
        Some(d) if e.is_connect() => format!("cannot connect: {d}"),
        _ if e.is_body() || e.is_decode() => "reading the response failed".into(),
        _ => "request failed".into(),
    }
}

/// A rustls error in words (its `Display` shows some certificate errors only as `Debug`).
fn tls_problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA (invalid peer certificate: \
             UnknownIssuer)"
                .into()
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
            if format!("{o:?}").contains("CaUsedAsEndEntity") =>
        {
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE) and is not \
             itself one of the trusted certificates (invalid peer certificate: CaUsedAsEndEntity)"
                .into()
        }
        other => other.to_string(),
    }
}

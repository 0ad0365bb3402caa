//! A real `hush-injector` under test: a CA made here ([`crate::https::make_ca`]), the webhook's
//! certificate for 127.0.0.1 signed by it, the binary spawned on free loopback ports with
//! `--tls-reload-interval-secs 1`, and clients that trust only that CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

use crate::process::{bin_or, free_port, Proc};

/// The recorded AdmissionReviews of `injector/tests/fixtures/reviews`, sorted by file name.
pub fn review_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../injector/tests/fixtures/reviews");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A certificate for 127.0.0.1 and localhost signed by `ca`: (cert PEM, key PEM, cert DER).
pub fn issue_cert(ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// A running hush-injector, stopped with SIGTERM on drop.
pub struct Injector {
    pub proc: Proc,
    /// The webhook's TLS port (`POST /mutate`).
    pub port: u16,
    /// The plain-HTTP port of `/healthz`, `/readyz`, `/metrics`.
    pub metrics_port: u16,
    /// A client trusting only the test CA.
    pub client: reqwest::Client,
    pub ca_pem: String,
    /// DER of the certificate the webhook was started with (or last given by
    /// [`Injector::rotate_cert`]).
    pub cert_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("proc", &self.proc)
            .field("port", &self.port)
            .field("metrics_port", &self.metrics_port)
            .finish_non_exhaustive()
    }
}

impl Injector {
    /// Start the workspace's hush-injector with `extra` flags and wait until `/readyz` is 200.
    pub async fn start(extra: &[&str]) -> Injector {
        Self::start_bin(None, extra).await.unwrap()
    }

    /// As [`Injector::start`], with the binary at `program` (a bench's `--injector`).
    pub async fn start_bin(program: Option<&Path>, extra: &[&str]) -> anyhow::Result<Injector> {
        crate::install_crypto();
        let program = bin_or(program, "hush-injector")?;
        let dir = tempfile::tempdir()?;
        let (ca, ca_key) = crate::https::make_ca("hush-injector test CA");
        let (cert_pem, key_pem, cert_der) = issue_cert(&ca, &ca_key);
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        std::fs::write(&cert_path, cert_pem)?;
        std::fs::write(&key_path, key_pem)?;
        let (port, metrics_port) = (free_port(), free_port());
        let mut command = Command::new(program);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path)
            .args(["--tls-reload-interval-secs", "1"])
            .args(["--agent-image", "hush-agent:test"])
            .args(["--hushd-addr", "https://hushd.hush.svc:8200"])
            .args(extra)
            .env_remove("RUST_LOG");
        let proc = Proc::spawn(command, "injector")?.stop_on_drop(Duration::from_secs(5));
        let ca_pem = ca.pem();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut injector = Injector {
            proc,
            port,
            metrics_port,
            client,
            ca_pem,
            cert_der,
            cert_path,
            key_path,
            ca,
            ca_key,
            _dir: dir,
        };
        injector.wait_ready().await?;
        Ok(injector)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if !self.proc.running() {
                anyhow::bail!("hush-injector exited: {}", self.proc.stderr());
            }
            if let Ok((200, _)) = crate::try_raw_request(
                self.metrics_port,
                "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("hush-injector not ready: {}", self.proc.stderr());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `https://127.0.0.1:PORT/PATH` of the webhook.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:PORT/PATH` of the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics_port)
    }

    /// `POST /mutate` with `body` as JSON: (status, JSON answer or Null).
    pub async fn mutate(&self, body: &[u8]) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/mutate"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("POST /mutate");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The metrics listener's `GET PATH`: (status, content type, body).
    pub async fn metrics_get(&self, path: &str) -> (u16, String, String) {
        let resp = crate::http_client()
            .get(self.metrics_url(path))
            .send()
            .await
            .expect("metrics GET");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ctype, resp.text().await.unwrap_or_default())
    }

    /// Write a new certificate and key signed by the same CA over the served files; returns
    /// the new certificate's DER (also kept in [`Injector::cert_der`]).
    pub fn rotate_cert(&mut self) -> Vec<u8> {
        let (cert, key, der) = issue_cert(&self.ca, &self.ca_key);
        std::fs::write(&self.key_path, key).unwrap();
        std::fs::write(&self.cert_path, cert).unwrap();
        self.cert_der = der.clone();
        der
    }

    /// A fresh TLS handshake with the webhook: the DER of the certificate it serves now.
    pub async fn served_cert(&self) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        for der in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }
}

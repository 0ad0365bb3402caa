//! A lean keep-alive HTTP/1.1 connection for load generators (`hush-bench`): one hyper
//! connection per client (plain, or TLS trusting one CA), no pool, no timeouts, no JSON
//! decoding of the answer, so the client costs as little CPU per request as it can and the
//! bench measures the server. Everything else talks to hushd through [`crate::Hushd`]
//! (reqwest). Also what every bench reports with: [`percentile`], [`machine`].

use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One HTTP/1.1 connection to hushd.
pub type Conn = http1::SendRequest<Full<Bytes>>;

/// Connect to hushd on loopback `port` (TCP_NODELAY).
pub async fn connect(port: u16) -> Result<Conn> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Connect over TLS to `127.0.0.1:port`, trusting only the PEM CA `ca_pem` (TCP_NODELAY,
/// HTTP/1.1 by ALPN).
pub async fn connect_tls(port: u16, ca_pem: &str) -> Result<Conn> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, stream)
        .await?;
    let (send, conn) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Send `req` on `conn` and read the whole answer: (status, body).
pub async fn send(conn: &mut Conn, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes)> {
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// The value below which a share `p` (0..=1) of `values` lies (nearest rank; 0 if empty).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n => v[((n - 1) as f64 * p).round() as usize],
    }
}

/// The machine a bench ran on: CPUs, CPU model, kernel, memory.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let model = field(&read("/proc/cpuinfo"), "model name").unwrap_or_else(|| "unknown".into());
    let mem_kb: u64 = field(&read("/proc/meminfo"), "MemTotal")
        .and_then(|v| v.trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    format!(
        "nproc {cpus}, CPU {model}, kernel {}, {:.1} GiB RAM",
        read("/proc/sys/kernel/osrelease").trim(),
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// `METHOD /v1/PATH` with `token` (none when empty) and an optional JSON body: (status, body).
pub async fn call(
    conn: &mut Conn,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Bytes)> {
    let body = body
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap()))
        .unwrap_or_default();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("/v1/{path}"))
        .header("host", "127.0.0.1");
    if !token.is_empty() {
        req = req.header("x-vault-token", token);
    }
    send(conn, req.body(Full::new(body))?).await
}

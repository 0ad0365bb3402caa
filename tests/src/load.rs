//! A lean keep-alive HTTP/1.1 connection for load generators (`hush-bench`): one hyper
//! connection per client, no pool, no timeouts, no JSON decoding of the answer, so the client
//! costs as little CPU per request as it can and the bench measures hushd. Everything else
//! talks to hushd through [`crate::Hushd`] (reqwest).

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

/// `METHOD /v1/PATH` with `token` (none when empty) and an optional JSON body: (status, body).
pub async fn call(
    conn: &mut Conn,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<(u16, Bytes)> {
    conn.ready().await?;
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
    let req = req.body(Full::new(body))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

//! A real webhook receiver for tests (hyper, HTTP/1.1, optionally TLS behind a CA made in the
//! test): records every request (path, headers, body), answers what the test sets (200, a
//! status, or a handler's answer), and can be taken down (listener and open connections
//! closed: connection refused) and brought back on the same port. Plus [`verify`], the
//! receiver-side check the README documents.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `X-Hush-Delivery`.
    pub fn delivery_id(&self) -> &str {
        self.header("x-hush-delivery")
    }
}

/// What the receiver answers a request with: (status, JSON body).
pub type Handler = Arc<dyn Fn(&Recorded) -> (u16, Value) + Send + Sync>;

struct Shared {
    seen: Mutex<Vec<Recorded>>,
    handler: Mutex<Handler>,
    conns: Mutex<Vec<JoinHandle<()>>>,
    notify: tokio::sync::Notify,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    /// The test CA's certificate (PEM) when started with TLS.
    pub ca_pem: Option<String>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn ok_handler() -> Handler {
    Arc::new(|_| (200, serde_json::json!({"ok": true})))
}

impl Receiver {
    /// Plain HTTP on a free loopback port, answering 200.
    pub async fn start() -> Receiver {
        Self::start_with(None).await
    }

    /// HTTPS with a certificate for 127.0.0.1 signed by a CA made here ([`Receiver::ca_pem`]).
    pub async fn start_tls() -> Receiver {
        crate::install_crypto();
        let (ca, key) = crate::https::make_ca("hush webhook test CA");
        let acceptor = crate::https::acceptor(&ca, &key);
        let mut r = Self::start_with(Some(acceptor)).await;
        r.ca_pem = Some(ca.pem());
        r
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            ca_pem: None,
            tls,
            shared: Arc::new(Shared {
                seen: Mutex::new(Vec::new()),
                handler: Mutex::new(ok_handler()),
                conns: Mutex::new(Vec::new()),
                notify: tokio::sync::Notify::new(),
            }),
            accept: Mutex::new(None),
        };
        r.serve(listener);
        r
    }

    /// `http://127.0.0.1:PORT/hook` (or https).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/hook", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let (shared, tls) = (self.shared.clone(), self.tls.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (shared2, tls) = (shared.clone(), tls.clone());
                let conn = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared2.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
                let mut conns = shared.conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(conn);
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    /// Answer every request with `status` (and `{}`) from now on.
    pub fn answer_status(&self, status: u16) {
        self.set_handler(Arc::new(move |_| (status, serde_json::json!({}))));
    }

    /// Answer 200 `{"ok": true}` again.
    pub fn answer_ok(&self) {
        self.set_handler(ok_handler());
    }

    /// Answer each request with what `handler` says.
    pub fn set_handler(&self, handler: Handler) {
        *self.shared.handler.lock().unwrap() = handler;
    }

    /// Close the listener and every open connection: connections are refused until
    /// [`Receiver::up`].
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
        for conn in self.shared.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Listen again on the same port.
    pub async fn up(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The distinct `X-Hush-Delivery` ids received so far.
    pub fn ids(&self) -> BTreeSet<String> {
        self.requests()
            .iter()
            .map(|r| r.delivery_id().to_string())
            .collect()
    }

    /// Wait until `pred` holds over the requests so far; panics after `limit`.
    pub async fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.notify.notified();
            let seen = self.requests();
            if pred(&seen) {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen = self.requests();
                if pred(&seen) {
                    return seen;
                }
                panic!(
                    "webhook receiver: {what} not seen within {limit:?}; got {} requests: {:?}",
                    seen.len(),
                    seen.iter().map(|r| r.json()).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Wait until `n` distinct delivery ids arrived.
    pub async fn wait_ids(&self, n: usize, limit: Duration) -> Vec<Recorded> {
        self.wait_until(limit, &format!("{n} distinct deliveries"), |seen| {
            seen.iter()
                .map(Recorded::delivery_id)
                .collect::<BTreeSet<_>>()
                .len()
                >= n
        })
        .await
    }
}

async fn answer(shared: &Shared, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let rec = Recorded {
        path,
        headers,
        body,
    };
    let handler = shared.handler.lock().unwrap().clone();
    let (status, json) = handler(&rec);
    shared.seen.lock().unwrap().push(rec);
    shared.notify.notify_waiters();
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap()
}

/// Why [`verify`] refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `X-Hush-Timestamp` is not a whole number of seconds.
    BadTimestamp,
    /// Older (or further ahead) than the tolerance: a replay.
    Stale,
    /// `X-Hush-Signature` is not `sha256=` and 64 hex digits.
    BadSignature,
    /// The HMAC does not match: forged, or another secret.
    Mismatch,
}

/// The receiver-side check, as the README documents it: the timestamp must be within
/// `tolerance` (5 minutes) of `now` (UNIX seconds); the signature must be `sha256=` + the hex
/// HMAC-SHA256, keyed with the webhook's secret, of the timestamp header's text, a `.`, and
/// the raw body; compared in constant time (`Mac::verify_slice`). Then deduplicate on
/// `X-Hush-Delivery`.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), Refused> {
    let ts: i64 = timestamp.parse().map_err(|_| Refused::BadTimestamp)?;
    if (now - ts).unsigned_abs() > tolerance.as_secs() {
        return Err(Refused::Stale);
    }
    let hex_sig = signature
        .strip_prefix("sha256=")
        .ok_or(Refused::BadSignature)?;
    let given = hex::decode(hex_sig).map_err(|_| Refused::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| Refused::Mismatch)
}

/// [`verify`] of a recorded request at `now`, with the 5-minute tolerance.
pub fn verify_recorded(secret: &[u8], r: &Recorded, now: i64) -> Result<(), Refused> {
    verify(
        secret,
        r.header("x-hush-timestamp"),
        r.header("x-hush-signature"),
        &r.body,
        now,
        Duration::from_secs(300),
    )
}

/// Now, in UNIX seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

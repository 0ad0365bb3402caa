//! The accept loop of the Hush servers (hushd's API, the injector's webhook): plain TCP or TLS
//! (e.g. with [`crate::tls::ReloadingCert`]), HTTP/1.1 and HTTP/2, ordered graceful shutdown
//! (stop accepting, drain connections with a deadline), and the limits that keep hostile
//! clients from holding connections and memory ([`ConnLimits`], in [`limits`]).

pub mod limits;

pub use limits::{body_stalled, raise_nofile_limit, BodyStalled, ConnLimits};

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The client's address, inserted by the accept loop into every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Log to stderr as text or JSON lines, filtered by `RUST_LOG` if set, else by `filter`
/// (e.g. `info`, `hush_store=debug`; an unusable filter falls back to `info`).
pub fn init_tracing(format: crate::LogFormat, filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Dependencies that would log secrets: never below their ceiling, whatever the filter says.
    for ceiling in crate::log_format::LOG_CEILINGS {
        filter = filter.add_directive(ceiling.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        crate::LogFormat::Json => builder.json().init(),
        crate::LogFormat::Text => builder.init(),
    }
}

/// A token cancelled at the first SIGTERM or SIGINT: when a server starts its graceful
/// shutdown. Call it inside the runtime.
pub fn cancel_on_signal() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// How long in-flight requests get to finish after shutdown is asked for.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` until `shutdown` is cancelled, with the default [`ConnLimits`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, tls, app, shutdown, ConnLimits::default()).await
}

/// Serve `app` on `listener` until `shutdown` is cancelled: a connection that sends no
/// complete request head within `limits.read_header_timeout` (a fresh one, silent or not, or
/// one kept alive after a request) is closed; a request body that stalls for `limits.read_timeout` ends in
/// [`BodyStalled`] (the app answers it, e.g. 408); a connection with no byte either way for
/// `limits.idle_timeout` is closed.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: CancellationToken,
    limits: ConnLimits,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let read_timeout = limits.read_timeout;
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(RemoteAddr(addr));
                app.clone().oneshot(req.map(|body| {
                    axum::body::Body::new(limits::StallTimeoutBody::new(body, read_timeout))
                }))
            });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_header_timeout);
        builder.http2().timer(TokioTimer::new());
        let stream =
            limits::IdleTimeoutIo::new(stream, limits.read_header_timeout, limits.idle_timeout);
        match &acceptor {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, client = %addr, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!("connections still open after the drain deadline; closing them");
        }
    }
    Ok(())
}

//! What a client may hold of a server: how long it may take to send a request head, how long
//! a request body may stall, how long a connection may sit without a byte either way, and how
//! many file descriptors the process may open for them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Per-connection limits of [`super::serve_with`]. Named after Vault's TCP listener options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// `http_read_header_timeout`: a request head must arrive whole within this long of the
    /// server starting to wait for it. hyper starts that wait when a connection opens and
    /// again after each response, so this also closes a kept-alive HTTP/1 connection that
    /// sends no next request.
    pub read_header_timeout: Duration,
    /// `http_read_timeout`: the longest a request body may go without a byte (Vault: the whole
    /// request; here between bytes, so a multi-GiB snapshot restore is not cut).
    pub read_timeout: Duration,
    /// `http_idle_timeout`: a connection with no byte read or written for this long is closed
    /// (an HTTP/2 connection without streams, an upgraded connection that went quiet).
    pub idle_timeout: Duration,
}

impl ConnLimits {
    /// Vault's defaults.
    pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            read_header_timeout: Self::DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The error a request body yields when it stalled longer than the read timeout; an app finds
/// it in the body error's `source()` chain (see [`body_stalled`]) to answer 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no byte arrived for {}s", .0.as_secs_f32())]
pub struct BodyStalled(pub Duration);

/// The stall when `err` (a body error, through any wrappers) is a [`BodyStalled`].
pub fn body_stalled(err: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(stalled) = e.downcast_ref::<BodyStalled>() {
            return Some(stalled.0);
        }
        cur = e.source();
    }
    None
}

/// A request body that fails with [`BodyStalled`] when no frame arrives for `stall`.
#[derive(Debug)]
pub struct StallTimeoutBody<B> {
    inner: B,
    stall: Duration,
    /// Armed the first time the body has nothing to give (a body read at once never arms it).
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> StallTimeoutBody<B> {
    pub fn new(inner: B, stall: Duration) -> Self {
        StallTimeoutBody {
            inner,
            stall,
            timer: None,
        }
    }
}

impl<B> Body for StallTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.stall);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(stall))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection that fails its reads with `TimedOut` when its first byte does not come within
/// `first_byte` (hyper's header timer only starts once the HTTP version is known, i.e. after a
/// byte), or later after `idle` without a byte read or written, so the server drops it.
#[derive(Debug)]
pub struct IdleTimeoutIo<T> {
    inner: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeoutIo<T> {
    pub fn new(inner: T, first_byte: Duration, idle: Duration) -> Self {
        IdleTimeoutIo {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(first_byte)),
        }
    }

    fn progressed(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle longer than http_idle_timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.progressed();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.progressed();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Raise this process's soft limit on open files to its hard limit (a server holding many
/// connections needs one descriptor each); returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // `None` is unlimited.
    let limit = getrlimit(Resource::Nofile);
    let below_hard = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body fed by a channel.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    async fn next_frame<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_stall_and_a_flowing_one_does_not() {
        let stall = Duration::from_millis(300);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = StallTimeoutBody::new(Fed(rx), stall);
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            // Then nothing, and the sender is kept.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        for _ in 0..5 {
            let got = next_frame(&mut body).await.unwrap().unwrap();
            assert_eq!(got.into_data().unwrap(), "x");
        }
        let started = Instant::now();
        let err = next_frame(&mut body).await.unwrap().unwrap_err();
        assert_eq!(body_stalled(&*err), Some(stall), "{err}");
        assert!(started.elapsed() >= stall, "{:?}", started.elapsed());
        sender.abort();
    }
}

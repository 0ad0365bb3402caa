//! A TCP proxy in front of hushd that a test turns hostile: pass bytes through, add latency to
//! the replies, drop a share of connections and chunks, accept and never answer, or answer half
//! a reply and then stall or close. The mode is read at every chunk, so a change reaches
//! connections already open (a client's kept-alive pool) as well as new ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes pass both ways.
    Pass,
    /// Every chunk of a reply waits this long before it is passed on.
    Latency(Duration),
    /// This percentage of new connections, and of chunks, end the connection (reset).
    Drop(u8),
    /// Connections are accepted, requests read and thrown away; nothing is answered.
    Blackhole,
    /// The first half of the next reply chunk is passed, then nothing more (the connection
    /// stays open).
    HalfThenStall,
    /// The first half of the next reply chunk is passed, then the connection is closed.
    HalfThenClose,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `127.0.0.1:upstream`, in [`Mode::Pass`].
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let shared = mode.clone();
        let task = tokio::spawn(async move {
            let mut rng = Rng::seeded();
            while let Ok((client, _)) = listener.accept().await {
                let mode = shared.clone();
                let rng = rng.fork();
                tokio::spawn(connection(client, upstream, mode, rng));
            }
        });
        Proxy { port, mode, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }
}

async fn connection(mut client: TcpStream, upstream: u16, mode: Arc<Mutex<Mode>>, mut rng: Rng) {
    let now = |m: &Arc<Mutex<Mode>>| *m.lock().unwrap();
    match now(&mode) {
        Mode::Drop(p) if rng.percent(p) => return,
        Mode::Blackhole => {
            // Read and forget until the client gives up.
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut c_rd, mut c_wr) = client.into_split();
    let (mut s_rd, mut s_wr) = server.into_split();
    let up_mode = mode.clone();
    let mut up_rng = rng.fork();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match c_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            match now(&up_mode) {
                Mode::Drop(p) if up_rng.percent(p) => return,
                // Requests vanish; the connection stays open.
                Mode::Blackhole => continue,
                _ => {}
            }
            if s_wr.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match s_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            match now(&mode) {
                Mode::Pass => {}
                Mode::Latency(d) => tokio::time::sleep(d).await,
                Mode::Drop(p) if rng.percent(p) => return,
                Mode::Drop(_) => {}
                Mode::Blackhole => continue,
                Mode::HalfThenStall | Mode::HalfThenClose => {
                    let half = n.div_ceil(2);
                    let _ = c_wr.write_all(&buf[..half]).await;
                    if now(&mode) == Mode::HalfThenStall {
                        std::future::pending::<()>().await;
                    }
                    return;
                }
            }
            if c_wr.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either direction ending ends the connection (both halves dropped: closed).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// xorshift64*: enough randomness to drop a share of chunks, no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Rng(t | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }

    /// True `p` times in a hundred.
    fn percent(&mut self, p: u8) -> bool {
        self.next() % 100 < u64::from(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_the_asked_share_is_dropped() {
        let mut rng = Rng::seeded();
        let hits = (0..10_000).filter(|_| rng.percent(30)).count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
    }
}

//! hush-bench-subscribers: hushd's memory per idle event subscriber, against the same number
//! of idle keep-alive HTTP connections, in the same run.
//!
//! For every count N (default 100 and 1000) and round, two fresh `hushd --dev` processes on
//! loopback, one per kind, each measured alone:
//!
//! - **subscribers**: N real WebSocket subscriptions to
//!   `sys/events/subscribe/kv-v2/*?json=true` (the root token, each its own connection and
//!   handshake, each read by its own task so pings are answered), idle: no event is written;
//! - **keep-alive floor**: N plain TCP connections, each having made one `GET /v1/sys/health`
//!   over HTTP/1.1 and left open (what any idle client connection costs hushd).
//!
//! hushd's `VmRSS` (`/proc/PID/status`) is read after a warm-up (one request of each kind,
//! closed) and a settle pause, then again with the N connections open and settled. That
//! they are open is checked on hushd's side: its open descriptors, and for subscribers
//! `hush_event_subscribers` from `sys/metrics`. Per round, the growth divided by N is the
//! cost of one connection; the table shows medians over rounds.
//!
//! Prints Markdown for `docs/BENCHMARKS.md` on stdout; progress goes to stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use hush_tests::load::{machine, percentile};
use hush_tests::{bin_or, http_client, Hushd};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// hushd's memory per idle event subscriber, against idle keep-alive connections.
#[derive(Debug, Parser)]
#[command(name = "hush-bench-subscribers", version, max_term_width = 100)]
struct Args {
    /// Connections held open, per measurement (comma-separated counts).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    counts: Vec<usize>,
    /// Rounds; each measures every count and kind once, in turn, on fresh hushd processes.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pause before each memory reading, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    settle_ms: u64,
    /// The event type subscribed to.
    #[arg(long, default_value = "kv-v2/*")]
    event_type: String,
    /// hushd binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    hushd: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subscribers,
    KeepAlive,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Subscribers => "WebSocket subscribers (kv-v2/*, idle)",
            Kind::KeepAlive => "keep-alive HTTP connections (floor)",
        }
    }
}

/// One measurement: hushd's RSS before and with the connections, and its descriptors.
#[derive(Debug, Clone, Copy)]
struct Sample {
    before_kib: u64,
    after_kib: u64,
    fds_before: usize,
    fds_after: usize,
}

/// An open connection the bench holds: a socket, or a subscription's reader task.
enum Held {
    Socket { _stream: TcpStream },
    Reader(JoinHandle<()>),
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The soft limit on open files of this process (hushd inherits it).
fn nofile_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn start_hushd(bin: &Path) -> Result<Hushd> {
    let args = ["--dev", "--dev-root-token", "root", "--log-level", "warn"];
    let mut hushd = Hushd::start_bin(bin, &args, "http", http_client()).await;
    hushd.token = Some("root".into());
    hushd.kv_put("bench/subscribers", json!({ "v": "1" })).await;
    Ok(hushd)
}

/// One WebSocket subscription, read by its own task until it closes.
async fn subscribe(hushd: &Hushd, event_type: &str) -> Result<Held> {
    let url = format!(
        "ws://127.0.0.1:{}/v1/sys/events/subscribe/{event_type}?json=true",
        hushd.port
    );
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("X-Vault-Token", "root".parse().expect("a header value"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .context("subscribe")?;
    if resp.status().as_u16() != 101 {
        bail!("subscribe: HTTP {}", resp.status());
    }
    // Reading answers hushd's pings; an idle subscription gets no other frame.
    Ok(Held::Reader(tokio::spawn(async move {
        while let Some(Ok(_)) = ws.next().await {}
    })))
}

/// One HTTP/1.1 keep-alive connection that made one request and stays open.
async fn keep_alive(hushd: &Hushd) -> Result<Held> {
    let mut s = TcpStream::connect(("127.0.0.1", hushd.port)).await?;
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("hushd closed the keep-alive connection");
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            if !head.starts_with("HTTP/1.1 200") {
                bail!("sys/health: {}", head.lines().next().unwrap_or_default());
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .context("sys/health: no content-length")?;
            if body.len() >= length {
                return Ok(Held::Socket { _stream: s });
            }
        }
    }
}

async fn open(hushd: &Hushd, kind: Kind, event_type: &str) -> Result<Held> {
    match kind {
        Kind::Subscribers => subscribe(hushd, event_type).await,
        Kind::KeepAlive => keep_alive(hushd).await,
    }
}

/// hushd's `hush_event_subscribers` gauge.
async fn subscribers_gauge(hushd: &Hushd) -> Result<u64> {
    let resp = hushd
        .client
        .get(format!(
            "{}/v1/sys/metrics?format=prometheus",
            hushd.addr.trim_end_matches('/')
        ))
        .header("X-Vault-Token", "root")
        .send()
        .await?
        .text()
        .await?;
    resp.lines()
        .find_map(|l| l.strip_prefix("hush_event_subscribers "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("no hush_event_subscribers in sys/metrics")
}

/// One measurement of `n` connections of `kind` on a fresh hushd.
async fn measure(bin: &Path, kind: Kind, n: usize, args: &Args) -> Result<Sample> {
    let settle = Duration::from_millis(args.settle_ms);
    let hushd = start_hushd(bin).await?;
    let pid = hushd.child.id();
    // Warm-up: one of each kind, closed, so code paths and pools first used by them are
    // not counted as the first connection's.
    for warm in [Kind::Subscribers, Kind::KeepAlive] {
        drop(open(&hushd, warm, &args.event_type).await?);
    }
    tokio::time::sleep(settle).await;
    let before_kib = status_kib(pid, "VmRSS")?;
    let fds_before = open_fds(pid)?;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(open(&hushd, kind, &args.event_type).await?);
    }
    tokio::time::sleep(settle).await;
    let after_kib = status_kib(pid, "VmRSS")?;
    let fds_after = open_fds(pid)?;
    if fds_after < fds_before + n {
        bail!(
            "{}: hushd holds {fds_after} descriptors, {fds_before} before: not all {n} \
             connections are open",
            kind.name()
        );
    }
    if kind == Kind::Subscribers {
        let gauge = subscribers_gauge(&hushd).await?;
        if gauge < n as u64 {
            bail!("hush_event_subscribers is {gauge}, want {n}");
        }
    }
    for h in held {
        if let Held::Reader(task) = h {
            task.abort();
        }
    }
    Ok(Sample {
        before_kib,
        after_kib,
        fds_before,
        fds_after,
    })
}

/// The median (the upper one of an even count).
fn median(v: Vec<f64>) -> f64 {
    percentile(&v, 0.5)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.counts.is_empty() || args.counts.contains(&0) {
        bail!("--rounds and every --counts must be at least 1");
    }
    let most = args.counts.iter().copied().max().unwrap_or(0) as u64;
    if let Some(limit) = nofile_limit() {
        if limit < most + 256 {
            bail!("the open-files limit is {limit}: raise it (ulimit -n) above {most} + 256");
        }
    }
    let bin = bin_or(args.hushd.as_deref(), "hushd")?;
    let kinds = [Kind::KeepAlive, Kind::Subscribers];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); args.counts.len() * kinds.len()];
    for round in 0..args.rounds {
        for (c, &n) in args.counts.iter().enumerate() {
            for (k, &kind) in kinds.iter().enumerate() {
                let s = measure(&bin, kind, n, &args).await?;
                eprintln!(
                    "round {round} {} x {n}: RSS {} -> {} KiB ({:+.2} KiB each), fds {} -> {}",
                    kind.name(),
                    s.before_kib,
                    s.after_kib,
                    (s.after_kib as f64 - s.before_kib as f64) / n as f64,
                    s.fds_before,
                    s.fds_after
                );
                samples[c * kinds.len() + k].push(s);
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}.", machine());
    let _ = writeln!(
        out,
        "{} rounds; each measurement on a fresh `hushd --dev`; medians over rounds. RSS is hushd's \
         VmRSS after a {} ms settle.\n",
        args.rounds, args.settle_ms
    );
    let _ = writeln!(
        out,
        "| connections | N | hushd RSS before | with N open | growth | per connection | hushd fds (before -> with) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut per: Vec<f64> = Vec::new();
    for (c, &n) in args.counts.iter().enumerate() {
        for (k, &kind) in kinds.iter().enumerate() {
            let s = &samples[c * kinds.len() + k];
            let med = |f: &dyn Fn(&Sample) -> f64| median(s.iter().map(f).collect());
            let before = med(&|s| s.before_kib as f64);
            let after = med(&|s| s.after_kib as f64);
            let each = med(&|s| (s.after_kib as f64 - s.before_kib as f64) / n as f64);
            per.push(each);
            let last = s.last().expect("one sample per round");
            let _ = writeln!(
                out,
                "| {} | {n} | {:.1} MiB | {:.1} MiB | {:+.1} MiB | **{each:.1} KiB** | {} -> {} |",
                kind.name(),
                before / 1024.0,
                after / 1024.0,
                (after - before) / 1024.0,
                last.fds_before,
                last.fds_after,
            );
        }
    }
    let _ = writeln!(out);
    for (c, &n) in args.counts.iter().enumerate() {
        let floor = per[c * kinds.len()];
        let subs = per[c * kinds.len() + 1];
        let _ = writeln!(
            out,
            "N = {n}: a subscriber costs hushd {subs:.1} KiB, an idle keep-alive connection \
             {floor:.1} KiB: the subscription itself **{:.1} KiB** ({:.2}x the floor).",
            subs - floor,
            subs / floor
        );
    }
    print!("{out}");
    Ok(())
}

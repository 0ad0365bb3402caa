//! hushd under abuse, over real sockets: 2,000 half-sent request heads and 2,000 stalled
//! bodies are cut within the listener's timeouts (the bodies with 408), twice, memory going back
//! after each round and bounded over two; 10,000 idle connections cost a bounded amount each while a
//! normal request is still served; beyond `max_in_flight_requests` hushd answers 503 with
//! `Retry-After` at once, every 2xx it gives is real, and `sys/health` and `sys/seal-status`
//! are served throughout. Numbers are printed (`--nocapture`) for docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use hush_tests::{http_client, Hushd};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A dev hushd (root token `root`) with `settings` in its config file, logging at info even
/// when the suite keeps trace logs (`HUSH_TEST_LOG_DIR`): a line per event of 2,000
/// connections would be what the memory and timing figures measure.
async fn hushd_with(settings: &str) -> (Hushd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hushd.toml");
    std::fs::write(&config, settings).unwrap();
    let mut h = Hushd::start(
        &[
            "--dev",
            "--dev-root-token",
            "root",
            "--config",
            config.to_str().unwrap(),
            "--log-level",
            "info",
        ],
        "http",
        http_client(),
    )
    .await;
    h.token = Some("root".into());
    (h, dir)
}

/// hushd's resident memory in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(h: &Hushd) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", h.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `n` connections to hushd, each having sent `prefix` (and nothing more).
async fn open_many(port: u16, n: usize, prefix: &'static [u8]) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connection {i} of {n}: {e}"));
        if !prefix.is_empty() {
            s.write_all(prefix).await.unwrap();
        }
        conns.push(s);
    }
    conns
}

/// Read every connection to its end (EOF or reset); returns what each received.
async fn read_all_to_end(conns: Vec<TcpStream>, limit: Duration) -> Vec<Vec<u8>> {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut out = Vec::new();
                let read = tokio::time::timeout(limit, async {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => out.extend_from_slice(&buf[..n]),
                        }
                    }
                })
                .await;
                assert!(read.is_ok(), "a connection was still open after {limit:?}");
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for t in tasks {
        all.push(t.await.unwrap());
    }
    all
}

/// hushd's RSS once it settles under light traffic (mimalloc returns freed pages when the
/// threads that own them allocate again); the lowest seen over 3 s.
async fn settled_rss(h: &Hushd) -> u64 {
    let mut low = rss_kib(h);
    for _ in 0..15 {
        for _ in 0..20 {
            kv_ok(h).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        low = low.min(rss_kib(h));
    }
    low
}

async fn kv_ok(h: &Hushd) {
    let (s, b) = h.call("GET", "secret/data/probe", None).await;
    assert_eq!(s, 200, "{b}");
}

/// What one round of abuse measured (RSS in KiB).
struct Round {
    peak: u64,
    after: u64,
}

/// 100 silent connections, 2,000 half-sent heads, 2,000 stalled bodies: each closed within the
/// 2 s timeouts (the bodies answered 408), nothing of them written.
async fn one_round(h: &Hushd, round: usize, start: u64) -> Round {
    // Connections that never send a byte are closed at the header timeout too.
    let silent = open_many(h.port, 100, b"").await;
    let t = Instant::now();
    drop(read_all_to_end(silent, Duration::from_secs(15)).await);
    let silent_closed = t.elapsed();
    assert!(
        silent_closed < Duration::from_secs(2 + 6),
        "silent connections closed after {silent_closed:?} (timeout 2s)"
    );

    // 2,000 request heads that never finish.
    let t = Instant::now();
    let heads = open_many(
        h.port,
        2000,
        b"GET /v1/sys/health HTTP/1.1\r\nHost: hushd\r\nX-Slow: ",
    )
    .await;
    let opened = t.elapsed();
    let during_heads = rss_kib(h);
    kv_ok(h).await;
    let t = Instant::now();
    let got = read_all_to_end(heads, Duration::from_secs(15)).await;
    let heads_closed = t.elapsed();
    assert_eq!(got.len(), 2000);
    assert!(
        heads_closed < Duration::from_secs(2 + 6),
        "half-sent heads closed after {heads_closed:?} (timeout 2s)"
    );

    // 2,000 request bodies that stall after a few bytes: each answered 408.
    let t = Instant::now();
    let bodies = open_many(
        h.port,
        2000,
        b"PUT /v1/secret/data/stalled HTTP/1.1\r\nHost: hushd\r\nX-Vault-Token: root\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\": {\"k\": \"",
    )
    .await;
    let opened_bodies = t.elapsed();
    let during_bodies = rss_kib(h);
    let t = Instant::now();
    let got = read_all_to_end(bodies, Duration::from_secs(20)).await;
    let bodies_closed = t.elapsed();
    for reply in &got {
        let text = String::from_utf8_lossy(reply);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "a stalled body got: {text:?}"
        );
        assert!(text.contains("\"errors\""), "{text}");
        assert!(text.contains("http_read_timeout"), "{text}");
    }
    assert!(
        bodies_closed < Duration::from_secs(2 + 8),
        "stalled bodies cut after {bodies_closed:?} (timeout 2s)"
    );
    // Nothing of them was written.
    let (s, _) = h.call("GET", "secret/data/stalled", None).await;
    assert_eq!(s, 404);
    kv_ok(h).await;

    let after = settled_rss(h).await;
    println!(
        "hostile_http slowloris round {round}: 100 silent connections closed in \
         {silent_closed:?}; RSS start {:.1} MiB; 2000 half-sent heads (opened in {opened:?}) \
         {:.1} MiB, all closed {heads_closed:?} after the last was opened; 2000 stalled bodies \
         (opened in {opened_bodies:?}) {:.1} MiB, all answered 408 and closed in \
         {bodies_closed:?}; RSS after {:.1} MiB",
        mib(start),
        mib(during_heads),
        mib(during_bodies),
        mib(after)
    );
    Round {
        peak: during_heads.max(during_bodies),
        after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_and_stalled_bodies_are_cut_and_memory_is_reused() {
    hush_api::server::raise_nofile_limit();
    let (h, _dir) = hushd_with(
        "http_read_header_timeout = \"2s\"\nhttp_read_timeout = \"2s\"\nmax_in_flight_requests = 4096\n",
    )
    .await;
    h.kv_put("probe", json!({"v": "1"})).await;
    // Warm up: the allocator's arenas and the runtime's threads exist before the baseline.
    for _ in 0..50 {
        kv_ok(&h).await;
    }
    let start = settled_rss(&h).await;
    let first = one_round(&h, 1, start).await;
    let second = one_round(&h, 2, first.after).await;
    // The connections are closed (one_round checked each within its timeout) and memory goes
    // back after each round: below what the round took at its peak. Run alone, the second round
    // reuses the first's memory (peak +0.1 MiB); beside the rest of the suite on 2 cores it took
    // about as much again (mimalloc's per-thread heaps; docs/BENCHMARKS.md "Hostile
    // connections"), so the bound is on growth, not equality: the second round's peak within
    // two rounds' growth of the start.
    for (n, round) in [(1, &first), (2, &second)] {
        assert!(
            round.after < round.peak,
            "RSS after round {n} {} >= its peak {}",
            round.after,
            round.peak
        );
    }
    let growth = first.peak.saturating_sub(start);
    assert!(
        second.peak <= start + 2 * growth + 8 * 1024,
        "RSS grew beyond two rounds: start {start}, peaks {} -> {} KiB, after {} -> {} KiB",
        first.peak,
        second.peak,
        first.after,
        second.after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_a_bounded_amount_each() {
    let limit = hush_api::server::raise_nofile_limit().unwrap_or(u64::MAX);
    let (h, _dir) = hushd_with("http_read_header_timeout = \"5m\"\n").await;
    h.kv_put("probe", json!({"v": "1"})).await;
    for _ in 0..50 {
        kv_ok(&h).await;
    }
    // hushd raised its own limit to the hard limit at start.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", h.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let n = 10_000usize.min(limit.saturating_sub(500) as usize);
    let start = settled_rss(&h).await;
    let t = Instant::now();
    let idle = open_many(h.port, n, b"").await;
    let opened = t.elapsed();
    // Every one was accepted: a request after them is served.
    let t = Instant::now();
    kv_ok(&h).await;
    let served_in = t.elapsed();
    let during = rss_kib(&h);
    let per_conn = (during.saturating_sub(start)) as f64 * 1024.0 / n as f64;
    println!(
        "hostile_http idle: {n} idle connections opened in {opened:?}; RSS {:.1} -> {:.1} MiB \
         ({:.1} KiB per connection); a request meanwhile served in {served_in:?}; {open_files}",
        mib(start),
        mib(during),
        per_conn / 1024.0
    );
    assert!(
        per_conn < 64.0 * 1024.0,
        "{per_conn} bytes per idle connection"
    );
    assert!(served_in < Duration::from_secs(5), "{served_in:?}");
    drop(idle);
}

/// A PUT whose head is sent and whose body never comes: it holds one request in flight.
async fn hold_in_flight(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"PUT /v1/secret/data/held HTTP/1.1\r\nHost: hushd\r\nX-Vault-Token: root\r\n\
          Content-Length: 50\r\n\r\n{",
    )
    .await
    .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_in_flight_ceiling_503_with_retry_after_and_health_still_served() {
    let (h, _dir) = hushd_with("max_in_flight_requests = 8\nhttp_read_timeout = \"10s\"\n").await;
    h.kv_put("probe", json!({"v": "1"})).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(hold_in_flight(h.port).await);
    }
    // The eight reach the handler (and take the permits) without a byte of body.
    let url = |p: &str| format!("{}/v1/{p}", h.addr);
    // On a loaded machine the eight may take a while to reach the handler: probe for up to 5 s
    // (well inside the 10 s body timeout that would free their permits).
    let mut refused = None;
    for _ in 0..250 {
        let r = h
            .client
            .get(url("secret/data/probe"))
            .header("X-Vault-Token", "root")
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = refused.expect("no 503 while 8 of 8 requests were in flight");
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("max_in_flight_requests"),
        "{body}"
    );
    for always in ["sys/health", "sys/seal-status"] {
        let r = h.client.get(url(always)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{always} while overloaded");
    }

    // A burst of writes while 6 of the 8 are held: some are refused, each refusal says when to
    // retry, and each acknowledged write is really there.
    let t = Instant::now();
    for reply in read_all_to_end(held.drain(..2).collect(), Duration::from_secs(20)).await {
        assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408"));
    }
    let freed_after = t.elapsed();
    let writes: Vec<_> = (0..200)
        .map(|i| {
            let client = h.client.clone();
            let url = url(&format!("secret/data/burst/{i}"));
            tokio::spawn(async move {
                let r = client
                    .put(url)
                    .header("X-Vault-Token", "root")
                    .json(&json!({"data": {"i": i}}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = r.headers().get("retry-after").cloned();
                (i, r.status().as_u16(), retry_after)
            })
        })
        .collect();
    let (mut ok, mut shed) = (Vec::new(), 0);
    for w in writes {
        let (i, status, retry_after) = w.await.unwrap();
        match status {
            200 | 204 => ok.push(i),
            503 => {
                assert_eq!(retry_after.unwrap(), "1");
                shed += 1;
            }
            other => panic!("write {i}: {other}"),
        }
    }
    for i in &ok {
        let (s, b) = h.call("GET", &format!("secret/data/burst/{i}"), None).await;
        assert_eq!(s, 200, "acknowledged write {i} is missing: {b}");
        assert_eq!(b["data"]["data"]["i"], *i);
    }
    println!(
        "hostile_http overload: limit 8, 2 freed by 408 after {freed_after:?}; a burst of 200 \
         writes: {} acknowledged (all read back), {shed} refused with 503 + Retry-After",
        ok.len()
    );
    assert!(!ok.is_empty(), "no write got through 2 free slots");
    // The held ones are cut by the read timeout and the ceiling frees up.
    drop(read_all_to_end(held, Duration::from_secs(10)).await);
    kv_ok(&h).await;
}

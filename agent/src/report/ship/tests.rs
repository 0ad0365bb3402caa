//! The shipper against an HTTP server made here (plain TCP, one request per connection): how
//! batches are formed, that a batch is retried unchanged until a 2xx, and what 403, 404 and
//! 400 do.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_api::wire::agents::{AgentIdentity, AgentState, Report};
use hush_api::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Sent, Settings, Shipper};
use crate::auth::TokenSource;
use crate::report::Board;
use crate::telemetry::spool::tests::ev;
use crate::telemetry::spool::Spool;
use crate::telemetry::Metrics;

/// What the server saw: (method, path, token, body).
type Seen = Arc<Mutex<Vec<(String, String, String, Report)>>>;

/// Answers each request with the next scripted status (then 200).
async fn server(script: Vec<u16>) -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            while buf.len() < head_end + len {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let mut first = head.split_whitespace();
            let (method, path) = (
                first.next().unwrap_or_default().to_owned(),
                first.next().unwrap_or_default().to_owned(),
            );
            let report: Report = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
            let status = script.lock().unwrap().pop_front().unwrap_or(200);
            let body = if status == 200 {
                serde_json::json!({"data": {"batch_id": report.batch_id, "stored": true,
                    "accesses": report.accesses.len()}})
            } else {
                serde_json::json!({"errors": [format!("scripted {status}")]})
            }
            .to_string();
            s.lock()
                .unwrap()
                .push((method, path, header("x-vault-token"), report));
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    (addr, seen)
}

struct Fixture {
    _dir: tempfile::TempDir,
    token_path: std::path::PathBuf,
    tokens: Arc<TokenSource>,
    spool: Arc<Spool>,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
}

fn fixture(memory: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "hvs.first\n").unwrap();
    let metrics = Arc::new(Metrics::new());
    Fixture {
        tokens: Arc::new(TokenSource::open(&token_path).unwrap()),
        token_path,
        _dir: dir,
        spool: Arc::new(Spool::new(memory, None, 1000, metrics.report_spool_handles()).unwrap()),
        board: Arc::new(Board::default()),
        metrics,
    }
}

fn shipper(f: &Fixture, addr: std::net::SocketAddr) -> Shipper {
    Shipper::new(
        Settings {
            interval: Duration::from_secs(3600),
            retry_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            flush: Duration::from_secs(2),
        },
        Client::new(&format!("http://{addr}"), None, None).unwrap(),
        f.tokens.clone(),
        f.spool.clone(),
        f.board.clone(),
        f.metrics.clone(),
        AgentIdentity {
            id: "node1:/run/secrets".into(),
            host: "node1".into(),
            destination: "/run/secrets".into(),
            ..AgentIdentity::default()
        },
    )
}

#[tokio::test]
async fn batches_of_at_most_1000_in_order_with_the_state_first() {
    let (addr, seen) = server(vec![]).await;
    let f = fixture(5000);
    f.spool.push((0..2500).map(ev));
    f.board.post(AgentState {
        errors: vec!["x".into()],
        ..AgentState::default()
    });
    let mut s = shipper(&f, addr);
    s.flush().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "1000 + 1000 + 500");
    let sizes: Vec<usize> = seen.iter().map(|r| r.3.accesses.len()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let pids: Vec<u32> = seen
        .iter()
        .flat_map(|r| r.3.accesses.iter().map(|a| a.pid))
        .collect();
    assert_eq!(pids, (0..2500).collect::<Vec<_>>(), "each once, in order");
    let (method, path, token, first) = &seen[0];
    assert_eq!(
        (method.as_str(), path.as_str(), token.as_str()),
        ("PUT", "/v1/sys/agents/report", "hvs.first")
    );
    let state = first
        .state
        .as_ref()
        .expect("the owed state rides the first batch");
    assert_eq!(state.errors, ["x"]);
    assert!(seen[1].3.state.is_none() && seen[2].3.state.is_none());
    assert_eq!(first.agent.id, "node1:/run/secrets");
    let ids: std::collections::BTreeSet<&str> =
        seen.iter().map(|r| r.3.batch_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "a new id per batch");
    assert!(f.spool.is_empty() && s.pending().is_none());
    assert!(f
        .metrics
        .encode()
        .contains("hush_report_batches_total{outcome=\"ok\"} 3"));
}

#[tokio::test]
async fn a_batch_is_retried_unchanged_until_acknowledged_with_the_current_token() {
    let (addr, seen) = server(vec![503, 429]).await;
    let f = fixture(100);
    f.spool.push((1..=3).map(ev));
    let mut s = shipper(&f, addr);
    assert!(s.form(false));
    assert!(matches!(s.send().await, Sent::Retry(_)));
    // Events that come meanwhile wait for the next batch.
    f.spool.push([ev(4)]);
    // A re-login (or a rotated token file) between two tries: the next try uses it.
    std::fs::write(&f.token_path, "hvs.second\n").unwrap();
    f.tokens.reload().unwrap();
    assert!(matches!(s.send().await, Sent::Retry(_)));
    assert_eq!(s.send().await, Sent::Ok);
    assert!(s.form(false));
    assert_eq!(s.send().await, Sent::Ok);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    for r in &seen[1..3] {
        assert_eq!(r.3, seen[0].3, "the same batch, id and all");
    }
    assert_eq!(seen[0].2, "hvs.first");
    assert_eq!(seen[1].2, "hvs.second");
    let pids: Vec<u32> = seen[0].3.accesses.iter().map(|a| a.pid).collect();
    assert_eq!(pids, [1, 2, 3]);
    assert_ne!(seen[3].3.batch_id, seen[0].3.batch_id);
    assert_eq!(seen[3].3.accesses[0].pid, 4);
    let m = f.metrics.encode();
    assert!(
        m.contains("hush_report_batches_total{outcome=\"retry\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn forbidden_keeps_the_batch_unsupported_pauses_bad_request_counts_drops() {
    let (addr, seen) = server(vec![403, 404, 405, 400]).await;
    let f = fixture(2);
    f.spool.push((1..=3).map(ev)); // one over the bound
    let mut s = shipper(&f, addr);
    assert!(s.form(false));
    assert_eq!(
        s.pending().unwrap().dropped_total,
        1,
        "overflow is reported"
    );
    assert_eq!(s.send().await, Sent::Forbidden);
    assert!(s.pending().is_some(), "a 403 keeps the batch");
    assert_eq!(s.send().await, Sent::Unsupported);
    assert_eq!(s.send().await, Sent::Unsupported);
    assert!(s.pending().is_some());
    match s.send().await {
        Sent::Rejected(msg) => assert!(msg.contains("scripted 400"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(s.pending().is_none());
    assert_eq!(f.spool.dropped_total(), 3, "1 overflowed + 2 refused");
    // Nothing to send, and no state yet: the loop waits (the board's first post wakes it)
    // instead of spinning.
    assert!(!s.form(false));
    assert!(s.next_state > tokio::time::Instant::now() + Duration::from_secs(60));
    // A batch with nothing in it is not sent.
    assert!(!s.form(false) || s.pending().unwrap().state.is_none());
    assert_eq!(seen.lock().unwrap().len(), 4);
    let m = f.metrics.encode();
    for (outcome, n) in [("forbidden", 1), ("unsupported", 2), ("rejected", 1)] {
        assert!(
            m.contains(&format!(
                "hush_report_batches_total{{outcome=\"{outcome}\"}} {n}"
            )),
            "{m}"
        );
    }
    assert!(m.contains("hush_report_dropped_total 3"), "{m}");
    // No token in what the metrics say.
    assert!(!m.contains("hvs."));
}

#[tokio::test]
async fn the_task_ships_on_a_state_change_and_flushes_at_cancel() {
    let (addr, seen) = server(vec![]).await;
    let f = fixture(100);
    let s = shipper(&f, addr);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(s.run(cancel.clone()));
    f.board.post(AgentState::default());
    // The first state goes at once, though the interval is an hour.
    for _ in 0..200 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap()[0].3.state.is_some());
    f.spool.push((1..=2).map(ev));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "flushed at cancel");
    assert_eq!(seen[1].3.accesses.len(), 2);
}

//! The shipper: one task that sends `PUT sys/agents/report` batches to hushd.
//!
//! Every `interval` (sooner when a full batch of accesses waits, or when the keeper's state
//! changed) it forms a batch: up to [`MAX_ACCESSES_PER_REPORT`] accesses from the spool and,
//! when owed (on start, on a change, at least every interval), the state. A formed batch is
//! sent again, unchanged (same `batch_id`), until hushd answers 2xx: unreachable, 5xx and 429
//! wait with the agent's backoff while new events wait in the spool. A 404/405 (a hushd
//! without the endpoint) is warned about once and probed again every [`PROBE_EVERY`]; a 403
//! is warned about once (the token is never named) and retried, since the token may change.
//! Any other 4xx means hushd will never take this batch: it is logged, and its accesses are
//! counted as dropped. At shutdown what is waiting is sent within [`Settings::flush`].
//!
//! The token is read from the token source at every send: it changes at each login.

use std::sync::Arc;
use std::time::Duration;

use hush_api::process_stats::ProcessStats;
use hush_api::wire::agents::{AgentIdentity, Report, MAX_ACCESSES_PER_REPORT};
use hush_api::{Client, ClientError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Board;
use crate::auth::TokenSource;
use crate::retry::backoff::Backoff;
use crate::telemetry::spool::Spool;
use crate::telemetry::Metrics;

/// The report endpoint.
pub const PATH: &str = "sys/agents/report";
/// How often a hushd without the endpoint is asked again.
pub const PROBE_EVERY: Duration = Duration::from_secs(180);

/// How the shipper runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub retry_base: Duration,
    pub backoff_max: Duration,
    /// Longest time spent sending what waits at shutdown.
    pub flush: Duration,
}

/// What hushd made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// 2xx: stored (or already stored: a retry).
    Ok,
    /// Unreachable, 5xx, 429, sealed: the same batch again later.
    Retry(String),
    /// 403: the token may not report.
    Forbidden,
    /// 404/405: this hushd has no `sys/agents/report`.
    Unsupported,
    /// Another 4xx: hushd will not take this batch.
    Rejected(String),
}

impl Sent {
    /// The `outcome` label of `hush_report_batches_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Sent::Ok => "ok",
            Sent::Retry(_) => "retry",
            Sent::Forbidden => "forbidden",
            Sent::Unsupported => "unsupported",
            Sent::Rejected(_) => "rejected",
        }
    }
}

/// The shipper's state between batches.
pub struct Shipper {
    settings: Settings,
    base: Client,
    tokens: Arc<TokenSource>,
    spool: Arc<Spool>,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    agent: AgentIdentity,
    started: Instant,
    process: ProcessStats,
    cpu_seconds: f64,
    /// The batch formed and not yet acknowledged, and its JSON (encoded once, sent again
    /// as is on every retry).
    pending: Option<(Report, bytes::Bytes)>,
    next_state: Instant,
    warned_forbidden: bool,
    paused: bool,
    /// The last refusal logged (the same one is not logged at every interval).
    last_rejected: Option<String>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("agent", &self.agent.id)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl Shipper {
    pub fn new(
        settings: Settings,
        base: Client,
        tokens: Arc<TokenSource>,
        spool: Arc<Spool>,
        board: Arc<Board>,
        metrics: Arc<Metrics>,
        agent: AgentIdentity,
    ) -> Shipper {
        Shipper {
            settings,
            base,
            tokens,
            spool,
            board,
            metrics,
            agent,
            started: Instant::now(),
            process: ProcessStats::new(),
            cpu_seconds: 0.0,
            pending: None,
            next_state: Instant::now(),
            warned_forbidden: false,
            paused: false,
            last_rejected: None,
        }
    }

    /// Forms the next batch unless one is pending: waiting accesses, and the state when it
    /// changed or is due (`force_state`: due now). `false`: nothing to send.
    pub fn form(&mut self, force_state: bool) -> bool {
        if self.pending.is_some() {
            return true;
        }
        let now = Instant::now();
        let state_due = force_state || self.board.owed() || now >= self.next_state;
        let mut state = if state_due { self.board.take().0 } else { None };
        if state_due && state.is_none() {
            // No state yet (before the first cycle): the board's first post wakes the loop;
            // until then the interval.
            self.next_state = now + self.settings.interval;
        }
        let accesses = self.spool.take(MAX_ACCESSES_PER_REPORT);
        if accesses.is_empty() && state.is_none() {
            return false;
        }
        if let Some(s) = state.as_mut() {
            if let Some((rss, cpu)) = self.process.refresh() {
                self.cpu_seconds += cpu;
                s.rss_bytes = rss;
            }
            s.cpu_seconds = self.cpu_seconds;
            s.uptime_seconds = self.started.elapsed().as_secs();
            self.next_state = now + self.settings.interval;
        }
        let report = Report {
            batch_id: uuid::Uuid::new_v4().to_string(),
            agent: self.agent.clone(),
            accesses,
            dropped_total: self.spool.dropped_total(),
            state,
        };
        // Plain data (strings and numbers): encoding cannot fail.
        let json = serde_json::to_vec(&report).unwrap_or_default().into();
        self.pending = Some((report, json));
        true
    }

    /// Sends the pending batch once; forgets it when hushd acknowledged (or refused it for
    /// good).
    pub async fn send(&mut self) -> Sent {
        let Some((report, json)) = &self.pending else {
            return Sent::Ok;
        };
        let client = self.base.with_token(Some(self.tokens.token()));
        let sent = match client.agents_report_encoded(json.clone()).await {
            // A 2xx whose body this client does not read is still an acknowledgement.
            Ok(_) | Err(ClientError::Decode { .. }) => Sent::Ok,
            Err(ClientError::Api { status, errors }) => {
                let e = ClientError::Api { status, errors }.to_string();
                match status {
                    403 => Sent::Forbidden,
                    404 | 405 => Sent::Unsupported,
                    408 | 412 | 429 | 500..=599 => Sent::Retry(e),
                    _ => Sent::Rejected(e),
                }
            }
            Err(e) => Sent::Retry(e.to_string()),
        };
        self.metrics.report_batch(sent.label());
        let accesses = report.accesses.len();
        match &sent {
            Sent::Ok => {
                tracing::debug!(accesses, "report acknowledged");
                self.pending = None;
                if self.paused {
                    tracing::info!("hushd takes agent reports again");
                }
                self.paused = false;
                self.warned_forbidden = false;
            }
            Sent::Rejected(reason) => {
                if self.last_rejected.as_ref() != Some(reason) {
                    tracing::error!(error = %reason, accesses, "hushd refused a report batch; its accesses are counted as dropped");
                    self.last_rejected = Some(reason.clone());
                }
                self.spool.count_lost(accesses as u64);
                self.pending = None;
            }
            Sent::Forbidden => {
                if !self.warned_forbidden {
                    tracing::warn!(
                        path = PATH,
                        "hushd refused the agent's report (403): the token's policy must allow update on sys/agents/report (the default policy does); events keep waiting in the spool"
                    );
                    self.warned_forbidden = true;
                }
            }
            Sent::Unsupported => {
                if !self.paused {
                    tracing::warn!(
                        path = PATH,
                        probe_every_s = PROBE_EVERY.as_secs(),
                        "hushd has no agent reports (an older hushd?): reports paused, asked again every few minutes"
                    );
                    self.paused = true;
                }
            }
            Sent::Retry(reason) => {
                tracing::debug!(error = %reason, "report not delivered; retrying the same batch");
            }
        }
        sent
    }

    /// Ship until `cancel`, then flush (bounded).
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::new(self.settings.retry_base, self.settings.backoff_max);
        let mut wait = Duration::ZERO;
        let (spool, board) = (self.spool.clone(), self.board.clone());
        loop {
            let idle = self.pending.is_none() && !self.paused;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = spool.full_batch(), if idle => {}
                _ = board.changed(), if idle => {}
                _ = tokio::time::sleep(wait) => {}
            }
            if !self.form(false) {
                wait = self
                    .next_state
                    .saturating_duration_since(Instant::now())
                    .min(self.settings.interval);
                continue;
            }
            wait = match self.send().await {
                Sent::Ok | Sent::Rejected(_) => {
                    backoff.reset();
                    if self.spool.len() >= MAX_ACCESSES_PER_REPORT {
                        Duration::ZERO
                    } else {
                        self.settings.interval
                    }
                }
                Sent::Unsupported => PROBE_EVERY,
                Sent::Retry(_) | Sent::Forbidden => backoff.next_delay(),
            };
        }
        self.flush().await;
    }

    /// Sends what waits (the pending batch, then the spool), within [`Settings::flush`];
    /// stops at the first batch hushd does not take.
    pub async fn flush(&mut self) {
        if self.paused {
            return;
        }
        let limit = self.settings.flush;
        let flush = async {
            while self.form(false) {
                if self.send().await != Sent::Ok {
                    break;
                }
            }
        };
        if tokio::time::timeout(limit, flush).await.is_err() {
            tracing::warn!(
                waiting =
                    self.spool.len() + self.pending.as_ref().map_or(0, |(p, _)| p.accesses.len()),
                "could not ship every access event before exiting"
            );
        }
    }

    /// The batch formed and not yet acknowledged.
    pub fn pending(&self) -> Option<&Report> {
        self.pending.as_ref().map(|(report, _)| report)
    }
}

#[cfg(test)]
mod tests;

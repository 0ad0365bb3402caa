//! What the agent tells systemd (`Type=notify`), through [`hush_api::sd_notify`]:
//!
//! - `READY=1` once, after the first complete render (the moment `/readyz` turns 200);
//! - `STATUS=` after each cycle: the generation on disk, the last refresh, the last problem
//!   (naming a secret or file, never a value);
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, when the watchdog is on for this process;
//! - `RELOADING=1` with `MONOTONIC_USEC=` when a `SIGHUP` reload starts, `READY=1` when it is
//!   applied (or refused);
//! - `STOPPING=1` at shutdown.
//!
//! Without `NOTIFY_SOCKET` every call does nothing. A failed send is logged at debug level and
//! never stops the agent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hush_api::sd_notify::SdNotify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The agent's side of the protocol; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Systemd {
    inner: Option<Arc<SdNotify>>,
}

/// What a `STATUS=` line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The generation of the set on disk, once one was written.
    pub generation: Option<u64>,
    /// When the last cycle ended.
    pub refreshed: Option<SystemTime>,
    /// The first problem of the last cycle (a secret or a file, never a value).
    pub error: Option<String>,
    /// Every file rendered once.
    pub ready: bool,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ready {
            match self.generation {
                Some(g) => write!(f, "generation {g}")?,
                None => f.write_str("files in place")?,
            }
        } else {
            f.write_str("waiting for the first complete render")?;
        }
        if let Some(t) = self.refreshed {
            let t: chrono::DateTime<chrono::Utc> = t.into();
            write!(f, "; refreshed {}", t.format("%Y-%m-%dT%H:%M:%SZ"))?;
        }
        match &self.error {
            Some(e) => write!(f, "; last error: {e}"),
            None => f.write_str("; no errors"),
        }
    }
}

impl Systemd {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`; a bad `NOTIFY_SOCKET` is logged
    /// and ignored.
    pub fn from_env() -> Systemd {
        match SdNotify::from_env() {
            Ok(inner) => {
                if let Some(n) = &inner {
                    tracing::info!(
                        watchdog_ms = n.watchdog_timeout().map(|d| d.as_millis() as u64),
                        "telling systemd about readiness (NOTIFY_SOCKET)"
                    );
                }
                Systemd {
                    inner: inner.map(Arc::new),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "not telling systemd anything");
                Systemd::default()
            }
        }
    }

    /// Whether anything is sent.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    fn send(&self, lines: &[&str]) {
        if let Some(n) = &self.inner {
            if let Err(e) = n.send(lines) {
                tracing::debug!(error = %e, "could not send to NOTIFY_SOCKET");
            }
        }
    }

    /// `READY=1` with the status.
    pub fn ready(&self, status: &Status) {
        if self.enabled() {
            self.send(&["READY=1", &format!("STATUS={status}")]);
        }
    }

    /// A `STATUS=` line.
    pub fn status(&self, status: &Status) {
        if self.enabled() {
            self.send(&[&format!("STATUS={status}")]);
        }
    }

    /// `RELOADING=1` with the monotonic clock, as `Type=notify-reload` wants.
    pub fn reloading(&self) {
        if self.enabled() {
            let now = monotonic_usec();
            self.send(&[
                "RELOADING=1",
                &format!("MONOTONIC_USEC={now}"),
                "STATUS=reloading the config",
            ]);
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&["STOPPING=1", "STATUS=stopping"]);
    }

    /// Send `WATCHDOG=1` every half `WATCHDOG_USEC` until `cancel`; `None` when the watchdog
    /// is off.
    pub fn watchdog(&self, cancel: CancellationToken) -> Option<JoinHandle<()>> {
        let every = self.inner.as_ref()?.watchdog_every()?;
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => me.send(&["WATCHDOG=1"]),
                }
            }
        }))
    }
}

/// CLOCK_MONOTONIC in microseconds (0 if it cannot be read, which Linux never does).
fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs * 1_000_000 + nanos / 1_000
        }
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let mut s = Status::default();
        assert_eq!(
            s.to_string(),
            "waiting for the first complete render; no errors"
        );
        s.error = Some("secret \"db\": not found".into());
        s.refreshed = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400));
        assert_eq!(
            s.to_string(),
            "waiting for the first complete render; refreshed 1970-01-02T00:00:00Z; last error: secret \"db\": not found"
        );
        s.ready = true;
        s.generation = Some(3);
        s.error = None;
        assert_eq!(
            s.to_string(),
            "generation 3; refreshed 1970-01-02T00:00:00Z; no errors"
        );
    }

    #[test]
    fn the_monotonic_clock_moves() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}

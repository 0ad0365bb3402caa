//! Progress of long transfers (snapshots): a bar redrawn in place when stderr is a terminal,
//! one JSON line per second otherwise (for logs and scripts), both on stderr so stdout keeps
//! the command's answer. No crate: the workspace has none, and this is all that is needed.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a terminal bar is redrawn.
const TTY_EVERY: Duration = Duration::from_millis(100);
/// How often a JSON line is written.
const JSON_EVERY: Duration = Duration::from_secs(1);
const BAR_WIDTH: usize = 30;

/// One phase of work measured in `unit`s (`bytes` or `entries`).
#[derive(Debug)]
pub struct Progress {
    phase: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(phase: &'static str, unit: &'static str, total: Option<u64>) -> Progress {
        Progress {
            phase,
            unit,
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    /// `n` more units done.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        let every = if self.tty { TTY_EVERY } else { JSON_EVERY };
        if self.last.is_none_or(|t| t.elapsed() >= every) {
            self.last = Some(Instant::now());
            self.draw(false);
        }
    }

    /// The last report, and a newline after a bar.
    pub fn finish(&mut self) {
        self.draw(true);
    }

    fn amount(&self, n: u64) -> String {
        if self.unit == "bytes" {
            format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
        } else {
            format!("{n} {}", self.unit)
        }
    }

    fn draw(&self, done: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        if !self.tty {
            let line = serde_json::json!({
                "phase": self.phase,
                "unit": self.unit,
                "done": self.done,
                "total": self.total,
                "per_second": rate.round() as u64,
                "finished": done,
            });
            let _ = writeln!(err, "{line}");
            return;
        }
        let rate_text = if self.unit == "bytes" {
            format!("{:.1} MiB/s", rate / (1024.0 * 1024.0))
        } else {
            format!("{rate:.0}/s")
        };
        let text = match self.total.filter(|t| *t > 0) {
            Some(total) => {
                let frac = (self.done as f64 / total as f64).min(1.0);
                let filled = (frac * BAR_WIDTH as f64) as usize;
                format!(
                    "{:<8} [{}{}] {:>3}% {} of {}, {rate_text}",
                    self.phase,
                    "#".repeat(filled),
                    "-".repeat(BAR_WIDTH - filled),
                    (frac * 100.0) as u32,
                    self.amount(self.done),
                    self.amount(total),
                )
            }
            None => format!("{:<8} {}, {rate_text}", self.phase, self.amount(self.done)),
        };
        let _ = write!(err, "\r\x1b[2K{text}");
        if done {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

//! Progress of `hushd migrate`: a counter redrawn in place on a terminal, JSON lines
//! otherwise (one a second at most, and one at the end of each phase). Both on stderr, so
//! stdout holds only the summary.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

/// What the migration is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the source and writing the destination.
    Copy,
    /// Reading the destination back.
    Verify,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::Verify => "verify",
        }
    }
}

/// Where progress goes.
pub trait Progress: Send {
    /// `entries` (and `bytes`) done of `total` entries so far in `phase`.
    fn report(&mut self, phase: Phase, entries: u64, bytes: u64, total: u64);
    /// `phase` is over.
    fn finish_phase(&mut self, phase: Phase, entries: u64, bytes: u64, total: u64);
    /// The migration verified.
    fn done(&mut self, summary: &Summary);
}

/// What a finished migration copied and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    /// Keys and values, in bytes.
    pub bytes: u64,
    /// [`EntryHash`] of every entry, in hex.
    pub sha256: String,
    pub elapsed: Duration,
}

impl Summary {
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How often progress is shown.
const TERMINAL_EVERY: Duration = Duration::from_millis(100);
const JSON_EVERY: Duration = Duration::from_secs(1);

/// Progress on stderr: a counter when stderr is a terminal, JSON lines when not.
#[derive(Debug)]
pub struct StderrProgress {
    terminal: bool,
    started: Instant,
    last: Option<Instant>,
}

impl StderrProgress {
    /// A counter if stderr is a terminal, JSON lines otherwise.
    pub fn detect() -> StderrProgress {
        use std::io::IsTerminal;
        Self::new(std::io::stderr().is_terminal())
    }

    pub fn new(terminal: bool) -> StderrProgress {
        StderrProgress {
            terminal,
            started: Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, phase: Phase, entries: u64, bytes: u64, total: u64, end: bool) {
        let now = Instant::now();
        let every = if self.terminal {
            TERMINAL_EVERY
        } else {
            JSON_EVERY
        };
        if !end && self.last.is_some_and(|l| now - l < every) {
            return;
        }
        self.last = Some(now);
        let secs = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let pct = if total == 0 {
                100.0
            } else {
                (entries as f64 * 100.0 / total as f64).min(100.0)
            };
            let _ = write!(
                err,
                "\r{:<6} {entries:>10}/{total} entries {pct:5.1}% {:>10} {secs:7.1}s",
                phase.name(),
                human_bytes(bytes)
            );
            if end {
                let _ = writeln!(err);
            }
        } else {
            let line = json!({
                "event": "progress",
                "phase": phase.name(),
                "entries": entries,
                "total": total,
                "bytes": bytes,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "phase_done": end,
            });
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

impl Progress for StderrProgress {
    fn report(&mut self, phase: Phase, entries: u64, bytes: u64, total: u64) {
        self.show(phase, entries, bytes, total, false);
    }

    fn finish_phase(&mut self, phase: Phase, entries: u64, bytes: u64, total: u64) {
        self.show(phase, entries, bytes, total, true);
    }

    fn done(&mut self, summary: &Summary) {
        if !self.terminal {
            let line = json!({
                "event": "done",
                "entries": summary.entries,
                "bytes": summary.bytes,
                "sha256": summary.sha256,
                "seconds": (summary.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                "entries_per_second": summary.entries_per_second().round(),
            });
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// `bytes` as B, KiB, MiB or GiB with one decimal.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_as_people_do() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}

//! When audit devices were enabled and disabled: a small history kept behind the barrier next
//! to the device table (`core/audit/history`), written in the same atomic batch as each change
//! of the table, so the compliance report can prove whether requests went unaudited inside its
//! window ([`AuditHistory::gaps`]).
//!
//! The history starts when hushd first opens the audit table with this code (`started`, with
//! the devices enabled at that moment as `baseline`): on a new store that is its `sys/init`; on
//! an older store, the first unseal after an upgrade, before which nothing can be proven. It
//! keeps the last [`MAX_EVENTS`] changes; older ones are folded into `baseline`/`started`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Storage key of the history inside the broker's view.
pub(crate) const HISTORY_KEY: &str = "history";

/// Changes kept; older ones are folded into the baseline.
pub(crate) const MAX_EVENTS: usize = 512;

/// What happened to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    Enable,
    Disable,
}

/// One change of the device table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    /// The device path, e.g. `file/`.
    pub path: String,
    pub action: AuditAction,
}

/// The recorded changes since `started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHistory {
    /// From when the history knows which devices were enabled.
    pub started: DateTime<Utc>,
    /// The devices enabled at `started`.
    pub baseline: BTreeSet<String>,
    /// Changes after `started`, oldest first.
    pub events: Vec<AuditEvent>,
}

/// A stretch of time in which no audit device was enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: DateTime<Utc>,
    /// `None`: still open (no device is enabled now).
    pub until: Option<DateTime<Utc>>,
}

impl AuditHistory {
    /// A history that starts at `now` with `enabled` as its baseline.
    pub fn begin(now: DateTime<Utc>, enabled: impl IntoIterator<Item = String>) -> Self {
        AuditHistory {
            started: now,
            baseline: enabled.into_iter().collect(),
            events: Vec::new(),
        }
    }

    /// Record a change, folding the oldest into the baseline beyond [`MAX_EVENTS`].
    pub fn record(&mut self, time: DateTime<Utc>, path: &str, action: AuditAction) {
        self.events.push(AuditEvent {
            time,
            path: path.to_string(),
            action,
        });
        while self.events.len() > MAX_EVENTS {
            let old = self.events.remove(0);
            apply(&mut self.baseline, &old);
            self.started = old.time;
        }
    }

    /// The first time a device was enabled, if the history saw it (a store that started with
    /// none enabled).
    pub fn first_enable(&self) -> Option<DateTime<Utc>> {
        if !self.baseline.is_empty() {
            return None;
        }
        self.events
            .iter()
            .find(|e| e.action == AuditAction::Enable)
            .map(|e| e.time)
    }

    /// The stretches inside `[from, now]` (from no earlier than `started`) in which no device
    /// was enabled, oldest first. Stretches that end before `ignore_until` are left out, and one
    /// that began before it is cut to start there (the setup of a new store: the time between
    /// `sys/init` and the first enable).
    pub fn gaps(
        &self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        ignore_until: Option<DateTime<Utc>>,
    ) -> Vec<Gap> {
        let floor = from.max(self.started).max(ignore_until.unwrap_or(from));
        let mut enabled = self.baseline.clone();
        let mut open: Option<DateTime<Utc>> = enabled.is_empty().then_some(self.started);
        let mut gaps = Vec::new();
        let mut push = |start: DateTime<Utc>, end: Option<DateTime<Utc>>| {
            let start = start.max(floor);
            match end {
                Some(end) if end <= start => {}
                _ if start >= now => {}
                _ => gaps.push(Gap {
                    from: start,
                    until: end,
                }),
            }
        };
        for event in &self.events {
            apply(&mut enabled, event);
            match (open, enabled.is_empty()) {
                (Some(start), false) => {
                    push(start, Some(event.time));
                    open = None;
                }
                (None, true) => open = Some(event.time),
                _ => {}
            }
        }
        if let Some(start) = open {
            push(start, None);
        }
        gaps
    }
}

fn apply(enabled: &mut BTreeSet<String>, event: &AuditEvent) {
    match event.action {
        AuditAction::Enable => enabled.insert(event.path.clone()),
        AuditAction::Disable => enabled.remove(&event.path),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_new_store_audited_from_its_setup_has_no_gap() {
        let mut h = AuditHistory::begin(t(0), []);
        h.record(t(60), "file/", AuditAction::Enable);
        assert_eq!(h.first_enable(), Some(t(60)));
        // Without the setup allowance, the first minute is a gap.
        assert_eq!(
            h.gaps(t(-100), t(1000), None),
            vec![Gap {
                from: t(0),
                until: Some(t(60))
            }]
        );
        assert!(h.gaps(t(-100), t(1000), Some(t(60))).is_empty());
    }

    #[test]
    fn off_for_a_while_is_a_gap_and_a_second_device_covers_the_first() {
        let mut h = AuditHistory::begin(t(0), ["file/".to_string()]);
        h.record(t(10), "file/", AuditAction::Disable);
        h.record(t(20), "file/", AuditAction::Enable);
        h.record(t(30), "other/", AuditAction::Enable);
        h.record(t(40), "file/", AuditAction::Disable);
        h.record(t(50), "other/", AuditAction::Disable);
        let gaps = h.gaps(t(0), t(100), None);
        assert_eq!(
            gaps,
            vec![
                Gap {
                    from: t(10),
                    until: Some(t(20))
                },
                Gap {
                    from: t(50),
                    until: None
                }
            ]
        );
        // A window that starts after the first gap sees only the open one.
        assert_eq!(h.gaps(t(25), t(100), None).len(), 1);
        // One that starts inside the first cuts it.
        assert_eq!(h.gaps(t(15), t(100), None)[0].from, t(15));
    }

    #[test]
    fn old_events_fold_into_the_baseline() {
        let mut h = AuditHistory::begin(t(0), []);
        for i in 0..(MAX_EVENTS as i64 + 10) {
            let action = if i % 2 == 0 {
                AuditAction::Enable
            } else {
                AuditAction::Disable
            };
            h.record(t(i), "file/", action);
        }
        assert_eq!(h.events.len(), MAX_EVENTS);
        assert_eq!(h.started, t(9));
        // Event 9 was a disable: the baseline is empty from there.
        assert!(h.baseline.is_empty());
        let gaps = h.gaps(t(0), t(10_000), None);
        assert_eq!(gaps[0].from, t(9));
    }
}

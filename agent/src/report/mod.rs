//! Reports upstream: the agent ships its access events and what it holds to hushd
//! (`PUT sys/agents/report`, Hush's own API), with its own token, so an operator can ask
//! hushd "who read `secret/data/app/db`?" and "which agents still hold version 3?".
//!
//! # Layout
//!
//! - this file: the [`Board`] where the loop leaves the keeper's latest state after each cycle
//!   (and says whether it changed);
//! - [`ship`]: the task that forms batches from the spool ([`crate::telemetry::spool`], filled
//!   by the FUSE access log's writer thread) and the board, and sends each until hushd
//!   acknowledges it (at-least-once: a batch keeps its id through every retry).

pub mod ship;

use std::sync::Mutex;

use hush_api::wire::agents::AgentState;
use tokio::sync::Notify;

/// The keeper's latest state, between the loop and the shipper.
#[derive(Debug, Default)]
pub struct Board {
    inner: Mutex<Posted>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Posted {
    state: Option<AgentState>,
    /// Changed since the shipper last took it.
    owed: bool,
}

/// Whether two states differ in what they hold (not in their clocks: refresh times, lease
/// time left).
fn differs(a: &AgentState, b: &AgentState) -> bool {
    let held = |s: &AgentState| {
        (
            s.files.clone(),
            s.errors.clone(),
            s.sources
                .iter()
                .map(|x| {
                    (
                        x.path.clone(),
                        x.version,
                        x.lease_id.clone(),
                        x.error.clone(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    held(a) != held(b)
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, Posted> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keeper's state after a cycle; a change (or the first state) wakes the shipper.
    pub fn post(&self, state: AgentState) {
        let wake = {
            let mut p = self.lock();
            let changed = p.state.as_ref().is_none_or(|old| differs(old, &state));
            p.state = Some(state);
            p.owed |= changed;
            changed
        };
        if wake {
            self.changed.notify_one();
        }
    }

    /// The latest state, and whether it changed since the last call said so.
    pub fn take(&self) -> (Option<AgentState>, bool) {
        let mut p = self.lock();
        (p.state.clone(), std::mem::take(&mut p.owed))
    }

    /// A change is owed to hushd.
    pub fn owed(&self) -> bool {
        self.lock().owed
    }

    /// Wait until a changed state is posted.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_api::wire::agents::{FileState, SourceState};

    fn state(version: u64, refreshed: &str) -> AgentState {
        AgentState {
            files: vec![FileState {
                file: "db".into(),
                paths: vec!["secret/data/db".into()],
                generation: version,
            }],
            sources: vec![SourceState {
                path: "secret/data/db".into(),
                version: Some(version),
                last_refresh: Some(refreshed.into()),
                ..SourceState::default()
            }],
            ..AgentState::default()
        }
    }

    #[test]
    fn only_a_change_in_what_is_held_is_owed() {
        let board = Board::default();
        assert_eq!(board.take(), (None, false));
        board.post(state(1, "t1"));
        let (s, owed) = board.take();
        assert!(owed && s.is_some());
        // A new refresh time alone is no change.
        board.post(state(1, "t2"));
        let (s, owed) = board.take();
        assert!(!owed);
        assert_eq!(s.unwrap().sources[0].last_refresh.as_deref(), Some("t2"));
        board.post(state(2, "t3"));
        assert!(board.owed());
        assert!(board.take().1);
        assert!(!board.owed());
    }
}

//! Evidence of who accessed what beyond the audit log: the fleet index (`sys/agents`), where
//! agents report each open of a secret file (pid, uid, executable) and the versions they hold.

use chrono::{DateTime, Utc};

use crate::core::state::Unsealed;
use crate::logical::LogicalError;

/// Report batches counted at most.
const BATCH_CAP: usize = 1_000_000;

#[derive(Debug, Clone, Default)]
pub struct FleetEvidence {
    /// Agents that ever reported.
    pub agents: usize,
    /// Of them, those that reported inside the window.
    pub reporting: usize,
    /// Agents silent since before the window: their ids.
    pub silent: Vec<String>,
    /// Report batches (access events) received inside the window.
    pub batches: usize,
}

pub async fn gather(
    st: &Unsealed,
    window_start: DateTime<Utc>,
) -> Result<FleetEvidence, LogicalError> {
    let mut ev = FleetEvidence::default();
    for id in st.agents.agent_ids().await? {
        ev.agents += 1;
        let seen = st.agents.agent(&id).await?.and_then(|a| a.last_seen);
        if seen.is_some_and(|t| t >= window_start) {
            ev.reporting += 1;
        } else {
            ev.silent.push(id);
        }
    }
    ev.batches = st.agents.batches_since(window_start, BATCH_CAP).await?;
    Ok(ev)
}

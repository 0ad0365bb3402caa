//! [`Evidence`]: everything a report is judged on, gathered once from the concerns' modules.

use chrono::{DateTime, Utc};

use super::{audit, fleet, keys, policies, rotation, tokens};
use crate::core::login::limiter::LoginLimits;
use crate::core::state::{Core, ListenerInfo, Unsealed};
use crate::logical::LogicalError;

/// Everything a report is judged on, gathered once.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub now: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub keys: keys::KeyEvidence,
    pub tokens: tokens::TokenEvidence,
    pub policies: policies::PolicyEvidence,
    pub audit: audit::AuditEvidence,
    pub fleet: fleet::FleetEvidence,
    /// Secrets (`MOUNT/PATH`) past their rotation schedule; `None`: rotation not configured.
    pub overdue_rotations: Option<Vec<String>>,
    pub login: LoginLimits,
    /// How hushd serves its API; `None`: an embedded core.
    pub listener: Option<ListenerInfo>,
}

/// Gather the evidence for a window of `window` ending now.
pub async fn gather(
    core: &Core,
    st: &Unsealed,
    window: std::time::Duration,
) -> Result<Evidence, LogicalError> {
    let now = Utc::now();
    let window_start = now
        - chrono::Duration::from_std(window)
            .map_err(|_| LogicalError::invalid("since is too large"))?;
    let keys = keys::gather(core).await?;
    let tokens = tokens::gather(st, window_start).await?;
    let policies = policies::gather(st).await?;
    let fleet = fleet::gather(st, window_start).await?;
    let watch: Vec<String> = tokens
        .older_than_window
        .iter()
        .map(|t| t.accessor.clone())
        .collect();
    let audit = audit::gather(st, window_start, now, keys.initialised, &watch).await?;
    let overdue_rotations = rotation::overdue_rotations(core, st, now).await?;
    Ok(Evidence {
        now,
        window_start,
        keys,
        tokens,
        policies,
        audit,
        fleet,
        overdue_rotations,
        login: core.options().login_limits,
        listener: core.options().listener,
    })
}

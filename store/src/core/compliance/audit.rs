//! Evidence about the audit devices: which are enabled, whether each file's hash chain holds up
//! to the head hushd keeps, whether a stretch of the window had no device (from the history
//! `sys/audit` enable/disable writes), and what the lines of the window record.

use chrono::{DateTime, Duration, Utc};

use crate::core::audit::history::{AuditHistory, Gap};
use crate::core::audit::inspect::DeviceInspection;
use crate::core::state::Unsealed;
use crate::logical::LogicalError;

/// A new store is set up before its first device can be enabled (`sys/init` comes first):
/// when the first device was enabled within this long of the store's initialisation, that
/// stretch is not counted as a gap.
pub const SETUP_ALLOWANCE: Duration = Duration::minutes(15);

#[derive(Debug, Clone, Default)]
pub struct AuditEvidence {
    pub devices: Vec<DeviceInspection>,
    /// `None`: hushd has no record of enables and disables.
    pub history: Option<AuditHistory>,
    /// Stretches of the window without any device.
    pub gaps: Vec<Gap>,
    /// The setup stretch left out (store initialised, first device enabled).
    pub setup: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The history began after the window started, on a store older than it: nothing is known
    /// before this time.
    pub known_from: Option<DateTime<Utc>>,
}

pub async fn gather(
    st: &Unsealed,
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
    initialised: DateTime<Utc>,
    watch: &[String],
) -> Result<AuditEvidence, LogicalError> {
    let devices = st.audit.inspect(window_start, watch).await;
    let history = st.audit.history().await?;
    let mut ev = AuditEvidence {
        devices,
        ..AuditEvidence::default()
    };
    if let Some(h) = &history {
        let setup = h
            .first_enable()
            .filter(|first| *first - initialised <= SETUP_ALLOWANCE)
            .filter(|_| h.started - initialised <= SETUP_ALLOWANCE);
        ev.setup = setup.map(|first| (initialised, first));
        ev.gaps = h.gaps(window_start, now, setup);
        if h.started > window_start && h.started - initialised > SETUP_ALLOWANCE {
            ev.known_from = Some(h.started);
        }
    }
    ev.history = history;
    Ok(ev)
}

//! Evidence about secrets past their rotation schedule.
//!
//! Scheduled rotation (`sys/rotation/...`) is built apart from the reports. Until it is wired
//! in, [`overdue_rotations`] answers `None` ("rotation not configured": the control is
//! `not_applicable`). Wiring it: return `Some(paths)` with every `MOUNT/PATH` whose next
//! scheduled run is before `now` (an empty list when rotation is configured and nothing is
//! overdue); the check and every control that uses it follow (`checks.rs`,
//! `Check::SecretRotation`).

use chrono::{DateTime, Utc};

use crate::core::state::{Core, Unsealed};
use crate::logical::LogicalError;

/// Secrets (as `MOUNT/PATH`) past their rotation schedule at `now`; `None`: no rotation is
/// configured on this store.
pub async fn overdue_rotations(
    _core: &Core,
    _st: &Unsealed,
    _now: DateTime<Utc>,
) -> Result<Option<Vec<String>>, LogicalError> {
    Ok(None)
}

//! Evidence about secrets past their rotation schedule (`sys/rotation`): a configured rotation
//! whose next run is over an hour late, or whose last run failed (its secret kept the value
//! the schedule meant to replace).

use chrono::{DateTime, Utc};

use crate::core::state::{Core, Unsealed};
use crate::logical::LogicalError;

/// Secrets (as `MOUNT/PATH`) past their rotation schedule; `None`: no rotation is configured
/// on this store. The rotation scheduler's own clock decides (the one a test moves).
pub async fn overdue_rotations(
    _core: &Core,
    st: &Unsealed,
    _now: DateTime<Utc>,
) -> Result<Option<Vec<String>>, LogicalError> {
    if st.rotations.names().await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(st.rotations.overdue().await?))
}

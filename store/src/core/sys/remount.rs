//! `sys/remount` {from, to} and `sys/remount/status/:migration_id`.
//!
//! Vault 1.10+ answers a remount with a `migration_id` and runs the move in the background,
//! reported by the status endpoint. hushd's move is small (the mount table entry, a restart of
//! the engine, and the ids of the mount's secret leases; the data stays under the mount's
//! uuid), so it runs before the answer: the `migration_id` names a migration that has already
//! ended, `success` or `failure`, and the status endpoint reports it as Vault's does. Status
//! records are kept behind the barrier under `core/remount-status/`.

use serde_json::{json, Value};

use crate::barrier::BarrierView;
use crate::core::mount::normalize_mount_path;
use crate::core::state::{Core, Unsealed};
use crate::logical::{LogicalError, Request, Response};

const STATUS_PREFIX: &str = "core/remount-status/";

/// Mounts that never move (as in Vault).
const PROTECTED: &[&str] = &["sys/", "auth/token/", "cubbyhole/", "identity/", "audit/"];

fn status_view(core: &Core) -> BarrierView {
    BarrierView::new(core.barrier().clone(), STATUS_PREFIX)
}

fn path_field<'a>(req: &'a Request, key: &str) -> Result<&'a str, LogicalError> {
    match req.data.get(key) {
        Some(Value::String(s)) if !s.trim_matches('/').is_empty() => Ok(s),
        _ => Err(LogicalError::invalid(
            "both 'from' and 'to' path must be specified as a string",
        )),
    }
}

pub async fn remount(core: &Core, st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let from = normalize_mount_path(path_field(req, "from")?);
    let to = normalize_mount_path(path_field(req, "to")?);
    for path in [&from, &to] {
        if PROTECTED.iter().any(|p| path.starts_with(p)) {
            return Err(LogicalError::invalid(format!("cannot remount {path:?}")));
        }
    }
    // Checked before anything moves; a failure after this point is reported by the status.
    st.router.remount(&from, &to).await?;
    let migration_id = uuid::Uuid::new_v4().to_string();
    let (status, moved) = match st.expiration.move_prefix(&from, &to).await {
        Ok(n) => ("success", n),
        Err(e) => {
            tracing::error!(from = %from, to = %to, error = %e, "moving the leases of a remounted mount failed");
            ("failure", 0)
        }
    };
    tracing::info!(from = %from, to = %to, leases = moved, status, "remount");
    let info = json!({
        "source_mount": from,
        "target_mount": to,
        "status": status,
    });
    status_view(core).put_json(&migration_id, &info).await?;
    Ok(Response::data(json!({ "migration_id": migration_id })))
}

pub async fn status(core: &Core, id: &str) -> Result<Response, LogicalError> {
    let valid = uuid::Uuid::parse_str(id).is_ok();
    let info: Option<Value> = if valid {
        status_view(core).get_json(id).await?
    } else {
        None
    };
    match info {
        Some(info) => Ok(Response::data(
            json!({ "migration_id": id, "migration_info": info }),
        )),
        None => Err(LogicalError::invalid(format!(
            "no remount migration found with id {id:?}"
        ))),
    }
}

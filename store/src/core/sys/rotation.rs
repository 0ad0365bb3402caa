//! `sys/rotation/*` (hush's own API): configure, trigger and watch scheduled rotations of KV
//! version 2 secrets ([`crate::core::rotation`]); and `sys/internal/test/clock`, the clock
//! a test moves forward instead of sleeping (served only with `test_clock_endpoint`).
//!
//! Names are `:mount/:path` without `data/`: `sys/rotation/config/secret/app/db` rotates
//! what readers get at `secret/data/app/db`. All paths need an ACL grant like any `sys/`
//! path (no `sudo`): `read`/`update`/`delete`/`list` on `sys/rotation/config/*`, `update` on
//! `sys/rotation/rotate/*`, `read`/`list` on `sys/rotation/status/*`.

use chrono::{SecondsFormat, TimeDelta};
use serde_json::{json, Value};

use crate::core::rotation::{RotationConfig, RotationState};
use crate::core::state::{Core, Unsealed};
use crate::logical::{duration, LogicalError, Operation, Request, Response};

/// Serve `rel` (below `sys/`) when it is a rotation path; `None` otherwise.
pub async fn handle(
    core: &Core,
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Option<Result<Response, LogicalError>> {
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    if rel == "internal/test/clock" {
        return Some(clock(core, st, req));
    }
    let rest = rel.strip_prefix("rotation/")?;
    let (area, name) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.trim_end_matches('/');
    Some(match (area, op) {
        ("config" | "status", Operation::List) if name.is_empty() => list(st).await,
        ("config", Operation::Read) => read_config(st, name).await,
        ("config", Operation::Delete) => delete_config(st, name).await,
        ("config", _) if write => write_config(st, req, name).await,
        ("rotate", _) if write => rotate(st, name).await,
        ("status", Operation::Read) => status(st, name).await,
        ("config" | "rotate" | "status", _) => Err(LogicalError::UnsupportedOperation),
        _ => Err(LogicalError::UnsupportedPath),
    })
}

fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true).into())
        .unwrap_or(Value::Null)
}

async fn list(st: &Unsealed) -> Result<Response, LogicalError> {
    let names = st.rotations.names().await?;
    if names.is_empty() {
        return Err(LogicalError::NotFound(String::new()));
    }
    Ok(Response::list(names))
}

/// Split `secret/app/db` into the kv v2 mount (`secret/`) and the key (`app/db`).
fn resolve(st: &Unsealed, name: &str) -> Result<(String, String), LogicalError> {
    if name.is_empty() {
        return Err(LogicalError::invalid(
            "missing path: use sys/rotation/config/:mount/:path, e.g. secret/app/db",
        ));
    }
    let (entry, backend) = st
        .router
        .route(name)
        .map_err(|_| LogicalError::invalid(format!("no secrets engine is mounted at {name:?}")))?;
    if backend.rotatable().is_none() {
        return Err(LogicalError::invalid(format!(
            "{} is a {} mount: only kv version 2 secrets rotate",
            entry.path, entry.kind
        )));
    }
    let key = name.strip_prefix(entry.path.as_str()).unwrap_or("");
    if key.is_empty() || key.starts_with("data/") {
        return Err(LogicalError::invalid(format!(
            "give the secret's path below the mount without data/: {}app/db",
            entry.path
        )));
    }
    Ok((entry.path.clone(), key.to_string()))
}

async fn read_config(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    match st.rotations.config(name).await? {
        Some(c) => Ok(Response::data(c.to_json())),
        None => Err(LogicalError::NotFound(String::new())),
    }
}

async fn write_config(st: &Unsealed, req: &Request, name: &str) -> Result<Response, LogicalError> {
    let (mount, key) = resolve(st, name)?;
    let config = RotationConfig::parse(&mount, &key, &req.data, st.rotations.now())
        .map_err(LogicalError::invalid)?;
    if st.webhooks.read(&config.webhook).is_none() {
        return Err(LogicalError::invalid(format!(
            "no webhook named {:?}: create it first at sys/webhooks/{}",
            config.webhook, config.webhook
        )));
    }
    st.rotations.configure(&config).await?;
    Ok(Response::empty())
}

async fn delete_config(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    st.rotations.remove(name).await?;
    Ok(Response::empty())
}

async fn rotate(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    if st.rotations.config(name).await?.is_none() {
        return Err(LogicalError::NotFound(format!(
            "no rotation is configured for {name:?}: write sys/rotation/config/{name} first"
        )));
    }
    st.rotations.rotate_soon(name, "manual").await?;
    Ok(Response::data(json!({ "path": name, "scheduled": true })).with_status(202))
}

async fn status(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    let Some(config) = st.rotations.config(name).await? else {
        return Err(LogicalError::NotFound(String::new()));
    };
    let s: RotationState = st.rotations.state(name).await?;
    let labels = match st.router.route(&config.data_path()) {
        Ok((_, backend)) => match backend.rotatable() {
            Some(kv) => kv.labels(&config.key).await?,
            None => None,
        },
        Err(_) => None,
    };
    Ok(Response::data(json!({
        "path": name,
        "data_path": config.data_path(),
        "schedule": config.schedule,
        "in_progress": s.step != crate::core::rotation::Step::Idle,
        "step": s.step,
        "pending_version": s.pending_version,
        "next_run": ts(s.next_run),
        "last_run": ts(s.last_run),
        "last_success": ts(s.last_success),
        "last_outcome": s.last_outcome,
        "last_error": s.last_error,
        "failures": s.failures,
        "rotations": s.rotations,
        "current_version": labels.map(|l| l.current),
        "previous_version": labels.and_then(|l| l.previous),
        "now": ts(Some(st.rotations.now())),
    })))
}

/// `sys/internal/test/clock`: read `now` and `offset`; write `advance` (a duration) to move
/// the rotation clock forward. 404 unless hushd's config sets `test_clock_endpoint`.
fn clock(core: &Core, st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    if !core.options().test_clock_endpoint {
        return Err(LogicalError::UnsupportedPath);
    }
    let clock = core.test_clock();
    match req.operation {
        Operation::Read => {}
        Operation::Update | Operation::Create => {
            let advance = req
                .data
                .get("advance")
                .and_then(Value::as_str)
                .and_then(|s| duration::parse_secs(s.trim()))
                .filter(|s| *s > 0)
                .ok_or_else(|| LogicalError::invalid("advance must be a positive duration"))?;
            clock.advance(TimeDelta::seconds(advance));
            st.rotations.wake.notify_one();
        }
        _ => return Err(LogicalError::UnsupportedOperation),
    }
    Ok(Response::data(json!({
        "now": ts(Some(clock.now())),
        "offset_seconds": clock.offset().num_seconds(),
    })))
}

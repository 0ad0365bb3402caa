//! `sys/init`, `sys/unseal`, `sys/seal-status`, `sys/health`, `sys/leader`, `sys/rotate`,
//! `sys/key-status`.

use base64::Engine as _;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::both;
use crate::core::ha::{Role, StepDown};
use crate::core::state::{seal_err, Core};
use crate::logical::fields::{field_bool, field_u64};
use crate::logical::{LogicalError, Request, Response};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn init_status(core: &Core) -> Result<Response, LogicalError> {
    let initialized = core
        .seal_handle()
        .is_initialized()
        .await
        .map_err(seal_err)?;
    Ok(Response::raw(json!({ "initialized": initialized })))
}

pub async fn init(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    for unsupported in ["pgp_keys", "root_token_pgp_key", "recovery_pgp_keys"] {
        if req
            .data
            .get(unsupported)
            .is_some_and(|v| !v.is_null() && v != &json!([]) && v != &json!(""))
        {
            return Err(LogicalError::invalid(format!(
                "{unsupported} is not supported by hushd"
            )));
        }
    }
    let shares = field_u64(&req.data, "secret_shares")?
        .ok_or_else(|| LogicalError::invalid("secret_shares is required"))?;
    let threshold = field_u64(&req.data, "secret_threshold")?
        .ok_or_else(|| LogicalError::invalid("secret_threshold is required"))?;
    let to_u8 = |n: u64, what: &str| {
        u8::try_from(n).map_err(|_| LogicalError::invalid(format!("{what} must be at most 255")))
    };
    let (keys, root) = core
        .initialize(
            to_u8(shares, "secret_shares")?,
            to_u8(threshold, "secret_threshold")?,
        )
        .await?;
    tracing::info!(shares, threshold, "hushd initialized");
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Response::raw(json!({
        "keys": keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "keys_base64": keys.iter().map(|k| b64.encode(k.as_slice())).collect::<Vec<_>>(),
        "root_token": root.expose_secret(),
    })))
}

/// The body `sys/seal-status` and `sys/unseal` answer with.
pub async fn status_body(core: &Core) -> Result<Value, LogicalError> {
    let seal = core.seal_handle();
    let cfg = seal.config().await.map_err(seal_err)?;
    let (progress, nonce) = seal.progress();
    let sealed = core.is_sealed();
    Ok(json!({
        "type": "shamir",
        "initialized": cfg.is_some(),
        "sealed": sealed,
        "t": cfg.as_ref().map_or(0, |c| c.secret_threshold),
        "n": cfg.as_ref().map_or(0, |c| c.secret_shares),
        "progress": progress,
        "nonce": nonce,
        "version": VERSION,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": core.barrier().backend().kind(),
        "cluster_name": if sealed { Value::Null } else { json!("hush") },
        "cluster_id": if sealed { Value::Null } else { json!("hush") },
    }))
}

pub async fn seal_status(core: &Core) -> Result<Response, LogicalError> {
    Ok(Response::raw(status_body(core).await?))
}

pub async fn unseal(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    if field_bool(&req.data, "reset")?.unwrap_or(false) {
        core.seal_handle().reset();
        return seal_status(core).await;
    }
    if field_bool(&req.data, "migrate")?.unwrap_or(false) {
        return Err(LogicalError::invalid(
            "seal migration is not supported by hushd",
        ));
    }
    let key = req.get_str("key").ok_or_else(|| {
        LogicalError::invalid(
            "'key' must be specified in request body as JSON, or 'reset' set to true",
        )
    })?;
    let raw = decode_key(key)?;
    if !core
        .seal_handle()
        .is_initialized()
        .await
        .map_err(seal_err)?
    {
        return Err(LogicalError::invalid(
            "hushd is not initialized: run `hush operator init`",
        ));
    }
    core.unseal_with(&raw).await?;
    seal_status(core).await
}

/// Unseal keys arrive hex (as `keys`) or base64 (as `keys_base64`).
pub(super) fn decode_key(key: &str) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    let key = key.trim();
    if let Ok(raw) = hex::decode(key) {
        return Ok(Zeroizing::new(raw));
    }
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| LogicalError::invalid("'key' must be a valid hex or base64 string"))
}

pub async fn health(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let initialized = core
        .seal_handle()
        .is_initialized()
        .await
        .map_err(seal_err)?;
    let sealed = core.is_sealed();
    let code = |name: &str, default: u16| -> Result<u16, LogicalError> {
        match field_u64(&req.data, name)? {
            Some(c) if (100..600).contains(&c) => Ok(c as u16),
            Some(_) => Err(LogicalError::invalid(format!(
                "{name} must be an HTTP status code"
            ))),
            None => Ok(default),
        }
    };
    let standby = !sealed && core.ha().is_some_and(|ha| !ha.is_active());
    let standby_ok = field_bool(&req.data, "standbyok")?.unwrap_or(false);
    let status = if !initialized {
        code("uninitcode", 501)?
    } else if sealed {
        code("sealedcode", 503)?
    } else if standby && !standby_ok {
        code("standbycode", 429)?
    } else {
        code("activecode", 200)?
    };
    let body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": chrono::Utc::now().timestamp(),
        "version": VERSION,
        "cluster_name": "hush",
        "cluster_id": "hush",
    });
    Ok(Response::raw(body).with_status(status))
}

/// `sys/leader`: whether HA is on, and which node is active (as Vault: `leader_address` is
/// the active node's API address, this node's own when it is active).
pub fn leader(core: &Core) -> Response {
    let zero = "0001-01-01T00:00:00Z".to_string();
    let (ha_enabled, is_self, active_time, address) = match core.ha() {
        None => (false, false, zero, String::new()),
        Some(ha) => match ha.role() {
            Role::Active { since, .. } => (
                true,
                true,
                since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                ha.api_addr().to_string(),
            ),
            Role::Standby { leader } => (
                true,
                false,
                zero,
                leader.map(|l| l.api_addr).unwrap_or_default(),
            ),
        },
    };
    Response::raw(json!({
        "ha_enabled": ha_enabled,
        "is_self": is_self,
        "active_time": active_time,
        "leader_address": address,
        "leader_cluster_address": "",
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    }))
}

/// `sys/step-down`: the active node gives the HA lock up and stands by for a while, so
/// another node takes over (maintenance). Answered before this node stops serving.
pub async fn step_down(core: &Core) -> Result<Response, LogicalError> {
    if core.ha().is_none() {
        return Err(LogicalError::invalid(
            "this hushd does not run with --ha: there is no other node to hand over to",
        ));
    }
    core.step_down(StepDown::Asked).await;
    Ok(Response::empty())
}

pub async fn rotate(core: &Core) -> Result<Response, LogicalError> {
    let root = core.seal_handle().root_key().ok_or(LogicalError::Sealed)?;
    let status = core.barrier().rotate(&root).await?;
    tracing::info!(term = status.term, "barrier key rotated");
    Ok(Response::empty())
}

pub fn key_status(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let st = core.barrier().key_status()?;
    Ok(both(
        req,
        json!({
            "term": st.term,
            "install_time": st.install_time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "encryptions": st.encryptions,
        }),
    ))
}

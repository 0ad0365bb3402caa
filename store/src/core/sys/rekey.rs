//! `sys/rekey/init` (GET status, PUT start, DELETE cancel) and `sys/rekey/update` {key, nonce}:
//! a quorum of the holders of the unseal keys replaces them with new shares, possibly with a
//! new count and threshold, as Vault's rekey of Shamir unseal keys. Unauthenticated, like
//! Vault; served only while unsealed, and audited (keys HMAC'd, as every audited value).
//!
//! The shares given are checked as unseal checks them (same code, [`Quorum`]); when the
//! threshold is reached they must open the stored root key, else progress is reset and the
//! attempt stays. On success [`Seal::rekey`](crate::barrier::seal::Seal::rekey) writes the new
//! configuration and the root key sealed under the new unseal key in one atomic batch; the
//! new keys are answered once. The root key and the keyring are unchanged.
//!
//! Not supported, refused with 400: `pgp_keys`, `backup`, `require_verification`. A share given
//! twice is refused with 400, as Vault's rekey (unseal ignores it).

use base64::Engine as _;
use serde_json::{json, Value};

use super::generate_root::{key_and_nonce, seal_config};
use crate::barrier::seal::{validate, Quorum, QuorumStep, Rekey, SealConfig, SealError};
use crate::core::state::{seal_err, Core};
use crate::logical::fields::{field_bool, field_u64};
use crate::logical::{LogicalError, Operation, Request, Response};

/// `sys/rekey/*` (the path relative to `sys/`): only while unsealed; each request and answer is
/// audited like any other.
pub async fn handle(core: &Core, req: &Request, rel: &str) -> Result<Response, LogicalError> {
    let st = core.unsealed()?;
    st.audit.log_request(req).await?;
    let resp = match (rel, req.operation) {
        ("rekey/init", Operation::Read) => status(core).await,
        ("rekey/init", Operation::Update | Operation::Create) => start(core, req).await,
        ("rekey/init", Operation::Delete) => cancel(core).await,
        ("rekey/update", Operation::Update | Operation::Create) => update(core, req).await,
        _ => Err(LogicalError::UnsupportedOperation),
    };
    st.audit.log_response(req, resp.as_ref()).await?;
    resp
}

/// Vault's status body: `t` and `n` are the new threshold and shares, `required` the current
/// threshold (how many of the current shares complete the rekey).
fn body(attempt: Option<&Rekey>, required: u8) -> Value {
    json!({
        "started": attempt.is_some(),
        "nonce": attempt.map_or("", |a| a.quorum.nonce.as_str()),
        "t": attempt.map_or(0, |a| a.new.secret_threshold),
        "n": attempt.map_or(0, |a| a.new.secret_shares),
        "progress": attempt.map_or(0, |a| a.quorum.progress()),
        "required": required,
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": false,
    })
}

pub async fn status(core: &Core) -> Result<Response, LogicalError> {
    let required = seal_config(core).await?.secret_threshold;
    let guard = core.seal_handle().rekey_attempt();
    Ok(Response::raw(body(guard.as_ref(), required)))
}

/// The new configuration a start asks for; refuses what hushd does not support.
fn requested(req: &Request) -> Result<SealConfig, LogicalError> {
    if req
        .data
        .get("pgp_keys")
        .is_some_and(|v| !v.is_null() && v != &json!([]) && v != &json!(""))
    {
        return Err(LogicalError::invalid("pgp_keys is not supported by hushd"));
    }
    if field_bool(&req.data, "backup")?.unwrap_or(false) {
        return Err(LogicalError::invalid(
            "backup is not supported by hushd (it needs pgp_keys)",
        ));
    }
    if field_bool(&req.data, "require_verification")?.unwrap_or(false) {
        return Err(LogicalError::invalid(
            "require_verification is not supported by hushd",
        ));
    }
    let number = |name: &str| -> Result<u8, LogicalError> {
        let n = field_u64(&req.data, name)?
            .ok_or_else(|| LogicalError::invalid(format!("{name} is required")))?;
        u8::try_from(n).map_err(|_| LogicalError::invalid(format!("{name} must be at most 255")))
    };
    let new = SealConfig {
        secret_shares: number("secret_shares")?,
        secret_threshold: number("secret_threshold")?,
    };
    validate(new.secret_shares, new.secret_threshold).map_err(seal_err)?;
    Ok(new)
}

pub async fn start(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let required = seal_config(core).await?.secret_threshold;
    let new = requested(req)?;
    let mut guard = core.seal_handle().rekey_attempt();
    if guard.is_some() {
        return Err(LogicalError::invalid("rekey already in progress"));
    }
    let attempt = guard.insert(Rekey {
        quorum: Quorum::new(),
        new,
    });
    tracing::warn!(
        shares = new.secret_shares,
        threshold = new.secret_threshold,
        "a rekey of the unseal keys was started"
    );
    Ok(Response::raw(body(Some(attempt), required)))
}

pub async fn cancel(core: &Core) -> Result<Response, LogicalError> {
    seal_config(core).await?;
    if core.seal_handle().rekey_attempt().take().is_some() {
        tracing::info!("the rekey of the unseal keys was cancelled");
    }
    Ok(Response::empty())
}

pub async fn update(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let config = seal_config(core).await?;
    let (key, nonce) = key_and_nonce(req)?;
    let parts = {
        let mut guard = core.seal_handle().rekey_attempt();
        let attempt = guard.as_mut().ok_or_else(|| seal_err(SealError::NoRekey))?;
        match attempt
            .quorum
            .submit(&config, nonce, &key)
            .map_err(seal_err)?
        {
            QuorumStep::Complete(parts) => parts,
            QuorumStep::Duplicate => {
                return Err(LogicalError::invalid(
                    "given key has already been provided during this rekey operation",
                ))
            }
            QuorumStep::More => {
                return Ok(Response::raw(body(Some(attempt), config.secret_threshold)))
            }
        }
    };
    let (out, new) = match core.seal_handle().rekey(nonce, parts).await {
        Ok(done) => done,
        Err(SealError::InvalidKey(m)) => {
            tracing::warn!("rekey: the unseal keys given do not open the root key");
            return Err(LogicalError::invalid(format!(
                "rekey verification failed: {m}; progress was reset"
            )));
        }
        Err(e) => return Err(seal_err(e)),
    };
    tracing::warn!(
        shares = new.secret_shares,
        threshold = new.secret_threshold,
        "the unseal keys were rekeyed: the old ones no longer unseal"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Response::raw(json!({
        "complete": true,
        "nonce": nonce,
        "keys": out.keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "keys_base64": out.keys.iter().map(|k| b64.encode(k.as_slice())).collect::<Vec<_>>(),
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": false,
    })))
}

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
//! With `require_verification` (as Vault) the new keys are answered first but take effect only
//! when a quorum of them is given back to `sys/rekey/verify` {key, nonce} (GET status, DELETE
//! restarts the verification with a new nonce); until then the old keys still unseal.
//!
//! Not supported, refused with 400: `pgp_keys`, `backup`. A share given twice is refused with
//! 400, as Vault's rekey (unseal ignores it).

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
        ("rekey/verify", Operation::Read) => verify_status(core).await,
        ("rekey/verify", Operation::Update | Operation::Create) => verify(core, req).await,
        ("rekey/verify", Operation::Delete) => verify_restart(core).await,
        _ => Err(LogicalError::UnsupportedOperation),
    };
    st.audit.log_response(req, resp.as_ref()).await?;
    resp
}

/// Vault's status body: `t` and `n` are the new threshold and shares, `required` the current
/// threshold (how many of the current shares complete the rekey); `verification_nonce` only
/// while new keys await verification.
fn body(attempt: Option<&Rekey>, required: u8) -> Value {
    let mut b = json!({
        "started": attempt.is_some(),
        "nonce": attempt.map_or("", |a| a.quorum.nonce.as_str()),
        "t": attempt.map_or(0, |a| a.new.secret_threshold),
        "n": attempt.map_or(0, |a| a.new.secret_shares),
        "progress": attempt.map_or(0, |a| a.quorum.progress()),
        "required": required,
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": attempt.is_some_and(|a| a.verify),
    });
    if let Some(p) = attempt.and_then(|a| a.pending.as_ref()) {
        b["verification_nonce"] = json!(p.quorum.nonce);
    }
    b
}

/// Vault's verification status body.
fn verify_body(attempt: &Rekey) -> Result<Value, LogicalError> {
    let pending = attempt
        .pending
        .as_ref()
        .ok_or_else(|| seal_err(SealError::NoRekeyVerification))?;
    Ok(json!({
        "started": true,
        "nonce": pending.quorum.nonce,
        "t": attempt.new.secret_threshold,
        "n": attempt.new.secret_shares,
        "progress": pending.quorum.progress(),
    }))
}

pub async fn status(core: &Core) -> Result<Response, LogicalError> {
    let required = seal_config(core).await?.secret_threshold;
    let guard = core.seal_handle().rekey_attempt();
    Ok(Response::raw(body(guard.as_ref(), required)))
}

/// The new configuration a start asks for, and whether the new keys must be verified; refuses
/// what hushd does not support.
fn requested(req: &Request) -> Result<(SealConfig, bool), LogicalError> {
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
    let verify = field_bool(&req.data, "require_verification")?.unwrap_or(false);
    Ok((new, verify))
}

pub async fn start(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let required = seal_config(core).await?.secret_threshold;
    let (new, verify) = requested(req)?;
    let mut guard = core.seal_handle().rekey_attempt();
    if guard.is_some() {
        return Err(LogicalError::invalid("rekey already in progress"));
    }
    let attempt = guard.insert(Rekey::new(new, verify));
    tracing::warn!(
        shares = new.secret_shares,
        threshold = new.secret_threshold,
        verify,
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
        if let Some(p) = &attempt.pending {
            return Err(LogicalError::invalid(format!(
                "rekey operation already finished; verification must be performed; nonce for \
                 the verification operation is {}",
                p.quorum.nonce
            )));
        }
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
    let done = match core.seal_handle().rekey(nonce, parts).await {
        Ok(done) => done,
        Err(SealError::InvalidKey(m)) => {
            tracing::warn!("rekey: the unseal keys given do not open the root key");
            return Err(LogicalError::invalid(format!(
                "rekey verification failed: {m}; progress was reset"
            )));
        }
        Err(e) => return Err(seal_err(e)),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys = &done.keys.keys;
    let mut answer = json!({
        "complete": true,
        "nonce": nonce,
        "keys": keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "keys_base64": keys.iter().map(|k| b64.encode(k.as_slice())).collect::<Vec<_>>(),
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": done.verification_nonce.is_some(),
    });
    match &done.verification_nonce {
        Some(v) => {
            answer["verification_nonce"] = json!(v);
            tracing::warn!("new unseal keys were made: they take effect once verified");
        }
        None => rekeyed(done.config),
    }
    Ok(Response::raw(answer))
}

fn rekeyed(new: SealConfig) {
    tracing::warn!(
        shares = new.secret_shares,
        threshold = new.secret_threshold,
        "the unseal keys were rekeyed: the old ones no longer unseal"
    );
}

/// The attempt awaiting verification, as `f` sees it.
fn with_pending<T>(
    core: &Core,
    f: impl FnOnce(&mut Rekey) -> Result<T, LogicalError>,
) -> Result<T, LogicalError> {
    let mut guard = core.seal_handle().rekey_attempt();
    let attempt = guard.as_mut().ok_or_else(|| seal_err(SealError::NoRekey))?;
    if attempt.pending.is_none() {
        return Err(seal_err(SealError::NoRekeyVerification));
    }
    f(attempt)
}

pub async fn verify_status(core: &Core) -> Result<Response, LogicalError> {
    seal_config(core).await?;
    with_pending(core, |a| verify_body(a)).map(Response::raw)
}

/// `DELETE sys/rekey/verify`: forget the new shares given back so far, with a new nonce; the
/// new keys still await verification (Vault's answer: the status).
pub async fn verify_restart(core: &Core) -> Result<Response, LogicalError> {
    seal_config(core).await?;
    with_pending(core, |a| {
        if let Some(p) = a.pending.as_mut() {
            p.quorum = Quorum::new();
        }
        verify_body(a)
    })
    .map(Response::raw)
}

/// `PUT sys/rekey/verify` {key, nonce}: one of the new shares; at the new threshold they must
/// rebuild the new unseal key, and the rekey takes effect.
pub async fn verify(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    seal_config(core).await?;
    let (key, nonce) = key_and_nonce(req)?;
    let step = with_pending(core, |a| {
        let new = a.new;
        let pending = a.pending.as_mut().expect("with_pending");
        match pending.quorum.submit(&new, nonce, &key).map_err(seal_err)? {
            QuorumStep::Complete(parts) => Ok(Some(parts)),
            QuorumStep::Duplicate => Err(LogicalError::invalid(
                "given key has already been provided during this verify operation",
            )),
            QuorumStep::More => Ok(None),
        }
    })?;
    let Some(parts) = step else {
        return with_pending(core, |a| verify_body(a)).map(Response::raw);
    };
    match core.seal_handle().rekey_verify(nonce, parts).await {
        Ok(new) => rekeyed(new),
        Err(SealError::InvalidKey(m)) => {
            tracing::warn!("rekey verification: the new keys given do not match");
            return Err(LogicalError::invalid(format!(
                "rekey verification failed: {m}; progress was reset"
            )));
        }
        Err(e) => return Err(seal_err(e)),
    }
    Ok(Response::raw(json!({ "nonce": nonce, "complete": true })))
}

//! `sys/generate-root/attempt` (GET status, PUT start, DELETE cancel) and
//! `sys/generate-root/update` {key, nonce}: the holders of the unseal keys mint a new root
//! token, as in Vault 1.10+. Unauthenticated, like Vault; served only while unsealed.
//!
//! Starting an attempt takes a one-time pad (`otp`, 28 base62 characters: the length of a
//! token) or makes one and answers it once. When the threshold of unseal-key shares has been
//! given (checked as unseal checks them, with the same code) and they open the stored root key,
//! a root token is made and answered only as `encoded_token` = base64 (unpadded) of the token
//! XOR the OTP; `hush operator generate-root -decode` (or the vault CLI) recovers it. PGP
//! encryption (`pgp_key`) is refused. Keys, the OTP and the token are never logged.

use base64::Engine as _;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::seal::decode_key;
use crate::barrier::seal::{Quorum, QuorumStep, RootGeneration, SealConfig};
use crate::core::state::{seal_err, Core};
use crate::logical::{LogicalError, Request, Response};

/// A token's length (`hvs.` + 24), which the OTP must have (Vault's `otp_length`).
pub const OTP_LENGTH: usize = 28;

/// The status body; `otp` only when hushd made it, in the answer to the start.
fn body(started: Option<(&str, u8)>, required: u8, otp: &str, encoded: &str) -> Value {
    let (nonce, progress) = started.unwrap_or(("", 0));
    json!({
        "started": started.is_some(),
        "nonce": nonce,
        "progress": progress,
        "required": required,
        "complete": !encoded.is_empty(),
        "encoded_token": encoded,
        "encoded_root_token": encoded,
        "pgp_fingerprint": "",
        "otp": otp,
        "otp_length": OTP_LENGTH,
    })
}

/// The seal's configuration, once unsealed (generate-root and rekey are served only then).
pub(super) async fn seal_config(core: &Core) -> Result<SealConfig, LogicalError> {
    core.unsealed()?;
    core.seal_handle()
        .config()
        .await
        .map_err(seal_err)?
        .ok_or(LogicalError::NotInitialized)
}

async fn threshold(core: &Core) -> Result<u8, LogicalError> {
    Ok(seal_config(core).await?.secret_threshold)
}

pub async fn status(core: &Core) -> Result<Response, LogicalError> {
    let required = threshold(core).await?;
    let guard = core.seal_handle().root_generation();
    let started = guard
        .as_ref()
        .map(|g| (g.quorum.nonce.as_str(), g.quorum.progress()));
    Ok(Response::raw(body(started, required, "", "")))
}

pub async fn start(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let required = threshold(core).await?;
    if req
        .data
        .get("pgp_key")
        .is_some_and(|v| !v.is_null() && v != &json!(""))
    {
        return Err(LogicalError::invalid("pgp_key is not supported by hushd"));
    }
    let (otp, made) = match req.data.get("otp") {
        None | Some(Value::Null) => (
            Zeroizing::new(Alphanumeric.sample_string(&mut rand::rng(), OTP_LENGTH)),
            true,
        ),
        Some(Value::String(s)) if s.is_empty() => (
            Zeroizing::new(Alphanumeric.sample_string(&mut rand::rng(), OTP_LENGTH)),
            true,
        ),
        Some(Value::String(s)) if s.len() == OTP_LENGTH => (Zeroizing::new(s.clone()), false),
        Some(Value::String(_)) => {
            return Err(LogicalError::invalid(format!(
                "OTP string is wrong length: want {OTP_LENGTH} characters"
            )))
        }
        Some(_) => return Err(LogicalError::invalid("otp must be a string")),
    };
    let quorum = Quorum::new();
    let nonce = quorum.nonce.clone();
    {
        let mut guard = core.seal_handle().root_generation();
        if guard.is_some() {
            return Err(LogicalError::invalid("root generation already in progress"));
        }
        *guard = Some(RootGeneration {
            quorum,
            otp: otp.clone(),
        });
    }
    tracing::warn!("a root token generation was started");
    let shown = if made { otp.as_str() } else { "" };
    Ok(Response::raw(body(Some((&nonce, 0)), required, shown, "")))
}

pub async fn cancel(core: &Core) -> Result<Response, LogicalError> {
    threshold(core).await?;
    if core.seal_handle().root_generation().take().is_some() {
        tracing::info!("the root token generation was cancelled");
    }
    Ok(Response::empty())
}

pub async fn update(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    let config = seal_config(core).await?;
    let required = config.secret_threshold;
    let (key, nonce) = key_and_nonce(req)?;
    let (parts, otp) = {
        let mut guard = core.seal_handle().root_generation();
        let attempt = guard
            .as_mut()
            .ok_or_else(|| LogicalError::invalid("no root generation in progress"))?;
        match attempt
            .quorum
            .submit(&config, nonce, &key)
            .map_err(seal_err)?
        {
            QuorumStep::Complete(parts) => (parts, attempt.otp.clone()),
            // As Vault: a share given twice is an error, not a no-op.
            QuorumStep::Duplicate => {
                return Err(LogicalError::invalid(
                    "given key has already been provided during this generation operation",
                ))
            }
            QuorumStep::More => {
                let started = Some((attempt.quorum.nonce.as_str(), attempt.quorum.progress()));
                return Ok(Response::raw(body(started, required, "", "")));
            }
        }
    };
    if let Err(e) = core.seal_handle().verify_shares(parts).await {
        tracing::warn!("root token generation: the unseal keys given do not open the root key");
        return Err(LogicalError::invalid(format!(
            "root key verification failed: {}; progress was reset",
            seal_err(e)
        )));
    }
    // The attempt is over whatever happens next; only the one these keys were for.
    {
        let mut guard = core.seal_handle().root_generation();
        if guard.as_ref().is_some_and(|g| g.quorum.nonce == nonce) {
            *guard = None;
        } else {
            return Err(LogicalError::invalid(
                "the root generation was cancelled meanwhile",
            ));
        }
    }
    let st = core.unsealed()?;
    let token = st.tokens.create_root_token().await?;
    let encoded = encode_token(token.expose_secret(), &otp)?;
    tracing::warn!("a root token was generated through sys/generate-root");
    Ok(Response::raw(body(
        Some((nonce, required)),
        required,
        "",
        &encoded,
    )))
}

/// The `key` (decoded from hex or base64, as unseal's) and `nonce` of an update request.
pub(super) fn key_and_nonce(req: &Request) -> Result<(Zeroizing<Vec<u8>>, &str), LogicalError> {
    let key = req
        .get_str("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| LogicalError::invalid("'key' must be specified in request body as JSON"))?;
    let nonce = req
        .get_str("nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LogicalError::invalid("'nonce' must be specified in request body"))?;
    Ok((decode_key(key)?, nonce))
}

/// Vault's encoding: base64 (standard alphabet, no padding) of `token` XOR `otp`.
pub fn encode_token(token: &str, otp: &str) -> Result<String, LogicalError> {
    if token.len() != otp.len() {
        return Err(LogicalError::Internal(
            "the OTP and the token differ in length".into(),
        ));
    }
    let xored: Zeroizing<Vec<u8>> =
        Zeroizing::new(token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect());
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(xored.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_vaults_xor_then_unpadded_base64() {
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        let otp = "0123456789ABCDEFGHIJKLMNOPQR";
        let encoded = encode_token(token, otp).unwrap();
        assert!(!encoded.ends_with('='));
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&encoded)
            .unwrap();
        let back: String = raw
            .iter()
            .zip(otp.bytes())
            .map(|(a, b)| char::from(a ^ b))
            .collect();
        assert_eq!(back, token);
        assert!(encode_token(token, "short").is_err());
    }
}

//! JWT verification shared by the `kubernetes`, `jwt` (OIDC) and `gcp` auth methods.
//!
//! [`verify`] checks a compact JWS against a [`KeySet`] and a [`Validation`], then returns the
//! claims. The checks run in this order, so the cheapest refusal comes first and no key is
//! touched for a token whose algorithm is not allowed:
//!
//! 1. shape: three base64url parts, a JSON object header and payload, no `crit` header;
//! 2. algorithm: only RS256/384/512, ES256/384 and EdDSA, and only those the [`Validation`]
//!    allows. `none` and every `HS*` are refused before any key is looked at, so an HMAC signed
//!    with a public key's bytes (key confusion) can never verify;
//! 3. key: by `kid` when the token has one, and only keys of the family (and curve) the
//!    algorithm needs;
//! 4. signature (ring, through `jsonwebtoken::crypto::verify`);
//! 5. time (`exp`, `nbf`, `iat` with Vault's leeways), issuer, audience.
//!
//! # Layout
//!
//! - [`keys`]: [`KeySet`] from PEM public keys or a JWKS document.
//! - [`remote`]: [`RemoteKeySet`] (a JWKS URL fetched over HTTPS, cached, refetched on an
//!   unknown `kid` at most once per interval) and OIDC discovery.
//! - [`tls`]: the outbound HTTPS client (a CA bundle, or a pinned self-signed server
//!   certificate) and what a failed request says.
//! - [`claims`]: Kubernetes service-account identities, Vault's `bound_claims`,
//!   `claim_mappings`, `user_claim`, and the `*` glob matcher.
//!
//! # Errors and HTTP status
//!
//! Every [`JwtError`] message is safe to send to a client: it never contains the token, a
//! claim value or key material. Vault's jwt and kubernetes methods answer a failed login with
//! 400 and the error text (`logical.ErrorResponse`), and 403 only for a denied request; callers
//! map [`JwtError::is_token_error`] to `LogicalError::InvalidRequest` (400), and the
//! configuration errors ([`JwtError::Key`], [`JwtError::Fetch`]) to a 400 on `config` writes or
//! a 500 at login.

pub mod claims;
pub mod keys;
pub mod remote;
pub mod tls;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_claims;
#[cfg(test)]
pub(crate) mod tests_remote;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

pub use claims::{
    claim_mappings, glob_match, glob_match_any, match_bound_claims, user_claim, BoundClaimsType,
    K8sIdentity,
};
pub use keys::{KeyFamily, KeySet, PublicKey};
pub use remote::{discover, Discovery, RemoteKeySet};

/// The claims of a verified token: the payload's JSON object.
pub type Claims = Map<String, Value>;

/// Largest token accepted, in bytes (Kubernetes tokens are ~1 KiB; 64 KiB is generous).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token, a key or a key fetch was refused. Messages are safe for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a compact JWS, bad base64, header or payload not a JSON object, `crit` present.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `none`, `HS*`, an unknown algorithm, or one the role does not allow.
    #[error("token signing algorithm is not allowed")]
    Algorithm,
    /// No configured key has the token's `kid` and the family its algorithm needs.
    #[error("no key matches the token (kid or algorithm)")]
    NoMatchingKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is expired")]
    Expired,
    /// `nbf` (or `iat`) in the future beyond the leeway.
    #[error("token is not yet valid")]
    NotYetValid,
    /// The validation requires `exp` and the token has none.
    #[error("token has no expiration (exp) claim")]
    MissingExpiry,
    /// A time claim that is not a number.
    #[error("claim {0:?} is not a number")]
    BadTimeClaim(&'static str),
    #[error("token issuer (iss) does not match")]
    Issuer,
    #[error("token audience (aud) does not match")]
    Audience,
    /// A claim a role needs is absent (the claim name, never its value).
    #[error("claim {0:?} is missing")]
    MissingClaim(String),
    /// A claim does not satisfy `bound_claims` or is of the wrong type.
    #[error("claim {0:?} does not match the role's bound claims")]
    ClaimMismatch(String),
    /// A claim has a type that cannot be used (e.g. a list as `user_claim`).
    #[error("claim {0:?} has an unusable type")]
    ClaimType(String),
    /// A configured public key or JWKS document cannot be used.
    #[error("invalid key: {0}")]
    Key(String),
    /// The JWKS or discovery document could not be fetched or parsed.
    #[error("cannot fetch keys: {0}")]
    Fetch(String),
}

impl JwtError {
    /// True for errors about the presented token (answer 400, as Vault does), false for
    /// configuration or fetch errors.
    pub fn is_token_error(&self) -> bool {
        !matches!(self, JwtError::Key(_) | JwtError::Fetch(_))
    }
}

/// A signing algorithm hushd accepts. Everything else (`none`, `HS*`, `PS*`, ...) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    /// All accepted algorithms (Vault's `jwt_supported_algs` minus HS and PS).
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// Parse a JWS `alg` name; `None` for anything not accepted (case-sensitive, RFC 7518).
    pub fn parse(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The key family (and curve) this algorithm verifies with.
    pub fn family(self) -> KeyFamily {
        match self {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA => KeyFamily::Ed25519,
        }
    }

    fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// What a token must satisfy besides its signature.
///
/// Leeways follow Vault's JWT role (`clock_skew_leeway` 60 s, `expiration_leeway` 150 s,
/// `not_before_leeway` 150 s): a token is expired when `now > exp + expiration_leeway +
/// clock_skew_leeway`, not yet valid when `now + not_before_leeway + clock_skew_leeway < nbf`,
/// and issued in the future when `now + clock_skew_leeway < iat`.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Accepted algorithms; a subset of [`Algorithm::ALL`].
    pub algorithms: Vec<Algorithm>,
    /// When set, `iss` must equal it.
    pub bound_issuer: Option<String>,
    /// When non-empty, `aud` (a string or a list) must contain one of these; a token without
    /// `aud` is refused.
    pub bound_audiences: Vec<String>,
    /// Refuse a token that has an `aud` when `bound_audiences` is empty (Vault's jwt method
    /// does: "audience claim found in JWT but no audiences bound to the role"; the kubernetes
    /// method does not).
    pub refuse_unbound_audience: bool,
    pub clock_skew_leeway: u64,
    pub expiration_leeway: u64,
    pub not_before_leeway: u64,
    /// Refuse a token without `exp` (legacy Kubernetes secret tokens have none: set false there).
    pub require_exp: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            algorithms: Algorithm::ALL.to_vec(),
            bound_issuer: None,
            bound_audiences: Vec::new(),
            refuse_unbound_audience: false,
            clock_skew_leeway: 60,
            expiration_leeway: 150,
            not_before_leeway: 150,
            require_exp: true,
        }
    }
}

/// The parts of a token, split and decoded but not yet trusted.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `header.payload`, the signed message.
    pub message: &'a str,
    pub signature: &'a str,
    pub claims: Claims,
}

/// Split and decode a token, refusing a disallowed algorithm before any key is involved.
pub(crate) fn parse<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Parsed<'a>, JwtError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header = decode_object(h).ok_or(JwtError::Malformed("header is not base64url JSON"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Malformed("header has no alg"))?;
    let alg = Algorithm::parse(alg)
        .filter(|a| allowed.contains(a))
        .ok_or(JwtError::Algorithm)?;
    if header.contains_key("crit") {
        // RFC 7515 4.1.11: unknown critical extensions must be refused; we know none.
        return Err(JwtError::Malformed("unsupported crit header"));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::Malformed("kid is not a string")),
    };
    if s.is_empty() {
        return Err(JwtError::Malformed("empty signature"));
    }
    let claims = decode_object(p).ok_or(JwtError::Malformed("payload is not base64url JSON"))?;
    Ok(Parsed {
        alg,
        kid,
        message: &token[..h.len() + 1 + p.len()],
        signature: s,
        claims,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Verify `token` against `keys` and `validation` at `now` (Unix seconds); the claims on success.
pub fn verify(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
    now: u64,
) -> Result<Claims, JwtError> {
    let parsed = parse(token, &validation.algorithms)?;
    verify_parsed(&parsed, keys)?;
    check_claims(&parsed.claims, validation, now)?;
    Ok(parsed.claims)
}

/// The current time in Unix seconds, for [`verify`].
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Check the signature with the keys that fit the token's `kid` and algorithm.
pub(crate) fn verify_parsed(parsed: &Parsed<'_>, keys: &KeySet) -> Result<(), JwtError> {
    let mut candidates = keys
        .candidates(parsed.kid.as_deref(), parsed.alg)
        .peekable();
    if candidates.peek().is_none() {
        return Err(JwtError::NoMatchingKey);
    }
    for key in candidates {
        // jsonwebtoken maps any ring failure (bad base64 signature included) to Err or false.
        if let Ok(true) = jsonwebtoken::crypto::verify(
            parsed.signature,
            parsed.message.as_bytes(),
            key.decoding_key(),
            parsed.alg.to_jsonwebtoken(),
        ) {
            return Ok(());
        }
    }
    Err(JwtError::BadSignature)
}

/// A NumericDate claim as whole seconds (fractions truncated; negative counts as 0).
fn time_claim(claims: &Claims, name: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64() {
                Ok(Some(if f <= 0.0 { 0 } else { f as u64 }))
            } else {
                Err(JwtError::BadTimeClaim(name))
            }
        }
        Some(_) => Err(JwtError::BadTimeClaim(name)),
    }
}

/// The `aud` claim as a list (a single string counts as a one-element list).
pub fn audiences(claims: &Claims) -> Result<Vec<&str>, JwtError> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(JwtError::ClaimType("aud".into())))
            .collect(),
        Some(_) => Err(JwtError::ClaimType("aud".into())),
    }
}

/// Time, issuer and audience checks of [`Validation`] on already verified claims.
pub fn check_claims(claims: &Claims, v: &Validation, now: u64) -> Result<(), JwtError> {
    let skew = v.clock_skew_leeway;
    match time_claim(claims, "exp")? {
        Some(exp) if now > exp.saturating_add(v.expiration_leeway).saturating_add(skew) => {
            return Err(JwtError::Expired)
        }
        None if v.require_exp => return Err(JwtError::MissingExpiry),
        _ => {}
    }
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if now.saturating_add(v.not_before_leeway).saturating_add(skew) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(iat) = time_claim(claims, "iat")? {
        if now.saturating_add(skew) < iat {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(want) = &v.bound_issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(want.as_str()) {
            return Err(JwtError::Issuer);
        }
    }
    let aud = audiences(claims)?;
    if v.bound_audiences.is_empty() {
        if v.refuse_unbound_audience && !aud.is_empty() {
            return Err(JwtError::Audience);
        }
    } else if !aud.iter().any(|a| v.bound_audiences.iter().any(|b| b == a)) {
        return Err(JwtError::Audience);
    }
    Ok(())
}

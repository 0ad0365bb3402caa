//! Public keys that verify tokens: from PEM (Vault's `pem_keys` / `jwt_validation_pubkeys`)
//! or from a JWKS document (`{"keys": [...]}`).
//!
//! PEM blocks: `PUBLIC KEY` (SubjectPublicKeyInfo: RSA, EC P-256/P-384, Ed25519) and
//! `RSA PUBLIC KEY` (PKCS#1), and `CERTIFICATE` (X.509: its subject public key is used, as
//! Vault's `ParsePublicKeyPEM` does; the certificate's dates, issuer and extensions are not
//! checked). Private keys are refused. JWKS: `kty` RSA,
//! EC (P-256, P-384) and OKP (Ed25519); keys with `use: "enc"`, symmetric (`oct`) keys and
//! unknown key types are skipped, as OIDC libraries do, so one odd key does not break a set.
//! RSA keys must be 2048 to 8192 bits (ring's limit), checked at verification.

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::{Algorithm, JwtError};

/// Which algorithms a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// One public key, with its optional `kid` and `alg` restriction (from a JWK).
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: KeyFamily,
    key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public material, but there is no use for it in logs.
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn family(&self) -> KeyFamily {
        self.family
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    fn fits(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// A set of verification keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

// DER bytes of the OIDs that name a SubjectPublicKeyInfo's algorithm (and EC curve).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The family named by an SPKI's AlgorithmIdentifier (its OIDs sit in the first bytes).
fn spki_family(der: &[u8]) -> Option<KeyFamily> {
    let head = &der[..der.len().min(32)];
    let has = |oid: &[u8]| {
        // The OID as a DER element: tag 6, short length, contents.
        let mut el = vec![0x06, oid.len() as u8];
        el.extend_from_slice(oid);
        head.windows(el.len()).any(|w| w == el.as_slice())
    };
    if has(OID_RSA) {
        Some(KeyFamily::Rsa)
    } else if has(OID_EC_PUBLIC_KEY) {
        if has(OID_P256) {
            Some(KeyFamily::EcP256)
        } else if has(OID_P384) {
            Some(KeyFamily::EcP384)
        } else {
            None
        }
    } else if has(OID_ED25519) {
        Some(KeyFamily::Ed25519)
    } else {
        None
    }
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

impl KeySet {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        KeySet { keys }
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if some key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Parse PEM public keys; each string may hold several blocks. Fails on the first block
    /// that is not a supported public key (index given, content never echoed).
    pub fn from_pem<S: AsRef<str>>(pems: &[S]) -> Result<Self, JwtError> {
        let mut keys = Vec::new();
        for (i, text) in pems.iter().enumerate() {
            let blocks = pem::parse_many(text.as_ref().as_bytes())
                .map_err(|_| JwtError::Key(format!("key {i}: not PEM")))?;
            if blocks.is_empty() {
                return Err(JwtError::Key(format!("key {i}: no PEM block")));
            }
            for block in blocks {
                keys.push(
                    pem_block_key(&block).map_err(|e| JwtError::Key(format!("key {i}: {e}")))?,
                );
            }
        }
        Ok(KeySet { keys })
    }

    /// Parse a JWKS document. Unusable keys are skipped; a document with no usable key fails.
    pub fn from_jwks(json: &[u8]) -> Result<Self, JwtError> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|_| JwtError::Key("JWKS is not JSON".into()))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwtError::Key("JWKS has no \"keys\" list".into()))?;
        let keys: Vec<PublicKey> = list.iter().filter_map(jwk_key).collect();
        if keys.is_empty() {
            return Err(JwtError::Key("JWKS holds no usable signing key".into()));
        }
        Ok(KeySet { keys })
    }

    /// Keys that may have signed a token with this `kid` and algorithm: with a `kid`, the keys
    /// carrying it plus keys that carry none (PEM keys); without, every key. Family must fit.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.fits(alg)
                && match (kid, k.kid.as_deref()) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    }
}

fn pem_block_key(block: &pem::Pem) -> Result<PublicKey, &'static str> {
    let text = pem::encode(block);
    let (family, key) = match block.tag() {
        "RSA PUBLIC KEY" => (
            KeyFamily::Rsa,
            DecodingKey::from_rsa_pem(text.as_bytes()).map_err(|_| "bad RSA public key")?,
        ),
        "PUBLIC KEY" => {
            let family = spki_family(block.contents()).ok_or("unsupported public key type")?;
            let key = match family {
                KeyFamily::Rsa => DecodingKey::from_rsa_pem(text.as_bytes()),
                KeyFamily::EcP256 | KeyFamily::EcP384 => DecodingKey::from_ec_pem(text.as_bytes()),
                KeyFamily::Ed25519 => DecodingKey::from_ed_pem(text.as_bytes()),
            }
            .map_err(|_| "bad public key")?;
            (family, key)
        }
        "CERTIFICATE" => return pem_block_key(&pem::Pem::new("PUBLIC KEY", cert_spki(block)?)),
        t if t.contains("PRIVATE") => return Err("a private key was given; give the public key"),
        _ => return Err("unsupported PEM block"),
    };
    Ok(PublicKey {
        kid: None,
        alg: None,
        family,
        key,
    })
}

/// The DER SubjectPublicKeyInfo of a `CERTIFICATE` block.
fn cert_spki(block: &pem::Pem) -> Result<Vec<u8>, &'static str> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(block.contents()).map_err(|_| "bad certificate")?;
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| "bad certificate public key")
}

/// One JWK as a verification key, or `None` if it is not usable for signatures.
fn jwk_key(jwk: &Value) -> Option<PublicKey> {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match s("alg") {
        None => None,
        // A key pinned to an algorithm we refuse (HS256, PS256...) cannot verify anything.
        Some(a) => Some(Algorithm::parse(a)?),
    };
    let (family, key) = match s("kty")? {
        "RSA" => {
            let (n, e) = (b64url(s("n")?)?, b64url(s("e")?)?);
            (KeyFamily::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (family, len) = match s("crv")? {
                "P-256" => (KeyFamily::EcP256, 32),
                "P-384" => (KeyFamily::EcP384, 48),
                _ => return None,
            };
            let (x, y) = (b64url(s("x")?)?, b64url(s("y")?)?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (family, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if s("crv")? != "Ed25519" {
                return None;
            }
            let x = b64url(s("x")?)?;
            if x.len() != 32 {
                return None;
            }
            (KeyFamily::Ed25519, DecodingKey::from_ed_der(&x))
        }
        _ => return None,
    };
    if alg.is_some_and(|a| a.family() != family) {
        return None;
    }
    Some(PublicKey {
        kid: s("kid").map(str::to_string),
        alg,
        family,
        key,
    })
}

//! JWT/JWS parsing and verification (store/src/auth/jws/), as the jwt, kubernetes and gcp
//! auth methods use it, and JWKS documents.
//!
//! Input: a mode byte, then the bytes. Checks: no panic; no token is accepted that the test
//! key did not sign; a token the key signed over any payload verifies exactly when its
//! payload is a JSON object with good claims, and gives back that object; any one bit changed
//! in it makes it fail.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hush_store::auth::jws::{
    check_claims, verify, Claims, JwtError, KeySet, Validation, MAX_TOKEN_LEN,
};
use jsonwebtoken::{crypto, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A key made for these targets only (`openssl genpkey -algorithm ed25519`).
const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIM7FvQ1pYtQVF3jm/HfwhVj1CGpRX/8fu98qhWwcsgSq
-----END PRIVATE KEY-----
";
const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEANiXW68AokA4zQs+mCXGayaQqbEuJFrYwnYQK82zXvfM=
-----END PUBLIC KEY-----
";
/// Fixed "now" (2025-01-01) so runs repeat.
const NOW: u64 = 1_735_689_600;

fn keys() -> &'static (KeySet, EncodingKey) {
    static KEYS: OnceLock<(KeySet, EncodingKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            KeySet::from_pem(&[PUBLIC]).expect("public key"),
            EncodingKey::from_ed_pem(PRIVATE.as_bytes()).expect("private key"),
        )
    })
}

fn validation() -> Validation {
    Validation {
        require_exp: false,
        ..Validation::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (keyset, signing) = keys();
    match mode % 3 {
        // Any text as a token: never accepted (it is not signed by the key).
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                assert!(verify(token, keyset, &validation(), NOW).is_err());
            }
        }
        // A JWKS document: parsed or refused, never a panic.
        1 => {
            let _ = KeySet::from_jwks(rest);
        }
        // A signed token over the payload `rest[2..]`; the bit at `rest[0..2]` flipped.
        _ => {
            let [hi, lo, payload @ ..] = rest else {
                return;
            };
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
            let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
            let signature =
                crypto::sign(message.as_bytes(), signing, jsonwebtoken::Algorithm::EdDSA)
                    .expect("signing");
            let token = format!("{message}.{signature}");
            let result = verify(&token, keyset, &validation(), NOW);
            if token.len() > MAX_TOKEN_LEN {
                assert_eq!(result, Err(JwtError::Malformed("token too long")));
                return;
            }
            match serde_json::from_slice::<Value>(payload) {
                Ok(Value::Object(claims)) => match check_claims(&claims, &validation(), NOW) {
                    Ok(()) => assert_eq!(result.as_ref(), Ok::<&Claims, &JwtError>(&claims)),
                    Err(e) => assert_eq!(result, Err(e)),
                },
                _ => assert!(matches!(result, Err(JwtError::Malformed(_)))),
            }
            let bit = usize::from(u16::from_be_bytes([*hi, *lo])) % (token.len() * 8);
            let mut changed = token.clone().into_bytes();
            changed[bit / 8] ^= 1 << (bit % 8);
            if let Ok(changed) = std::str::from_utf8(&changed) {
                if changed.trim() != token {
                    assert!(
                        verify(changed, keyset, &validation(), NOW).is_err(),
                        "bit {bit} flipped and still accepted"
                    );
                }
            }
        }
    }
});

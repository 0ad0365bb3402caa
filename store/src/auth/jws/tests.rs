//! Tests of token verification and key parsing, with keys made at test time (RSA by the
//! `openssl` CLI, EC and Ed25519 by rcgen).

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

pub(crate) const NOW: u64 = 1_700_000_000;

/// A private key to sign with and its public forms.
pub(crate) struct TestKey {
    pub alg: jsonwebtoken::Algorithm,
    pub private_pem: String,
    pub public_pem: String,
    /// The key as a JWK (without kid).
    pub jwk: Value,
}

impl TestKey {
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_string);
        let key = match self.alg {
            jsonwebtoken::Algorithm::ES256 | jsonwebtoken::Algorithm::ES384 => {
                EncodingKey::from_ec_pem(self.private_pem.as_bytes())
            }
            jsonwebtoken::Algorithm::EdDSA => EncodingKey::from_ed_pem(self.private_pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(self.private_pem.as_bytes()),
        }
        .unwrap();
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    pub fn jwk_with(&self, kid: &str) -> Value {
        let mut j = self.jwk.clone();
        j["kid"] = json!(kid);
        j
    }

    pub fn keyset(&self) -> KeySet {
        KeySet::from_pem(&[&self.public_pem]).unwrap()
    }
}

fn openssl(args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl CLI");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(i) = input {
        stdin.write_all(i.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64_json(v: &Value) -> String {
    b64(v.to_string().as_bytes())
}

fn make_rsa(alg: jsonwebtoken::Algorithm) -> TestKey {
    let private_pem = openssl(&["genrsa", "-traditional", "2048"], None);
    let public_pem = openssl(&["rsa", "-pubout"], Some(&private_pem));
    let modulus = openssl(&["rsa", "-noout", "-modulus"], Some(&private_pem));
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    TestKey {
        alg,
        jwk: json!({"kty": "RSA", "n": b64(&n), "e": b64(&[1, 0, 1])}),
        private_pem,
        public_pem,
    }
}

fn make_rcgen(alg: jsonwebtoken::Algorithm) -> TestKey {
    let (rc_alg, crv) = match alg {
        jsonwebtoken::Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "P-256"),
        jsonwebtoken::Algorithm::ES384 => (&rcgen::PKCS_ECDSA_P384_SHA384, "P-384"),
        _ => (&rcgen::PKCS_ED25519, "Ed25519"),
    };
    let kp = rcgen::KeyPair::generate_for(rc_alg).unwrap();
    let raw = kp.public_key_raw();
    let jwk = if crv == "Ed25519" {
        json!({"kty": "OKP", "crv": crv, "x": b64(raw)})
    } else {
        let len = (raw.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "x": b64(&raw[1..1 + len]), "y": b64(&raw[1 + len..])})
    };
    TestKey {
        alg,
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
        jwk,
    }
}

/// Keys are made once per test binary (RSA generation is slow-ish).
pub(crate) fn rsa_a() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rsa(jsonwebtoken::Algorithm::RS256))
}
pub(crate) fn rsa_b() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rsa(jsonwebtoken::Algorithm::RS256))
}
pub(crate) fn es256() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rcgen(jsonwebtoken::Algorithm::ES256))
}
/// Another P-256 key, for "signed by a foreign key of the right kind".
pub(crate) fn es256_other() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rcgen(jsonwebtoken::Algorithm::ES256))
}
fn es384() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rcgen(jsonwebtoken::Algorithm::ES384))
}
fn ed25519() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| make_rcgen(jsonwebtoken::Algorithm::EdDSA))
}

/// The same RSA key signing with another hash.
fn with_alg(k: &TestKey, alg: jsonwebtoken::Algorithm) -> TestKey {
    TestKey {
        alg,
        private_pem: k.private_pem.clone(),
        public_pem: k.public_pem.clone(),
        jwk: k.jwk.clone(),
    }
}

pub(crate) fn claims() -> Value {
    json!({"iss": "https://issuer.test", "sub": "alice", "aud": "hush", "exp": NOW + 300, "iat": NOW - 10})
}

fn strict() -> Validation {
    Validation {
        clock_skew_leeway: 0,
        expiration_leeway: 0,
        not_before_leeway: 0,
        ..Validation::default()
    }
}

fn unsigned(header: Value, payload: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        sig
    )
}

#[test]
fn every_algorithm_verifies_with_its_key() {
    let rs384 = with_alg(rsa_a(), jsonwebtoken::Algorithm::RS384);
    let rs512 = with_alg(rsa_a(), jsonwebtoken::Algorithm::RS512);
    for k in [rsa_a(), &rs384, &rs512, es256(), es384(), ed25519()] {
        let token = k.sign(None, &claims());
        let got = verify(&token, &k.keyset(), &Validation::default(), NOW)
            .unwrap_or_else(|e| panic!("{:?}: {e}", k.alg));
        assert_eq!(got["sub"], "alice");
        // ... and every other key family refuses it.
        for other in [rsa_b(), es256(), es384(), ed25519()] {
            if other.public_pem != k.public_pem {
                assert!(verify(&token, &other.keyset(), &Validation::default(), NOW).is_err());
            }
        }
    }
}

#[test]
fn pkcs1_rsa_public_key_pem_works() {
    let pkcs1 = openssl(&["rsa", "-RSAPublicKey_out"], Some(&rsa_a().private_pem));
    assert!(pkcs1.contains("BEGIN RSA PUBLIC KEY"));
    let keys = KeySet::from_pem(&[pkcs1]).unwrap();
    let token = rsa_a().sign(None, &claims());
    verify(&token, &keys, &Validation::default(), NOW).unwrap();
    let foreign = rsa_b().sign(None, &claims());
    assert_eq!(
        verify(&foreign, &keys, &Validation::default(), NOW),
        Err(JwtError::BadSignature)
    );
}

/// A self-signed certificate for `k`'s key (RSA by the openssl CLI, the others by rcgen).
pub(crate) fn cert_for(k: &TestKey) -> String {
    if let Ok(kp) = rcgen::KeyPair::from_pem(&k.private_pem) {
        let params = rcgen::CertificateParams::new(vec!["issuer.test".into()]).unwrap();
        return params.self_signed(&kp).unwrap().pem();
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &k.private_pem).unwrap();
    let key = key.to_str().unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=hush-test",
            "-days",
            "2",
        ],
        None,
    )
}

#[test]
fn certificates_verify_with_their_public_key() {
    for k in [rsa_a(), es256(), es384(), ed25519()] {
        let cert = cert_for(k);
        assert!(cert.contains("BEGIN CERTIFICATE"));
        let keys = KeySet::from_pem(&[&cert]).unwrap_or_else(|e| panic!("{:?}: {e}", k.alg));
        assert_eq!(keys.len(), 1);
        verify(&k.sign(None, &claims()), &keys, &Validation::default(), NOW)
            .unwrap_or_else(|e| panic!("{:?}: {e}", k.alg));
    }
    // A token signed by another key of the same kind is refused.
    let keys = KeySet::from_pem(&[cert_for(rsa_a())]).unwrap();
    assert_eq!(
        verify(
            &rsa_b().sign(None, &claims()),
            &keys,
            &Validation::default(),
            NOW
        ),
        Err(JwtError::BadSignature)
    );
    // Certificates and public keys mix, several to a string.
    let mixed = format!("{}{}", cert_for(es256()), rsa_b().public_pem);
    let keys = KeySet::from_pem(&[mixed]).unwrap();
    assert_eq!(keys.len(), 2);
    for k in [es256(), rsa_b()] {
        verify(&k.sign(None, &claims()), &keys, &Validation::default(), NOW).unwrap();
    }
}

#[test]
fn several_pem_keys_any_may_sign() {
    let both = format!("{}{}", rsa_b().public_pem, es256().public_pem);
    let keys = KeySet::from_pem(&[both, rsa_a().public_pem.clone()]).unwrap();
    assert_eq!(keys.len(), 3);
    for k in [rsa_a(), rsa_b(), es256()] {
        verify(&k.sign(None, &claims()), &keys, &Validation::default(), NOW).unwrap();
    }
    assert_eq!(
        verify(
            &es384().sign(None, &claims()),
            &keys,
            &Validation::default(),
            NOW
        ),
        Err(JwtError::NoMatchingKey)
    );
}

#[test]
fn alg_none_is_refused() {
    let keys = rsa_a().keyset();
    for sig in ["", "AAAA"] {
        let t = unsigned(json!({"alg": "none", "typ": "JWT"}), &claims(), sig);
        let err = verify(&t, &keys, &Validation::default(), NOW).unwrap_err();
        assert!(
            matches!(err, JwtError::Algorithm | JwtError::Malformed(_)),
            "{err:?}"
        );
    }
    let t = unsigned(json!({"alg": "none"}), &claims(), "AAAA");
    assert_eq!(
        verify(&t, &keys, &Validation::default(), NOW),
        Err(JwtError::Algorithm)
    );
    for alg in ["None", "NONE", "PS256", "rs256", ""] {
        let t = unsigned(json!({ "alg": alg }), &claims(), "AAAA");
        assert_eq!(
            verify(&t, &keys, &Validation::default(), NOW),
            Err(JwtError::Algorithm),
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let k = rsa_a();
    let keys = k.keyset();
    for secret in [k.public_pem.as_bytes().to_vec(), {
        // Also the DER bytes a naive library would use as the HMAC secret.
        pem::parse(k.public_pem.as_bytes())
            .unwrap()
            .contents()
            .to_vec()
    }] {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let t = jsonwebtoken::encode(
                &Header::new(alg),
                &claims(),
                &EncodingKey::from_secret(&secret),
            )
            .unwrap();
            assert_eq!(
                verify(&t, &keys, &Validation::default(), NOW),
                Err(JwtError::Algorithm)
            );
        }
    }
}

#[test]
fn algorithm_outside_the_validation_list_is_refused() {
    let v = Validation {
        algorithms: vec![Algorithm::RS256],
        ..Validation::default()
    };
    let keys = es256().keyset();
    let t = es256().sign(None, &claims());
    assert_eq!(verify(&t, &keys, &v, NOW), Err(JwtError::Algorithm));
    verify(&t, &keys, &Validation::default(), NOW).unwrap();
}

#[test]
fn foreign_key_and_tampering_fail_the_signature() {
    let keys = rsa_a().keyset();
    let foreign = rsa_b().sign(None, &claims());
    assert_eq!(
        verify(&foreign, &keys, &Validation::default(), NOW),
        Err(JwtError::BadSignature)
    );
    let ec_foreign = make_rcgen(jsonwebtoken::Algorithm::ES256).sign(None, &claims());
    assert_eq!(
        verify(&ec_foreign, &es256().keyset(), &Validation::default(), NOW),
        Err(JwtError::BadSignature)
    );

    let good = rsa_a().sign(None, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims();
    evil["sub"] = json!("root");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(evil.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        verify(&tampered, &keys, &Validation::default(), NOW),
        Err(JwtError::BadSignature)
    );
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], "not*base64");
    assert_eq!(
        verify(&bad_sig, &keys, &Validation::default(), NOW),
        Err(JwtError::BadSignature)
    );
    verify(&good, &keys, &Validation::default(), NOW).unwrap();
}

#[test]
fn malformed_tokens() {
    let keys = rsa_a().keyset();
    let v = Validation::default();
    let good = rsa_a().sign(None, &claims());
    let p: Vec<&str> = good.split('.').collect();
    let cases = [
        String::new(),
        "abc".into(),
        format!("{}.{}", p[0], p[1]),
        format!("{good}.extra"),
        format!("{}!.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.", p[0], p[1]),
        format!("{}.{}.{}", p[0], b64(b"[1,2]"), p[2]),
        format!("{}.{}.{}", b64(b"\"RS256\""), p[1], p[2]),
        unsigned(json!({"alg": "RS256", "crit": ["exp"]}), &claims(), p[2]),
        unsigned(json!({"alg": "RS256", "kid": 7}), &claims(), p[2]),
        "a".repeat(MAX_TOKEN_LEN + 1),
    ];
    for t in cases {
        let err = verify(&t, &keys, &v, NOW).unwrap_err();
        assert!(matches!(err, JwtError::Malformed(_)), "{err:?}");
    }
}

fn check_at(claims: Value, v: &Validation, now: u64) -> Result<(), JwtError> {
    check_claims(claims.as_object().unwrap(), v, now)
}

#[test]
fn expiry_and_not_before_with_leeway_edges() {
    let d = Validation::default(); // 60 s skew, 150 s exp and nbf leeway
    let exp = json!({"exp": NOW});
    assert_eq!(check_at(exp.clone(), &d, NOW + 210), Ok(()));
    assert_eq!(check_at(exp.clone(), &d, NOW + 211), Err(JwtError::Expired));
    assert_eq!(check_at(exp.clone(), &strict(), NOW), Ok(()));
    assert_eq!(
        check_at(exp.clone(), &strict(), NOW + 1),
        Err(JwtError::Expired)
    );
    let nbf = json!({"exp": NOW + 10_000, "nbf": NOW});
    assert_eq!(check_at(nbf.clone(), &d, NOW - 210), Ok(()));
    assert_eq!(
        check_at(nbf.clone(), &d, NOW - 211),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        check_at(nbf.clone(), &strict(), NOW - 1),
        Err(JwtError::NotYetValid)
    );
    let iat = json!({"exp": NOW + 10_000, "iat": NOW});
    assert_eq!(check_at(iat.clone(), &d, NOW - 60), Ok(()));
    assert_eq!(check_at(iat, &d, NOW - 61), Err(JwtError::NotYetValid));
    // Fractional NumericDate and a string date.
    assert_eq!(
        check_at(json!({"exp": NOW as f64 + 0.5}), &strict(), NOW),
        Ok(())
    );
    assert_eq!(
        check_at(json!({"exp": "tomorrow"}), &d, NOW),
        Err(JwtError::BadTimeClaim("exp"))
    );
    // Through verify, with a real signature.
    let mut c = claims();
    c["exp"] = json!(NOW - 1);
    let t = es256().sign(None, &c);
    assert_eq!(
        verify(&t, &es256().keyset(), &strict(), NOW),
        Err(JwtError::Expired)
    );
    assert!(verify(&t, &es256().keyset(), &Validation::default(), NOW).is_ok());
}

#[test]
fn exp_required_unless_disabled() {
    let c = json!({"sub": "x"});
    assert_eq!(
        check_at(c.clone(), &Validation::default(), NOW),
        Err(JwtError::MissingExpiry)
    );
    let lax = Validation {
        require_exp: false,
        ..Validation::default()
    };
    assert_eq!(check_at(c, &lax, NOW), Ok(()));
}

#[test]
fn issuer_binding() {
    let v = Validation {
        bound_issuer: Some("https://issuer.test".into()),
        ..Validation::default()
    };
    assert_eq!(check_at(claims(), &v, NOW), Ok(()));
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert_eq!(check_at(c.clone(), &v, NOW), Err(JwtError::Issuer));
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(check_at(c, &v, NOW), Err(JwtError::Issuer));
}

#[test]
fn audience_binding() {
    let v = Validation {
        bound_audiences: vec!["vault".into(), "hush".into()],
        ..Validation::default()
    };
    let with = |aud: Value| {
        let mut c = claims();
        c["aud"] = aud;
        c
    };
    assert_eq!(check_at(with(json!("hush")), &v, NOW), Ok(()));
    assert_eq!(check_at(with(json!(["x", "vault"])), &v, NOW), Ok(()));
    assert_eq!(
        check_at(with(json!("other")), &v, NOW),
        Err(JwtError::Audience)
    );
    assert_eq!(
        check_at(with(json!(["a", "b"])), &v, NOW),
        Err(JwtError::Audience)
    );
    assert_eq!(check_at(with(json!([])), &v, NOW), Err(JwtError::Audience));
    assert_eq!(
        check_at(with(Value::Null), &v, NOW),
        Err(JwtError::Audience)
    );
    assert_eq!(
        check_at(with(json!(5)), &v, NOW),
        Err(JwtError::ClaimType("aud".into()))
    );
    // No bound audiences: accepted unless the method refuses an unbound aud (jwt does).
    assert_eq!(check_at(claims(), &Validation::default(), NOW), Ok(()));
    let jwt_style = Validation {
        refuse_unbound_audience: true,
        ..Validation::default()
    };
    assert_eq!(check_at(claims(), &jwt_style, NOW), Err(JwtError::Audience));
    assert_eq!(check_at(with(Value::Null), &jwt_style, NOW), Ok(()));
}

#[test]
fn jwks_selects_by_kid() {
    let jwks = json!({"keys": [
        rsa_a().jwk_with("a"),
        rsa_b().jwk_with("b"),
        es384().jwk_with("e"),
        ed25519().jwk_with("d"),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
    ]});
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 4);
    let v = Validation::default();
    verify(&rsa_b().sign(Some("b"), &claims()), &keys, &v, NOW).unwrap();
    verify(&rsa_a().sign(Some("a"), &claims()), &keys, &v, NOW).unwrap();
    verify(&es384().sign(Some("e"), &claims()), &keys, &v, NOW).unwrap();
    verify(&ed25519().sign(Some("d"), &claims()), &keys, &v, NOW).unwrap();
    // Without kid, every key of the family is tried.
    verify(&rsa_b().sign(None, &claims()), &keys, &v, NOW).unwrap();
    // The kid names a key that did not sign.
    assert_eq!(
        verify(&rsa_b().sign(Some("a"), &claims()), &keys, &v, NOW),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        verify(&rsa_a().sign(Some("nope"), &claims()), &keys, &v, NOW),
        Err(JwtError::NoMatchingKey)
    );
    // Skipped keys are not usable.
    assert_eq!(
        verify(&rsa_a().sign(Some("enc"), &claims()), &keys, &v, NOW),
        Err(JwtError::NoMatchingKey)
    );
}

#[test]
fn jwk_alg_pins_the_algorithm() {
    let mut jwk = rsa_a().jwk_with("a");
    jwk["alg"] = json!("RS256");
    let keys = KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
    let rs384 = with_alg(rsa_a(), jsonwebtoken::Algorithm::RS384);
    assert_eq!(
        verify(
            &rs384.sign(Some("a"), &claims()),
            &keys,
            &Validation::default(),
            NOW
        ),
        Err(JwtError::NoMatchingKey)
    );
    verify(
        &rsa_a().sign(Some("a"), &claims()),
        &keys,
        &Validation::default(),
        NOW,
    )
    .unwrap();
    // A JWK pinned to HS256 is dropped.
    let mut hs = rsa_a().jwk_with("h");
    hs["alg"] = json!("HS256");
    assert!(KeySet::from_jwks(json!({ "keys": [hs] }).to_string().as_bytes()).is_err());
}

#[test]
fn bad_key_material_is_refused_without_echo() {
    // A CERTIFICATE block whose contents are not a certificate.
    let cert = pem::encode(&pem::Pem::new(
        "CERTIFICATE",
        b"MIInot a certificate".to_vec(),
    ));
    let cases = [
        "not a pem at all".to_string(),
        cert,
        rsa_a().private_pem.clone(),
        es256().private_pem.clone(),
    ];
    for c in &cases {
        let err = KeySet::from_pem(&[c]).unwrap_err();
        assert!(matches!(err, JwtError::Key(_)), "{err:?}");
        assert!(!err.to_string().contains("MII"), "{err}");
    }
    for doc in [
        "nope",
        "{}",
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#,
    ] {
        assert!(matches!(
            KeySet::from_jwks(doc.as_bytes()),
            Err(JwtError::Key(_))
        ));
    }
}

#[test]
fn error_messages_never_echo_the_token() {
    let mut c = claims();
    c["sub"] = json!("SECRET-SUBJECT");
    let t = rsa_b().sign(None, &c);
    for result in [
        verify(&t, &rsa_a().keyset(), &Validation::default(), NOW),
        verify(&t[1..], &rsa_a().keyset(), &Validation::default(), NOW),
    ] {
        let msg = result.unwrap_err().to_string();
        assert!(!msg.contains("SECRET") && !msg.contains(&t[..20]), "{msg}");
    }
    assert!(JwtError::BadSignature.is_token_error());
    assert!(!JwtError::Fetch("x".into()).is_token_error());
}

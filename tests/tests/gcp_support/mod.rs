//! A local "Google" for the gcp tests: an HTTPS server with a test CA serving the OAuth2
//! certificates (GCE identity tokens) and one service account's JWKS (iam tokens), keys made
//! in the test, and the hushd setup that points the `gcp` method at it.

#![allow(dead_code)] // each test file uses its part

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hush_tests::https::JsonServer;
use hush_tests::Hushd;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

pub const SA: &str = "web@proj.iam.gserviceaccount.com";
pub const VM_SA: &str = "vm-sa@proj.iam.gserviceaccount.com";
pub const CERTS: &str = "/oauth2/v3/certs";

pub fn sa_keys_path(email: &str) -> String {
    format!("/service_accounts/v1/metadata/jwk/{email}")
}

/// A P-256 signing key and its JWK (`kid` set at signing and serving).
pub struct Key {
    private_pem: String,
    pub public_pem: String,
    jwk: Value,
}

impl Key {
    pub fn new() -> Key {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = kp.public_key_raw();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        Key {
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
            private_pem: kp.serialize_pem(),
            public_pem: kp.public_key_pem(),
        }
    }

    pub fn jwks(&self, kid: &str) -> String {
        let mut k = self.jwk.clone();
        k["kid"] = json!(kid);
        json!({"keys": [k]}).to_string()
    }

    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.to_string());
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Google's server and keys: `google` signs GCE tokens (`g1`), `sa` is SA's own key (`sa1`).
pub struct FakeGoogle {
    pub server: JsonServer,
    pub google: Key,
    pub sa: Key,
}

impl FakeGoogle {
    pub async fn start() -> FakeGoogle {
        let server = JsonServer::start().await;
        let (google, sa) = (Key::new(), Key::new());
        server.set(CERTS, google.jwks("g1"));
        server.set(&sa_keys_path(SA), sa.jwks("sa1"));
        FakeGoogle { server, google, sa }
    }

    /// An iam JWT for `role`, as `signJwt` makes it for SA.
    pub fn iam_token(&self, role: &str, patch: Value) -> String {
        let now = now();
        let c =
            json!({"sub": SA, "aud": format!("vault/{role}"), "exp": now + 600, "iat": now - 5});
        self.sa.sign("sa1", &merge(c, patch))
    }

    /// The claims of a GCE identity token (format=full) for `audience`, VM_SA's instance.
    pub fn gce_claims(audience: &str) -> Value {
        let now = now();
        json!({"iss": "https://accounts.google.com", "aud": audience, "azp": "1122",
               "sub": "1122", "email": VM_SA, "email_verified": true,
               "exp": now + 3600, "iat": now - 5,
               "google": {"compute_engine": {"project_id": "proj", "project_number": 4455,
                   "zone": "us-central1-a", "instance_id": "987", "instance_name": "vm-1",
                   "instance_creation_timestamp": 1_700_000_000u64}}})
    }

    /// A GCE identity token for `role`, signed by Google.
    pub fn gce_token(&self, role: &str, patch: Value) -> String {
        let c = Self::gce_claims(&format!("http://vault/{role}"));
        self.google.sign("g1", &merge(c, patch))
    }

    /// Enable `gcp` on `h`, point it at this server, and make roles `web` (iam, SA) and `vm`
    /// (gce: project proj, zone us-central1-a, VM_SA), both with policy `app`.
    pub async fn setup(&self, h: &Hushd) {
        for (method, path, body) in [
            ("POST", "sys/auth/gcp", json!({"type": "gcp"})),
            (
                "POST",
                "auth/gcp/config",
                json!({"custom_endpoint": {"api": self.server.base},
                       "custom_endpoint_ca_pem": self.server.ca_pem,
                       "credentials": "{\"private_key\": \"never-shown\"}"}),
            ),
            (
                "POST",
                "auth/gcp/role/web",
                json!({"type": "iam", "bound_service_accounts": [SA], "bound_projects": ["proj"],
                       "token_policies": ["app"], "token_ttl": "15m"}),
            ),
            (
                "POST",
                "auth/gcp/role/vm",
                json!({"type": "gce", "bound_projects": "proj", "bound_zones": "us-central1-a",
                       "bound_service_accounts": VM_SA, "token_policies": "app"}),
            ),
            (
                "PUT",
                "sys/policies/acl/app",
                json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
            ),
        ] {
            let (s, b) = h.call(method, path, Some(body)).await;
            assert!(s == 200 || s == 204, "{path}: {s} {b}");
        }
    }
}

/// `base` with the top-level keys of `patch` replaced (`null` removes one).
pub fn merge(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

//! Building audit entries in Vault's shape, with every sensitive string replaced by
//! `hmac-sha256:<hex>` under the device's salt.
//!
//! What is hashed: every string inside request and response data (recursively; object keys are
//! kept), every client token, and accessors (unless the device sets `hmac_accessor=false`).
//! What is kept in clear, as in Vault: paths, operations, policies, display names, token
//! metadata, lease ids, warnings and error messages (which by contract hold no secret).

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::logical::{Auth, LogicalError, Request, Response};

/// A device's 32-byte HMAC key.
pub(crate) struct Salt(Zeroizing<[u8; 32]>);

impl Salt {
    pub(crate) fn random() -> Self {
        Salt(Zeroizing::new(rand::random::<[u8; 32]>()))
    }

    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s, &mut key[..]).ok()?;
        Some(Salt(key))
    }

    pub(crate) fn to_hex(&self) -> String {
        hex::encode(&self.0[..])
    }

    /// `hmac-sha256:<hex>` of `input`.
    pub(crate) fn hmac(&self, input: &str) -> String {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(input.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt([redacted])")
    }
}

/// Formats entries for one device.
pub(crate) struct Formatter<'a> {
    pub salt: &'a Salt,
    pub hmac_accessor: bool,
}

/// RFC 3339 time with nanoseconds, as Vault writes it.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

impl Formatter<'_> {
    fn accessor(&self, accessor: &str) -> Value {
        Value::String(self.accessor_as_written(accessor))
    }

    /// An accessor as this device writes it: HMAC'd unless `hmac_accessor=false`.
    pub(crate) fn accessor_as_written(&self, accessor: &str) -> String {
        if self.hmac_accessor && !accessor.is_empty() {
            self.salt.hmac(accessor)
        } else {
            accessor.to_string()
        }
    }

    /// Replace every string inside `v` by its HMAC; keys stay as they are.
    pub(crate) fn hash_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.salt.hmac(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.hash_value(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.hash_value(i)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn hashed_map(&self, data: &Map<String, Value>) -> Value {
        let mut v = Value::Object(data.clone());
        self.hash_value(&mut v);
        v
    }

    /// The `auth` section: who made the request.
    fn auth_section(&self, req: &Request) -> Value {
        let mut auth = Map::new();
        if let Some(token) = &req.client_token {
            auth.insert(
                "client_token".into(),
                self.salt.hmac(token.expose_secret()).into(),
            );
        }
        if let Some(entry) = &req.token_entry {
            auth.insert("accessor".into(), self.accessor(&entry.accessor));
            auth.insert("display_name".into(), entry.display_name.clone().into());
            auth.insert("policies".into(), json!(entry.policies));
            auth.insert("token_policies".into(), json!(entry.policies));
            let meta = if entry.meta.is_empty() {
                Value::Null
            } else {
                json!(entry.meta)
            };
            auth.insert("metadata".into(), meta);
            auth.insert("entity_id".into(), entry.entity_id.clone().into());
            auth.insert("token_type".into(), entry.token_type.clone().into());
            auth.insert("token_ttl".into(), entry.ttl.into());
            auth.insert(
                "token_issue_time".into(),
                entry
                    .creation_time
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
                    .into(),
            );
        }
        Value::Object(auth)
    }

    fn request_section(&self, req: &Request) -> Value {
        let mut r = Map::new();
        r.insert("id".into(), req.id.clone().into());
        r.insert("operation".into(), req.operation.as_str().into());
        r.insert("mount_point".into(), req.mount_point.clone().into());
        r.insert("mount_type".into(), req.mount_type.clone().into());
        if let Some(token) = &req.client_token {
            r.insert(
                "client_token".into(),
                self.salt.hmac(token.expose_secret()).into(),
            );
        }
        if let Some(entry) = &req.token_entry {
            r.insert(
                "client_token_accessor".into(),
                self.accessor(&entry.accessor),
            );
        }
        r.insert("namespace".into(), json!({ "id": "root" }));
        r.insert("path".into(), req.path.clone().into());
        if !req.data.is_empty() {
            r.insert("data".into(), self.hashed_map(&req.data));
        }
        if let Some(addr) = req.remote_addr {
            r.insert("remote_address".into(), addr.to_string().into());
        }
        Value::Object(r)
    }

    /// `auth` of a response (token creation, login).
    fn response_auth(&self, a: &Auth) -> Value {
        let meta = match &a.metadata {
            Some(m) if !m.is_empty() => json!(m),
            _ => Value::Null,
        };
        json!({
            "client_token": self.salt.hmac(a.client_token.expose_secret()),
            "accessor": self.accessor(&a.accessor),
            "policies": a.policies,
            "token_policies": a.token_policies,
            "metadata": meta,
            "entity_id": a.entity_id,
            "token_type": a.token_type,
            "token_ttl": a.lease_duration,
            "renewable": a.renewable,
            "orphan": a.orphan,
            "num_uses": a.num_uses,
        })
    }

    fn response_section(&self, req: &Request, resp: Option<&Response>) -> Value {
        let mut r = Map::new();
        r.insert("mount_point".into(), req.mount_point.clone().into());
        r.insert("mount_type".into(), req.mount_type.clone().into());
        let Some(resp) = resp else {
            return Value::Object(r);
        };
        if let Some(auth) = &resp.auth {
            r.insert("auth".into(), self.response_auth(auth));
        }
        if let Some(lease) = &resp.lease {
            r.insert(
                "secret".into(),
                json!({ "lease_id": lease.lease_id, "lease_duration": lease.lease_duration }),
            );
        }
        if let Some(data) = &resp.data {
            r.insert("data".into(), self.hashed_map(data));
        } else if let Some(raw) = &resp.raw {
            // Bodies sent as-is (sys/init, sys/unseal) can hold keys: hash them the same way.
            let mut raw = raw.clone();
            self.hash_value(&mut raw);
            r.insert("data".into(), raw);
        }
        if let Some(w) = &resp.wrap_info {
            // As Vault: the wrap_info is logged (token HMAC'd), never the wrapped answer.
            let wrapped = if w.wrapped_accessor.is_empty() {
                Value::from("")
            } else {
                self.accessor(&w.wrapped_accessor)
            };
            r.insert(
                "wrap_info".into(),
                json!({
                    "token": self.salt.hmac(w.token.expose_secret()),
                    "accessor": self.accessor(&w.accessor),
                    "ttl": w.ttl,
                    "creation_time": w.creation_time.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "creation_path": w.creation_path,
                    "wrapped_accessor": wrapped,
                }),
            );
        }
        if !resp.warnings.is_empty() {
            r.insert("warnings".into(), json!(resp.warnings));
        }
        Value::Object(r)
    }

    /// The entry written when a request arrives.
    pub(crate) fn request_entry(&self, req: &Request, time: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("time".into(), time.into());
        m.insert("type".into(), "request".into());
        m.insert("auth".into(), self.auth_section(req));
        m.insert("request".into(), self.request_section(req));
        m.insert("error".into(), "".into());
        m
    }

    /// An entry of type `kind` about `req` (who sent it, where), with `body` in clear under
    /// `field`.
    pub(crate) fn typed_entry(
        &self,
        req: &Request,
        time: &str,
        kind: &str,
        field: &str,
        body: &Value,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("time".into(), time.into());
        m.insert("type".into(), kind.into());
        m.insert("auth".into(), self.auth_section(req));
        let mut request = Map::new();
        request.insert("id".into(), req.id.clone().into());
        request.insert("path".into(), req.path.clone().into());
        if let Some(addr) = req.remote_addr {
            request.insert("remote_address".into(), addr.to_string().into());
        }
        m.insert("request".into(), Value::Object(request));
        m.insert(field.into(), body.clone());
        m
    }

    /// The entry written when a request is answered (or failed).
    pub(crate) fn response_entry(
        &self,
        req: &Request,
        resp: Result<&Response, &LogicalError>,
        time: &str,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("time".into(), time.into());
        m.insert("type".into(), "response".into());
        m.insert("auth".into(), self.auth_section(req));
        m.insert("request".into(), self.request_section(req));
        let mut response = self.response_section(req, resp.ok());
        // Hush's addition to Vault's shape: the HTTP status when it is known here (every
        // error; an answer with a status of its own), so a 404 with no message still reads
        // as failed (`hush audit stats`).
        let status = match resp {
            Ok(r) => r.status,
            Err(e) => Some(e.status()),
        };
        if let (Some(status), Value::Object(r)) = (status, &mut response) {
            r.insert("status".into(), status.into());
        }
        m.insert("response".into(), response);
        let error = match resp {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        m.insert("error".into(), error.into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logical::{LeaseInfo, Operation};
    use secrecy::SecretString;

    #[test]
    fn hmac_is_keyed_and_prefixed() {
        let a = Salt::random();
        let b = Salt::random();
        assert!(a.hmac("x").starts_with("hmac-sha256:"));
        assert_eq!(a.hmac("x").len(), "hmac-sha256:".len() + 64);
        assert_eq!(a.hmac("x"), a.hmac("x"));
        assert_ne!(a.hmac("x"), b.hmac("x"));
        assert_ne!(a.hmac("x"), a.hmac("y"));
    }

    #[test]
    fn salt_hex_round_trip_and_bad_hex() {
        let a = Salt::random();
        let b = Salt::from_hex(&a.to_hex()).unwrap();
        assert_eq!(a.hmac("v"), b.hmac("v"));
        assert!(Salt::from_hex("zz").is_none());
        assert!(Salt::from_hex("abcd").is_none());
        assert_eq!(format!("{a:?}"), "Salt([redacted])");
    }

    #[test]
    fn hash_value_reaches_nested_strings_and_keeps_keys() {
        let salt = Salt::random();
        let f = Formatter {
            salt: &salt,
            hmac_accessor: true,
        };
        let mut v =
            json!({"pw": "s3cret", "list": ["a", {"k": "b"}], "n": 5, "t": true, "z": null});
        f.hash_value(&mut v);
        assert_eq!(v["pw"], salt.hmac("s3cret"));
        assert_eq!(v["list"][0], salt.hmac("a"));
        assert_eq!(v["list"][1]["k"], salt.hmac("b"));
        assert_eq!(v["n"], 5);
        assert_eq!(v["t"], true);
        assert!(v["z"].is_null());
    }

    #[test]
    fn request_entry_hashes_token_and_data_but_not_path() {
        let salt = Salt::random();
        let f = Formatter {
            salt: &salt,
            hmac_accessor: true,
        };
        let mut req = Request::new(Operation::Update, "secret/data/app")
            .with_data(json!({"data": {"password": "hunter2"}}));
        req.client_token = Some(SecretString::from("hvs.rawtoken"));
        let text = serde_json::to_string(&f.request_entry(&req, "t")).unwrap();
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("hvs.rawtoken"));
        assert!(text.contains("secret/data/app"));
        assert!(text.contains(&salt.hmac("hunter2")));
        assert!(text.contains(&salt.hmac("hvs.rawtoken")));
    }

    #[test]
    fn response_entry_hashes_auth_raw_and_names_errors() {
        let salt = Salt::random();
        let f = Formatter {
            salt: &salt,
            hmac_accessor: false,
        };
        let req = Request::new(Operation::Update, "auth/token/create");
        let resp = Response {
            auth: Some(Auth {
                client_token: SecretString::from("hvs.newtoken"),
                accessor: "acc123".into(),
                policies: vec!["default".into()],
                token_policies: vec!["default".into()],
                lease_duration: 60,
                renewable: true,
                token_type: "service".into(),
                ..Default::default()
            }),
            lease: Some(LeaseInfo {
                lease_id: "l/1".into(),
                ..Default::default()
            }),
            raw: Some(json!({"keys": ["k1"], "root_token": "hvs.root"})),
            ..Default::default()
        };
        let entry = f.response_entry(&req, Ok(&resp), "t");
        let text = serde_json::to_string(&entry).unwrap();
        for secret in ["hvs.newtoken", "k1", "hvs.root"] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
        // hmac_accessor=false keeps the accessor readable.
        assert_eq!(entry["response"]["auth"]["accessor"], "acc123");
        assert_eq!(entry["error"], "");

        let err = LogicalError::PermissionDenied;
        let entry = f.response_entry(&req, Err(&err), "t");
        assert_eq!(entry["error"], "permission denied");
        assert_eq!(entry["type"], "response");
        assert_eq!(entry["response"]["status"], 403);
        // A 404 has no message, but its status says it failed; a plain answer has none.
        let missing = LogicalError::NotFound(String::new());
        let entry = f.response_entry(&req, Err(&missing), "t");
        assert_eq!(entry["error"], "");
        assert_eq!(entry["response"]["status"], 404);
        let entry = f.response_entry(&req, Ok(&Response::empty()), "t");
        assert!(entry["response"].get("status").is_none());
    }
}

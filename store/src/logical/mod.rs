//! The logical layer: the request and response that flow from the HTTP layer through the
//! core to the auth methods and secrets engines, the error type that maps onto Vault's status
//! codes, and the vocabulary every layer above the barrier shares.
//!
//! # Layout
//!
//! - this file: [`Request`], [`Response`], [`LogicalError`], [`LogicalBackend`] and the
//!   grants and leases a response carries;
//! - [`token`]: the stored token ([`TokenEntry`]) a request carries once authenticated;
//! - [`fields`]: the one set of readers of request fields (integers, booleans, durations,
//!   lists, names);
//! - [`duration`]: Vault's duration strings, parsed and printed the way Go does;
//! - [`ttl`]: Vault's TTL rules and time arithmetic;
//! - [`cidr`]: CIDR blocks, for `*_bound_cidrs`;
//! - [`paths`]: a backend's route table (patterns, operations, fields), the one source of
//!   its dispatch gate and its OpenAPI description;
//! - [`password`]: password policies (Vault's syntax) and the one password generator;
//! - [`system_view`]: [`system_view::SystemView`], the narrow handle on core services (named
//!   password policies) a backend gets at start.

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Map, Value};

pub mod cidr;
pub mod duration;
mod error;
pub mod events;
pub mod fields;
pub mod password;
pub mod paths;
pub mod rotation;
pub mod system_view;
pub mod token;
pub mod ttl;

pub use error::LogicalError;
pub use token::TokenEntry;

/// The `auth` block of a token creation or login: the wire type the client reads.
pub use hush_api::wire::Auth;

/// A JSON object: request bodies and response `data`.
pub type Data = Map<String, Value>;

/// What a request asks to do. HTTP methods map onto these; `Create` is only produced by the
/// core's existence check (a write to something that does not exist yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    /// Extend a lease: sent to the engine that issued it by the expiration manager only
    /// (never from HTTP), with [`Request::lease`] set.
    Renew,
    /// End a lease (drop the credential): from the expiration manager only, with
    /// [`Request::lease`] set.
    Revoke,
}

impl Operation {
    /// Vault's lower-case name, used in audit entries and capability checks.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Renew => "renew",
            Operation::Revoke => "revoke",
        }
    }
}

/// One API request after HTTP decoding.
pub struct Request {
    /// Unique id, echoed as `request_id` and in audit entries.
    pub id: String,
    pub operation: Operation,
    /// Full normalised path after `/v1/`, e.g. `secret/data/app/db`. May end in `/` for lists.
    pub path: String,
    /// Mount point the router matched, with trailing slash, e.g. `secret/`. Empty until routed.
    pub mount_point: String,
    /// Type of the matched mount (`kv`, `token`, `system`).
    pub mount_type: String,
    /// JSON body for writes; query parameters for reads, lists and deletes.
    pub data: Data,
    /// The `Content-Type` header, when the client sent one.
    pub content_type: Option<String>,
    /// The caller's token, from `X-Vault-Token` or `Authorization: Bearer`.
    pub client_token: Option<SecretString>,
    /// The caller's token entry, set by the core once the token checked out.
    pub token_entry: Option<Arc<TokenEntry>>,
    pub remote_addr: Option<IpAddr>,
    /// For [`Operation::Renew`] and [`Operation::Revoke`]: the lease in question.
    pub lease: Option<LeaseContext>,
    /// Seconds from `X-Vault-Wrap-TTL`: the core wraps the answer in a single-use token.
    pub wrap_ttl: Option<u64>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print data or token: both may hold secrets.
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("mount_point", &self.mount_point)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            mount_type: String::new(),
            data: Data::new(),
            content_type: None,
            client_token: None,
            token_entry: None,
            remote_addr: None,
            lease: None,
            wrap_ttl: None,
        }
    }

    /// Builder helper for tests and internal callers.
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }

    /// The path below the mount point, e.g. `data/app/db` for `secret/data/app/db`.
    /// The mount point itself without its slash (`cubbyhole` for `cubbyhole/`) is `""`.
    pub fn rel_path(&self) -> &str {
        if let Some(rel) = self.path.strip_prefix(self.mount_point.as_str()) {
            return rel;
        }
        if self.mount_point.strip_suffix('/') == Some(self.path.as_str()) {
            return "";
        }
        &self.path
    }

    /// A string field of the request data.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }
}

/// The data field of the internal [`Operation::Revoke`] (no lease) the expiration manager
/// sends the `cubbyhole/` mount when a token is revoked: the revoked token's hash.
pub const REVOKED_TOKEN_HASH: &str = "token_hash";

/// A wrapped answer's `wrap_info`: the single-use token whose cubbyhole holds the real answer.
#[derive(Clone)]
pub struct WrapInfo {
    pub token: SecretString,
    pub accessor: String,
    /// Seconds.
    pub ttl: u64,
    pub creation_time: chrono::DateTime<chrono::Utc>,
    pub creation_path: String,
    /// The accessor of the token or AppRole secret id wrapped inside; empty for others.
    pub wrapped_accessor: String,
}

impl std::fmt::Debug for WrapInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapInfo")
            .field("ttl", &self.ttl)
            .field("creation_path", &self.creation_path)
            .finish_non_exhaustive()
    }
}

impl WrapInfo {
    /// Vault's `wrap_info` object (`wrapped_accessor` only when set).
    pub fn to_json(&self) -> Value {
        use secrecy::ExposeSecret;
        let mut m = Data::new();
        m.insert("token".into(), self.token.expose_secret().into());
        m.insert("accessor".into(), self.accessor.clone().into());
        m.insert("ttl".into(), self.ttl.into());
        m.insert(
            "creation_time".into(),
            self.creation_time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                .into(),
        );
        m.insert("creation_path".into(), self.creation_path.clone().into());
        if !self.wrapped_accessor.is_empty() {
            m.insert(
                "wrapped_accessor".into(),
                self.wrapped_accessor.clone().into(),
            );
        }
        Value::Object(m)
    }
}

/// What an auth method's login path grants when the credentials checked out. The core turns
/// it into a token (an orphan, created by the token store) and the response's `auth` block;
/// auth methods never mint tokens themselves. Durations are seconds; 0 = not set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginGrant {
    /// Policies of the token; `default` is added unless `no_default_policy`.
    pub policies: Vec<String>,
    pub no_default_policy: bool,
    /// Token metadata (Vault: `auth.metadata`), e.g. `role_name`.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Appended to the mount's name: `approle`, or `kubernetes-<name>`. Empty: the mount only.
    pub display_name: String,
    /// Token TTL; 0: the mount's default lease TTL, else the system default.
    pub ttl: u64,
    /// Explicit max TTL; capped by the mount's max lease TTL and the system max.
    pub max_ttl: u64,
    pub period: u64,
    /// Uses of the token; 0 = unlimited.
    pub num_uses: u64,
    /// CIDR blocks the token may be used from (checked at each request).
    pub bound_cidrs: Vec<String>,
    pub renewable: bool,
}

/// The lease terms an engine attaches to a dynamic secret it issues (Vault's `logical.Secret`).
/// The core registers the lease with the expiration manager, which answers the client with
/// [`LeaseInfo`] and later sends the engine [`Operation::Renew`] / [`Operation::Revoke`]
/// requests carrying `internal` back in a [`LeaseContext`]. Durations are seconds; a `ttl` of
/// 0 takes the mount's default lease TTL, a `max_ttl` of 0 the mount's (or system) max.
#[derive(Clone, Default, PartialEq)]
pub struct SecretLease {
    pub ttl: u64,
    pub max_ttl: u64,
    pub renewable: bool,
    /// What the engine needs to renew or revoke (a username, the role name). Stored with the
    /// lease behind the barrier; never shown to clients or written to logs.
    pub internal: Data,
}

impl std::fmt::Debug for SecretLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretLease")
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

/// The lease a [`Operation::Renew`] or [`Operation::Revoke`] request is about; set only by
/// the expiration manager. An engine answers a renewal with a [`Response`] whose `secret`
/// holds the TTL it grants (within `max_ttl`, which the manager enforces again), and a
/// revocation with an empty response once the credential is gone.
#[derive(Clone)]
pub struct LeaseContext {
    pub lease_id: String,
    /// [`SecretLease::internal`] as the engine stored it at issue.
    pub internal: Data,
    pub issue_time: chrono::DateTime<chrono::Utc>,
    /// When the lease ends now (before this renewal).
    pub expire_time: chrono::DateTime<chrono::Utc>,
    /// The extension the client asked for, in seconds (0: the engine's default TTL).
    pub increment: u64,
}

impl std::fmt::Debug for LeaseContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseContext")
            .field("lease_id", &self.lease_id)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

/// A lease attached to a response (dynamic secrets; the lease manager fills it in).
#[derive(Debug, Clone, Default)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
}

/// The result of handling a request.
#[derive(Default)]
pub struct Response {
    /// The `data` object of Vault's response envelope.
    pub data: Option<Data>,
    pub auth: Option<Auth>,
    /// Set by an auth method's login path; the core replaces it with `auth`.
    pub login: Option<LoginGrant>,
    /// Set by an engine issuing a dynamic secret; the core turns it into `lease`.
    pub secret: Option<SecretLease>,
    pub lease: Option<LeaseInfo>,
    pub warnings: Vec<String>,
    /// HTTP status override (e.g. 404 with a body for a deleted KV version).
    pub status: Option<u16>,
    /// A body sent as-is instead of the envelope (some `sys/` endpoints answer this way).
    pub raw: Option<Value>,
    /// Set by the core when it wrapped the answer: the only thing the client gets.
    pub wrap_info: Option<WrapInfo>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("has_data", &self.data.is_some())
            .field("auth", &self.auth)
            .field("login", &self.login)
            .field("status", &self.status)
            .field("wrap_info", &self.wrap_info)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// Nothing to send: HTTP 204 (unless `status` says otherwise).
    pub fn is_empty(&self) -> bool {
        self.raw.is_none()
            && self.data.is_none()
            && self.auth.is_none()
            && self.warnings.is_empty()
            && self.wrap_info.is_none()
    }

    /// Vault's response envelope for `request_id` (`raw` answers are their own body).
    pub fn envelope(&self, request_id: &str) -> Value {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let auth = self.auth.as_ref().map(|a| {
            let mut auth = serde_json::to_value(a).expect("the auth block serializes");
            // Vault sends these as null.
            if let Value::Object(m) = &mut auth {
                m.entry("identity_policies").or_insert(Value::Null);
                m.insert("mfa_requirement".into(), Value::Null);
            }
            auth
        });
        let lease = self.lease.clone().unwrap_or_default();
        serde_json::json!({
            "request_id": request_id,
            "lease_id": lease.lease_id,
            "renewable": lease.renewable,
            "lease_duration": lease.lease_duration,
            "data": self.data,
            "wrap_info": self.wrap_info.as_ref().map(WrapInfo::to_json),
            "warnings": if self.warnings.is_empty() { Value::Null } else { serde_json::json!(self.warnings) },
            "auth": auth,
            "mount_type": "",
        })
    }

    pub fn data(data: Value) -> Self {
        match data {
            Value::Object(map) => Response {
                data: Some(map),
                ..Default::default()
            },
            other => {
                let mut map = Data::new();
                map.insert("value".into(), other);
                Response {
                    data: Some(map),
                    ..Default::default()
                }
            }
        }
    }

    /// An empty response: HTTP 204.
    pub fn empty() -> Self {
        Response::default()
    }

    pub fn raw(body: Value) -> Self {
        Response {
            raw: Some(body),
            ..Default::default()
        }
    }

    /// Vault's list response: `{"keys": [...]}`.
    pub fn list(keys: Vec<String>) -> Self {
        Response::data(serde_json::json!({ "keys": keys }))
    }

    /// A dynamic secret: `data` under a lease with these terms.
    pub fn leased(data: Value, secret: SecretLease) -> Self {
        Response {
            secret: Some(secret),
            ..Response::data(data)
        }
    }

    /// A successful login: the core mints the token.
    pub fn login(grant: LoginGrant) -> Self {
        Response {
            login: Some(grant),
            ..Default::default()
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// Anything mounted in the router: secrets engines, auth methods, the token store.
#[async_trait::async_trait]
pub trait LogicalBackend: Send + Sync {
    /// Handle a routed request. `req.rel_path()` is the path below the mount.
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError>;

    /// For writes: does the target already exist? `Some(false)` turns an `Update` into a
    /// `Create` for the ACL check, as in Vault. `None` means the backend does not say.
    async fn exists(&self, _req: &Request) -> Result<Option<bool>, LogicalError> {
        Ok(None)
    }

    /// Paths (relative to the mount, `*` suffix allowed) that need `sudo`.
    fn root_paths(&self) -> &'static [&'static str] {
        &[]
    }

    /// The backend's route table ([`paths`]): the core refuses what it does not name before
    /// [`LogicalBackend::handle`] runs, and the OpenAPI document describes it. Empty: the
    /// backend is not described and its handler alone decides.
    fn paths(&self) -> &'static [paths::PathSpec] {
        &[]
    }

    /// Paths (relative to the mount, `*` suffix allowed) served without a token.
    fn unauthenticated_paths(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called when the mount is removed: release timers and connections.
    async fn cleanup(&self) {}

    /// The engine's versions as scheduled rotation uses them; `None`: it cannot rotate.
    fn rotatable(&self) -> Option<&dyn rotation::Rotatable> {
        None
    }
}

/// Match `path` against patterns that are exact or end in `*` (prefix).
pub fn path_matches_any(path: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == *p,
    })
}

impl paths::Ops {
    /// Does the set take `op`? Lease operations come from the core only: always.
    pub fn allows(self, op: Operation) -> bool {
        use paths::Ops;
        match op {
            Operation::Read => self.has(Ops::READ),
            Operation::Create | Operation::Update => self.has(Ops::WRITE),
            Operation::Delete => self.has(Ops::DELETE),
            Operation::List => self.has(Ops::LIST),
            Operation::Patch => self.has(Ops::PATCH),
            Operation::Renew | Operation::Revoke => true,
        }
    }
}

/// The dispatch gate over a route table ([`paths`]): `rel` must be a route taking `op`. An
/// unknown path is 404; a known path without the operation is 405, except a `LIST` there,
/// which is 404 (nothing to list at that path, as on `secret/data/`).
pub fn check_route(
    table: &[paths::PathSpec],
    rel: &str,
    op: Operation,
) -> Result<(), LogicalError> {
    match paths::find(table, rel) {
        None => Err(LogicalError::UnsupportedPath),
        Some(p) if p.ops.allows(op) => Ok(()),
        Some(_) if op == Operation::List => Err(LogicalError::UnsupportedPath),
        Some(_) => Err(LogicalError::UnsupportedOperation),
    }
}

#[cfg(test)]
mod route_gate_tests {
    use super::paths::{Ops, PathSpec};
    use super::{check_route, Operation};

    const TABLE: &[PathSpec] = &[
        PathSpec::new("config", "config", Ops::RW, "config"),
        PathSpec::new(
            "metadata/{path+}",
            "metadata",
            Ops::RWD.with(Ops::LIST),
            "m",
        ),
        PathSpec::new("roles/{name}", "role", Ops::RWD, "r"),
    ];

    #[test]
    fn the_gate_answers_404_and_405_as_vault() {
        assert!(check_route(TABLE, "config", Operation::Update).is_ok());
        assert!(check_route(TABLE, "config", Operation::Create).is_ok());
        let status = |rel, op| check_route(TABLE, rel, op).unwrap_err().status();
        assert_eq!(status("config", Operation::Delete), 405);
        assert_eq!(status("config", Operation::List), 404);
        assert_eq!(status("nope", Operation::Read), 404);
        assert!(check_route(TABLE, "metadata/x", Operation::List).is_ok());
        assert!(check_route(TABLE, "roles/x", Operation::Revoke).is_ok());
    }
}

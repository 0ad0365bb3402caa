//! The AppRole auth method: a role ID plus (when `bind_secret_id`) a secret ID log in.
//!
//! Storage inside the mount's view:
//! - `salt`: the 32-byte HMAC key, made on first start;
//! - `role/<name>`: the [`Role`];
//! - `role_id/<hmac(role_id)>`: the role's name;
//! - `secret_id/<role>/<hmac(secret_id)>`: the [`SecretId`] (the secret ID itself is never
//!   stored);
//! - `accessor/<role>/<accessor>`: the secret ID's HMAC.
//!
//! Every change to secret IDs (generation, use counts, destruction) runs under one lock, so
//! a secret ID with `n` uses logs in at most `n` times.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::barrier::BarrierView;
use crate::logical::cidr;
use crate::logical::fields::field_secs;
use crate::logical::fields::field_u64;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::ttl::add_seconds;
use crate::logical::ttl::Clock;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

pub mod role;
#[cfg(test)]
mod tests;

pub use role::Role;

const SALT_KEY: &str = "salt";

/// The one error of a login with a wrong role ID or secret ID: it does not say which.
fn invalid_credentials() -> LogicalError {
    LogicalError::invalid("invalid role or secret ID")
}

/// A stored secret ID.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretId {
    /// HMAC of the secret ID (hex), also its storage key.
    pub hash: String,
    pub accessor: String,
    pub creation_time: DateTime<Utc>,
    pub last_updated_time: DateTime<Utc>,
    pub expiration_time: Option<DateTime<Utc>>,
    pub ttl: u64,
    /// Logins left; 0 = unlimited.
    pub num_uses: u64,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretId")
            .field("accessor", &self.accessor)
            .field("num_uses", &self.num_uses)
            .finish_non_exhaustive()
    }
}

impl SecretId {
    fn to_json(&self) -> Value {
        let zero = "0001-01-01T00:00:00Z".to_string();
        json!({
            "cidr_list": self.cidr_list,
            "creation_time": self.creation_time.to_rfc3339(),
            "expiration_time": self.expiration_time.map_or(zero, |t| t.to_rfc3339()),
            "last_updated_time": self.last_updated_time.to_rfc3339(),
            "metadata": self.metadata,
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
        })
    }
}

/// The AppRole backend of one mount.
pub struct AppRoleBackend {
    view: BarrierView,
    hmac_key: Zeroizing<Vec<u8>>,
    clock: Clock,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AppRoleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRoleBackend")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

fn required<'a>(req: &'a Request, key: &str) -> Result<&'a str, LogicalError> {
    req.get_str(key)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| LogicalError::invalid(format!("missing {key}")))
}

fn no_role(name: &str) -> LogicalError {
    LogicalError::invalid(format!("role {name:?} does not exist"))
}

/// Secret-ID metadata: a JSON object, or a string holding one (what hvac and the CLI send).
fn metadata_field(req: &Request) -> Result<BTreeMap<String, String>, LogicalError> {
    let bad = || LogicalError::invalid("metadata must be a JSON object of strings");
    let obj = match req.data.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(v) => v.clone(),
    };
    let Value::Object(map) = obj else {
        return Err(bad());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad()),
        })
        .collect()
}

impl AppRoleBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Self::with_clock(view, Arc::new(Utc::now)).await
    }

    /// As [`AppRoleBackend::new`], with an injected clock (tests).
    pub async fn with_clock(view: BarrierView, clock: Clock) -> Result<Self, LogicalError> {
        let key = match view.get(SALT_KEY).await? {
            Some(k) => Zeroizing::new(k.to_vec()),
            None => {
                let mut k = Zeroizing::new(vec![0u8; 32]);
                rand::rng().fill_bytes(&mut k);
                view.put(SALT_KEY, k.to_vec()).await?;
                k
            }
        };
        Ok(AppRoleBackend {
            view,
            hmac_key: key,
            clock,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn hmac(&self, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key).expect("any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    async fn role(&self, name: &str) -> Result<Option<Role>, LogicalError> {
        if !crate::logical::fields::valid_name(name) {
            return Ok(None);
        }
        Ok(self.view.get_json(&format!("role/{name}")).await?)
    }

    async fn must_role(&self, name: &str) -> Result<Role, LogicalError> {
        self.role(name).await?.ok_or_else(|| no_role(name))
    }

    async fn write_role(&self, req: &Request, name: &str) -> Result<Response, LogicalError> {
        if !crate::logical::fields::valid_name(name) {
            return Err(LogicalError::invalid(format!(
                "invalid role name {name:?}: use letters, digits, '-', '_', '.' and '@'"
            )));
        }
        let existing = self.role(name).await?;
        let mut role = existing
            .clone()
            .unwrap_or_else(|| Role::new(uuid::Uuid::new_v4().to_string()));
        if let Some(id) = req.get_str("role_id").filter(|s| !s.is_empty()) {
            role.role_id = id.to_string();
        }
        role.update(&req.data)?;
        self.save_role(name, &role, existing.as_ref()).await?;
        Ok(Response::empty())
    }

    /// Store `role`, moving its role-ID index when the role ID changed.
    async fn save_role(
        &self,
        name: &str,
        role: &Role,
        old: Option<&Role>,
    ) -> Result<(), LogicalError> {
        let index = format!("role_id/{}", self.hmac(&role.role_id));
        if let Some(owner) = self.view.get(&index).await? {
            if owner.as_slice() != name.as_bytes() {
                return Err(LogicalError::invalid("role_id already in use"));
            }
        }
        let mut ops = vec![
            self.view.put_json_op(&format!("role/{name}"), role)?,
            self.view.put_op(&index, name.as_bytes().to_vec())?,
        ];
        if let Some(old) = old.filter(|o| o.role_id != role.role_id) {
            let old_index = format!("role_id/{}", self.hmac(&old.role_id));
            ops.push(self.view.delete_op(&old_index)?);
        }
        self.view.write(ops).await?;
        Ok(())
    }

    async fn delete_role(&self, name: &str) -> Result<Response, LogicalError> {
        let _guard = self.lock.lock().await;
        let Some(role) = self.role(name).await? else {
            return Ok(Response::empty());
        };
        let mut ops = vec![
            self.view.delete_op(&format!("role/{name}"))?,
            self.view
                .delete_op(&format!("role_id/{}", self.hmac(&role.role_id)))?,
        ];
        for prefix in [format!("secret_id/{name}/"), format!("accessor/{name}/")] {
            for key in self.view.list(&prefix).await? {
                ops.push(self.view.delete_op(&format!("{prefix}{key}"))?);
            }
        }
        self.view.write(ops).await?;
        Ok(Response::empty())
    }

    async fn list_roles(&self) -> Result<Response, LogicalError> {
        let keys = self.view.list("role/").await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound(String::new()));
        }
        Ok(Response::list(keys))
    }

    /// `secret-id` (a random secret ID) and `custom-secret-id` (`custom`: the caller's
    /// `secret_id`, which must not be registered already).
    async fn generate_secret_id(
        &self,
        req: &Request,
        name: &str,
        custom: bool,
    ) -> Result<Response, LogicalError> {
        let role = self.must_role(name).await?;
        if !role.bind_secret_id {
            return Err(LogicalError::invalid(
                "bind_secret_id is not set on the role: it takes no secret IDs",
            ));
        }
        let ttl = field_secs(&req.data, "ttl")?.unwrap_or(role.secret_id_ttl);
        let ttl = match role.secret_id_ttl {
            0 => ttl,
            max if ttl == 0 || ttl > max => max,
            _ => ttl,
        };
        let num_uses = field_u64(&req.data, "num_uses")?.unwrap_or(role.secret_id_num_uses);
        if role.secret_id_num_uses > 0 && (num_uses == 0 || num_uses > role.secret_id_num_uses) {
            return Err(LogicalError::invalid(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        let cidr_list = cidr::parse_list(
            &crate::logical::fields::list_field(&req.data, "cidr_list")?.unwrap_or_default(),
        )?;
        let token_bound_cidrs = cidr::parse_list(
            &crate::logical::fields::list_field(&req.data, "token_bound_cidrs")?
                .unwrap_or_default(),
        )?;
        let metadata = metadata_field(req)?;
        let secret_id = match (custom, req.data.get("secret_id")) {
            (false, _) => Zeroizing::new(uuid::Uuid::new_v4().to_string()),
            (true, Some(Value::String(s))) if !s.is_empty() && s.len() <= 4096 => {
                Zeroizing::new(s.clone())
            }
            (true, Some(Value::String(s))) if !s.is_empty() => {
                return Err(LogicalError::invalid("secret_id is longer than 4096 bytes"))
            }
            (true, _) => return Err(LogicalError::invalid("missing secret_id")),
        };
        let now = (self.clock)();
        let entry = SecretId {
            hash: self.hmac(&secret_id),
            accessor: uuid::Uuid::new_v4().to_string(),
            creation_time: now,
            last_updated_time: now,
            expiration_time: match ttl {
                0 => None,
                t => Some(
                    add_seconds(now, t).ok_or_else(|| LogicalError::invalid("ttl is too large"))?,
                ),
            },
            ttl,
            num_uses,
            cidr_list,
            token_bound_cidrs,
            metadata,
        };
        let _guard = self.lock.lock().await;
        if custom && self.find_secret_id(name, &secret_id).await?.is_some() {
            return Err(LogicalError::invalid("SecretID is already registered"));
        }
        self.view
            .write(vec![
                self.view
                    .put_json_op(&format!("secret_id/{name}/{}", entry.hash), &entry)?,
                self.view.put_op(
                    &format!("accessor/{name}/{}", entry.accessor),
                    entry.hash.clone().into_bytes(),
                )?,
            ])
            .await?;
        Ok(Response::data(json!({
            "secret_id": secret_id.as_str(),
            "secret_id_accessor": entry.accessor,
            "secret_id_ttl": ttl,
            "secret_id_num_uses": num_uses,
        })))
    }

    /// The stored secret ID `secret_id` of role `name`, compared in constant time.
    async fn find_secret_id(
        &self,
        name: &str,
        secret_id: &str,
    ) -> Result<Option<SecretId>, LogicalError> {
        let hash = self.hmac(secret_id);
        let found: Option<SecretId> = self
            .view
            .get_json(&format!("secret_id/{name}/{hash}"))
            .await?;
        Ok(found.filter(|e| bool::from(e.hash.as_bytes().ct_eq(hash.as_bytes()))))
    }

    async fn find_accessor(
        &self,
        name: &str,
        accessor: &str,
    ) -> Result<Option<SecretId>, LogicalError> {
        if uuid::Uuid::parse_str(accessor).is_err() {
            return Ok(None);
        }
        let Some(hash) = self
            .view
            .get(&format!("accessor/{name}/{accessor}"))
            .await?
        else {
            return Ok(None);
        };
        let hash = String::from_utf8_lossy(&hash).to_string();
        Ok(self
            .view
            .get_json(&format!("secret_id/{name}/{hash}"))
            .await?)
    }

    async fn destroy(&self, name: &str, entry: &SecretId) -> Result<(), LogicalError> {
        self.view
            .write(vec![
                self.view
                    .delete_op(&format!("secret_id/{name}/{}", entry.hash))?,
                self.view
                    .delete_op(&format!("accessor/{name}/{}", entry.accessor))?,
            ])
            .await?;
        Ok(())
    }

    fn expired(&self, entry: &SecretId) -> bool {
        entry.expiration_time.is_some_and(|t| t <= (self.clock)())
    }

    async fn secret_id_op(
        &self,
        req: &Request,
        name: &str,
        by_accessor: bool,
        destroy: bool,
    ) -> Result<Response, LogicalError> {
        self.must_role(name).await?;
        let _guard = self.lock.lock().await;
        let entry = if by_accessor {
            let accessor = required(req, "secret_id_accessor")?;
            let found = self.find_accessor(name, accessor).await?;
            match found {
                Some(e) => Some(e),
                None if destroy => None,
                // Vault answers 404 here (and 204 for an unknown secret ID, below).
                None => {
                    return Err(LogicalError::NotFound(format!(
                        "failed to find accessor entry for secret_id_accessor: {accessor:?}"
                    )))
                }
            }
        } else {
            self.find_secret_id(name, required(req, "secret_id")?)
                .await?
        };
        match entry {
            Some(e) if destroy => {
                self.destroy(name, &e).await?;
                Ok(Response::empty())
            }
            // An expired secret ID is gone: answered as an unknown one.
            Some(e) if self.expired(&e) => {
                self.destroy(name, &e).await?;
                Ok(Response::empty())
            }
            Some(e) => Ok(Response::data(e.to_json())),
            // Vault: a secret ID that is unknown (or destroyed) looks up as 204, no body.
            None => Ok(Response::empty()),
        }
    }

    async fn list_secret_ids(&self, name: &str) -> Result<Response, LogicalError> {
        self.must_role(name).await?;
        let keys = self.view.list(&format!("accessor/{name}/")).await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound(String::new()));
        }
        Ok(Response::list(keys))
    }

    async fn login(&self, req: &Request) -> Result<Response, LogicalError> {
        let role_id = required(req, "role_id")?;
        let Some(name) = self
            .view
            .get(&format!("role_id/{}", self.hmac(role_id)))
            .await?
        else {
            return Err(invalid_credentials());
        };
        let name = String::from_utf8_lossy(&name).to_string();
        let role = self.role(&name).await?.ok_or_else(invalid_credentials)?;
        if !bool::from(role.role_id.as_bytes().ct_eq(role_id.as_bytes())) {
            return Err(invalid_credentials());
        }
        if !cidr::allowed(&role.secret_id_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's CIDR restrictions",
            ));
        }
        if !cidr::allowed(&role.token.token_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's token_bound_cidrs",
            ));
        }
        let mut metadata = BTreeMap::new();
        let mut bound_cidrs = role.token.token_bound_cidrs.clone();
        if role.bind_secret_id {
            let secret_id = required(req, "secret_id")?;
            let _guard = self.lock.lock().await;
            let mut entry = self
                .find_secret_id(&name, secret_id)
                .await?
                .ok_or_else(invalid_credentials)?;
            if self.expired(&entry) {
                self.destroy(&name, &entry).await?;
                return Err(invalid_credentials());
            }
            if !cidr::allowed(&entry.cidr_list, req.remote_addr) {
                return Err(LogicalError::invalid(
                    "source address unauthorized through CIDR restrictions on the secret ID",
                ));
            }
            if !cidr::allowed(&entry.token_bound_cidrs, req.remote_addr) {
                return Err(LogicalError::invalid(
                    "source address unauthorized by the secret ID's token_bound_cidrs",
                ));
            }
            match entry.num_uses {
                0 => {}
                1 => self.destroy(&name, &entry).await?,
                n => {
                    entry.num_uses = n - 1;
                    entry.last_updated_time = (self.clock)();
                    self.view
                        .put_json(&format!("secret_id/{name}/{}", entry.hash), &entry)
                        .await?;
                }
            }
            metadata = entry.metadata.clone();
            if !entry.token_bound_cidrs.is_empty() {
                bound_cidrs = entry.token_bound_cidrs.clone();
            }
        }
        metadata.insert("role_name".into(), name);
        let mut grant = role.token.grant(metadata, String::new());
        grant.bound_cidrs = bound_cidrs;
        Ok(Response::login(grant))
    }

    async fn role_id(&self, req: &Request, name: &str) -> Result<Response, LogicalError> {
        let mut role = self.must_role(name).await?;
        match req.operation {
            Operation::Read => Ok(Response::data(json!({ "role_id": role.role_id }))),
            Operation::Update | Operation::Create => {
                let old = role.clone();
                role.role_id = required(req, "role_id")?.to_string();
                self.save_role(name, &role, Some(&old)).await?;
                Ok(Response::empty())
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }
}

#[async_trait::async_trait]
impl LogicalBackend for AppRoleBackend {
    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let rel = req.rel_path().trim_end_matches('/');
        let op = req.operation;
        let write = matches!(op, Operation::Update | Operation::Create);
        if rel == "login" {
            return if write {
                self.login(req).await
            } else {
                Err(LogicalError::UnsupportedOperation)
            };
        }
        if rel == "role" {
            return match op {
                Operation::List | Operation::Read => self.list_roles().await,
                _ => Err(LogicalError::UnsupportedOperation),
            };
        }
        let Some(rest) = rel.strip_prefix("role/") else {
            return Err(LogicalError::UnsupportedPath);
        };
        let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
        match (sub, op) {
            ("", Operation::Read) => match self.role(name).await? {
                Some(role) => Ok(Response::data(role.to_json())),
                None => Err(LogicalError::NotFound(String::new())),
            },
            ("", Operation::Delete) => self.delete_role(name).await,
            ("", _) if write => self.write_role(req, name).await,
            ("role-id", _) => self.role_id(req, name).await,
            ("secret-id", Operation::List) => self.list_secret_ids(name).await,
            ("secret-id", _) if write => self.generate_secret_id(req, name, false).await,
            ("custom-secret-id", _) if write => self.generate_secret_id(req, name, true).await,
            ("secret-id/lookup", _) if write => self.secret_id_op(req, name, false, false).await,
            ("secret-id/destroy", _) if write || op == Operation::Delete => {
                self.secret_id_op(req, name, false, true).await
            }
            ("secret-id-accessor/lookup", _) if write => {
                self.secret_id_op(req, name, true, false).await
            }
            ("secret-id-accessor/destroy", _) if write || op == Operation::Delete => {
                self.secret_id_op(req, name, true, true).await
            }
            (
                ""
                | "secret-id"
                | "custom-secret-id"
                | "secret-id/lookup"
                | "secret-id/destroy"
                | "secret-id-accessor/lookup"
                | "secret-id-accessor/destroy",
                _,
            ) => Err(LogicalError::UnsupportedOperation),
            _ => Err(LogicalError::UnsupportedPath),
        }
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let rel = req.rel_path().trim_end_matches('/');
        match rel.strip_prefix("role/") {
            Some(name) if !name.contains('/') => Ok(Some(self.role(name).await?.is_some())),
            _ => Ok(None),
        }
    }

    fn unauthenticated_paths(&self) -> &'static [&'static str] {
        &["login"]
    }
}

const SECRET_ID: &[Field] = &[Field::req("secret_id", Kind::String, "The SecretID.")];
const ACCESSOR: &[Field] = &[Field::req(
    "secret_id_accessor",
    Kind::String,
    "The SecretID's accessor.",
)];

/// The routes of an AppRole mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new(
        "login",
        "login",
        Ops::WRITE,
        "Log in with a RoleID and SecretID.",
    )
    .body(&[
        Field::req("role_id", Kind::String, "The RoleID."),
        Field::opt("secret_id", Kind::String, "The SecretID."),
    ]),
    PathSpec::new("role", "roles", Ops::RL, "List the roles."),
    PathSpec::new(
        "role/{name}/role-id",
        "role-id",
        Ops::RW,
        "Read or set the RoleID.",
    )
    .body(&[Field::req("role_id", Kind::String, "The RoleID.")]),
    PathSpec::new(
        "role/{name}/secret-id/lookup",
        "secret-id-lookup",
        Ops::WRITE,
        "Look up a SecretID.",
    )
    .body(SECRET_ID),
    PathSpec::new(
        "role/{name}/secret-id/destroy",
        "secret-id-destroy",
        Ops::WRITE.with(Ops::DELETE),
        "Destroy a SecretID.",
    )
    .body(SECRET_ID),
    PathSpec::new(
        "role/{name}/secret-id-accessor/lookup",
        "secret-id-accessor-lookup",
        Ops::WRITE,
        "Look up a SecretID by accessor.",
    )
    .body(ACCESSOR),
    PathSpec::new(
        "role/{name}/secret-id-accessor/destroy",
        "secret-id-accessor-destroy",
        Ops::WRITE.with(Ops::DELETE),
        "Destroy a SecretID by accessor.",
    )
    .body(ACCESSOR),
    PathSpec::new(
        "role/{name}/secret-id",
        "secret-id",
        Ops::WRITE.with(Ops::LIST),
        "Issue a SecretID; LIST its accessors.",
    )
    .body(&[
        Field::opt("metadata", Kind::String, "JSON string of metadata."),
        Field::opt("cidr_list", Kind::Strings, "CIDRs it may log in from."),
        Field::opt("ttl", Kind::Duration, "Its TTL."),
        Field::opt("num_uses", Kind::Integer, "Logins it allows."),
    ]),
    PathSpec::new(
        "role/{name}/custom-secret-id",
        "custom-secret-id",
        Ops::WRITE,
        "Set a SecretID of your choosing.",
    )
    .body(SECRET_ID),
    PathSpec::new(
        "role/{name}",
        "role",
        Ops::RWD,
        "Read, write or delete a role.",
    )
    .body(&[
        Field::opt("bind_secret_id", Kind::Boolean, "Login needs a SecretID."),
        Field::opt("secret_id_ttl", Kind::Duration, "TTL of SecretIDs."),
        Field::opt("secret_id_num_uses", Kind::Integer, "Logins per SecretID."),
    ])
    .shared(crate::auth::role::TOKEN_FIELDS),
];

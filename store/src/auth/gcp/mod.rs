//! The `gcp` auth method (Vault's Google Cloud method, verified from token signatures alone).
//!
//! Routes: `config` (GET/POST), `role/:name` (GET/POST/DELETE), `role/:name/service-accounts`
//! (POST {add, remove}), `role` and `roles` (LIST), `login` {role, jwt}. Two role types:
//!
//! - `iam`: a JWT signed by the service account's own key (`iam.serviceAccounts.signJwt`),
//!   `sub` = the account's email; keys from `{api}/service_accounts/v1/metadata/jwk/{email}`,
//!   `exp` at most `max_jwt_exp` (default 15m) ahead.
//! - `gce`: an instance identity token from the metadata server (`format=full`), signed by
//!   Google (`{api}/oauth2/v3/certs`), checked against `bound_projects`, `bound_zones`,
//!   `bound_regions` and `bound_service_accounts` from its `google.compute_engine` claims.
//!
//! Both need `aud` ending in `vault/<role>` (see [`verify`]). hushd never calls the IAM,
//! Resource Manager or Compute APIs: a binding only those could check (`bound_labels`,
//! `bound_instance_groups`) is refused when a role is written, and for iam logins the
//! service account's project is read from its email.
//!
//! Storage inside the mount's view: `config` ([`GcpConfig`], holding the unused but sealed
//! `credentials`) and `role/<name>` ([`GcpRole`]). The presented JWT is never logged nor
//! echoed in an error.
//!
//! # Layout
//!
//! - [`config`]: `config` and the cached Google key documents.
//! - [`role`]: role types, bindings and their Vault fields.
//! - [`verify`]: the login checks.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use crate::auth::jws;
use crate::auth::method::AuthMethod;
use crate::auth::role_store::RoleStore;
use crate::barrier::BarrierView;
use crate::logical::cidr;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LogicalError, Operation, Request, Response};

pub mod config;
pub mod role;
pub mod verify;

#[cfg(test)]
mod tests;

pub use config::{GcpConfig, Google};
pub use role::{GcpRole, RoleType};

const CONFIG_KEY: &str = "config";

/// The `gcp` backend of one mount.
pub struct GcpBackend {
    view: BarrierView,
    roles: RoleStore<GcpRole>,
    /// Key sources for the current configuration; `None` until first needed.
    google: Mutex<Option<Arc<Google>>>,
    /// Serialises config writes and loads, so a stale load cannot replace a newer one.
    load_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GcpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpBackend")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl GcpBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Ok(GcpBackend {
            roles: RoleStore::new(view.clone()),
            view,
            google: Mutex::new(None),
            load_lock: tokio::sync::Mutex::new(()),
        })
    }

    async fn config(&self) -> Result<Option<GcpConfig>, LogicalError> {
        Ok(self.view.get_json(CONFIG_KEY).await?)
    }

    /// The key sources: from the stored configuration, or Google's defaults without one.
    async fn google(&self) -> Result<Arc<Google>, LogicalError> {
        if let Some(g) = self.google.lock().clone() {
            return Ok(g);
        }
        let _guard = self.load_lock.lock().await;
        if let Some(g) = self.google.lock().clone() {
            return Ok(g);
        }
        let cfg = self.config().await?.unwrap_or_default();
        let g =
            Arc::new(Google::new(&cfg).map_err(|e| {
                LogicalError::Internal(format!("could not load configuration: {e}"))
            })?);
        *self.google.lock() = Some(g.clone());
        Ok(g)
    }

    /// `role/:name/service-accounts` {add, remove}; `role/:name/labels` is refused (labels are
    /// not checkable without the Compute API).
    async fn edit_role(
        &self,
        req: &Request,
        name: &str,
        edit: &str,
    ) -> Result<Response, LogicalError> {
        let mut role = match edit {
            "service-accounts" | "labels" => self
                .roles
                .get(name)
                .await?
                .ok_or_else(|| LogicalError::invalid(format!("role {name:?} not found")))?,
            _ => return Err(LogicalError::UnsupportedPath),
        };
        if edit == "labels" {
            return Err(LogicalError::invalid(
                "bound_labels is not supported: hushd does not call the Compute Engine API",
            ));
        }
        role.edit_service_accounts(&req.data)?;
        self.roles.put(name, &role).await?;
        Ok(Response::empty())
    }
}

#[async_trait::async_trait]
impl AuthMethod for GcpBackend {
    const PATHS: &'static [PathSpec] = PATHS;
    type Role = GcpRole;
    const ROLES_ALIAS: bool = true;

    fn roles(&self) -> &RoleStore<GcpRole> {
        &self.roles
    }

    async fn login(&self, req: &Request) -> Result<Response, LogicalError> {
        let name = match req.get_str("role").map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => return Err(LogicalError::invalid("role is required")),
        };
        let token = match req.data.get("jwt") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
            _ => return Err(LogicalError::invalid("jwt is required")),
        };
        let role = self
            .roles
            .get(&name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("role {name:?} not found")))?;
        if !cidr::allowed(&role.token.token_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's token_bound_cidrs",
            ));
        }
        let google = self.google().await?;
        let mut id = verify::login(&google, &role, &name, token, jws::unix_now()).await?;
        let cfg = self.config().await?.unwrap_or_default();
        cfg.select_metadata(role.role_type == RoleType::Gce, &mut id.metadata);
        Ok(Response::login(
            role.token.grant(id.metadata, id.display_name),
        ))
    }

    async fn write_config(&self, req: &Request) -> Result<Response, LogicalError> {
        let _guard = self.load_lock.lock().await;
        let mut cfg = self.config().await?.unwrap_or_default();
        cfg.update(&req.data)?;
        let google = Google::new(&cfg)
            .map_err(|e| LogicalError::invalid(format!("invalid custom endpoint: {e}")))?;
        self.view.put_json(CONFIG_KEY, &cfg).await?;
        *self.google.lock() = Some(Arc::new(google));
        Ok(Response::empty())
    }

    async fn read_config(&self) -> Result<Option<Value>, LogicalError> {
        Ok(self.config().await?.map(|c| c.to_json()))
    }

    /// `role/NAME/SUB` writes: edits of a role's lists.
    async fn other_path(&self, req: &Request, rel: &str) -> Option<Result<Response, LogicalError>> {
        let write = matches!(req.operation, Operation::Update | Operation::Create);
        let (name, edit) = rel
            .strip_prefix("role/")
            .and_then(|r| r.split_once("/"))
            .filter(|_| write)?;
        Some(self.edit_role(req, name, edit).await)
    }
}

/// The routes of a GCP mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new(
        "login",
        "login",
        Ops::WRITE,
        "Log in with a signed GCP JWT.",
    )
    .body(&[
        Field::req("role", Kind::String, "The role."),
        Field::req("jwt", Kind::String, "The signed JWT."),
    ]),
    PathSpec::new("config", "config", Ops::RW, "Credentials for the GCP APIs.").body(&[
        Field::opt("credentials", Kind::String, "Service account key JSON."),
    ]),
    PathSpec::new("role", "roles", Ops::RL, "List the roles."),
    PathSpec::new("roles", "roles-alias", Ops::RL, "List the roles."),
    PathSpec::new(
        "role/{name}/{edit}",
        "role-edit",
        Ops::WRITE,
        "Add or remove a role's service accounts or labels.",
    )
    .body(&[
        Field::opt("add", Kind::Strings, "Values to add."),
        Field::opt("remove", Kind::Strings, "Values to remove."),
    ]),
    PathSpec::new(
        "role/{name}",
        "role",
        Ops::RWD,
        "Read, write or delete a role.",
    )
    .body(&[
        Field::opt("type", Kind::String, "`iam` or `gce`."),
        Field::opt(
            "bound_service_accounts",
            Kind::Strings,
            "Accepted service accounts.",
        ),
        Field::opt("bound_projects", Kind::Strings, "Accepted projects."),
    ])
    .shared(crate::auth::role::TOKEN_FIELDS),
];

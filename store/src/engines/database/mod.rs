//! The database secrets engine (Vault's `database` API shape, PostgreSQL only): dynamic
//! users under leases, static roles whose passwords rotate on a schedule, root rotation.
//!
//! # Layout
//!
//! - `config`: `config/:name`, `reset/:name`, `rotate-root/:name`; the stored connection.
//! - `roles`: `roles/:name`, `creds/:name`, and the expiration manager's renew and revoke.
//! - `static_roles`: `static-roles/:name`, `static-creds/:name`, `rotate-role/:name`, and the
//!   rotation schedule (one task per mount, stopped by [`LogicalBackend::cleanup`]).
//! - `conn`: `connection_url` templating and `sslmode`, the connection pools, scrubbed errors.
//! - TLS (rustls verifiers for libpq's `sslmode` values) is `storage::postgres::tls`, shared
//!   with the PostgreSQL storage backend.
//! - `template`: statement templates, generated usernames, field helpers. Passwords come
//!   from the connection's `password_policy` (the core's, through the `SystemView` the engine
//!   gets at start) or Vault's default policy (`logical::password`).
//!
//! # Storage (below the mount's view)
//!
//! - `config/<name>`: a connection, with its root password (JSON).
//! - `role/<name>`: a dynamic role. `static-role/<name>`: a static role with its password.
//!
//! # Secrets
//!
//! The root password and static passwords live behind the barrier only; they are never
//! returned by a read (static-creds excepted), never logged, and scrubbed out of every error
//! message (PostgreSQL may echo a statement or the connection string). Statements run in
//! one transaction per operation; where a password changes, the transaction commits only
//! after the new password is stored, so the stored and the real password stay the same.

mod config;
mod conn;
mod roles;
mod static_roles;
mod template;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::barrier::BarrierView;
use crate::logical::events::EventPublisher;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::system_view::{NoSystemView, SystemViewRef};
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

use self::config::DbConfig;
use self::conn::{Pool, Pools};
use self::static_roles::Schedule;

const CONFIG_PREFIX: &str = "config/";
const ROLE_PREFIX: &str = "role/";
const STATIC_PREFIX: &str = "static-role/";

/// The state the handlers and the rotation task share.
struct Inner {
    view: BarrierView,
    pools: Pools,
    /// Serialises config changes, root rotation and static-role rotations.
    lock: tokio::sync::Mutex<()>,
    schedule: Schedule,
    /// The mount's handle on the event bus (rotations, config writes).
    events: EventPublisher,
    /// The core's named password policies (a connection's `password_policy`).
    system: SystemViewRef,
}

impl Inner {
    async fn config(&self, name: &str) -> Result<Option<DbConfig>, LogicalError> {
        Ok(self
            .view
            .get_json(&format!("{CONFIG_PREFIX}{name}"))
            .await?)
    }

    /// The pool of `name` (opened from `config` when none is open).
    fn pool(&self, name: &str, config: &DbConfig) -> Result<Arc<Pool>, LogicalError> {
        if let Some(pool) = self.pools.get(name) {
            return Ok(pool);
        }
        Ok(self.pools.insert(name, Pool::open(&config.params())?))
    }

    /// A new password for a user of `config`'s database: from its `password_policy`, else
    /// Vault's default policy at [`template::PASSWORD_LEN`] characters.
    async fn password(&self, config: &DbConfig) -> Result<Zeroizing<String>, LogicalError> {
        if config.password_policy.is_empty() {
            return Ok(crate::logical::password::generate_default(
                template::PASSWORD_LEN,
            ));
        }
        self.system
            .generate_password_from_policy(&config.password_policy)
            .await
    }

    /// The config and pool of the database `db_name`; 400 when there is no such config.
    async fn connection(&self, db_name: &str) -> Result<(DbConfig, Arc<Pool>), LogicalError> {
        let config = self.config(db_name).await?.ok_or_else(|| {
            LogicalError::invalid(format!("database configuration {db_name:?} not found"))
        })?;
        let pool = self.pool(db_name, &config)?;
        Ok((config, pool))
    }

    /// Vault's list response over the names stored under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Response, LogicalError> {
        Ok(Response::list(self.view.list(prefix).await?))
    }

    /// Run `statements` in a transaction and store `new` at `key` before the commit. When
    /// the commit fails after the store, put `previous` back (or delete `key`).
    #[allow(clippy::too_many_arguments)]
    async fn run_and_store<T: Serialize + Sync>(
        &self,
        pool: &Pool,
        statements: &[String],
        vars: &[(&str, &str)],
        secrets: &[&str],
        key: &str,
        new: &T,
        previous: Option<&T>,
    ) -> Result<(), LogicalError> {
        let stored = std::sync::atomic::AtomicBool::new(false);
        let result = pool
            .run(statements, vars, secrets, || async {
                self.view.put_json(key, new).await?;
                stored.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        if result.is_err() && stored.load(std::sync::atomic::Ordering::SeqCst) {
            // The commit failed after the store: the database kept the old password.
            match previous {
                Some(p) => self.view.put_json(key, p).await?,
                None => self.view.delete(key).await?,
            }
        }
        result
    }
}

/// Prefix a 400's message with what was being done; other errors pass as they are.
fn context(what: &str, e: LogicalError) -> LogicalError {
    match e {
        LogicalError::InvalidRequest(m) => LogicalError::InvalidRequest(format!("{what}: {m}")),
        other => other,
    }
}

/// The database engine mounted at one path.
pub struct DatabaseBackend {
    inner: Arc<Inner>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for DatabaseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseBackend")
            .field("view", &self.inner.view)
            .finish_non_exhaustive()
    }
}

impl DatabaseBackend {
    /// Open the engine over its mount's view and start the static-role rotation task.
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Self::start(view, EventPublisher::none(), Arc::new(NoSystemView)).await
    }

    /// As [`DatabaseBackend::new`], publishing rotations and config writes to `events`, with
    /// the core's password policies behind `system`.
    pub async fn start(
        view: BarrierView,
        events: EventPublisher,
        system: SystemViewRef,
    ) -> Result<Self, LogicalError> {
        let inner = Arc::new(Inner {
            view,
            pools: Pools::default(),
            lock: tokio::sync::Mutex::new(()),
            schedule: Schedule::default(),
            events,
            system,
        });
        static_roles::load_schedule(&inner).await?;
        let cancel = CancellationToken::new();
        tokio::spawn(static_roles::run_schedule(inner.clone(), cancel.clone()));
        Ok(DatabaseBackend { inner, cancel })
    }
}

impl Drop for DatabaseBackend {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What a request path below the mount names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Configs,
    Config(&'a str),
    Reset(&'a str),
    RotateRoot(&'a str),
    Roles,
    Role(&'a str),
    Creds(&'a str),
    StaticRoles,
    StaticRole(&'a str),
    StaticCreds(&'a str),
    RotateRole(&'a str),
}

impl<'a> Route<'a> {
    fn parse(rel: &'a str) -> Option<Route<'a>> {
        let (head, rest) = match rel.split_once('/') {
            Some((h, r)) => (h, r),
            None => (rel, ""),
        };
        Some(match (head, rest) {
            ("config", "") => Route::Configs,
            ("roles", "") => Route::Roles,
            ("static-roles", "") => Route::StaticRoles,
            (_, "") => return None,
            ("config", n) => Route::Config(n),
            ("reset", n) => Route::Reset(n),
            ("rotate-root", n) => Route::RotateRoot(n),
            ("roles", n) => Route::Role(n),
            ("creds", n) => Route::Creds(n),
            ("static-roles", n) => Route::StaticRole(n),
            ("static-creds", n) => Route::StaticCreds(n),
            ("rotate-role", n) => Route::RotateRole(n),
            _ => return None,
        })
    }
}

impl Route<'_> {
    /// The operations the path serves, and the name it carries (checked before dispatch).
    fn accepts(&self) -> (&'static [Operation], Option<&str>) {
        use Operation::*;
        const ITEM: &[Operation] = &[Read, Create, Update, Delete];
        const ACTION: &[Operation] = &[Create, Update];
        match *self {
            Route::Configs | Route::Roles | Route::StaticRoles => (&[List], None),
            Route::Config(n) | Route::Role(n) | Route::StaticRole(n) => (ITEM, Some(n)),
            Route::Reset(n) | Route::RotateRoot(n) | Route::RotateRole(n) => (ACTION, Some(n)),
            Route::Creds(n) | Route::StaticCreds(n) => (&[Read], Some(n)),
        }
    }
}

#[async_trait]
impl LogicalBackend for DatabaseBackend {
    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let inner = &*self.inner;
        if matches!(req.operation, Operation::Renew | Operation::Revoke) {
            return roles::lease_operation(inner, req).await;
        }
        let route = Route::parse(req.rel_path()).ok_or(LogicalError::UnsupportedPath)?;
        let (ops, name) = route.accepts();
        if !ops.contains(&req.operation) {
            return Err(LogicalError::UnsupportedOperation);
        }
        if let Some(n) = name {
            template::check_name("name", n)?;
        }
        match route {
            Route::Configs => inner.list(CONFIG_PREFIX).await,
            Route::Config(n) => config::handle(inner, req, n).await,
            Route::Reset(n) => config::reset(inner, n).await,
            Route::RotateRoot(n) => config::rotate_root(inner, n).await,
            Route::Roles => inner.list(ROLE_PREFIX).await,
            Route::Role(n) => roles::handle(inner, req, n).await,
            Route::Creds(n) => roles::creds(inner, req, n).await,
            Route::StaticRoles => inner.list(STATIC_PREFIX).await,
            Route::StaticRole(n) => static_roles::handle(inner, req, n).await,
            Route::StaticCreds(n) => static_roles::creds(inner, n).await,
            Route::RotateRole(n) => static_roles::rotate_now(inner, n).await,
        }
    }

    /// `Some(exists)` for configs and roles, so the core tells a create from an update.
    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let key = match Route::parse(req.rel_path()) {
            Some(Route::Config(n)) => format!("{CONFIG_PREFIX}{n}"),
            Some(Route::Role(n)) => format!("{ROLE_PREFIX}{n}"),
            Some(Route::StaticRole(n)) => format!("{STATIC_PREFIX}{n}"),
            _ => return Ok(None),
        };
        Ok(Some(self.inner.view.get(&key).await?.is_some()))
    }

    /// Stop the rotation task and close every connection.
    async fn cleanup(&self) {
        self.cancel.cancel();
        self.inner.pools.clear();
    }
}

/// The routes of a database mount (the core's gate and the OpenAPI document read them;
/// [`Route::accepts`] checks the same operations for callers that skip the gate).
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("config", "configs", Ops::LIST, "List the connections."),
    PathSpec::new("config/{name+}", "config", Ops::RWD, "A connection.").body(&[
        Field::req("plugin_name", Kind::String, "`postgresql-database-plugin`."),
        Field::req(
            "connection_url",
            Kind::String,
            "With {{username}} and {{password}}.",
        ),
        Field::opt("username", Kind::String, "The root user."),
        Field::opt("password", Kind::String, "Its password."),
        Field::opt("allowed_roles", Kind::Strings, "Roles that may use it."),
        Field::opt("verify_connection", Kind::Boolean, "Connect before saving."),
        Field::opt("password_policy", Kind::String, "Named password policy."),
    ]),
    PathSpec::new(
        "reset/{name+}",
        "reset",
        Ops::WRITE,
        "Close and reopen a connection.",
    ),
    PathSpec::new(
        "rotate-root/{name+}",
        "rotate-root",
        Ops::WRITE,
        "Rotate the root password.",
    ),
    PathSpec::new("roles", "roles", Ops::LIST, "List the dynamic roles."),
    PathSpec::new("roles/{name+}", "role", Ops::RWD, "A dynamic role.").body(&[
        Field::req("db_name", Kind::String, "The connection."),
        Field::req(
            "creation_statements",
            Kind::Strings,
            "SQL creating the user.",
        ),
        Field::opt("revocation_statements", Kind::Strings, "SQL dropping it."),
        Field::opt("default_ttl", Kind::Duration, "Lease TTL."),
        Field::opt("max_ttl", Kind::Duration, "Lease max TTL."),
    ]),
    PathSpec::new(
        "creds/{name+}",
        "creds",
        Ops::READ,
        "Issue credentials (a lease).",
    ),
    PathSpec::new(
        "static-roles",
        "static-roles",
        Ops::LIST,
        "List the static roles.",
    ),
    PathSpec::new(
        "static-roles/{name+}",
        "static-role",
        Ops::RWD,
        "A static role.",
    )
    .body(&[
        Field::req("db_name", Kind::String, "The connection."),
        Field::req("username", Kind::String, "The existing user."),
        Field::req("rotation_period", Kind::Duration, "How often to rotate."),
        Field::opt(
            "rotation_statements",
            Kind::Strings,
            "SQL setting the password.",
        ),
    ]),
    PathSpec::new(
        "static-creds/{name+}",
        "static-creds",
        Ops::READ,
        "A static role's password.",
    ),
    PathSpec::new(
        "rotate-role/{name+}",
        "rotate-role",
        Ops::WRITE,
        "Rotate a static role now.",
    ),
];

#[cfg(test)]
mod tests;

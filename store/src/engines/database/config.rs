//! `config/:name` (write, read, delete, list), `reset/:name` and `rotate-root/:name`: the
//! connections to databases. The root password is stored behind the barrier, never returned,
//! never logged; a literal password inside `connection_url` is masked on read.

use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use super::conn::{ConnParams, Pool};
use super::template::{statements_field, str_field, SecretText};
use super::{Inner, CONFIG_PREFIX};
use crate::logical::duration::format_secs;
use crate::logical::fields::field_secs;
use crate::logical::fields::list_field;
use crate::logical::fields::{field_bool, field_u64};
use crate::logical::{LogicalError, Operation, Request, Response};

/// The only plugin hushd speaks.
pub(super) const PLUGIN_NAME: &str = "postgresql-database-plugin";
/// Vault's default pool size.
const DEFAULT_MAX_OPEN: u32 = 4;
/// Root rotation when the config has no statements of its own.
const DEFAULT_ROOT_ROTATION: &str = "ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}'";

/// One stored connection config.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct DbConfig {
    pub plugin_name: String,
    pub connection_url: String,
    pub username: String,
    pub password: SecretText,
    pub allowed_roles: Vec<String>,
    pub verify_connection: bool,
    pub max_open_connections: u32,
    pub max_idle_connections: u32,
    /// Seconds; a pooled connection older than this is closed instead of reused (0: never).
    pub max_connection_lifetime: u64,
    /// `password` (plain text in statements) or `scram-sha-256` (a SCRAM verifier).
    pub password_authentication: String,
    pub disable_escaping: bool,
    pub root_rotation_statements: Vec<String>,
    /// The named password policy of generated passwords; empty: Vault's default policy.
    #[serde(default)]
    pub password_policy: String,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("plugin_name", &self.plugin_name)
            .field("username", &self.username)
            .field("allowed_roles", &self.allowed_roles)
            .finish_non_exhaustive()
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            plugin_name: PLUGIN_NAME.into(),
            connection_url: String::new(),
            username: String::new(),
            password: SecretText::default(),
            allowed_roles: Vec::new(),
            verify_connection: true,
            max_open_connections: DEFAULT_MAX_OPEN,
            max_idle_connections: 0,
            max_connection_lifetime: 0,
            password_authentication: "password".into(),
            disable_escaping: false,
            root_rotation_statements: Vec::new(),
            password_policy: String::new(),
        }
    }
}

impl DbConfig {
    /// May `role` use this database? (`allowed_roles` globs; empty allows none, as Vault.)
    pub(super) fn role_allowed(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|p| super::template::glob_match(p, role))
    }

    /// 400 unless `role` is allowed.
    pub(super) fn check_allowed(&self, role: &str) -> Result<(), LogicalError> {
        if self.role_allowed(role) {
            Ok(())
        } else {
            Err(LogicalError::invalid(format!(
                "{role:?} is not an allowed role"
            )))
        }
    }

    pub(super) fn params(&self) -> ConnParams<'_> {
        ConnParams {
            url: &self.connection_url,
            username: &self.username,
            password: self.password.expose(),
            max_open: self.max_open_connections as usize,
            max_lifetime: std::time::Duration::from_secs(self.max_connection_lifetime),
            disable_escaping: self.disable_escaping,
        }
    }

    /// A password as statements receive it: as is, or its SCRAM-SHA-256 verifier so the
    /// plain text never reaches the database.
    pub(super) fn password_for_sql(&self, password: &str) -> Zeroizing<String> {
        if self.password_authentication == "scram-sha-256" {
            Zeroizing::new(postgres_protocol::password::scram_sha_256(
                password.as_bytes(),
            ))
        } else {
            Zeroizing::new(password.to_string())
        }
    }

    /// `connection_url` with a literal (not templated) password replaced by `*****`.
    fn masked_url(&self) -> String {
        let url = &self.connection_url;
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.clone();
        };
        let Some((userinfo, host)) = rest.split_once('@') else {
            return url.clone();
        };
        match userinfo.split_once(':') {
            Some((user, pw)) if !pw.contains("{{") => format!("{scheme}://{user}:*****@{host}"),
            _ => url.clone(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "plugin_name": self.plugin_name,
            "plugin_version": "",
            "connection_details": {
                "connection_url": self.masked_url(),
                "username": self.username,
                "max_open_connections": self.max_open_connections,
                "max_idle_connections": self.max_idle_connections,
                "max_connection_lifetime": format_secs(self.max_connection_lifetime),
                "password_authentication": self.password_authentication,
                "disable_escaping": self.disable_escaping,
            },
            "allowed_roles": self.allowed_roles,
            "root_credentials_rotate_statements": self.root_rotation_statements,
            "password_policy": self.password_policy,
            "verify_connection": self.verify_connection,
        })
    }
}

fn config_key(name: &str) -> String {
    format!("{CONFIG_PREFIX}{name}")
}

/// `config/:name`.
pub(super) async fn handle(
    inner: &Inner,
    req: &Request,
    name: &str,
) -> Result<Response, LogicalError> {
    match req.operation {
        Operation::Read => Ok(match inner.config(name).await? {
            Some(c) => Response::data(c.to_json()),
            None => return Err(LogicalError::NotFound(String::new())),
        }),
        Operation::Create | Operation::Update => write(inner, req, name).await,
        Operation::Delete => {
            let _guard = inner.lock.lock().await;
            inner.view.delete(&config_key(name)).await?;
            inner.pools.remove(name);
            Ok(Response::empty())
        }
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

/// Merge the request into the stored config (or defaults), check, verify, store.
async fn write(inner: &Inner, req: &Request, name: &str) -> Result<Response, LogicalError> {
    let _guard = inner.lock.lock().await;
    let existing = inner.config(name).await?;
    let is_new = existing.is_none();
    let mut c = existing.unwrap_or_default();
    let d = &req.data;
    match str_field(d, "plugin_name")? {
        Some(p) if p == PLUGIN_NAME => c.plugin_name = p,
        Some(p) => {
            return Err(LogicalError::invalid(format!(
                "unsupported plugin_name {p:?}: hushd supports {PLUGIN_NAME:?} only"
            )))
        }
        None if is_new => return Err(LogicalError::invalid("plugin_name is required")),
        None => {}
    }
    if let Some(url) = str_field(d, "connection_url")? {
        c.connection_url = url;
    }
    if c.connection_url.is_empty() {
        return Err(LogicalError::invalid("connection_url is required"));
    }
    if let Some(u) = str_field(d, "username")? {
        c.username = u;
    }
    if let Some(p) = str_field(d, "password")? {
        c.password = SecretText::new(p);
    }
    if let Some(roles) = list_field(d, "allowed_roles")? {
        c.allowed_roles = roles;
    }
    if let Some(v) = field_bool(d, "verify_connection")? {
        c.verify_connection = v;
    }
    if let Some(n) = field_u64(d, "max_open_connections")? {
        c.max_open_connections = u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            LogicalError::invalid("max_open_connections must be between 1 and 2^32-1")
        })?;
    }
    if let Some(n) = field_u64(d, "max_idle_connections")? {
        c.max_idle_connections = u32::try_from(n)
            .map_err(|_| LogicalError::invalid("max_idle_connections is too large"))?;
    }
    if let Some(s) = field_secs(d, "max_connection_lifetime")? {
        c.max_connection_lifetime = s;
    }
    if let Some(v) = field_bool(d, "disable_escaping")? {
        c.disable_escaping = v;
    }
    if let Some(pa) = str_field(d, "password_authentication")? {
        if pa != "password" && pa != "scram-sha-256" {
            return Err(LogicalError::invalid(format!(
                "invalid password_authentication {pa:?}: use \"password\" or \"scram-sha-256\""
            )));
        }
        c.password_authentication = pa;
    }
    if let Some(s) = statements_field(d, "root_rotation_statements")? {
        c.root_rotation_statements = s;
    }
    if let Some(policy) = str_field(d, "password_policy")? {
        if !policy.is_empty() && policy != c.password_policy {
            // A policy that does not exist (or cannot draw) is refused now, not at the first
            // credentials.
            drop(
                inner
                    .system
                    .generate_password_from_policy(&policy)
                    .await
                    .map_err(|e| super::context("password_policy", e))?,
            );
        }
        c.password_policy = policy;
    }
    let pool = Pool::open(&c.params())?;
    if c.verify_connection {
        pool.verify().await.map_err(|e| {
            LogicalError::invalid(format!(
                "error creating database object: error verifying connection: {e}"
            ))
        })?;
    }
    inner.view.put_json(&config_key(name), &c).await?;
    inner.events.publish(
        "database/config-write",
        &format!("config/{name}"),
        None,
        &[("name", name.to_string())],
    );
    inner.pools.replace(name, pool);
    tracing::info!(connection = %name, "database connection configured");
    let mut resp = Response::empty();
    if c.masked_url() != c.connection_url {
        resp = resp.with_warning(
            "Password found in connection_url, use a templated url to enable root rotation \
             and prevent read access to password information.",
        );
    }
    Ok(resp)
}

/// `reset/:name`: close the pool; the next use reconnects with the stored config.
pub(super) async fn reset(inner: &Inner, name: &str) -> Result<Response, LogicalError> {
    if inner.config(name).await?.is_none() {
        return Err(LogicalError::invalid(format!(
            "failed to reset database: no connection named {name:?}"
        )));
    }
    inner.pools.remove(name);
    Ok(Response::empty())
}

/// `rotate-root/:name`: a new random root password, set in the database and stored together
/// (the database change commits only once the new config is stored).
pub(super) async fn rotate_root(inner: &Inner, name: &str) -> Result<Response, LogicalError> {
    let _guard = inner.lock.lock().await;
    let old = inner
        .config(name)
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("no connection named {name:?}")))?;
    if old.username.is_empty() {
        return Err(LogicalError::invalid(
            "unable to rotate root credentials: no username in configuration",
        ));
    }
    if old.password.is_empty() {
        return Err(LogicalError::invalid(
            "unable to rotate root credentials: no password in configuration",
        ));
    }
    if old.masked_url() != old.connection_url {
        return Err(LogicalError::invalid(
            "unable to rotate root credentials: connection_url holds a literal password; \
             use a templated url with {{password}}",
        ));
    }
    let pool = inner.pool(name, &old)?;
    let password = inner.password(&old).await?;
    let sql_password = old.password_for_sql(&password);
    let statements = if old.root_rotation_statements.is_empty() {
        vec![DEFAULT_ROOT_ROTATION.to_string()]
    } else {
        old.root_rotation_statements.clone()
    };
    let mut new = old.clone();
    new.password = SecretText::new(password.as_str());
    let vars = [
        ("name", old.username.as_str()),
        ("username", old.username.as_str()),
        ("password", sql_password.as_str()),
    ];
    let key = config_key(name);
    inner
        .run_and_store(
            &pool,
            &statements,
            &vars,
            &[&password, &sql_password],
            &key,
            &new,
            Some(&old),
        )
        .await
        .map_err(|e| super::context("failed to rotate root credentials", e))?;
    inner.pools.replace(name, Pool::open(&new.params())?);
    tracing::info!(connection = %name, "root credentials rotated");
    Ok(Response::empty())
}

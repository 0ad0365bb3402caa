//! Connections to a configured PostgreSQL database: the `connection_url` template turned into
//! a client config (with `sslmode` handled here, over rustls), one pool per config, and the
//! error type whose messages never hold a password (PostgreSQL and the client can echo the
//! connection string or a statement: every message is scrubbed of the secrets in play).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{ManagerConfig, Object, RecyclingMethod, Runtime};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio_postgres::Transaction;
use zeroize::Zeroizing;

use super::template::{render, scrub};
use crate::logical::LogicalError;
use crate::storage::postgres::tls::{self, SslParams, Verify};

/// How long a connection attempt or a wait for a free connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What failed talking to the database. Messages are scrubbed when built.
#[derive(Debug, thiserror::Error)]
pub(super) enum DbError {
    /// The connection settings are wrong (400).
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or refused the login.
    #[error("{0}")]
    Connect(String),
    /// A statement failed (400: statements come from the role or config).
    #[error("{0}")]
    Statement(String),
}

impl From<DbError> for LogicalError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Config(m) | DbError::Statement(m) => LogicalError::InvalidRequest(m),
            DbError::Connect(m) => LogicalError::Internal(m),
        }
    }
}

/// The connection settings of one config.
pub(super) struct ConnParams<'a> {
    pub url: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub max_open: usize,
    /// Connections older than this are closed instead of reused (zero: no limit).
    pub max_lifetime: Duration,
    pub disable_escaping: bool,
}

/// One pool of connections to one configured database.
pub(super) struct Pool {
    pool: deadpool_postgres::Pool,
    /// The root password, scrubbed out of every message.
    password: Zeroizing<String>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Remove the TLS options from `url` (see [`tls::take_ssl_params`]).
fn take_ssl_params(url: &str) -> Result<(String, SslParams), DbError> {
    tls::take_ssl_params(url).map_err(|e| DbError::Config(format!("connection_url {e}")))
}

/// Fill `{{username}}` / `{{password}}` in (URL-escaped in URL form unless
/// `disable_escaping`) and parse. Returns the client config and how to verify TLS, if used.
fn client_config(
    p: &ConnParams<'_>,
) -> Result<(tokio_postgres::Config, Option<Verify>, Option<String>), DbError> {
    let (template, ssl) = take_ssl_params(p.url)?;
    let is_url = template.contains("://");
    let escape = |s: &str| -> String {
        if is_url && !p.disable_escaping {
            utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
        } else {
            s.to_string()
        }
    };
    let rendered = Zeroizing::new(render(
        &template,
        &[
            ("username", &escape(p.username)),
            ("password", &escape(p.password)),
        ],
    ));
    let mut config: tokio_postgres::Config = rendered.parse().map_err(|e| {
        DbError::Config(scrub(
            &format!("invalid connection_url: {e}"),
            &[p.password, &rendered],
        ))
    })?;
    if config.get_user().is_none() && !p.username.is_empty() {
        config.user(p.username);
    }
    if config.get_password().is_none() && !p.password.is_empty() {
        config.password(p.password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (mode, verify) = ssl.resolve("disable").map_err(DbError::Config)?;
    config.ssl_mode(mode);
    Ok((config, verify, ssl.root_cert))
}

impl Pool {
    /// Build the pool (no connection is made until one is needed).
    pub(super) fn open(p: &ConnParams<'_>) -> Result<Pool, DbError> {
        let (config, verify, root) = client_config(p)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = tls::manager(config, verify, root.as_deref(), manager_config)
            .map_err(DbError::Config)?;
        let mut builder = deadpool_postgres::Pool::builder(manager);
        if !p.max_lifetime.is_zero() {
            let lifetime = p.max_lifetime;
            builder = builder.pre_recycle(deadpool_postgres::Hook::sync_fn(move |_, metrics| {
                if metrics.age() > lifetime {
                    Err(deadpool_postgres::HookError::message(
                        "past max_connection_lifetime",
                    ))
                } else {
                    Ok(())
                }
            }));
        }
        let pool = builder
            .max_size(p.max_open.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| DbError::Config(format!("cannot build the connection pool: {e}")))?;
        Ok(Pool {
            pool,
            password: Zeroizing::new(p.password.to_string()),
        })
    }

    /// A connection from the pool.
    pub(super) async fn client(&self) -> Result<Object, DbError> {
        self.pool.get().await.map_err(|e| {
            DbError::Connect(scrub(
                &format!(
                    "error connecting to the database: {}",
                    match &e {
                        deadpool_postgres::PoolError::Backend(pe) => describe(pe),
                        other => other.to_string(),
                    }
                ),
                &[&self.password],
            ))
        })
    }

    /// Connect and run `SELECT 1`.
    pub(super) async fn verify(&self) -> Result<(), DbError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| self.statement_error(&e, &[]))?;
        Ok(())
    }

    /// A failed statement, scrubbed of the root password and `extra` secrets.
    pub(super) fn statement_error(&self, e: &tokio_postgres::Error, extra: &[&str]) -> DbError {
        let mut secrets = vec![self.password.as_str()];
        secrets.extend_from_slice(extra);
        DbError::Statement(scrub(
            &format!("error running statements: {}", describe(e)),
            &secrets,
        ))
    }

    /// Run `statements` (each rendered with `vars`; one may hold several SQL statements)
    /// in one transaction, then `before_commit`; commit only if that succeeds too, so a
    /// password stored by `before_commit` and the one in the database change together.
    pub(super) async fn run<F, Fut>(
        &self,
        statements: &[String],
        vars: &[(&str, &str)],
        secrets: &[&str],
        before_commit: F,
    ) -> Result<(), LogicalError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), LogicalError>>,
    {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.statement_error(&e, secrets))?;
        exec_all(&tx, statements, vars)
            .await
            .map_err(|e| self.statement_error(&e, secrets))?;
        before_commit().await?;
        tx.commit()
            .await
            .map_err(|e| self.statement_error(&e, secrets))?;
        Ok(())
    }

    /// Close every connection.
    pub(super) fn close(&self) {
        self.pool.close();
    }
}

/// The server's message of a failed statement (the client's `Display` says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    let mut out = format!("{}: {}", db.severity(), db.message());
    if let Some(detail) = db.detail() {
        out.push_str(&format!(" ({detail})"));
    }
    out
}

/// Render and run each statement in `tx` (simple query protocol, so a statement may hold
/// several commands and `DO $$ ... $$` blocks).
pub(super) async fn exec_all(
    tx: &Transaction<'_>,
    statements: &[String],
    vars: &[(&str, &str)],
) -> Result<(), tokio_postgres::Error> {
    for stmt in statements {
        let sql = Zeroizing::new(render(stmt, vars));
        if !sql.trim().is_empty() {
            tx.batch_execute(&sql).await?;
        }
    }
    Ok(())
}

/// The open pools, by config name.
#[derive(Debug, Default)]
pub(super) struct Pools {
    map: parking_lot::Mutex<HashMap<String, Arc<Pool>>>,
}

impl Pools {
    pub(super) fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.map.lock().get(name).cloned()
    }

    /// Keep `pool` for `name` unless one was put there meanwhile; returns the kept one.
    pub(super) fn insert(&self, name: &str, pool: Pool) -> Arc<Pool> {
        self.map
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(pool))
            .clone()
    }

    /// Put `pool` in place of the pool of `name` (closing the old one).
    pub(super) fn replace(&self, name: &str, pool: Pool) {
        if let Some(old) = self.map.lock().insert(name.to_string(), Arc::new(pool)) {
            old.close();
        }
    }

    /// Close and forget the pool of `name`.
    pub(super) fn remove(&self, name: &str) {
        if let Some(pool) = self.map.lock().remove(name) {
            pool.close();
        }
    }

    pub(super) fn clear(&self) {
        for (_, pool) in self.map.lock().drain() {
            pool.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> ConnParams<'_> {
        ConnParams {
            url,
            username: "root",
            password: "p@ss word",
            max_open: 2,
            max_lifetime: Duration::ZERO,
            disable_escaping: false,
        }
    }

    #[test]
    fn url_templates_are_escaped_and_ssl_taken_out() {
        let (c, verify, root) = client_config(&params(
            "postgresql://{{username}}:{{password}}@127.0.0.1:5433/app?sslmode=disable",
        ))
        .unwrap();
        assert_eq!(c.get_user(), Some("root"));
        assert_eq!(c.get_password(), Some(&b"p@ss word"[..]));
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("app"));
        assert_eq!((verify, root), (None, None));
        let (_, verify, root) = client_config(&params(
            "postgres://{{username}}:{{password}}@db/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        ))
        .unwrap();
        assert_eq!(verify, Some(Verify::Full));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (_, verify, _) =
            client_config(&params("host=db user={{username}} sslmode=require")).unwrap();
        assert_eq!(verify, Some(Verify::None));
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        for url in [
            "postgres://{{username}}:{{password}}@db:notaport/app",
            "postgres://db/app?sslmode=sometimes",
            "postgres://db/app?sslcert=/c.pem",
        ] {
            let err = client_config(&params(url)).unwrap_err();
            assert!(matches!(err, DbError::Config(_)), "{url}");
            let msg = err.to_string();
            assert!(!msg.contains("p@ss") && !msg.contains("p%40ss"), "{msg}");
        }
    }

    #[tokio::test]
    async fn unreachable_database_is_a_clean_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/x");
        let pool = Pool::open(&params(&url)).unwrap();
        let err = pool.verify().await.unwrap_err();
        assert!(matches!(err, DbError::Connect(_)));
        assert!(!err.to_string().contains("p@ss"), "{err}");
    }
}

//! Dynamic roles: `roles/:name` (write, read, delete, list), `creds/:name` (a new database
//! user under a lease), and the renewal and revocation of those leases sent by the
//! expiration manager.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::template::{
    expiration_text, generate_username, quote_ident, statements_field, str_field,
};
use super::{Inner, ROLE_PREFIX};
use crate::logical::fields::field_secs;
use crate::logical::{Data, LeaseContext, LogicalError, Operation, Request, Response, SecretLease};

/// Vault's system default lease TTL (32 days), for `{{expiration}}` when the role sets none.
pub(super) const SYSTEM_DEFAULT_TTL: u64 = 768 * 3600;
/// Renewal when the role has no statements of its own.
const DEFAULT_RENEW: &str = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'";

/// One stored dynamic role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct Role {
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    /// Stored and shown; a failed creation rolls back its transaction instead.
    pub rollback_statements: Vec<String>,
    pub default_ttl: u64,
    pub max_ttl: u64,
}

impl Role {
    fn to_json(&self) -> Value {
        json!({
            "db_name": self.db_name,
            "creation_statements": self.creation_statements,
            "revocation_statements": self.revocation_statements,
            "renew_statements": self.renew_statements,
            "rollback_statements": self.rollback_statements,
            "default_ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
            "credential_type": "password",
            "credential_config": {},
        })
    }

    /// The TTL of a new lease or a renewal without increment.
    fn ttl(&self) -> u64 {
        if self.default_ttl > 0 {
            self.default_ttl
        } else {
            SYSTEM_DEFAULT_TTL
        }
    }
}

fn role_key(name: &str) -> String {
    format!("{ROLE_PREFIX}{name}")
}

async fn load(inner: &Inner, name: &str) -> Result<Option<Role>, LogicalError> {
    Ok(inner.view.get_json(&role_key(name)).await?)
}

/// `roles/:name`.
pub(super) async fn handle(
    inner: &Inner,
    req: &Request,
    name: &str,
) -> Result<Response, LogicalError> {
    match req.operation {
        Operation::Read => match load(inner, name).await? {
            Some(r) => Ok(Response::data(r.to_json())),
            None => Err(LogicalError::NotFound(String::new())),
        },
        Operation::Create | Operation::Update => {
            let existing = load(inner, name).await?;
            let role = merge(existing, &req.data)?;
            inner.view.put_json(&role_key(name), &role).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            inner.view.delete(&role_key(name)).await?;
            Ok(Response::empty())
        }
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

/// The request's fields over the stored role (or an empty one), checked.
fn merge(existing: Option<Role>, d: &Data) -> Result<Role, LogicalError> {
    let mut r = existing.unwrap_or_default();
    if let Some(db) = str_field(d, "db_name")? {
        r.db_name = db;
    }
    if r.db_name.is_empty() {
        return Err(LogicalError::invalid("empty database name attribute"));
    }
    let lists = [
        ("creation_statements", &mut r.creation_statements),
        ("revocation_statements", &mut r.revocation_statements),
        ("renew_statements", &mut r.renew_statements),
        ("rollback_statements", &mut r.rollback_statements),
    ];
    for (key, slot) in lists {
        if let Some(v) = statements_field(d, key)? {
            *slot = v;
        }
    }
    if r.creation_statements.is_empty() {
        return Err(LogicalError::invalid("empty creation statements"));
    }
    if let Some(t) = field_secs(d, "default_ttl")? {
        r.default_ttl = t;
    }
    if let Some(t) = field_secs(d, "max_ttl")? {
        r.max_ttl = t;
    }
    if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
        return Err(LogicalError::invalid("ttl cannot be greater than max_ttl"));
    }
    Ok(r)
}

/// GET `creds/:name`: create a user with the role's statements, under a lease.
pub(super) async fn creds(
    inner: &Inner,
    req: &Request,
    name: &str,
) -> Result<Response, LogicalError> {
    let role = load(inner, name)
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("unknown role: {name}")))?;
    let (config, pool) = inner.connection(&role.db_name).await?;
    config.check_allowed(name)?;
    let now = Utc::now();
    let display = req
        .token_entry
        .as_ref()
        .map(|t| t.display_name.as_str())
        .filter(|d| !d.is_empty())
        .unwrap_or("token");
    let username = generate_username(display, name, now);
    let password = inner.password(&config).await?;
    let sql_password = config.password_for_sql(&password);
    let expiration = expiration_text(now + secs(role.ttl()));
    let vars = [
        ("name", username.as_str()),
        ("username", username.as_str()),
        ("password", sql_password.as_str()),
        ("expiration", expiration.as_str()),
    ];
    pool.run(
        &role.creation_statements,
        &vars,
        &[&password, &sql_password],
        || async { Ok(()) },
    )
    .await
    .map_err(|e| super::context("failed to create the database user", e))?;
    tracing::info!(role = %name, username = %username, "database user created");
    let mut internal = Data::new();
    internal.insert("username".into(), json!(username));
    internal.insert("role".into(), json!(name));
    internal.insert("db_name".into(), json!(role.db_name));
    Ok(Response::leased(
        json!({ "username": username, "password": password.as_str() }),
        SecretLease {
            ttl: role.default_ttl,
            max_ttl: role.max_ttl,
            renewable: true,
            internal,
        },
    ))
}

fn secs(n: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

/// A string of the lease's internal data.
fn internal<'a>(lease: &'a LeaseContext, key: &str) -> Result<&'a str, LogicalError> {
    lease
        .internal
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| LogicalError::Internal(format!("lease has no {key} in its internal data")))
}

/// The new end of a lease renewed at `now`: `increment` (else the role's TTL) from now,
/// capped at `max_ttl` from issue. Returns the end and the granted seconds.
pub(super) fn renewal_end(
    role: &Role,
    lease: &LeaseContext,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, u64), LogicalError> {
    let increment = if lease.increment > 0 {
        lease.increment
    } else {
        role.ttl()
    };
    let mut end = now + secs(increment);
    if role.max_ttl > 0 {
        let cap = lease.issue_time + secs(role.max_ttl);
        if cap <= now {
            return Err(LogicalError::invalid(
                "lease is past its max_ttl and cannot be renewed",
            ));
        }
        end = end.min(cap);
    }
    let granted = u64::try_from((end - now).num_seconds()).unwrap_or(0);
    Ok((end, granted))
}

/// [`Operation::Renew`]: move `VALID UNTIL` (or run the role's renew statements).
pub(super) async fn renew(inner: &Inner, lease: &LeaseContext) -> Result<Response, LogicalError> {
    let username = internal(lease, "username")?;
    let role_name = internal(lease, "role")?;
    let role = load(inner, role_name).await?.ok_or_else(|| {
        LogicalError::invalid(format!(
            "error during renew: could not find role with name {role_name:?}"
        ))
    })?;
    let (end, granted) = renewal_end(&role, lease, Utc::now())?;
    let (_, pool) = inner.connection(&role.db_name).await?;
    let statements = if role.renew_statements.is_empty() {
        vec![DEFAULT_RENEW.to_string()]
    } else {
        role.renew_statements.clone()
    };
    let expiration = expiration_text(end);
    let vars = [
        ("name", username),
        ("username", username),
        ("expiration", expiration.as_str()),
    ];
    pool.run(&statements, &vars, &[], || async { Ok(()) })
        .await
        .map_err(|e| super::context("failed to renew the database user", e))?;
    Ok(Response {
        secret: Some(SecretLease {
            ttl: granted,
            max_ttl: role.max_ttl,
            renewable: true,
            internal: lease.internal.clone(),
        }),
        ..Response::default()
    })
}

/// [`Operation::Revoke`]: end the user's sessions and drop it (the role's revocation
/// statements if it has some, else Vault's default), in one transaction.
pub(super) async fn revoke(inner: &Inner, lease: &LeaseContext) -> Result<Response, LogicalError> {
    let username = internal(lease, "username")?;
    let role = load(inner, internal(lease, "role")?).await?;
    let db_name = match &role {
        Some(r) => r.db_name.as_str(),
        None => internal(lease, "db_name")?,
    };
    let (_, pool) = inner.connection(db_name).await?;
    let custom = role
        .as_ref()
        .map(|r| r.revocation_statements.clone())
        .unwrap_or_default();
    let statements = if custom.is_empty() {
        default_revocation(&pool, username).await?
    } else {
        custom
    };
    let vars = [("name", username), ("username", username)];
    pool.run(&statements, &vars, &[], || async { Ok(()) })
        .await
        .map_err(|e| super::context("failed to revoke the database user", e))?;
    tracing::info!(username = %username, "database user revoked");
    Ok(Response::empty())
}

/// Vault's default revocation, made concrete for this user: end its sessions, revoke what
/// it was granted in each schema and on the database, hand what it owns to the engine's
/// user, drop it. Empty (beyond ending sessions) when the user is already gone.
async fn default_revocation(
    pool: &super::conn::Pool,
    username: &str,
) -> Result<Vec<String>, LogicalError> {
    let user = quote_ident(username);
    let mut out = vec![format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = '{}' AND pid <> pg_backend_pid()",
        username.replace('\'', "''")
    )];
    let client = pool.client().await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&username])
        .await
        .map_err(|e| pool.statement_error(&e, &[]))?
        .is_some();
    if !exists {
        return Ok(out);
    }
    let schemas = client
        .query(
            "SELECT DISTINCT table_schema::text FROM information_schema.role_column_grants \
             WHERE grantee = $1 UNION SELECT DISTINCT table_schema::text \
             FROM information_schema.role_table_grants WHERE grantee = $1",
            &[&username],
        )
        .await
        .map_err(|e| pool.statement_error(&e, &[]))?;
    for row in schemas {
        let schema = quote_ident(row.get::<_, &str>(0));
        for what in ["TABLES", "SEQUENCES", "FUNCTIONS"] {
            out.push(format!(
                "REVOKE ALL PRIVILEGES ON ALL {what} IN SCHEMA {schema} FROM {user}"
            ));
        }
        out.push(format!("REVOKE USAGE ON SCHEMA {schema} FROM {user}"));
    }
    let db: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| pool.statement_error(&e, &[]))?
        .get(0);
    out.push(format!(
        "REVOKE ALL PRIVILEGES ON DATABASE {} FROM {user}",
        quote_ident(&db)
    ));
    out.push(format!("REASSIGN OWNED BY {user} TO current_user"));
    out.push(format!("DROP OWNED BY {user}"));
    out.push(format!("DROP ROLE IF EXISTS {user}"));
    Ok(out)
}

/// Dispatch of the expiration manager's requests.
pub(super) async fn lease_operation(
    inner: &Inner,
    req: &Request,
) -> Result<Response, LogicalError> {
    let lease = req
        .lease
        .as_ref()
        .ok_or_else(|| LogicalError::invalid("renew and revoke need a lease"))?;
    match req.operation {
        Operation::Renew => renew(inner, lease).await,
        _ => revoke(inner, lease).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(issued: DateTime<Utc>, increment: u64) -> LeaseContext {
        LeaseContext {
            lease_id: "database/creds/ro/x".into(),
            internal: Data::new(),
            issue_time: issued,
            expire_time: issued,
            increment,
        }
    }

    #[test]
    fn renewal_counts_from_now_and_stops_at_max_ttl() {
        let role = Role {
            default_ttl: 60,
            max_ttl: 300,
            ..Role::default()
        };
        let issued = Utc::now();
        let now = issued + TimeDelta::seconds(100);
        assert_eq!(renewal_end(&role, &lease(issued, 0), now).unwrap().1, 60);
        assert_eq!(renewal_end(&role, &lease(issued, 120), now).unwrap().1, 120);
        // Capped: 300 from issue is 200 from now.
        let (end, granted) = renewal_end(&role, &lease(issued, 1000), now).unwrap();
        assert_eq!(granted, 200);
        assert_eq!(end, issued + TimeDelta::seconds(300));
        let late = issued + TimeDelta::seconds(301);
        assert!(renewal_end(&role, &lease(issued, 10), late).is_err());
        let unbounded = Role::default();
        assert_eq!(
            renewal_end(&unbounded, &lease(issued, 0), now).unwrap().1,
            SYSTEM_DEFAULT_TTL
        );
    }

    #[test]
    fn roles_need_a_database_and_statements() {
        let d = |v: Value| v.as_object().unwrap().clone();
        assert!(merge(None, &d(json!({"creation_statements": "CREATE ROLE x"}))).is_err());
        assert!(merge(None, &d(json!({"db_name": "pg"}))).is_err());
        assert!(merge(
            None,
            &d(json!({"db_name": "pg", "creation_statements": "x", "default_ttl": "2h", "max_ttl": "1h"}))
        )
        .is_err());
        let r = merge(
            None,
            &d(json!({"db_name": "pg", "creation_statements": ["a", "b"], "default_ttl": "1h"})),
        )
        .unwrap();
        assert_eq!(r.default_ttl, 3600);
        assert_eq!(r.creation_statements.len(), 2);
        // An update keeps what it does not name.
        let r2 = merge(Some(r.clone()), &d(json!({"max_ttl": 7200}))).unwrap();
        assert_eq!(r2.creation_statements, r.creation_statements);
        assert_eq!(r2.max_ttl, 7200);
    }
}

//! Static roles: `static-roles/:name` (an existing database user whose password the engine
//! owns), `static-creds/:name`, `rotate-role/:name`, and the schedule that rotates each
//! password every `rotation_period`.
//!
//! The schedule is one task over an ordered index (`BTreeSet<(due, name)>` + `Notify`), not
//! a timer per role. Each role stores its `last_vault_rotation`, so after a restart the index
//! is rebuilt from storage and an overdue rotation runs at once. A failed rotation is
//! retried after [`RETRY`] (or the period, if shorter).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::template::{statements_field, str_field, SecretText};
use super::{Inner, STATIC_PREFIX};
use crate::logical::fields::field_secs;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Vault's floor for `rotation_period`.
const MIN_PERIOD: u64 = 5;
/// Wait before retrying a failed rotation.
const RETRY: u64 = 10;
/// Rotation when the role has no statements of its own.
const DEFAULT_ROTATION: &str = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'";

/// One stored static role, with the password it last set.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StaticRole {
    pub db_name: String,
    pub username: String,
    pub rotation_period: u64,
    pub rotation_statements: Vec<String>,
    pub password: SecretText,
    pub last_vault_rotation: DateTime<Utc>,
}

impl std::fmt::Debug for StaticRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticRole")
            .field("db_name", &self.db_name)
            .field("username", &self.username)
            .field("rotation_period", &self.rotation_period)
            .finish_non_exhaustive()
    }
}

impl StaticRole {
    fn next_rotation(&self) -> DateTime<Utc> {
        self.last_vault_rotation + secs(self.rotation_period)
    }

    /// Seconds until the next rotation (0 when overdue).
    fn ttl(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from((self.next_rotation() - now).num_seconds()).unwrap_or(0)
    }

    fn to_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "db_name": self.db_name,
            "username": self.username,
            "rotation_period": self.rotation_period,
            "rotation_statements": self.rotation_statements,
            "last_vault_rotation": rfc3339(self.last_vault_rotation),
            "ttl": self.ttl(now),
            "credential_type": "password",
            "credential_config": {},
        })
    }
}

fn secs(n: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn key(name: &str) -> String {
    format!("{STATIC_PREFIX}{name}")
}

async fn load(inner: &Inner, name: &str) -> Result<Option<StaticRole>, LogicalError> {
    Ok(inner.view.get_json(&key(name)).await?)
}

/// The rotation index: when each static role is due.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    state: parking_lot::Mutex<ScheduleState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct ScheduleState {
    queue: BTreeSet<(DateTime<Utc>, String)>,
    due: HashMap<String, DateTime<Utc>>,
}

impl Schedule {
    pub(super) fn set(&self, name: &str, at: DateTime<Utc>) {
        let mut st = self.state.lock();
        if let Some(old) = st.due.insert(name.to_string(), at) {
            st.queue.remove(&(old, name.to_string()));
        }
        st.queue.insert((at, name.to_string()));
        drop(st);
        self.changed.notify_one();
    }

    pub(super) fn remove(&self, name: &str) {
        let mut st = self.state.lock();
        if let Some(old) = st.due.remove(name) {
            st.queue.remove(&(old, name.to_string()));
        }
    }

    fn next(&self) -> Option<DateTime<Utc>> {
        self.state.lock().queue.first().map(|(t, _)| *t)
    }

    /// Take the names due at `now` out of the index.
    fn take_due(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        while let Some((t, name)) = st.queue.first().cloned() {
            if t > now {
                break;
            }
            st.queue.pop_first();
            st.due.remove(&name);
            out.push(name);
        }
        out
    }
}

/// Fill the index from storage (at mount and unseal).
pub(super) async fn load_schedule(inner: &Inner) -> Result<(), LogicalError> {
    for name in inner.view.list(STATIC_PREFIX).await? {
        if let Some(role) = load(inner, &name).await? {
            inner.schedule.set(&name, role.next_rotation());
        }
    }
    Ok(())
}

/// The rotation task: sleep until the first due role (or a change), rotate what is due.
pub(super) async fn run_schedule(inner: Arc<Inner>, cancel: CancellationToken) {
    loop {
        let wait = inner
            .schedule
            .next()
            .map_or(Duration::from_secs(3600), |t| {
                (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            });
        tokio::select! {
            () = cancel.cancelled() => return,
            () = inner.schedule.changed.notified() => continue,
            () = tokio::time::sleep(wait) => {}
        }
        for name in inner.schedule.take_due(Utc::now()) {
            let _guard = inner.lock.lock().await;
            match load(&inner, &name).await {
                Ok(Some(role)) => {
                    if let Err(e) = rotate(&inner, &name, &role).await {
                        tracing::warn!(role = %name, error = %e, "static role rotation failed; will retry");
                        let retry = RETRY.min(role.rotation_period);
                        inner.schedule.set(&name, Utc::now() + secs(retry));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(role = %name, error = %e, "cannot read static role; will retry");
                    inner.schedule.set(&name, Utc::now() + secs(RETRY));
                }
            }
        }
    }
}

/// Set a new password for `role` in the database and store it (the database change commits
/// only once it is stored); reschedule. The caller holds `inner.lock`.
async fn rotate(inner: &Inner, name: &str, role: &StaticRole) -> Result<StaticRole, LogicalError> {
    let (config, pool) = inner.connection(&role.db_name).await?;
    let password = inner.password(&config).await?;
    let sql_password = config.password_for_sql(&password);
    let statements = if role.rotation_statements.is_empty() {
        vec![DEFAULT_ROTATION.to_string()]
    } else {
        role.rotation_statements.clone()
    };
    let mut next = role.clone();
    next.password = SecretText::new(password.as_str());
    next.last_vault_rotation = Utc::now();
    let vars = [
        ("name", role.username.as_str()),
        ("username", role.username.as_str()),
        ("password", sql_password.as_str()),
    ];
    let previous = inner.view.get_json::<StaticRole>(&key(name)).await?;
    inner
        .run_and_store(
            &pool,
            &statements,
            &vars,
            &[&password, &sql_password],
            &key(name),
            &next,
            previous.as_ref(),
        )
        .await
        .map_err(|e| super::context("failed to rotate the static role's password", e))?;
    inner.schedule.set(name, next.next_rotation());
    inner.events.publish(
        "database/rotate",
        &format!("rotate-role/{name}"),
        Some(&format!("static-creds/{name}")),
        &[("name", name.to_string())],
    );
    tracing::info!(role = %name, "static role password rotated");
    Ok(next)
}

/// `static-roles/:name`.
pub(super) async fn handle(
    inner: &Inner,
    req: &Request,
    name: &str,
) -> Result<Response, LogicalError> {
    match req.operation {
        Operation::Read => match load(inner, name).await? {
            Some(r) => Ok(Response::data(r.to_json(Utc::now()))),
            None => Err(LogicalError::NotFound(String::new())),
        },
        Operation::Create | Operation::Update => write(inner, req, name).await,
        Operation::Delete => {
            let _guard = inner.lock.lock().await;
            inner.view.delete(&key(name)).await?;
            inner.schedule.remove(name);
            Ok(Response::empty())
        }
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

async fn write(inner: &Inner, req: &Request, name: &str) -> Result<Response, LogicalError> {
    let d = &req.data;
    let _guard = inner.lock.lock().await;
    let existing = load(inner, name).await?;
    let username = str_field(d, "username")?;
    let db_name = str_field(d, "db_name")?;
    let period = field_secs(d, "rotation_period")?;
    let statements = statements_field(d, "rotation_statements")?;
    if let Some(p) = period {
        if p < MIN_PERIOD {
            return Err(LogicalError::invalid(format!(
                "rotation_period must be {MIN_PERIOD} seconds or more"
            )));
        }
    }
    let Some(mut role) = existing else {
        let username = username.filter(|u| !u.is_empty()).ok_or_else(|| {
            LogicalError::invalid("username is a required field to create a static account")
        })?;
        let db_name = db_name
            .filter(|d| !d.is_empty())
            .ok_or_else(|| LogicalError::invalid("database name is a required field"))?;
        let rotation_period = period.ok_or_else(|| {
            LogicalError::invalid("rotation_period is required to create static accounts")
        })?;
        let role = StaticRole {
            db_name,
            username,
            rotation_period,
            rotation_statements: statements.unwrap_or_default(),
            password: SecretText::default(),
            last_vault_rotation: Utc::now(),
        };
        let (config, _) = inner.connection(&role.db_name).await?;
        config.check_allowed(name)?;
        // Vault's default: take the account over by rotating its password at once.
        rotate(inner, name, &role).await?;
        return Ok(Response::empty());
    };
    if let Some(u) = username {
        if u != role.username {
            return Err(LogicalError::invalid(
                "cannot update static account username",
            ));
        }
    }
    if let Some(db) = db_name {
        if db != role.db_name {
            return Err(LogicalError::invalid(
                "cannot update static role's database name",
            ));
        }
    }
    if let Some(p) = period {
        role.rotation_period = p;
    }
    if let Some(s) = statements {
        role.rotation_statements = s;
    }
    inner.view.put_json(&key(name), &role).await?;
    inner.schedule.set(name, role.next_rotation());
    Ok(Response::empty())
}

/// GET `static-creds/:name`.
pub(super) async fn creds(inner: &Inner, name: &str) -> Result<Response, LogicalError> {
    let role = load(inner, name)
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("unknown role: {name}")))?;
    let now = Utc::now();
    Ok(Response::data(json!({
        "username": role.username,
        "password": role.password.expose(),
        "last_vault_rotation": rfc3339(role.last_vault_rotation),
        "rotation_period": role.rotation_period,
        "ttl": role.ttl(now),
    })))
}

/// `rotate-role/:name`: rotate now.
pub(super) async fn rotate_now(inner: &Inner, name: &str) -> Result<Response, LogicalError> {
    let _guard = inner.lock.lock().await;
    let role = load(inner, name).await?.ok_or_else(|| {
        LogicalError::invalid(format!("no static role found for role name {name:?}"))
    })?;
    rotate(inner, name, &role).await?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_orders_replaces_and_takes_due() {
        let s = Schedule::default();
        let t0 = Utc::now();
        s.set("b", t0 + TimeDelta::seconds(20));
        s.set("a", t0 + TimeDelta::seconds(10));
        assert_eq!(s.next(), Some(t0 + TimeDelta::seconds(10)));
        // Moving a role replaces its entry.
        s.set("a", t0 + TimeDelta::seconds(30));
        assert_eq!(s.next(), Some(t0 + TimeDelta::seconds(20)));
        assert!(s.take_due(t0).is_empty());
        assert_eq!(
            s.take_due(t0 + TimeDelta::seconds(25)),
            vec!["b".to_string()]
        );
        s.remove("a");
        assert_eq!(s.next(), None);
    }

    #[test]
    fn ttl_counts_down_to_the_next_rotation() {
        let now = Utc::now();
        let role = StaticRole {
            db_name: "pg".into(),
            username: "app".into(),
            rotation_period: 60,
            rotation_statements: vec![],
            password: SecretText::new("pw"),
            last_vault_rotation: now - TimeDelta::seconds(20),
        };
        assert_eq!(role.ttl(now), 40);
        assert_eq!(role.ttl(now + TimeDelta::seconds(100)), 0);
        let j = role.to_json(now);
        assert!(j.get("password").is_none());
        assert!(!format!("{role:?}").contains("pw"));
    }
}

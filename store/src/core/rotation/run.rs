//! One rotation's four steps and the scheduler task that runs them.
//!
//! The steps, each a signed POST to the config's webhook (`sys/webhooks`), with the JSON body
//! `{"step", "path", "version"}` plus `"value"` (the pending fields) for `set` and `test`,
//! the one payload that carries a secret since the target system needs it:
//!
//! 1. **create**: hushd writes the new version as *pending* (fields of the current version,
//!    the `generate` ones new), then tells the webhook.
//! 2. **set**: the webhook applies the pending value to the target system.
//! 3. **test**: the webhook checks the target accepts it.
//! 4. **finish**: on the webhook's 2xx, hushd makes pending *current* and the old current
//!    *previous* (agents and readers see the new value from here on).
//!
//! The step reached is stored after each one, so a hushd killed between *set* and *finish*
//! resumes at the stored step (its due entry is left in place until the run ends). Any
//! failure marks the pending version failed (current untouched), and the run is retried
//! after 30 s, doubling up to an hour; `rotation.succeeded`/`rotation.failed` go to the
//! webhooks that want them.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::config::{Generator, RotationConfig};
use super::{RotationState, Rotations, Step};
use crate::core::passwords::PasswordPolicies;
use crate::core::router::Router;
use crate::core::webhooks::Webhooks;
use crate::logical::rotation::SecretFields;
use crate::logical::LogicalBackend;

/// The scheduler's longest sleep (it also wakes on a new earlier run or a clock move).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The first retry after a failure; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: TimeDelta = TimeDelta::seconds(30);
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// The wait before retrying after `failures` failures in a row.
pub fn backoff(failures: u32) -> TimeDelta {
    let exp = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2i32.pow(exp)).min(MAX_BACKOFF)
}

/// What the steps use: the mounts, the webhooks, the password policies.
#[derive(Debug)]
pub struct Env {
    pub rotations: Arc<Rotations>,
    pub router: Arc<Router>,
    pub webhooks: Arc<Webhooks>,
    pub passwords: Arc<PasswordPolicies>,
}

/// Start the scheduler (on the active node, at unseal); it ends with `cancel`.
pub fn spawn(env: Env, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let st = &env;
        let r = env.rotations.clone();
        loop {
            let wait = match r.head().await {
                Ok(Some((at, name))) if at <= r.now() => {
                    if let Err(e) = run(st, &r, &name).await {
                        warn!(rotation = %name, error = %e, "rotation could not record its outcome");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
                Ok(Some((at, _))) => (at - r.now()).to_std().unwrap_or_default().min(MAX_SLEEP),
                Ok(None) => MAX_SLEEP,
                Err(e) => {
                    warn!(error = %e, "rotation schedule unreadable");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = r.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Run (or resume) the rotation `name`, then record its outcome and next run.
async fn run(st: &Env, r: &Rotations, name: &str) -> Result<(), crate::barrier::BarrierError> {
    let mut state = r.state(name).await?;
    let Some(config) = r.config(name).await? else {
        // Removed while due: drop the stale entry.
        let ops = r.reschedule_ops(name, &mut state, None)?;
        return r.view.write(ops).await;
    };
    let started = r.now();
    state.last_run = Some(started);
    if state.trigger.is_none() {
        state.trigger = Some("schedule".into());
    }
    let outcome = steps(st, r, &config, &mut state).await;
    let now = r.now();
    let pending = state.pending_version.take();
    state.step = Step::Idle;
    let (event, next) = match &outcome {
        Ok(()) => {
            state.failures = 0;
            state.last_outcome = Some("succeeded".into());
            state.last_error = None;
            state.last_success = Some(now);
            state.rotations += 1;
            info!(rotation = %name, version = pending, "rotation finished");
            (
                "rotation.succeeded",
                config.parsed_schedule().map(|s| s.next_after(now)),
            )
        }
        Err(e) => {
            if let Some(v) = pending {
                mark_failed(st, &config, v).await;
            }
            state.failures += 1;
            state.last_outcome = Some("failed".into());
            state.last_error = Some(e.clone());
            warn!(rotation = %name, error = %e, failures = state.failures, "rotation failed; current version kept");
            ("rotation.failed", Some(now + backoff(state.failures)))
        }
    };
    let trigger = state.trigger.take();
    let ops = r.reschedule_ops(name, &mut state, next)?;
    r.view.write(ops).await?;
    let mut data = Map::new();
    data.insert("version".into(), json!(pending));
    data.insert("trigger".into(), json!(trigger));
    if let Err(e) = &outcome {
        data.insert("error".into(), json!(e));
    }
    notify(st, event, &config.data_path(), data).await;
    Ok(())
}

/// The mount's backend holding the secret.
fn engine(st: &Env, config: &RotationConfig) -> Option<Arc<dyn LogicalBackend>> {
    let (entry, backend) = st.router.route(&config.data_path()).ok()?;
    (entry.path == config.mount).then_some(backend)
}

async fn mark_failed(st: &Env, config: &RotationConfig, version: u64) {
    let Some(backend) = engine(st, config) else {
        return;
    };
    let Some(kv) = backend.rotatable() else {
        return;
    };
    if let Err(e) = kv.fail(&config.key, version).await {
        warn!(rotation = %config.name(), version, error = %e, "could not mark the pending version failed");
    }
}

/// The steps from where `state` stands; `Err`: what failed, fit for the status and a log.
async fn steps(
    st: &Env,
    r: &Rotations,
    config: &RotationConfig,
    state: &mut RotationState,
) -> Result<(), String> {
    let backend =
        engine(st, config).ok_or_else(|| format!("nothing is mounted at {}", config.mount))?;
    let kv = backend
        .rotatable()
        .ok_or_else(|| format!("{} is not a kv version 2 mount", config.mount))?;
    let name = config.name();
    if state.step == Step::Idle {
        let base = kv
            .labels(&config.key)
            .await
            .map_err(|e| format!("create: {e}"))?
            .map(|l| l.current)
            .unwrap_or(0);
        let mut fields = match base {
            0 => SecretFields(Map::new()),
            v => kv
                .read_version(&config.key, v)
                .await
                .map_err(|e| format!("create: {e}"))?
                .unwrap_or(SecretFields(Map::new())),
        };
        for (field, generator) in &config.generate {
            let value = generate(st, generator)
                .await
                .map_err(|e| format!("create: field {field}: {e}"))?;
            fields
                .0
                .insert(field.clone(), Value::String(value.to_string()));
        }
        let version = kv
            .create_pending(&config.key, base, &fields)
            .await
            .map_err(|e| format!("create: {e}"))?;
        state.step = Step::Set;
        state.pending_version = Some(version);
        state.base_version = base;
        save(r, &name, state).await?;
    }
    let version = state
        .pending_version
        .ok_or_else(|| "the stored rotation has no pending version".to_string())?;
    let path = config.data_path();
    let plain = |step: &str| json!({"step": step, "path": path, "version": version});
    while state.step != Step::Idle {
        match state.step {
            Step::Set | Step::Test => {
                let step = if state.step == Step::Set {
                    "set"
                } else {
                    "test"
                };
                if state.step == Step::Set {
                    call(st, config, &plain("create"), "create").await?;
                }
                let fields = kv
                    .read_version(&config.key, version)
                    .await
                    .map_err(|e| format!("{step}: {e}"))?
                    .ok_or_else(|| format!("{step}: the pending version {version} is gone"))?;
                let body = SecretBody(json!({
                    "step": step,
                    "path": path,
                    "version": version,
                    "value": fields.0,
                }));
                call(st, config, &body.0, step).await?;
                state.step = if state.step == Step::Set {
                    Step::Test
                } else {
                    Step::Finish
                };
                save(r, &name, state).await?;
            }
            Step::Finish => {
                call(st, config, &plain("finish"), "finish").await?;
                if let Err(e) = kv.promote(&config.key, version, state.base_version).await {
                    // Promoted before a crash, then resumed here: done already.
                    let current = kv
                        .labels(&config.key)
                        .await
                        .ok()
                        .flatten()
                        .map(|l| l.current);
                    if current != Some(version) {
                        return Err(format!("finish: {e}"));
                    }
                }
                return Ok(());
            }
            Step::Idle => unreachable!("loop condition"),
        }
    }
    Ok(())
}

async fn save(r: &Rotations, name: &str, state: &RotationState) -> Result<(), String> {
    r.view
        .put_json(
            &format!("{}{}", super::STATE, crate::core::agents::escape(name)),
            state,
        )
        .await
        .map_err(|e| format!("recording the step: {e}"))
}

/// A request body holding secret values: its strings are wiped when dropped.
struct SecretBody(Value);

impl Drop for SecretBody {
    fn drop(&mut self) {
        if let Value::Object(m) = std::mem::take(&mut self.0) {
            drop(SecretFields(m));
        }
    }
}

/// One step's POST to the config's webhook.
async fn call(st: &Env, config: &RotationConfig, body: &Value, step: &str) -> Result<(), String> {
    st.webhooks
        .call(&config.webhook, body)
        .await
        .map(drop)
        .map_err(|e| format!("{step}: webhook {}: {e}", config.webhook))
}

async fn generate(st: &Env, generator: &Generator) -> Result<zeroize::Zeroizing<String>, String> {
    match generator {
        Generator::Length(n) => Ok(crate::logical::password::generate_default(*n as usize)),
        Generator::Policy(p) => st.passwords.generate(p).await.map_err(|e| e.to_string()),
    }
}

async fn notify(st: &Env, event: &str, path: &str, data: Map<String, Value>) {
    if let Err(e) = st.webhooks.emit(event, path, data).await {
        warn!(event, path, error = %e, "could not queue the rotation's webhook event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_up_to_an_hour() {
        assert_eq!(backoff(1), TimeDelta::seconds(30));
        assert_eq!(backoff(2), TimeDelta::seconds(60));
        assert_eq!(backoff(5), TimeDelta::seconds(480));
        assert_eq!(backoff(12), TimeDelta::hours(1));
        assert_eq!(backoff(u32::MAX), TimeDelta::hours(1));
    }
}

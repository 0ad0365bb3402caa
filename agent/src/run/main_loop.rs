//! The loop: `--once`'s single pass, or cycles until shutdown. Between two cycles it sleeps
//! until the earliest of the refresh interval (or the backoff delay after a transient
//! failure), the next lease time and the deadline of an open waiting for a lazy secret, and
//! wakes early for shutdown, the supervised child's exit, a signal to pass on, a first open
//! of a lazy file, a pushed change (hushd's events: a cycle over the sources it names, or
//! over all of them after a resubscription), or a `SIGHUP` reload. systemd hears of each step (`READY=1` with
//! `/readyz`, `STATUS=` after each cycle, `RELOADING=1`/`READY=1` around a reload).

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::outcome::{Finished, RunError};
use super::reload::{self, Reload};
use super::start::{Agent, Tasks};
use crate::config::{self, ChildOnChange, Config};
use crate::events;
use crate::keeper::{self, Keeper};
use crate::notify::supervise::{ChangePolicy, ChildEnv, ChildSpec, Supervisor};
use crate::notify::{self, Notifier, NotifyConfig, Signal};
use crate::retry::backoff::Backoff;
use crate::sink::fuse::FuseSink;
use crate::telemetry::systemd::{Status, Systemd};

/// How long a supervised child has to exit after `SIGTERM` (the agent itself must be gone
/// within 5 s of its own).
const CHILD_GRACE: Duration = Duration::from_secs(3);
/// Least wait between two cycles driven by lease times.
const LEASE_MIN_WAIT: Duration = Duration::from_millis(50);

fn notifier(config: &Config) -> Notifier {
    Notifier::new(NotifyConfig {
        command: config
            .notify
            .command
            .as_ref()
            .map(|argv| notify::CommandSpec {
                argv: argv.clone(),
                timeout: config.notify.timeout,
            }),
        signal: config.notify.signal.as_ref().and_then(|(name, target)| {
            let signal = name.parse::<Signal>().ok()?;
            let target = match target {
                config::SignalTarget::PidFile(p) => notify::SignalTarget::PidFile(p.clone()),
                config::SignalTarget::ProcessName(n) => {
                    notify::SignalTarget::ProcessName(n.clone())
                }
            };
            Some(notify::SignalSpec { signal, target })
        }),
    })
}

/// The supervised child's environment: each `--env NAME=FILE` gets the file's content.
fn child_env(config: &Config, keeper: &Keeper) -> ChildEnv {
    let mut env = ChildEnv::new();
    if let Some(exec) = &config.exec {
        for (var, file) in &exec.env {
            match keeper.file_text(file) {
                Some(text) => {
                    env.insert(var.clone(), text);
                }
                None => tracing::warn!(
                    var = %var,
                    file = %file,
                    "file is not valid UTF-8 or not rendered; not passed to the child"
                ),
            }
        }
    }
    env
}

fn change_policy(on_change: &ChildOnChange) -> ChangePolicy {
    match on_change {
        ChildOnChange::Restart => ChangePolicy::Restart,
        ChildOnChange::Signal(name) => {
            ChangePolicy::Signal(name.parse::<Signal>().unwrap_or(Signal::SIGHUP))
        }
    }
}

/// `--once`: one cycle; hand the leases over when everything is rendered.
pub(super) async fn once(
    agent: &mut Agent,
    shutdown: &CancellationToken,
) -> Result<Finished, RunError> {
    let (config, keeper) = (&agent.config, &mut agent.keeper);
    let deadline = agent
        .once_deadline
        .unwrap_or_else(|| tokio::time::Instant::now() + config.once_deadline);
    let report = tokio::select! {
        _ = shutdown.cancelled() => return Ok(Finished::Done),
        r = tokio::time::timeout_at(deadline, keeper.cycle(None)) => match r {
            Ok(r) => r,
            Err(_) => return Err(RunError::OnceDeadline {
                after: config.once_deadline,
                last: "the store did not answer every read".into(),
            }),
        },
    };
    if report.complete {
        if keeper.holds_leases() {
            // Leave the leases (and the token they hang on) to the long-running agent.
            let state = keeper.handoff_state().await;
            match keeper::handoff::write(&config.destination.path, &state) {
                Ok(()) => tracing::info!(
                    leases = state.leases.len(),
                    file = keeper::handoff::FILE_NAME,
                    "handed the leases over to the next agent"
                ),
                Err(e) => tracing::warn!(error = %e, "could not hand the leases over"),
            }
        }
        return Ok(Finished::Done);
    }
    let mut problems = report.problems;
    if problems.is_empty() {
        problems = keeper.render_problems();
    }
    Err(RunError::Incomplete(problems))
}

/// Cycle until shutdown or the supervised child's exit. Returns the child still running, for
/// the shutdown to stop.
pub(super) async fn run(
    agent: &mut Agent,
    tasks: &Tasks,
    shutdown: &CancellationToken,
    mut reload: Option<Reload>,
    systemd: &Systemd,
) -> Result<(Finished, Option<Supervisor>), RunError> {
    let Agent {
        config,
        metrics,
        fuse,
        keeper,
        ..
    } = agent;
    let ready_tx = &tasks.ready;
    let report_to = &agent.report;
    let inbox = tasks.inbox.clone();
    // When the oldest pushed change not yet on disk arrived.
    let mut push_since: Option<Instant> = None;
    let mut notifier = notifier(config);
    // What the next `STATUS=` line says.
    let mut status = Status::default();
    // A reload was applied while ready: `READY=1` after the next cycle.
    let mut reload_owed = false;
    let mut child: Option<Supervisor> = None;
    let new_backoff = |config: &Config| {
        Backoff::new(
            config.refresh_interval.min(Duration::from_secs(1)),
            config.backoff_max,
        )
    };
    let mut backoff = new_backoff(config);
    // FUSE: files whose lazy secrets a first open asks for.
    let mut lazy_requests = fuse.as_mut().and_then(FuseSink::take_requests);
    // FUSE: the soonest deadline of an open waiting for a lazy secret.
    let mut lazy_deadline = None;
    // FUSE: lazy sources a first open asked for: the next cycle looks at those alone.
    let mut only: Option<Vec<usize>> = None;
    // When the next full cycle is due (a cycle for lazy sources does not move it).
    let mut next_full = Instant::now();
    // The lease ids last written to `.hush-leases.json` (`None`: not written yet this run).
    let mut persisted: Option<Vec<String>> = None;
    let finished = loop {
        let partial = only.take();
        let report = tokio::select! {
            _ = shutdown.cancelled() => break Finished::Done,
            r = keeper.cycle(partial.as_deref()) => r,
        };
        if let Some((_, board)) = report_to {
            board.post(keeper.agent_state());
        }
        if let Some(since) = push_since.take() {
            if report.written.is_some() {
                let latency = since.elapsed();
                metrics.push_event_to_file(latency);
                tracing::debug!(
                    latency_ms = latency.as_millis() as u64,
                    "pushed change on disk"
                );
            } else if report.transient {
                // Not read yet: the latency runs on until it is.
                push_since = Some(since);
            }
        }
        if let Some(f) = &fuse {
            // Opens waiting for a lazy secret that failed for good fail now; others at their
            // deadline.
            for file in f.waited_files() {
                if let keeper::LazyState::Failed(class) = keeper.lazy_state(file) {
                    f.fail_waiting(file, class);
                }
            }
            lazy_deadline = f.expire_waiting(Instant::now());
        }
        if fuse.is_none() && config.lease_record {
            persist_leases(config, keeper, &mut persisted).await;
        }
        if let Some(outcome) = &report.written {
            status.generation = Some(outcome.generation);
        }
        status.refreshed = Some(SystemTime::now());
        status.error = report.problems.first().cloned();
        if keeper.ready() && !*ready_tx.borrow() {
            tracing::info!("every file rendered: ready");
            metrics.set_ready(true);
            // send_replace: the value must change even when no listener holds a receiver
            // (no --metrics-listen), or this would run again after every cycle.
            ready_tx.send_replace(true);
            status.ready = true;
            systemd.ready(&status);
        } else if std::mem::take(&mut reload_owed) {
            systemd.ready(&status);
        } else {
            systemd.status(&status);
        }
        if let Some(outcome) = &report.written {
            if !notifier.is_empty() {
                let done = tokio::select! {
                    _ = shutdown.cancelled() => None,
                    r = notifier.notify(&outcome.changed_files, outcome.generation) => Some(r),
                };
                match done {
                    None => break Finished::Done,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, generation = outcome.generation, "notification failed")
                    }
                    Some(Ok(())) => {
                        tracing::debug!(generation = outcome.generation, "notified")
                    }
                }
            }
            if let (Some(c), Some(exec)) = (&child, &config.exec) {
                let env = child_env(config, keeper);
                if let Err(e) = c.on_change(&env, change_policy(&exec.on_change)).await {
                    tracing::warn!(error = %e, "could not tell the child about the change");
                }
            }
        }
        if child.is_none() && keeper.ready() {
            if let Some(exec) = &config.exec {
                let spec = ChildSpec {
                    argv: exec.argv.clone(),
                    grace: CHILD_GRACE,
                    // The token, and systemd's variables (the child is not the service).
                    remove_env: ["HUSH_TOKEN", "VAULT_TOKEN"]
                        .into_iter()
                        .chain(hush_api::sd_notify::ENV_VARS)
                        .map(String::from)
                        .collect(),
                };
                child = Some(Supervisor::spawn(spec, &child_env(config, keeper))?);
            }
        }
        let now = Instant::now();
        let mut delay = if report.transient {
            backoff.next_delay()
        } else if partial.is_some() {
            next_full.saturating_duration_since(now)
        } else {
            backoff.reset();
            config.refresh_interval
        };
        // A lease due sooner (renewal, new credentials, revoking a replaced one) comes first;
        // after a failure the backoff rules.
        if let (false, Some(due)) = (report.transient, keeper.next_due()) {
            let until = due.saturating_duration_since(Instant::now());
            delay = delay.min(until.max(LEASE_MIN_WAIT));
        }
        if let Some(at) = lazy_deadline {
            let until = at.saturating_duration_since(Instant::now());
            delay = delay.min(until.max(LEASE_MIN_WAIT));
        }
        next_full = now + delay;
        let child_exit = async {
            match &child {
                Some(c) => c.exited().await,
                None => std::future::pending().await,
            }
        };
        let lazy_request = async {
            match &mut lazy_requests {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let forwarded = async {
            match &child {
                Some(c) => c.forwarded_signal().await,
                None => std::future::pending().await,
            }
        };
        let pushed = async {
            match &inbox {
                Some(i) => i.wait().await,
                None => std::future::pending().await,
            }
        };
        let reload_request = async {
            match &mut reload {
                Some(r) => r.requests.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break Finished::Done,
            exit = child_exit => {
                tracing::info!(exit = %exit, "the supervised process exited; stopping");
                break Finished::ChildExited(exit);
            }
            sig = forwarded => {
                if let Some(c) = &child {
                    match c.signal(sig).await {
                        Ok(()) => tracing::info!(signal = %sig, "passed the signal on to the supervised process"),
                        Err(e) => tracing::warn!(error = %e, "could not pass the signal on"),
                    }
                }
                // Nothing to read: a cycle over no source, the full one keeps its time.
                only = Some(Vec::new());
            }
            Some(file) = lazy_request => {
                // A first open of a lazy file: lease its secrets now (with any other asked), in
                // a cycle over those alone.
                let mut sources = keeper.want_file(file);
                while let Some(file) = lazy_requests.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    sources.extend(keeper.want_file(file));
                }
                only = Some(sources);
            }
            pending = pushed => {
                // Every event queued meanwhile comes in this one batch: a burst is one cycle.
                only = if pending.resync {
                    tracing::debug!("checking every followed secret (subscribed to events)");
                    None
                } else {
                    let mut sources: Vec<usize> = pending
                        .paths
                        .iter()
                        .flat_map(|p| events::matching(&config.sources, p))
                        .collect();
                    sources.sort_unstable();
                    sources.dedup();
                    keeper.pushed(&sources);
                    Some(sources)
                };
                if only.as_ref().is_none_or(|s| !s.is_empty()) {
                    push_since = push_since.or(pending.since);
                }
            }
            Some(()) = reload_request => {
                // Under systemd a reload while starting is quiet: READY=1 comes with the files.
                let was_ready = *ready_tx.borrow();
                if was_ready {
                    systemd.reloading();
                }
                tracing::info!("SIGHUP: reading the config again");
                let loaded = reload.as_ref().map(|r| (r.load)());
                let applied = match loaded {
                    Some(loaded) => reload::apply(config, keeper, fuse.is_some(), loaded),
                    None => Ok(()),
                };
                match applied {
                    Ok(()) => {
                        notifier = self::notifier(config);
                        backoff = new_backoff(config);
                        reload_owed = was_ready;
                        // A full cycle now, with the new config.
                        only = None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "config reload refused; keeping the running config and its files");
                        if was_ready {
                            status.error = Some(format!("config reload refused: {e}"));
                            systemd.ready(&status);
                        }
                        // Nothing to read: a cycle over no source, the full one keeps its time.
                        only = Some(Vec::new());
                    }
                }
            }
            _ = tokio::time::sleep(delay) => {}
        }
    };
    Ok((finished, child))
}

/// Keep `.hush-leases.json` (the `--once` handoff file) in step with the leases the files
/// hold, so that after a `kill -9` (no shutdown, no revocation) the next agent adopts them
/// rather than leasing a second set. Written only when the lease ids change; removed when
/// none are held; a failure (a full tmpfs) is retried after the next cycle.
async fn persist_leases(config: &Config, keeper: &Keeper, persisted: &mut Option<Vec<String>>) {
    let ids = keeper.lease_ids();
    if persisted.as_ref() == Some(&ids) {
        return;
    }
    let dest = &config.destination.path;
    let written = if ids.is_empty() {
        match std::fs::remove_file(keeper::handoff::path_in(dest)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        keeper::handoff::write(dest, &keeper.handoff_state().await)
    };
    match written {
        Ok(()) => *persisted = Some(ids),
        Err(e) => tracing::warn!(
            error = %e,
            file = keeper::handoff::FILE_NAME,
            "could not record the leases for a restarted agent"
        ),
    }
}

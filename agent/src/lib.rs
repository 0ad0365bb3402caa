//! hush-agent: logs in to hushd, reads and leases secrets, and exposes them as files that change
//! all together (tmpfs) — or through a read-only FUSE filesystem that logs who opened what.
//!
//! # Layout
//!
//! The modules follow the agent's pipeline, left to right:
//!
//! - [`config`]: flags and the TOML file, parsed raw, then validated into [`config::Config`].
//! - [`auth`]: where the agent's token comes from (a token file, re-read when it changes) and
//!   keeping it alive (renew-self at about 2/3 of its TTL). Workload-identity logins land here.
//! - [`keeper`]: the loop that reads secrets, notices new versions (and, later, renews leases),
//!   retries with backoff during outages and never throws away the last good values.
//! - [`render`]: turns secret data into file contents (raw field, JSON, dotenv, templates).
//! - [`sink`]: where rendered files go: [`sink::files`] writes a set of files atomically
//!   (kubelet's `..data` symlink swap) on a checked tmpfs; [`sink::fuse`] (`--fuse`) serves
//!   them from memory through a read-only FUSE mount that logs every open.
//! - [`notify`]: tells the application after a swap (command, signal, supervised child).
//! - [`telemetry`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! [`run`] wires them: check the destination, open the token, then cycle until shutdown.

pub mod auth;
pub mod config;
pub mod keeper;
pub mod notify;
pub mod render;
pub mod sink;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use hush_api::{Client, ClientError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use auth::TokenSource;
use config::{ChildOnChange, Config};
use keeper::backoff::Backoff;
use keeper::{Keeper, Observer};
use notify::supervise::{ChangePolicy, ChildEnv, ChildExit, ChildSpec, Supervisor};
use notify::{Notifier, NotifyConfig, Signal};
use render::Renderer;
use sink::files::fs_check::{self, DestError};
use sink::files::{AtomicWriter, WriteError};
use sink::fuse::{FuseError, FuseSink};
use telemetry::Metrics;

/// How long a supervised child has to exit after `SIGTERM` (the agent itself must be gone
/// within 5 s of its own).
const CHILD_GRACE: Duration = Duration::from_secs(3);
/// Longest wait for `revoke-self` at exit.
const REVOKE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Least wait between two cycles driven by lease times.
const LEASE_MIN_WAIT: Duration = Duration::from_millis(50);
/// Mode of a tmpfs the agent mounts.
const TMPFS_MODE: u32 = 0o755;

/// Why the agent stopped with an error. Messages name secrets, files and paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Destination(#[from] DestError),
    #[error(transparent)]
    Token(#[from] auth::AuthError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Writer(#[from] WriteError),
    #[error(transparent)]
    Fuse(#[from] FuseError),
    #[error("{0}")]
    Render(#[from] render::RenderError),
    #[error("cannot listen on {addr} for metrics: {err}")]
    Listen {
        addr: std::net::SocketAddr,
        err: std::io::Error,
    },
    #[error("{0}")]
    Supervise(#[from] notify::supervise::SuperviseError),
    /// `--once` could not render everything; each line names a secret or a file.
    #[error("could not render every file:\n  {}", .0.join("\n  "))]
    Incomplete(Vec<String>),
}

/// How the agent finished without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// `--once` rendered everything, or a shutdown signal came.
    Done,
    /// The supervised child exited by itself: the agent exits with its code.
    ChildExited(ChildExit),
}

impl Finished {
    pub fn exit_code(self) -> i32 {
        match self {
            Finished::Done => 0,
            Finished::ChildExited(e) => e.exit_code(),
        }
    }
}

impl Observer for Metrics {
    fn store(&self, op: &'static str, outcome: &'static str, elapsed: Duration) {
        self.observe_store(op, outcome, elapsed.as_secs_f64());
    }
    fn token_ttl(&self, secs: u64) {
        Metrics::token_ttl(self, secs as f64);
    }
    fn render_ok(&self, file: &str, version: u64) {
        Metrics::render_ok(self, file, version);
    }
    fn render_error(&self, file: &str) {
        Metrics::render_error(self, file);
    }
}

/// Check (or mount) the destination before anything is fetched.
fn prepare_destination(config: &Config) -> Result<(), DestError> {
    let dest = &config.destination;
    if let Some(size) = dest.mount_tmpfs {
        if fs_check::check_destination(&dest.path, false).is_err() {
            fs_check::mount_tmpfs(&dest.path, size, TMPFS_MODE)?;
        }
    }
    let kind = fs_check::check_destination(&dest.path, dest.allow_disk)?;
    tracing::info!(path = %dest.path.display(), fs = %kind, "destination checked");
    Ok(())
}

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

/// Run the agent until `shutdown` is cancelled (or, with `--once`, one pass).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Finished, RunError> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    // Before any secret is fetched or written: a checked tmpfs, or the FUSE mount (which keeps
    // the files in memory).
    let mut fuse = match &config.destination.fuse {
        Some(settings) => Some(FuseSink::start(&config, settings, metrics.clone())?),
        None => {
            prepare_destination(&config)?;
            None
        }
    };
    let base = Client::new(&config.server.addr, config.server.ca_cert.as_deref(), None)?;
    let tokens = Arc::new(match &config.server.credential {
        config::Credential::TokenFile(path) => TokenSource::open(path)?,
        config::Credential::Login(spec) => TokenSource::for_login(spec.clone()),
    });
    if tokens.login_spec().is_some() {
        // With --once a refused credential ends the run; otherwise keep trying.
        let mut backoff = Backoff::new(
            config.refresh_interval.min(Duration::from_secs(1)),
            config.backoff_max,
        );
        let logged_in = tokens
            .login_until_ok(&base, &mut backoff, &shutdown, config.once)
            .await;
        if shutdown.is_cancelled() {
            return Ok(Finished::Done);
        }
        logged_in?;
    }
    let writer: Arc<dyn sink::Sink> = match &fuse {
        Some(f) => f.writer(),
        None => Arc::new(AtomicWriter::new(&config.destination.path)?),
    };
    let renderer = Renderer::new(&config)?;
    let observer: Arc<dyn Observer> = match &fuse {
        Some(f) => f.observer(),
        None => metrics.clone(),
    };
    let mut keeper = Keeper::new(
        config.clone(),
        base.clone(),
        tokens.clone(),
        renderer,
        writer,
        observer.clone(),
    );
    tracing::info!(
        addr = %config.server.addr,
        dest = %config.destination.path.display(),
        files = config.files.len(),
        secrets = config.sources.len(),
        once = config.once,
        fuse = fuse.is_some(),
        "hush-agent starting"
    );

    if config.once {
        let report = tokio::select! {
            _ = shutdown.cancelled() => return Ok(Finished::Done),
            r = keeper.cycle(None) => r,
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
        return Err(RunError::Incomplete(problems));
    }

    match keeper::handoff::take(&config.destination.path) {
        Ok(Some(state)) => {
            let n = keeper.adopt(state).await;
            tracing::info!(adopted = n, "took over the leases of the --once run");
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "ignoring the handed-over leases"),
    }

    // Background tasks stop on their own token, after the main loop.
    let tasks = CancellationToken::new();
    let (ready_tx, ready_rx) = watch::channel(false);
    let mut server = None;
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| RunError::Listen { addr, err })?;
        server = Some(tokio::spawn(telemetry::server::serve(
            listener,
            metrics.clone(),
            ready_rx,
            tasks.clone(),
        )));
    }
    let renewer = tokio::spawn(auth::renew::run(
        base.clone(),
        tokens.clone(),
        auth::renew::RenewSettings {
            retry_base: config.refresh_interval.min(Duration::from_secs(1)),
            backoff_max: config.backoff_max,
            recheck: config.refresh_interval,
        },
        observer,
        tasks.clone(),
    ));

    let notifier = notifier(&config);
    let mut child: Option<Supervisor> = None;
    let mut backoff = Backoff::new(
        config.refresh_interval.min(Duration::from_secs(1)),
        config.backoff_max,
    );
    // FUSE: files whose lazy secrets a first open asks for.
    let mut lazy_requests = fuse.as_mut().and_then(FuseSink::take_requests);
    // FUSE: the soonest deadline of an open waiting for a lazy secret.
    let mut lazy_deadline = None;
    // FUSE: lazy sources a first open asked for: the next cycle looks at those alone.
    let mut only: Option<Vec<usize>> = None;
    // When the next full cycle is due (a cycle for lazy sources does not move it).
    let mut next_full = std::time::Instant::now();
    let finished = loop {
        let partial = only.take();
        let report = tokio::select! {
            _ = shutdown.cancelled() => break Finished::Done,
            r = keeper.cycle(partial.as_deref()) => r,
        };
        if let Some(f) = &fuse {
            // Opens waiting for a lazy secret that failed for good fail now; others at their
            // deadline.
            for file in f.waited_files() {
                if let keeper::LazyState::Failed(class) = keeper.lazy_state(file) {
                    f.fail_waiting(file, class);
                }
            }
            lazy_deadline = f.expire_waiting(std::time::Instant::now());
        }
        if keeper.ready() && !*ready_tx.borrow() {
            tracing::info!("every file rendered: ready");
            metrics.set_ready(true);
            let _ = ready_tx.send(true);
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
                let env = child_env(&config, &keeper);
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
                    remove_env: vec!["HUSH_TOKEN".into(), "VAULT_TOKEN".into()],
                };
                child = Some(Supervisor::spawn(spec, &child_env(&config, &keeper))?);
            }
        }
        let now = std::time::Instant::now();
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
            let until = due.saturating_duration_since(std::time::Instant::now());
            delay = delay.min(until.max(LEASE_MIN_WAIT));
        }
        if let Some(at) = lazy_deadline {
            let until = at.saturating_duration_since(std::time::Instant::now());
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
            _ = tokio::time::sleep(delay) => {}
        }
    };

    // Ordered shutdown: the child first, then the token, then background tasks.
    if let (Some(c), Finished::Done) = (&child, finished) {
        let exit = c.shutdown(Signal::SIGTERM).await;
        tracing::info!(exit = %exit, "stopped the supervised process");
    }
    if config.revoke_leases_on_exit && keeper.holds_leases() {
        match tokio::time::timeout(REVOKE_TIMEOUT, keeper.revoke_all_leases()).await {
            Ok(()) => {}
            Err(_) => tracing::warn!("revoking the leases timed out; they run out by themselves"),
        }
    }
    // Then the mount: readers holding a file open keep the detached mount until they close.
    let fuse_mode = fuse.is_some();
    drop(fuse);
    if config.revoke_on_exit {
        let client = base.with_token(Some(tokens.token()));
        match tokio::time::timeout(REVOKE_TIMEOUT, client.token_revoke_self()).await {
            Ok(Ok(())) => tracing::info!("revoked the agent's token"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not revoke the agent's token"),
            Err(_) => tracing::warn!("revoking the agent's token timed out"),
        }
    }
    tasks.cancel();
    let _ = renewer.await;
    if let Some(s) = server {
        let _ = tokio::time::timeout(Duration::from_millis(500), s).await;
    }
    if fuse_mode {
        tracing::info!("hush-agent stopped; the FUSE filesystem is unmounted");
    } else {
        tracing::info!("hush-agent stopped; files left in place");
    }
    Ok(finished)
}

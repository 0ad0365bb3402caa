//! `hush-agent [flags] -- CMD ARGS`: the agent runs the application as its child, with secrets
//! in its environment (like Vault Agent's process supervisor or envconsul).
//!
//! On a change the child is either signalled ([`ChangePolicy::Signal`]: it keeps its old
//! environment and re-reads its files) or restarted with the new environment
//! ([`ChangePolicy::Restart`]: `SIGTERM`, up to `grace` to exit, then `SIGKILL` to its process
//! group, then a new child). On shutdown the agent forwards `SIGTERM`/`SIGINT` the same way
//! ([`Supervisor::shutdown`]). When the child exits by itself, [`Supervisor::exited`] resolves and
//! the agent should exit with [`ChildExit::exit_code`].
//!
//! `SIGHUP`, `SIGUSR1` and `SIGUSR2` sent to the agent are passed on to the child
//! ([`Supervisor::forwarded_signal`]); the agent catches them from before the child starts, so
//! the child starts with their default handling even when the agent's was "ignore" (`nohup`).
//!
//! The child runs in its own process group, so a terminal's Ctrl-C reaches it once, through the
//! agent. Secret values live in [`Zeroizing`] strings here; the copy the OS keeps for `execve`
//! (and the child's own environment) is out of our reach. They are never logged.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use zeroize::Zeroizing;

/// Environment variables to add to the child's (inherited) environment. Values are secrets.
pub type ChildEnv = BTreeMap<String, Zeroizing<String>>;

/// The command to supervise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// Program and arguments (`argv[0]` is looked up in `PATH`).
    pub argv: Vec<String>,
    /// How long the child has to exit after `SIGTERM` before it is killed.
    pub grace: Duration,
    /// Variables of the agent's own environment not to pass on (e.g. its token).
    pub remove_env: Vec<String>,
}

/// What to do with the child when secrets change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangePolicy {
    /// Send this signal; the child keeps its environment.
    Signal(Signal),
    /// Stop the child and start it again with the new environment.
    Restart,
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ChildExit {
    /// The code the agent should exit with: the child's, or 128 + the signal (as shells do).
    pub fn exit_code(self) -> i32 {
        match self {
            ChildExit::Code(c) => c,
            ChildExit::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exit code {c}"),
            ChildExit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Why supervising failed. Messages name the program, never the environment.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The argv is empty.
    #[error("the command to supervise is empty")]
    EmptyCommand,
    /// The child could not be started.
    #[error("cannot start {program:?}: {err}")]
    Spawn {
        program: String,
        err: std::io::Error,
    },
    /// The child is not running (it exited, or the supervisor shut down).
    #[error("the supervised process is not running")]
    NotRunning,
    /// `kill(2)` failed.
    #[error("cannot send {signal} to the supervised process: {err}")]
    Signal { signal: Signal, err: Errno },
    #[error("cannot catch the signals to pass on to the supervised process: {0}")]
    Signals(std::io::Error),
}

/// A request to the task that owns the child.
struct SignalRequest {
    signal: Signal,
    /// To the whole process group instead of the child alone.
    group: bool,
    reply: oneshot::Sender<Result<(), Errno>>,
}

/// One running child, as seen from the supervisor.
struct Running {
    pid: u32,
    requests: mpsc::Sender<SignalRequest>,
    exit: watch::Receiver<Option<ChildExit>>,
    /// Set before the supervisor stops the child, so that its exit is not reported as its own.
    expected: Arc<AtomicBool>,
}

/// Signals the agent passes on to its child.
pub const FORWARDED: [Signal; 3] = [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2];

/// The agent's streams of the [`FORWARDED`] signals.
struct Forwarded {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Forwarded {
    /// Catches the forwarded signals (from now on, for the life of the process).
    fn catch() -> std::io::Result<Forwarded> {
        let streams = FORWARDED
            .iter()
            .map(|&sig| {
                let kind = tokio::signal::unix::SignalKind::from_raw(sig as i32);
                Ok((sig, tokio::signal::unix::signal(kind)?))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Forwarded { streams })
    }

    /// The next forwarded signal the agent receives.
    async fn recv(&mut self) -> Signal {
        let next = self.streams.iter_mut().map(|(sig, stream)| {
            let sig = *sig;
            Box::pin(async move {
                stream.recv().await;
                sig
            })
        });
        futures_util::future::select_all(next).await.0
    }
}

/// Runs and watches the application; see the module docs.
pub struct Supervisor {
    spec: ChildSpec,
    forwarded: Mutex<Forwarded>,
    current: Mutex<Running>,
    /// Set when a child exits without being asked to.
    exited_tx: Arc<watch::Sender<Option<ChildExit>>>,
    exited_rx: watch::Receiver<Option<ChildExit>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("spec", &self.spec)
            .field("exited", &*self.exited_rx.borrow())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Starts the child with `env` added to the agent's environment. Needs a tokio runtime.
    pub fn spawn(spec: ChildSpec, env: &ChildEnv) -> Result<Self, SuperviseError> {
        let (exited_tx, exited_rx) = watch::channel(None);
        let exited_tx = Arc::new(exited_tx);
        // Before the child exists: caught signals start out default in it, ignored ones would not.
        let forwarded = Forwarded::catch().map_err(SuperviseError::Signals)?;
        let running = start(&spec, env, exited_tx.clone())?;
        Ok(Self {
            spec,
            forwarded: Mutex::new(forwarded),
            current: Mutex::new(running),
            exited_tx,
            exited_rx,
        })
    }

    /// The current child's pid.
    pub async fn pid(&self) -> u32 {
        self.current.lock().await.pid
    }

    /// Resolves when the child exits by itself (not when the supervisor stopped it).
    pub async fn exited(&self) -> ChildExit {
        let mut rx = self.exited_rx.clone();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            // The sender lives in `self`: this cannot fail while we are borrowed.
            if rx.changed().await.is_err() {
                return ChildExit::Code(70);
            }
        }
    }

    /// Resolves with the next [`FORWARDED`] signal the agent receives (the caller passes it on
    /// with [`Supervisor::signal`]).
    pub async fn forwarded_signal(&self) -> Signal {
        self.forwarded.lock().await.recv().await
    }

    /// Sends `signal` to the child.
    pub async fn signal(&self, signal: Signal) -> Result<(), SuperviseError> {
        let current = self.current.lock().await;
        send(&current, signal, false).await
    }

    /// Applies a change: signal the child, or restart it with `new_env`.
    pub async fn on_change(
        &self,
        new_env: &ChildEnv,
        policy: ChangePolicy,
    ) -> Result<(), SuperviseError> {
        match policy {
            ChangePolicy::Signal(signal) => self.signal(signal).await,
            ChangePolicy::Restart => {
                let mut current = self.current.lock().await;
                let old = stop(&current, Signal::SIGTERM, self.spec.grace).await;
                tracing::info!(pid = current.pid, exit = %old, "stopped the child to restart it");
                *current = start(&self.spec, new_env, self.exited_tx.clone())?;
                tracing::info!(pid = current.pid, "restarted the child with new secrets");
                Ok(())
            }
        }
    }

    /// Forwards `signal` (`SIGTERM` or `SIGINT`), waits up to the grace period, then kills the
    /// child's process group; returns how the child ended.
    pub async fn shutdown(&self, signal: Signal) -> ChildExit {
        let current = self.current.lock().await;
        stop(&current, signal, self.spec.grace).await
    }
}

/// Waits for `SIGTERM` or `SIGINT` to the agent and says which came.
pub async fn wait_for_shutdown_signal() -> std::io::Result<Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok(Signal::SIGTERM),
        _ = int.recv() => Ok(Signal::SIGINT),
    }
}

fn start(
    spec: &ChildSpec,
    env: &ChildEnv,
    exited_tx: Arc<watch::Sender<Option<ChildExit>>>,
) -> Result<Running, SuperviseError> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or(SuperviseError::EmptyCommand)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).process_group(0).kill_on_drop(true);
    for name in &spec.remove_env {
        cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd.env(name, value.as_str());
    }
    let spawn_err = |err| SuperviseError::Spawn {
        program: program.clone(),
        err,
    };
    let child = cmd.spawn().map_err(spawn_err)?;
    drop(cmd);
    let pid = child
        .id()
        .ok_or_else(|| spawn_err(std::io::Error::other("no pid")))?;
    let (requests, requests_rx) = mpsc::channel(4);
    let (exit_tx, exit) = watch::channel(None);
    let expected = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_child(
        child,
        requests_rx,
        exit_tx,
        expected.clone(),
        exited_tx,
    ));
    tracing::info!(pid, program = %program, "started the child");
    Ok(Running {
        pid,
        requests,
        exit,
        expected,
    })
}

/// Owns the child: reaps it, and signals it only while it is not reaped (so never a reused pid).
async fn watch_child(
    mut child: tokio::process::Child,
    mut requests: mpsc::Receiver<SignalRequest>,
    exit_tx: watch::Sender<Option<ChildExit>>,
    expected: Arc<AtomicBool>,
    exited_tx: Arc<watch::Sender<Option<ChildExit>>>,
) {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(req) = requests.recv() => {
                let result = match child.id().and_then(|p| i32::try_from(p).ok()) {
                    Some(pid) if req.group => killpg(Pid::from_raw(pid), req.signal),
                    Some(pid) => kill(Pid::from_raw(pid), req.signal),
                    None => Err(Errno::ESRCH),
                };
                let _ = req.reply.send(result);
            }
        }
    };
    let exit = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => ChildExit::Code(code),
            (None, Some(sig)) => ChildExit::Signal(sig),
            (None, None) => ChildExit::Code(70),
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot wait for the child");
            ChildExit::Code(70)
        }
    };
    exit_tx.send_replace(Some(exit));
    if !expected.load(Ordering::SeqCst) {
        tracing::info!(exit = %exit, "the child exited by itself");
        exited_tx.send_replace(Some(exit));
    }
}

async fn send(running: &Running, signal: Signal, group: bool) -> Result<(), SuperviseError> {
    let (reply, reply_rx) = oneshot::channel();
    let req = SignalRequest {
        signal,
        group,
        reply,
    };
    if running.requests.send(req).await.is_err() {
        return Err(SuperviseError::NotRunning);
    }
    match reply_rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Errno::ESRCH)) | Err(_) => Err(SuperviseError::NotRunning),
        Ok(Err(err)) => Err(SuperviseError::Signal { signal, err }),
    }
}

/// Asks the child to stop with `signal`, then kills its group after `grace`; its exit.
async fn stop(running: &Running, signal: Signal, grace: Duration) -> ChildExit {
    running.expected.store(true, Ordering::SeqCst);
    let mut exit = running.exit.clone();
    if let Some(done) = *exit.borrow() {
        return done;
    }
    let _ = send(running, signal, false).await;
    let wait = exit.wait_for(Option::is_some);
    if let Ok(Ok(done)) = tokio::time::timeout(grace, wait).await {
        if let Some(done) = *done {
            return done;
        }
    }
    tracing::warn!(
        pid = running.pid,
        ?grace,
        "the child did not stop in time; killing it"
    );
    let _ = send(running, Signal::SIGKILL, true).await;
    let done = match exit.wait_for(Option::is_some).await {
        Ok(done) => (*done).unwrap_or(ChildExit::Signal(9)),
        Err(_) => ChildExit::Signal(9),
    };
    done
}

#[cfg(test)]
#[path = "supervise_tests.rs"]
mod tests;

//! Telling the application after a swap: a command, a signal, or a supervised child.
//!
//! # Layout
//!
//! - this file: [`NotifyConfig`] and the [`Notifier`] the keeper calls after each swap that
//!   changed something;
//! - [`command`]: runs the notify command with `HUSH_GENERATION` and `HUSH_CHANGED_FILES`
//!   (names, never values) under a timeout;
//! - [`signal`]: signals a process found through a pid file or by name (`/proc`);
//! - [`supervise`]: `hush-agent [flags] -- CMD ARGS`: the agent runs the application as its
//!   child, with secrets in its environment, and signals or restarts it on change.

pub mod command;
pub mod signal;
pub mod supervise;

use std::path::PathBuf;
use std::time::Duration;

pub use nix::sys::signal::Signal;

/// What to do after a swap. Both may be set: the signal is sent first, then the command runs.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// A command to run.
    pub command: Option<CommandSpec>,
    /// A signal to send.
    pub signal: Option<SignalSpec>,
}

/// A notify command: `argv[0]` is looked up in `PATH`; no shell is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// How long the command (and whatever it starts in its process group) may run.
    pub timeout: Duration,
}

/// A signal and whom it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSpec {
    /// The signal, e.g. `SIGHUP`.
    pub signal: Signal,
    /// Whom to send it to.
    pub target: SignalTarget,
}

/// Whom a signal goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalTarget {
    /// The pid written in this file (re-read at each notification).
    PidFile(PathBuf),
    /// Every process whose `/proc/PID/comm` or executable's file name is this (pods sharing a
    /// process namespace). Never the agent itself.
    ProcessName(String),
}

/// Why a notification failed. Messages name programs, files and pids, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The command's argv is empty.
    #[error("notify command is empty")]
    EmptyCommand,
    /// The command could not be started.
    #[error("cannot run notify command {program:?}: {err}")]
    Spawn {
        program: String,
        err: std::io::Error,
    },
    /// The command ran past its timeout and was killed.
    #[error("notify command {program:?} did not finish within {timeout:?}; killed it")]
    Timeout { program: String, timeout: Duration },
    /// The command exited with a non-zero code.
    #[error("notify command {program:?} exited with code {code}")]
    Exit { program: String, code: i32 },
    /// The command was killed by a signal.
    #[error("notify command {program:?} was killed by signal {signal}")]
    Killed { program: String, signal: i32 },
    /// The pid file is missing or does not hold a pid.
    #[error("pid file {}: {reason}", path.display())]
    PidFile { path: PathBuf, reason: String },
    /// The pid from the pid file is not running.
    #[error("process {pid} (from pid file {}) is not running", path.display())]
    ProcessGone { pid: i32, path: PathBuf },
    /// No process has the name.
    #[error("no process named {name:?} to signal")]
    NoProcess { name: String },
    /// `kill(2)` failed.
    #[error("cannot send {signal} to process {pid}: {err}")]
    Signal {
        signal: Signal,
        pid: i32,
        err: nix::errno::Errno,
    },
}

/// Runs the configured notifications after a swap.
#[derive(Debug, Clone)]
pub struct Notifier {
    config: NotifyConfig,
}

impl Notifier {
    /// A notifier for this configuration (which may be empty: then [`Self::notify`] does nothing).
    pub fn new(config: NotifyConfig) -> Self {
        Self { config }
    }

    /// Whether anything is configured.
    pub fn is_empty(&self) -> bool {
        self.config.command.is_none() && self.config.signal.is_none()
    }

    /// Tells the application that `changed_files` changed in `generation`. Call it after the
    /// swap. Every configured action is tried; the first failure is returned and a second one
    /// is logged.
    pub async fn notify(
        &self,
        changed_files: &[String],
        generation: u64,
    ) -> Result<(), NotifyError> {
        let mut first = None;
        if let Some(spec) = &self.config.signal {
            if let Err(e) = signal::send(spec) {
                first = Some(e);
            }
        }
        if let Some(spec) = &self.config.command {
            if let Err(e) = command::run(spec, changed_files, generation).await {
                match first {
                    None => first = Some(e),
                    Some(_) => tracing::warn!(error = %e, generation, "notify command failed"),
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_config_does_nothing() {
        let n = Notifier::new(NotifyConfig::default());
        assert!(n.is_empty());
        n.notify(&["a".into()], 1).await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_signal_does_not_stop_the_command() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let n = Notifier::new(NotifyConfig {
            command: Some(CommandSpec {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    r#"echo "$HUSH_GENERATION" > "$1""#.into(),
                    "sh".into(),
                    out.to_string_lossy().into_owned(),
                ],
                timeout: Duration::from_secs(30),
            }),
            signal: Some(SignalSpec {
                signal: Signal::SIGHUP,
                target: SignalTarget::PidFile(tmp.path().join("missing.pid")),
            }),
        });
        assert!(!n.is_empty());
        let err = n.notify(&["a".into()], 5).await.unwrap_err();
        assert!(matches!(err, NotifyError::PidFile { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "5\n");
    }
}

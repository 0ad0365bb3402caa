//! How a run ends: [`Finished`] (the exit code) or a [`RunError`] (its message).

use std::time::Duration;

use hush_api::ClientError;

use crate::auth;
use crate::config::duration::show;
use crate::notify;
use crate::notify::supervise::ChildExit;
use crate::render;
use crate::sink::files::fs_check::DestError;
use crate::sink::fuse::FuseError;
use crate::sink::WriteError;

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
    /// The report spool file: on a disk without `allow_disk`, or not creatable.
    #[error("report_spool_file {}: {reason}", path.display())]
    Spool {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Supervise(#[from] notify::supervise::SuperviseError),
    /// `--once` ran out of time (`--once-deadline`); the last error.
    #[error("--once did not finish within its deadline ({}): {last}", show(*.after))]
    OnceDeadline { after: Duration, last: String },
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

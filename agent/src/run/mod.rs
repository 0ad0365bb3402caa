//! Running the agent: [`run`] wires the modules below it in three parts.
//!
//! - `start`: check (or mount) the destination, open the token (or log in), build the
//!   keeper; then the background tasks (token renewal, the telemetry listener).
//! - `main_loop`: `--once`'s single pass, or the loop that cycles until shutdown: the
//!   refresh interval, backoff after transient failures, lease times, lazy requests from the
//!   FUSE sink, notifications and the supervised child.
//! - `shutdown`: the ordered stop: the child, the leases, the mount, the token, then the
//!   background tasks.

mod main_loop;
mod shutdown;
mod start;

use std::time::Duration;

use hush_api::ClientError;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::config::duration::show;
use crate::config::Config;
use crate::notify;
use crate::notify::supervise::ChildExit;
use crate::render;
use crate::sink::files::fs_check::DestError;
use crate::sink::fuse::FuseError;
use crate::sink::WriteError;

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

/// Run the agent until `shutdown` is cancelled (or, with `--once`, one pass).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Finished, RunError> {
    let Some(mut agent) = start::start(config, &shutdown).await? else {
        return Ok(Finished::Done);
    };
    if agent.config.once {
        return main_loop::once(&mut agent, &shutdown).await;
    }
    start::adopt_handoff(&mut agent).await;
    let tasks = start::tasks(&agent).await?;
    let (finished, child) = main_loop::run(&mut agent, &tasks, &shutdown).await?;
    shutdown::stop(agent, tasks, child, finished).await;
    Ok(finished)
}

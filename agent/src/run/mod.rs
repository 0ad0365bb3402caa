//! Running the agent: [`run`] wires the modules below it in three parts.
//!
//! - `outcome`: how a run ends ([`Finished`], [`RunError`]).
//! - `start`: check (or mount) the destination, open the token (or log in), build the
//!   keeper; then the background tasks (token renewal, the telemetry listener).
//! - `main_loop`: `--once`'s single pass, or the loop that cycles until shutdown: the
//!   refresh interval, backoff after transient failures, lease times, lazy requests from the
//!   FUSE sink, notifications and the supervised child.
//! - `shutdown`: the ordered stop: the child, the leases, the mount, the token, then the
//!   background tasks.

mod main_loop;
mod outcome;
mod shutdown;
mod start;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
pub use outcome::{Finished, RunError};

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

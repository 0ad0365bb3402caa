//! Running the agent: [`run`] wires the modules below it in three parts.
//!
//! - `outcome`: how a run ends ([`Finished`], [`RunError`]).
//! - `start`: check (or mount) the destination, open the token (or log in), build the
//!   keeper; then the background tasks (token renewal, the telemetry listener).
//! - `main_loop`: `--once`'s single pass, or the loop that cycles until shutdown: the
//!   refresh interval, backoff after transient failures, lease times, lazy requests from the
//!   FUSE sink, notifications and the supervised child.
//! - `reload`: a `SIGHUP`'s config, checked and applied (or refused, keeping the old one).
//! - `shutdown`: the ordered stop: the child, the leases, the mount, the token, then the
//!   background tasks.

mod main_loop;
mod outcome;
mod reload;
mod shutdown;
mod start;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::telemetry::systemd::Systemd;
pub use outcome::{Finished, RunError};
pub use reload::Reload;

/// Run the agent until `shutdown` is cancelled (or, with `--once`, one pass).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Finished, RunError> {
    run_with(config, shutdown, None).await
}

/// As [`run`], with config reloads (`SIGHUP`), and systemd's notify protocol when
/// `NOTIFY_SOCKET` is set (not with `--once`).
pub async fn run_with(
    config: Config,
    shutdown: CancellationToken,
    reload: Option<Reload>,
) -> Result<Finished, RunError> {
    let systemd = if config.once {
        Systemd::default()
    } else {
        Systemd::from_env()
    };
    // From the start: a login that takes long must not look like a hung agent.
    let watchdog_stop = CancellationToken::new();
    let watchdog = systemd.watchdog(watchdog_stop.clone());
    let result = run_inner(config, &shutdown, reload, &systemd).await;
    watchdog_stop.cancel();
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    result
}

async fn run_inner(
    config: Config,
    shutdown: &CancellationToken,
    reload: Option<Reload>,
    systemd: &Systemd,
) -> Result<Finished, RunError> {
    let Some(mut agent) = start::start(config, shutdown).await? else {
        systemd.stopping();
        return Ok(Finished::Done);
    };
    if agent.config.once {
        return main_loop::once(&mut agent, shutdown).await;
    }
    start::adopt_handoff(&mut agent).await;
    let tasks = start::tasks(&agent).await?;
    let (finished, child) = main_loop::run(&mut agent, &tasks, shutdown, reload, systemd).await?;
    systemd.stopping();
    shutdown::stop(agent, tasks, child, finished).await;
    Ok(finished)
}

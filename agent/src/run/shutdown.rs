//! The ordered stop: the supervised child first, then the leases, the mount (readers holding
//! a file open keep the detached mount until they close), the agent's token, and last the
//! background tasks.

use std::time::Duration;

use super::outcome::Finished;
use super::start::{Agent, Tasks};
use crate::notify::supervise::Supervisor;
use crate::notify::Signal;

/// Longest wait for `revoke-self` (and for revoking the leases) at exit.
const REVOKE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Stop everything start-up began, in order.
pub(super) async fn stop(
    agent: Agent,
    tasks: Tasks,
    child: Option<Supervisor>,
    finished: Finished,
) {
    let Agent {
        config,
        mut fuse,
        base,
        tokens,
        mut keeper,
        ..
    } = agent;
    if let (Some(c), Finished::Done) = (&child, finished) {
        let exit = c.shutdown(Signal::SIGTERM).await;
        tracing::info!(exit = %exit, "stopped the supervised process");
    }
    if config.revoke_leases_on_exit && keeper.holds_leases() {
        match tokio::time::timeout(REVOKE_TIMEOUT, keeper.revoke_all_leases()).await {
            Ok(()) => {}
            Err(_) => tracing::warn!("revoking the leases timed out; they run out by themselves"),
        }
        // Nothing left for a next agent to adopt.
        if fuse.is_none() {
            let _ = std::fs::remove_file(crate::keeper::handoff::path_in(&config.destination.path));
        }
    }
    let fuse_mode = fuse.is_some();
    // When reporting, the access log's writer is waited for (briefly: a reader may still hold
    // a file open on the detached mount) so the last opens reach the spool before the flush.
    let log_writer = match (&mut fuse, &config.report) {
        (Some(f), Some(_)) => f.take_log_writer(),
        _ => None,
    };
    drop(fuse);
    if let Some(w) = log_writer {
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        while !w.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if config.revoke_on_exit {
        let client = base.with_token(Some(tokens.token()));
        match tokio::time::timeout(REVOKE_TIMEOUT, client.token_revoke_self()).await {
            Ok(Ok(())) => tracing::info!("revoked the agent's token"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not revoke the agent's token"),
            Err(_) => tracing::warn!("revoking the agent's token timed out"),
        }
    }
    // The mount is gone, so the access log's last events are in the spool: the shipper
    // sends them (within its flush bound) once cancelled.
    tasks.cancel.cancel();
    if let Some(s) = tasks.shipper {
        let _ =
            tokio::time::timeout(super::start::REPORT_FLUSH + Duration::from_millis(500), s).await;
    }
    let _ = tasks.renewer.await;
    if let Some(p) = tasks.push {
        let _ = tokio::time::timeout(Duration::from_millis(500), p).await;
    }
    if let Some(s) = tasks.server {
        let _ = tokio::time::timeout(Duration::from_millis(500), s).await;
    }
    if fuse_mode {
        tracing::info!("hush-agent stopped; the FUSE filesystem is unmounted");
    } else {
        tracing::info!("hush-agent stopped; files left in place");
    }
}

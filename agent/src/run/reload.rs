//! `SIGHUP`: the config is read again (the same flags; `--config`'s file re-read) and
//! validated. A bad one is refused with its exact message and the running config and files
//! stay; a good one is applied without dropping files (see [`crate::config::reload`] for what
//! may change live and what a reload keeps; with `--fuse` nothing changes until a restart).

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigError};
use crate::keeper::Keeper;
use crate::render::Renderer;

/// Where reloads come from: one message per `SIGHUP`, and how to read the config again.
pub struct Reload {
    /// One `()` per `SIGHUP` (several close together may come as one).
    pub requests: mpsc::Receiver<()>,
    /// Reads and validates the config again.
    pub load: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
}

impl fmt::Debug for Reload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reload").finish_non_exhaustive()
    }
}

/// Apply a config read again; `Err`: why it was refused (the running one stays).
pub(super) fn apply(
    config: &mut Arc<Config>,
    keeper: &mut Keeper,
    fuse: bool,
    loaded: Result<Config, ConfigError>,
) -> Result<(), String> {
    let new = loaded.map_err(|e| e.0)?;
    if fuse {
        return Err(
            "the files of a FUSE mount cannot change while it is mounted; restart the agent to apply the new config"
                .into(),
        );
    }
    let (merged, kept) = config::reload::merge(config, new);
    let renderer = Renderer::new(&merged).map_err(|e| e.to_string())?;
    for setting in kept {
        tracing::warn!(
            setting,
            "this setting cannot change on reload; keeping the running value (a restart applies it)"
        );
    }
    let merged = Arc::new(merged);
    keeper.reconfigure(merged.clone(), renderer);
    tracing::info!(
        files = merged.files.len(),
        secrets = merged.sources.len(),
        refresh_ms = merged.refresh_interval.as_millis() as u64,
        "config reloaded"
    );
    *config = merged;
    Ok(())
}

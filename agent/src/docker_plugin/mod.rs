//! `hush-agent docker-plugin`: a Docker volume plugin. `docker volume create -d hush -o
//! password=secret/data/app/db#password app-secrets` makes a volume whose files the agent
//! renders on a tmpfs when a container mounts it, and keeps fresh (renewing leases) while any
//! container holds it.
//!
//! # Layout
//!
//! - `protocol`: the VolumeDriver request and response bodies.
//! - `options`: a volume's options -> the agent [`Config`](crate::config::Config) that
//!   renders it (the plugin's server and login, the volume's files).
//! - `state`: the state file (volume names and options, no secret values).
//! - `volumes`: create, mount (tmpfs, one rendering pass, then a long-running agent),
//!   unmount (stop, revoke, unmount), remove; reference counts by mount ID.
//! - `server`: the routes dockerd posts to, on the plugin's unix socket.
//!
//! The plugin runs as root (it mounts a tmpfs per volume). Managed (`docker plugin create`), it
//! keeps its volumes under the plugin's propagated mount (see `docker/plugin/config.json`).

mod options;
mod protocol;
mod server;
mod state;
mod volumes;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ServerFlags};
use crate::telemetry::{self, Metrics};
pub use state::StateError;
use volumes::{Settings, Volumes};

/// Where dockerd looks for plugin sockets; the file name is the driver's name.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/hush.sock";
/// Where the state file and the volumes' mount points live.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hush-plugin";
const DEFAULT_MOUNT_DEADLINE: Duration = Duration::from_secs(20);

/// The plugin's flags; the server and login ones are the agent's own ([`ServerFlags`]).
#[derive(Debug, Parser)]
#[command(
    name = "hush-agent docker-plugin",
    version,
    about = "hush-agent docker-plugin: a Docker volume driver whose volumes are secrets \
             from hushd, rendered on a tmpfs and kept fresh while a container holds them",
    max_term_width = 100
)]
pub struct PluginFlags {
    /// The plugin socket; dockerd names the driver after the file (hush.sock: `-d hush`).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET, env = "HUSH_PLUGIN_SOCKET")]
    pub socket: PathBuf,
    /// Directory of the state file and the volumes' mount points.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR, env = "HUSH_PLUGIN_STATE_DIR")]
    pub state_dir: PathBuf,
    /// How long the first mount of a volume may take to render its files; after it the mount
    /// fails naming the last error [default: 20s].
    #[arg(long, value_name = "DURATION")]
    pub mount_deadline: Option<String>,
    /// Serve /healthz, /readyz and /metrics on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub server: ServerFlags,
    /// Log format: text or json.
    #[arg(long, value_name = "text|json", default_value = "text", env = hush_api::LOG_FORMAT_ENV)]
    pub log_format: hush_api::LogFormat,
}

/// The validated plugin settings.
#[derive(Debug)]
pub struct PluginConfig {
    socket: PathBuf,
    metrics_listen: Option<SocketAddr>,
    settings: Settings,
}

impl PluginConfig {
    /// Check the flags and the config, and that a volume could be rendered with them (the
    /// server and login settings), before the socket exists.
    pub fn load(flags: PluginFlags) -> Result<PluginConfig, ConfigError> {
        let mount_deadline = match &flags.mount_deadline {
            None => DEFAULT_MOUNT_DEADLINE,
            Some(t) => crate::config::duration::parse(t)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError(format!("--mount-deadline {t:?}: want a duration like 20s"))
                })?,
        };
        let metrics_listen = match &flags.metrics_listen {
            None => None,
            Some(t) => Some(t.parse().map_err(|_| {
                ConfigError(format!(
                    "--metrics-listen {t:?}: want an address like 127.0.0.1:9102"
                ))
            })?),
        };
        let base = flags.server.read_config()?;
        let settings = Settings {
            base,
            server: flags.server,
            state_dir: flags.state_dir,
            mount_deadline,
        };
        let probe = std::collections::BTreeMap::from([(
            "probe".to_string(),
            "secret/data/probe".to_string(),
        )]);
        options::agent_config(
            &probe,
            &options::Build {
                base: &settings.base,
                server: &settings.server,
                dest: &settings.state_dir,
                once: None,
            },
        )
        .map_err(|e| ConfigError(e.0))?;
        Ok(PluginConfig {
            socket: flags.socket,
            metrics_listen,
            settings,
        })
    }
}

/// Why the plugin stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {}: {err}", path.display())]
    Socket { path: PathBuf, err: std::io::Error },
    #[error("cannot listen on {addr} for metrics: {err}")]
    Metrics {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("the plugin socket failed: {0}")]
    Serve(std::io::Error),
}

/// Bind the socket (replacing a stale one), readable by root alone.
fn bind(path: &std::path::Path) -> Result<tokio::net::UnixListener, PluginError> {
    let fail = |err| PluginError::Socket {
        path: path.to_path_buf(),
        err,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}

/// Serve the plugin until `shutdown`; then stop every volume's agent and remove the socket.
pub async fn run(config: PluginConfig, shutdown: CancellationToken) -> Result<(), PluginError> {
    let volumes = Arc::new(Volumes::open(config.settings)?);
    let cancel = CancellationToken::new();
    let mut metrics_task = None;
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| PluginError::Metrics { addr, err })?;
        let (_ready, ready_rx) = tokio::sync::watch::channel(true);
        metrics_task = Some(tokio::spawn(telemetry::server::serve(
            listener,
            Arc::new(Metrics::new()),
            ready_rx,
            cancel.clone(),
        )));
    }
    let listener = bind(&config.socket)?;
    tracing::info!(socket = %config.socket.display(), "docker volume plugin listening");
    let served = server::serve(listener, volumes.clone(), shutdown.clone()).await;
    volumes.shutdown().await;
    let _ = std::fs::remove_file(&config.socket);
    cancel.cancel();
    if let Some(t) = metrics_task {
        let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
    }
    served.map_err(PluginError::Serve)
}

#[cfg(test)]
mod tests;

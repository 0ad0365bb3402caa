//! Start-up: everything before the first cycle. The destination is checked (or the FUSE
//! filesystem mounted) before any secret is fetched; a login source logs in first.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use hush_api::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::outcome::RunError;
use crate::auth::{self, AuthError, Persist, TokenSource};
use crate::config::{self, Config};
use crate::events::{self, Inbox};
use crate::keeper::{self, Keeper};
use crate::render::Renderer;
use crate::report::ship::{self, Shipper};
use crate::report::Board;
use crate::retry::backoff::Backoff;
use crate::sink::files::fs_check::{self, DestError};
use crate::sink::files::AtomicWriter;
use crate::sink::fuse::FuseSink;
use crate::sink::Sink;
use crate::telemetry::spool::{self, Spool};
use crate::telemetry::{self, Metrics, Observer};
use hush_api::wire::agents::{AgentIdentity, MAX_ACCESSES_PER_REPORT};

/// Longest time spent at shutdown sending the access events still waiting.
pub(super) const REPORT_FLUSH: Duration = Duration::from_secs(2);

/// Mode of a tmpfs the agent mounts.
const TMPFS_MODE: u32 = 0o755;

/// What start-up built: what the loop and the shutdown work with.
pub(super) struct Agent {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The FUSE sink, while mounted (`--fuse`).
    pub fuse: Option<FuseSink>,
    /// A client without a token.
    pub base: Client,
    pub tokens: Arc<TokenSource>,
    pub keeper: Keeper,
    /// The metrics, or the FUSE sink's tap in front of them.
    pub observer: Arc<dyn Observer>,
    /// `--once`: when it gives up.
    pub once_deadline: Option<Instant>,
    /// Reports upstream (`[agent] report`): the spool of access events and the board of the
    /// keeper's state.
    pub report: Option<(Arc<Spool>, Arc<Board>)>,
}

/// The tasks beside the loop. They stop on their own token, after the loop.
pub(super) struct Tasks {
    pub cancel: CancellationToken,
    pub renewer: JoinHandle<()>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    /// The events subscriber (`push`), and where it leaves changed paths for the loop.
    pub push: Option<JoinHandle<()>>,
    pub inbox: Option<Arc<Inbox>>,
    /// The report shipper (it flushes, bounded, once `cancel` fires).
    pub shipper: Option<JoinHandle<()>>,
    /// Tells `/readyz` that every file was rendered.
    pub ready: watch::Sender<bool>,
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

/// The destination, the token and the keeper. `None`: `shutdown` came during the login.
pub(super) async fn start(
    config: Config,
    shutdown: &CancellationToken,
) -> Result<Option<Agent>, RunError> {
    let once_deadline = config.once.then(|| Instant::now() + config.once_deadline);
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let spool = match &config.report {
        Some(settings) => Some(Arc::new(open_spool(&config, settings, &metrics)?)),
        None => None,
    };
    // Before any secret is fetched or written: a checked tmpfs, or the FUSE mount (which keeps
    // the files in memory).
    let fuse = match &config.destination.fuse {
        Some(settings) => Some(FuseSink::start(
            &config,
            settings,
            metrics.clone(),
            spool.clone(),
        )?),
        None => {
            prepare_destination(&config)?;
            None
        }
    };
    let base = Client::new(&config.server.addr, config.server.ca_cert.as_deref(), None)?
        .with_request_timeout(config.server.request_timeout);
    let tokens = Arc::new(match &config.server.credential {
        config::Credential::TokenFile(path) => TokenSource::open(path)?,
        config::Credential::Login(spec) => TokenSource::for_login(spec.clone()),
    });
    if tokens.login_spec().is_some() {
        // With --once a refused credential ends the run, and so does the deadline; otherwise
        // keep trying.
        let mut backoff = Backoff::new(
            config.refresh_interval.min(Duration::from_secs(1)),
            config.backoff_max,
        );
        let persist = match once_deadline {
            Some(at) => Persist::Until(at),
            None => Persist::Forever,
        };
        let logged_in = tokens
            .login_until_ok(&base, &mut backoff, shutdown, persist)
            .await;
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        match logged_in {
            Err(e @ AuthError::Deadline { .. }) => {
                return Err(RunError::OnceDeadline {
                    after: config.once_deadline,
                    last: e.to_string(),
                })
            }
            other => {
                other?;
            }
        }
    }
    let writer: Arc<dyn Sink> = match &fuse {
        Some(f) => f.writer(),
        None => Arc::new(AtomicWriter::new(&config.destination.path)?),
    };
    let renderer = Renderer::new(&config)?;
    let observer: Arc<dyn Observer> = match &fuse {
        Some(f) => f.observer(),
        None => metrics.clone(),
    };
    let keeper = Keeper::new(
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
    Ok(Some(Agent {
        config,
        metrics,
        fuse,
        base,
        tokens,
        keeper,
        observer,
        once_deadline,
        report: spool.map(|s| (s, Arc::new(Board::default()))),
    }))
}

/// The version an agent reports: `0.1.0+COMMIT` (hushd takes at most 64 bytes).
fn report_version() -> String {
    let mut v = format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        hush_api::build_info::COMMIT
    );
    while v.len() > 64 {
        v.pop();
    }
    v
}

/// The report spool: memory, and the spool file when one is set (on tmpfs unless
/// `allow_disk`: the events name processes and files, and stay off the disk).
fn open_spool(
    config: &Config,
    settings: &config::ReportSettings,
    metrics: &Metrics,
) -> Result<Spool, RunError> {
    let file = match &settings.spool_file {
        Some(path) => {
            let dir = path.parent().unwrap_or(std::path::Path::new("/"));
            match fs_check::check_destination(dir, config.destination.allow_disk) {
                Ok(_) => {}
                Err(DestError::DiskBacked { fs_type, .. }) => {
                    return Err(RunError::Spool {
                        path: path.clone(),
                        reason: format!(
                        "it is on {fs_type} (disk-backed); put it on a tmpfs, or pass --allow-disk"
                    ),
                    })
                }
                Err(e) => {
                    return Err(RunError::Spool {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                }
            }
            Some((path.as_path(), spool::DEFAULT_FILE_BYTES))
        }
        None => None,
    };
    Spool::new(
        settings.spool,
        file,
        MAX_ACCESSES_PER_REPORT,
        metrics.report_spool_handles(),
    )
    .map_err(|err| RunError::Spool {
        path: settings.spool_file.clone().unwrap_or_default(),
        reason: crate::config::io_reason(&err),
    })
}

/// Take over the leases a `--once` run left on the destination.
pub(super) async fn adopt_handoff(agent: &mut Agent) {
    match keeper::handoff::take(&agent.config.destination.path) {
        Ok(Some(state)) => {
            let n = agent.keeper.adopt(state).await;
            tracing::info!(adopted = n, "took over the leases of the --once run");
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "ignoring the handed-over leases"),
    }
}

/// Start the telemetry listener (when asked), the token renewal and the events subscriber
/// (`push`).
pub(super) async fn tasks(agent: &Agent) -> Result<Tasks, RunError> {
    let config = &agent.config;
    let cancel = CancellationToken::new();
    let (ready, ready_rx) = watch::channel(false);
    let mut server = None;
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| RunError::Listen { addr, err })?;
        server = Some(tokio::spawn(telemetry::server::serve(
            listener,
            agent.metrics.clone(),
            ready_rx,
            cancel.clone(),
        )));
    }
    let renewer = tokio::spawn(auth::renew::run(
        agent.base.clone(),
        agent.tokens.clone(),
        auth::renew::RenewSettings {
            retry_base: config.refresh_interval.min(Duration::from_secs(1)),
            backoff_max: config.backoff_max,
            recheck: config.refresh_interval,
        },
        agent.observer.clone(),
        cancel.clone(),
    ));
    let (mut push, mut inbox) = (None, None);
    if config.push {
        let i = Arc::new(Inbox::default());
        push = Some(tokio::spawn(events::subscribe::run(
            events::subscribe::Settings {
                addr: config.server.addr.clone(),
                ca_cert: config.server.ca_cert.clone(),
                retry_base: config.refresh_interval.min(Duration::from_secs(1)),
                backoff_max: config.backoff_max,
            },
            agent.tokens.clone(),
            i.clone(),
            agent.metrics.clone(),
            cancel.clone(),
        )));
        inbox = Some(i);
    }
    let shipper = match (&agent.report, &config.report) {
        (Some((spool, board)), Some(settings)) => {
            let identity = &config.identity;
            let shipper = Shipper::new(
                ship::Settings {
                    interval: settings.interval,
                    retry_base: config.refresh_interval.min(Duration::from_secs(1)),
                    backoff_max: config
                        .backoff_max
                        .min(settings.interval.max(Duration::from_secs(30))),
                    flush: REPORT_FLUSH,
                },
                agent.base.clone(),
                agent.tokens.clone(),
                spool.clone(),
                board.clone(),
                agent.metrics.clone(),
                AgentIdentity {
                    id: identity.id.clone(),
                    host: identity.host.clone(),
                    pod: identity.pod.clone(),
                    destination: config.destination.path.display().to_string(),
                    version: report_version(),
                    instance: uuid::Uuid::new_v4().to_string(),
                },
            );
            tracing::info!(agent_id = %identity.id, interval_ms = settings.interval.as_millis() as u64, "reporting to hushd");
            Some(tokio::spawn(shipper.run(cancel.clone())))
        }
        _ => None,
    };
    Ok(Tasks {
        shipper,
        cancel,
        renewer,
        server,
        push,
        inbox,
        ready,
    })
}

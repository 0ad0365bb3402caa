//! `hushd`: wires flags, config, tracing, signals and shutdown; the logic is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use hush_store::config::{Config, DevConfig, RawConfig};

/// mimalloc: the request path allocates many small, short-lived objects (JSON trees, headers);
/// glibc malloc spent ~17 % of hushd's CPU on them under load (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hushd: the Hush secret store. Speaks a subset of the HashiCorp Vault HTTP API.
///
/// Production: `hushd --storage sqlite:///var/lib/hush/hush.db --listen 0.0.0.0:8200
/// --tls-cert cert.pem --tls-key key.pem`, then `hush operator init` and `hush operator unseal`.
/// The store starts sealed every time.
///
/// Local demo: `hushd --dev` (in-memory, unsealed, kv v2 at secret/, plain HTTP on loopback).
#[derive(Debug, Parser)]
#[command(
    name = "hushd",
    version = hush_api::build_info::VERSION,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Without a command hushd serves the API.
    #[command(subcommand)]
    command: Option<Command>,
    /// Dev mode: in-memory storage, initialised and unsealed, kv v2 mounted at secret/,
    /// plain HTTP on loopback. Nothing is kept. Never use it for real secrets.
    #[arg(long)]
    dev: bool,
    /// Root token to create in dev mode (default: a random one, printed at start).
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "dev",
        env = "HUSH_DEV_ROOT_TOKEN",
        hide_env_values = true
    )]
    dev_root_token: Option<String>,
    /// TOML config file with the same settings; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Storage URL: sqlite://PATH (durable; the embedded default),
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=disable|prefer|require|verify-ca|verify-full
    /// (with sslrootcert=CA.pem to verify against a CA file), or inmem.
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8200].
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<String>,
    /// PEM certificate chain for TLS (reloaded when the file changes).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (reloaded when the file changes).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP. Only allowed on loopback addresses unless
    /// --allow-insecure-non-loopback is also given.
    #[arg(long)]
    insecure_no_tls: bool,
    /// Allow plain HTTP on a non-loopback address (tokens and secrets cross the network in the clear).
    #[arg(long)]
    allow_insecure_non_loopback: bool,
    /// Log format: text or json (`plain`, the older name of text, is still accepted).
    #[arg(long, value_name = "text|json", env = hush_api::LOG_FORMAT_ENV)]
    log_format: Option<String>,
    /// Log filter, e.g. info, debug, hush_store=debug [env: RUST_LOG].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Failed logins of one identity (a role ID; a role and service account...) that lock it
    /// for 15 minutes [default: 5, as Vault; 0: no lockout].
    #[arg(long, value_name = "N")]
    login_lockout_threshold: Option<u32>,
    /// Failed logins from one address per minute after which its failed logins are answered
    /// 429; logins with valid credentials still succeed [default: 100; 0: no ceiling].
    #[arg(long, value_name = "N")]
    login_address_max_failures: Option<u32>,
    /// Serve sys/raw (read, write, list, delete decrypted storage entries; root/sudo only), as
    /// Vault's raw_storage_endpoint. Off: sys/raw answers 404.
    #[arg(long)]
    raw_storage_endpoint: bool,
    /// Serve sys/internal/test/clock (sudo), which moves the rotation scheduler's clock
    /// forward: for tests of scheduled rotation, never for a real store.
    #[arg(long)]
    test_clock_endpoint: bool,
    /// Serve sys/metrics without a token, as Vault's unauthenticated_metrics_access (default:
    /// a token with read on sys/metrics is needed).
    #[arg(long)]
    unauthenticated_metrics_access: bool,
    /// How long agents' access events (sys/agents/access) and their batch ids are kept, e.g.
    /// 720h, 30d [default: 720h].
    #[arg(long, value_name = "DURATION")]
    agent_access_retention: Option<String>,
    /// High availability: one of several hushd on one PostgreSQL (--storage postgres://...),
    /// one active and the others standing by; standbys redirect clients (307) to the active
    /// node. Each node is unsealed with the same keys.
    #[arg(long)]
    ha: bool,
    /// With --ha: the URL other nodes and clients reach this node at, e.g.
    /// https://10.0.0.5:8200.
    #[arg(long, value_name = "URL")]
    api_addr: Option<String>,
    /// With --ha: how long the active node's lock lasts unless renewed (it renews every third
    /// of it); a standby takes over within about this long after the active node dies
    /// [default: 5s; 1s to 5m].
    #[arg(long, value_name = "DURATION")]
    ha_lock_ttl: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Copy every storage entry from one store to another, offline (stop every hushd using
    /// either first): `hushd migrate --from sqlite:///var/lib/hush/hush.db --to
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or back. Entries are copied as stored
    /// (ciphertext: no key needed), checked by reading the destination back (count and
    /// SHA-256), and the destination must be empty.
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The store to copy: sqlite://PATH or postgres://... (as --storage).
    #[arg(long, value_name = "URL")]
    from: String,
    /// The empty store to copy into: sqlite://PATH (created) or postgres://... (the
    /// database must exist; hushd creates its tables).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Entries read and written per batch (memory holds one batch).
    #[arg(long, value_name = "N", default_value_t = hush_store::migrate::DEFAULT_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
}

impl Cli {
    fn raw(&self) -> RawConfig {
        RawConfig {
            storage: self.storage.clone(),
            listen: self.listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            insecure_no_tls: self.insecure_no_tls.then_some(true),
            allow_insecure_non_loopback: self.allow_insecure_non_loopback.then_some(true),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            login_lockout_threshold: self.login_lockout_threshold,
            login_address_max_failures: self.login_address_max_failures,
            raw_storage_endpoint: self.raw_storage_endpoint.then_some(true),
            test_clock_endpoint: self.test_clock_endpoint.then_some(true),
            unauthenticated_metrics_access: self.unauthenticated_metrics_access.then_some(true),
            agent_access_retention: self.agent_access_retention.clone(),
            ha: self.ha.then_some(true),
            api_addr: self.api_addr.clone(),
            ha_lock_ttl: self.ha_lock_ttl.clone(),
            ..Default::default()
        }
    }
}

const EX_CONFIG: u8 = 64;

fn load_config(cli: &Cli) -> Result<Config, String> {
    let file = match &cli.config {
        Some(p) => RawConfig::from_file(p).map_err(|e| e.0)?,
        None => RawConfig::default(),
    };
    let dev = cli.dev.then(|| DevConfig {
        root_token: cli.dev_root_token.clone().map(SecretString::from),
    });
    Config::validate(file.overlay(cli.raw()), dev).map_err(|e| e.0)
}

fn main() -> ExitCode {
    // Before anything holds a secret: no core file, no ptrace by the same user.
    if let Err(e) = hush_api::core_dumps::forbid() {
        eprintln!("hushd: cannot turn core dumps off (prctl PR_SET_DUMPABLE): {e}");
    }
    let cli = Cli::parse();
    if let Some(Command::Migrate(args)) = &cli.command {
        return migrate(args);
    }
    let mut config = match load_config(&cli) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("hushd: invalid configuration: {msg}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    hush_api::server::init_tracing(config.log_format, &config.log_level);
    // One descriptor per connection: allow as many as the hard limit does.
    let open_files = hush_api::server::raise_nofile_limit();
    tracing::debug!(?open_files, "open file limit");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hushd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&mut config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("hushd: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `hushd migrate`: progress on stderr, the summary on stdout.
fn migrate(args: &MigrateArgs) -> ExitCode {
    use hush_store::migrate::{self, MigrateError};
    hush_api::server::init_tracing(hush_api::LogFormat::Text, "warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hushd migrate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut progress = migrate::progress::StderrProgress::detect();
    match runtime.block_on(migrate::run(
        &args.from,
        &args.to,
        args.batch as usize,
        &mut progress,
    )) {
        Ok(s) => {
            println!(
                "migrated and verified {} entries ({} bytes), SHA-256 {}, in {:.1} s ({:.0} entries/s)",
                s.entries,
                s.bytes,
                s.sha256,
                s.elapsed.as_secs_f64(),
                s.entries_per_second()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hushd migrate: {e}");
            match e {
                MigrateError::Usage(_) => ExitCode::from(EX_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn serve(config: &mut Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (core, dev) = hush_store::build_core(config)
        .await
        .map_err(|e| e.to_string())?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if let Some(dev) = &dev {
        use base64::Engine as _;
        println!("hushd dev server: in-memory, unsealed, kv v2 at secret/. Do not use it for real secrets.");
        println!();
        println!("    export HUSH_ADDR='{scheme}://{addr}'");
        println!("    export HUSH_TOKEN='{}'", dev.root_token.expose_secret());
        println!();
        println!(
            "Unseal key: {}",
            base64::engine::general_purpose::STANDARD.encode(dev.unseal_key.as_slice())
        );
        println!("Root token: {}", dev.root_token.expose_secret());
    }
    println!("hushd listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, storage = ?config.storage, "hushd listening");

    let shutdown = hush_api::server::cancel_on_signal();
    if let Some(n) = systemd_notify(&core, shutdown.clone()) {
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            let _ = n.send(&["STOPPING=1", "STATUS=stopping"]);
        });
    }
    let hup_core = core.clone();
    let hup_stop = shutdown.clone();
    tokio::spawn(async move { reopen_on_sighup(hup_core, hup_stop).await });
    hush_store::run(core, config, listener, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// systemd's notify protocol, when `NOTIFY_SOCKET` is set: `READY=1` now (the listener is
/// bound), `STATUS=sealed`/`unsealed` as that changes, `WATCHDOG=1` at half `WATCHDOG_USEC`.
fn systemd_notify(
    core: &std::sync::Arc<hush_store::Core>,
    stop: CancellationToken,
) -> Option<std::sync::Arc<hush_api::sd_notify::SdNotify>> {
    let notify = match hush_api::sd_notify::SdNotify::from_env() {
        Ok(Some(n)) => std::sync::Arc::new(n),
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "not telling systemd anything");
            return None;
        }
    };
    let status = |sealed: bool| {
        if sealed {
            "STATUS=sealed"
        } else {
            "STATUS=unsealed"
        }
    };
    let mut sealed = core.sealed_changes();
    let first = *sealed.borrow_and_update();
    if let Err(e) = notify.send(&["READY=1", status(first)]) {
        tracing::warn!(error = %e, "could not tell systemd hushd is ready");
    }
    let n = notify.clone();
    let watch_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = watch_stop.cancelled() => return,
                changed = sealed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *sealed.borrow_and_update();
                    let _ = n.send(&[status(now)]);
                }
            }
        }
    });
    if let Some(every) = notify.watchdog_every() {
        let n = notify.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(1)));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => { let _ = n.send(&["WATCHDOG=1"]); }
                }
            }
        });
    }
    Some(notify)
}

/// SIGHUP: reopen the audit files (log rotation), until shutdown.
async fn reopen_on_sighup(core: std::sync::Arc<hush_store::Core>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; audit files will not be reopened");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                hush_store::reopen_audit_files(&core).await;
            }
        }
    }
}

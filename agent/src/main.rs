//! `hush-agent`: wires flags, config, tracing, signals and shutdown; the logic is in the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hush_agent::config::{Config, Flags};
use tokio_util::sync::CancellationToken;

/// Bad flags or config (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// The agent could not do its work.
const EXIT_FAILURE: u8 = 1;
/// After SIGTERM/SIGINT the process is gone within this long, whatever is still running.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(4500);

fn init_tracing(format: hush_api::LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Dependencies that would log secrets (the WebSocket handshake with the token): never below
    // their ceiling, whatever HUSH_LOG says.
    for ceiling in hush_api::log_format::LOG_CEILINGS {
        filter = filter.add_directive(ceiling.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        hush_api::LogFormat::Json => builder.json().init(),
        hush_api::LogFormat::Text => builder.init(),
    }
}

/// Print a flag error (or --help, --version) and exit with its code.
fn clap_exit(e: clap::Error) -> ExitCode {
    let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
    let _ = e.print();
    ExitCode::from(code)
}

/// The multi-threaded runtime; `None` (said on stderr) when it cannot start.
fn runtime(who: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{who}: cannot start the runtime: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    // Before anything holds a secret: no core file, no ptrace by the same user.
    if let Err(e) = hush_api::core_dumps::forbid() {
        eprintln!("hush-agent: cannot turn core dumps off (prctl PR_SET_DUMPABLE): {e}");
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "docker-plugin")
    {
        return docker_plugin_main();
    }
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => return clap_exit(e),
    };
    init_tracing(flags.log_format);
    // Kept for SIGHUP: the same flags, the config file read again.
    let reload_flags = flags.clone();
    let config = match Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hush-agent: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(runtime) = runtime("hush-agent") else {
        return ExitCode::from(EXIT_FAILURE);
    };
    // Registered before anything else runs, so an early SIGTERM (or SIGHUP) is not fatal.
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    });
    let (mut term, mut int, mut hup) = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hush-agent: cannot listen for signals: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        // SIGHUP: read the config again (with a supervised child it is passed on too).
        let (reload_tx, requests) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // One pending reload is enough: it reads the file as it is then.
                let _ = reload_tx.try_send(());
            }
        });
        let reload = hush_agent::Reload {
            requests,
            load: Box::new(move || Config::load(reload_flags.clone())),
        };
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            signals.cancel();
            // A last resort: never outlive the deadline after a shutdown signal.
            std::thread::spawn(|| {
                std::thread::sleep(SHUTDOWN_DEADLINE);
                eprintln!("hush-agent: shutdown took too long; exiting, files left in place");
                std::process::exit(0);
            });
        });
        hush_agent::run_with(config, shutdown, Some(reload)).await
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(finished) => ExitCode::from(u8::try_from(finished.exit_code()).unwrap_or(EXIT_FAILURE)),
        Err(e) => {
            eprintln!("hush-agent: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `hush-agent docker-plugin ...`: the Docker volume plugin, until SIGTERM/SIGINT.
fn docker_plugin_main() -> ExitCode {
    use hush_agent::docker_plugin::{self, PluginConfig, PluginFlags};
    let flags = match PluginFlags::try_parse_from(
        std::iter::once("hush-agent docker-plugin".into()).chain(std::env::args_os().skip(2)),
    ) {
        Ok(f) => f,
        Err(e) => return clap_exit(e),
    };
    init_tracing(flags.log_format);
    let config = match PluginConfig::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hush-agent docker-plugin: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(runtime) = runtime("hush-agent docker-plugin") else {
        return ExitCode::from(EXIT_FAILURE);
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            signals.cancel();
        });
        docker_plugin::run(config, shutdown)
            .await
            .map_err(std::io::Error::other)
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush-agent docker-plugin: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

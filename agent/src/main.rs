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
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        hush_api::LogFormat::Json => builder.json().init(),
        hush_api::LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hush-agent: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
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

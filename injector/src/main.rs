//! `hush-injector`: the webhook's process edge (flags, tracing, listeners, signals); the
//! logic is in the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use hush_injector::config::{Config, Flags};

/// Exit status for a bad command line (EX_USAGE), as hushd's.
const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors are EX_USAGE.
            let code = if e.use_stderr() { EX_CONFIG } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let config = match flags.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hush-injector: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    hush_api::server::init_tracing(config.log_format, &config.log_level);
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(serve(config)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush-injector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The certificate is checked before any port is bound (run() loads it again to serve).
    hush_api::tls::load_certified_key(&config.tls_cert, &config.tls_key)?;
    let webhook = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let metrics = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.metrics_listen))?;
    tracing::info!(
        listen = %webhook.local_addr()?,
        metrics_listen = %metrics.local_addr()?,
        agent_image = %config.settings.agent_image,
        hushd_addr = %config.settings.hushd_addr,
        legacy_sidecar = config.settings.legacy_sidecar,
        "hush-injector serving POST /mutate"
    );
    let shutdown = hush_api::server::cancel_on_signal();
    hush_injector::server::run(&config, webhook, metrics, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

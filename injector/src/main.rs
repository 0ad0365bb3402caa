//! `hush-injector`: the webhook's process edge (flags, TLS, listeners, signals).

use clap::Parser;

/// hush-injector: the Kubernetes admission webhook that adds hush-agent to pods.
#[derive(Debug, Parser)]
#[command(name = "hush-injector", version = hush_api::build_info::VERSION, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}

//! One module per command group; each turns parsed arguments into client calls and output.

pub mod agents;
pub mod audit;
pub mod dev;
pub mod kv;
pub mod operator;
pub mod policy;
pub mod report;
pub mod snapshot;
pub mod token;

use crate::args::{Cli, Command, Format};
use crate::context::{usage, Ctx};

/// Run a parsed command line.
pub async fn run(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    let ctx = Ctx::new(&cli.global, env);
    if cli.global.format == Format::Html && !matches!(cli.command, Command::Report(_)) {
        return Err(usage(
            "-format html is for hush report only: use table or json",
        ));
    }
    match cli.command {
        Command::Operator(cmd) => operator::run(&ctx, cmd).await,
        Command::Kv(cmd) => kv::run(&ctx, cmd).await,
        Command::Policy(cmd) => policy::run(&ctx, cmd).await,
        Command::Token(cmd) => token::run(&ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Agents(cmd) => agents::run(&ctx, cmd).await,
        Command::Report(cmd) => report::run(&ctx, cmd).await,
        Command::Dev(args) => {
            if cli.global.address.is_some() || cli.global.ca_cert.is_some() {
                return Err(usage(
                    "hush dev starts its own server: -address and -ca-cert do not apply \
                     (choose its address with -listen)",
                ));
            }
            dev::run(args).await
        }
    }
}

//! `hush`: the operator and user command line for Hush, speaking Vault's HTTP API through
//! [`hush_api::Client`].
//!
//! # Layout
//!
//! - [`args`]: the clap grammar, with vault-style single-dash flags.
//! - [`context`]: address/token/CA from flags and environment, errors with advice.
//! - [`output`]: tables and JSON.
//! - [`progress`]: a progress bar on a terminal, JSON progress lines otherwise.
//! - [`cmd`]: one module per command group (`operator`, `kv`, `policy`, `token`, `audit`, `agents`),
//!   and `dev`, the local demo (starts `hushd --dev` and tours the other commands).
//!
//! Exit status: 0 success, 1 error, 2 usage error.

pub mod args;
pub mod cmd;
pub mod context;
pub mod output;
pub mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

use context::{describe, UsageError};

/// Run `hush` with these arguments (program name first) and the process environment.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match args::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; mistakes to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    match runtime.block_on(cmd::run(cli, &env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", describe(&e));
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

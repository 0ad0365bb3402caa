//! `hush` binary: everything lives in the library (`hush_cli`).

fn main() -> std::process::ExitCode {
    hush_cli::main_with(std::env::args_os())
}

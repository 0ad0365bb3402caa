//! `leak-grep DIR`: after the test suite, look for every secret the harness remembered in
//! every log it kept (`DIR/secrets`, `DIR/logs`; see `hush_tests::leaks`). Exit 1 on any hit,
//! naming file and line, never the secret.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: leak-grep DIR (the suite's HUSH_TEST_LOG_DIR, e.g. target/test-logs)");
        return ExitCode::from(64);
    };
    let dir = std::path::PathBuf::from(dir);
    let report = match hush_tests::leaks::scan(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leak-grep: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "leak-grep: {} secrets looked for in {} logs ({:.1} MiB)",
        report.secrets,
        report.files,
        report.bytes as f64 / (1024.0 * 1024.0)
    );
    if report.files == 0 || report.secrets == 0 {
        eprintln!(
            "leak-grep: nothing to check in {}: were the tests run with HUSH_TEST_LOG_DIR set?",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    for leak in &report.leaks {
        println!(
            "LEAK: {}:{}: secret {}",
            leak.file.display(),
            leak.line,
            leak.secret
        );
    }
    if report.leaks.is_empty() {
        println!("leak-grep: no secret in any log");
        ExitCode::SUCCESS
    } else {
        println!("leak-grep: {} leaks", report.leaks.len());
        ExitCode::FAILURE
    }
}

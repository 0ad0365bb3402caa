//! Tests that run the `hush` binary without a server: `audit verify` on generated files,
//! usage errors, help. Commands against a real hushd are in `tests/tests/cli_commands.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use hush_api::audit::{line_hash, GENESIS};

fn hush(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hush"));
    cmd.args(args).stdin(Stdio::null());
    for var in [
        "HUSH_ADDR",
        "VAULT_ADDR",
        "HUSH_TOKEN",
        "VAULT_TOKEN",
        "HUSH_CACERT",
        "VAULT_CACERT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Audit lines chained like the file device writes them.
fn chain(n: u64) -> Vec<String> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let line = format!(
                r#"{{"time":"2025-01-01T00:00:0{seq}Z","type":"request","request":{{"path":"secret/data/{seq}"}},"hash_chain":{{"seq":{seq},"prev":"{prev}"}}}}"#
            );
            prev = line_hash(line.as_bytes());
            line
        })
        .collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn audit_verify_accepts_an_intact_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_lines(dir.path(), "ok.log", &chain(4));
    let out = hush(&["audit", "verify", &file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ok: 4 lines verified");

    let out = hush(&["audit", "verify", "-format=json", &file], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["lines"], 4);
}

#[test]
fn audit_verify_names_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut edited = chain(5);
    edited[2] = edited[2].replace("secret/data/3", "secret/data/X");
    let mut deleted = chain(5);
    deleted.remove(1);
    let mut reordered = chain(5);
    reordered.swap(2, 3);
    let mut garbage = chain(3);
    garbage.insert(1, "not json".into());
    for (name, lines, bad_line) in [
        ("edited", edited, 4),
        ("deleted", deleted, 2),
        ("reordered", reordered, 3),
        ("garbage", garbage, 2),
    ] {
        let file = write_lines(dir.path(), name, &lines);
        let out = hush(&["audit", "verify", &file], &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("line {bad_line}:")), "{name}: {err}");
        assert!(stdout(&out).is_empty(), "{name}");
    }
}

#[test]
fn audit_verify_last_hash_catches_a_removed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let lines = chain(4);
    let full_hash = line_hash(lines[3].as_bytes());
    let cut = write_lines(dir.path(), "cut", &lines[..3]);
    assert_eq!(hush(&["audit", "verify", &cut], &[]).status.code(), Some(0));
    let out = hush(&["audit", "verify", &cut, "-last-hash", &full_hash], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("removed from or edited at the end"),
        "{}",
        stderr(&out)
    );
    let full = write_lines(dir.path(), "full", &lines);
    let out = hush(
        &["audit", "verify", &full, &format!("-last-hash={full_hash}")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn audit_verify_missing_file_is_an_error() {
    let out = hush(&["audit", "verify", "/nonexistent/audit.log"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/audit.log"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hush(&["frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(hush(&["kv", "get"], &[]).status.code(), Some(2));
    let out = hush(
        &["kv", "put", "secret/app", "novalue"],
        &[("HUSH_ADDR", "http://127.0.0.1:1")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("want key=value"));
}

#[test]
fn missing_address_says_what_to_do() {
    let out = hush(&["kv", "get", "secret/app"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("set HUSH_ADDR"), "{}", stderr(&out));
}

#[test]
fn help_is_there_for_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["operator"],
        &["operator", "init"],
        &["operator", "unseal"],
        &["operator", "seal"],
        &["operator", "seal-status"],
        &["operator", "rotate"],
        &["operator", "key-status"],
        &["kv"],
        &["kv", "put"],
        &["kv", "get"],
        &["kv", "patch"],
        &["kv", "list"],
        &["kv", "delete"],
        &["kv", "undelete"],
        &["kv", "destroy"],
        &["kv", "metadata"],
        &["kv", "metadata", "get"],
        &["kv", "metadata", "put"],
        &["kv", "metadata", "delete"],
        &["policy"],
        &["policy", "write"],
        &["policy", "read"],
        &["policy", "list"],
        &["policy", "delete"],
        &["token"],
        &["token", "create"],
        &["token", "lookup"],
        &["token", "renew"],
        &["token", "revoke"],
        &["audit"],
        &["audit", "enable"],
        &["audit", "list"],
        &["audit", "disable"],
        &["audit", "verify"],
        &["dev"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = hush(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{c:?}");
        assert!(stdout(&out).contains("Usage:"), "{c:?}");
        let mut args = c.to_vec();
        args.push("-help");
        assert_eq!(hush(&args, &[]).status.code(), Some(0), "{c:?} -help");
    }
}

#[test]
fn help_says_the_important_things() {
    let top = stdout(&hush(&["--help"], &[]));
    for line in [
        "The server address comes from -address, else HUSH_ADDR, else VAULT_ADDR",
        "`hush dev` starts a throwaway server",
        "Exit status: 0 success, 1 error, 2 usage error.",
        "  dev       Start a throwaway dev server and agent and take a short tour",
        "Global options:",
    ] {
        assert!(top.contains(line), "missing {line:?} in:\n{top}");
    }
    let dev = stdout(&hush(&["dev", "--help"], &[]));
    for line in [
        "--listen <IP:PORT>",
        "--no-wait",
        "--hushd <FILE>",
        "Ctrl-C",
    ] {
        assert!(dev.contains(line), "missing {line:?} in:\n{dev}");
    }
    let put = stdout(&hush(&["kv", "put", "-h"], &[]));
    assert!(
        put.starts_with("Write a new version of a secret\n"),
        "{put}"
    );
    assert!(put.contains("--cas <VERSION>"), "{put}");
    let verify = stdout(&hush(&["audit", "verify", "--help"], &[]));
    assert!(verify.contains("--last-hash <HASH>"), "{verify}");
}

#[test]
fn dev_refuses_flags_that_do_not_apply() {
    let out = hush(&["dev", "-address=http://127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("-listen"), "{}", stderr(&out));
    let out = hush(&["dev", "-listen=nonsense"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("want IP:PORT"), "{}", stderr(&out));
}

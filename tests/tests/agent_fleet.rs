//! Issue 15 items 4-5 end to end: real hushd (SQLite storage, a file audit device), real
//! hush-agent FUSE mounts reporting to `sys/agents/report`, real reader processes.
//!
//! - Start-up: a bad `--agent-id` and a spool file on a disk are refused with exact messages.
//! - Two processes (different executables and uids) open a file: hushd's fleet view
//!   (`sys/agents/access`, `hush agents who-read`) names both with pid, exe and uid.
//! - hushd is killed, more opens happen, hushd comes back: every access event (the agent's own
//!   access log is the truth) is in `sys/agents/access` exactly once and in the audit log
//!   exactly once, and `hush audit verify` passes. An agent with a tiny spool accounts for
//!   every open: shipped + `dropped_total` = opened.
//! - `hush agents stale` names an agent whose token lost read access before a new version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hush_tests::{http_client, wait_for, write_token, Agent, Hushd, UnmountOnDrop};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn agent_args(addr: &str, token: &Path, dest: &Path) -> Vec<String> {
    [
        "--addr",
        addr,
        "--token-file",
        &s(token),
        "--dest",
        &s(dest),
        "--secret",
        "db=secret/data/app/db#password",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_ids_and_a_disk_spool_file_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "unused");
    let dest = dir.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let base = agent_args("http://127.0.0.1:1", &token, &dest);
    let refused = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = base.clone();
        args.extend(extra.iter().map(|a| a.to_string()));
        let out = Command::new(hush_tests::bin("hush-agent"))
            .args(&args)
            .env_remove("HUSH_AGENT_ID")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let want = |id: &str, origin: &str, problem: &str| {
        format!(
            "hush-agent: agent id {id:?} (from {origin}) {problem}: want 1 to 253 printable \
             characters without whitespace\n"
        )
    };
    assert_eq!(
        refused(&["--agent-id", "a b"], &[]),
        (
            Some(64),
            want(
                "a b",
                "--agent-id / [agent] id",
                "holds whitespace or a control character"
            )
        )
    );
    assert_eq!(
        refused(&["--agent-id", ""], &[]),
        (Some(64), want("", "--agent-id / [agent] id", "is empty"))
    );
    let long = "x".repeat(254);
    let (code, err) = refused(&["--agent-id", &long], &[]);
    assert_eq!(code, Some(64));
    assert!(
        err.contains("is 254 characters long (at most 253)"),
        "{err}"
    );
    assert_eq!(
        refused(&[], &[("HUSH_AGENT_ID", "tab\there")]),
        (
            Some(64),
            want(
                "tab\there",
                "HUSH_AGENT_ID",
                "holds whitespace or a control character"
            )
        )
    );
    assert_eq!(
        refused(&["--report-interval", "1ms"], &[]),
        (
            Some(64),
            "hush-agent: report_interval \"1ms\": must be at least 100ms\n".into()
        )
    );

    // The spool file must be on a tmpfs: this test's directory is on the root disk.
    let on_disk = std::process::Command::new("stat")
        .args(["-f", "-c", "%T", &s(dir.path())])
        .output()
        .unwrap();
    let fs = String::from_utf8_lossy(&on_disk.stdout).trim().to_owned();
    if fs != "tmpfs" {
        let spool = dir.path().join("spool.jsonl");
        let (code, err) = refused(&["--report-spool-file", &s(&spool)], &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!("report_spool_file {}: it is on ", spool.display()))
                && err.contains("(disk-backed); put it on a tmpfs, or pass --allow-disk"),
            "{err}"
        );
        assert!(!spool.exists(), "nothing written to the disk");
    }
}

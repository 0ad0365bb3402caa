//! hush-agent tells the application after the swap: a notify command and a signal (the
//! receiver reads the file and must see the new value), and a supervised child (`-- CMD`)
//! signalled or restarted with new environment variables.

use std::path::Path;
use std::time::{Duration, Instant};

use hush_tests::{wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::json;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn agent_args(addr: &str, token: &Path, dest: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--addr",
        addr,
        "--token-file",
        &s(token),
        "--dest",
        &s(dest),
        "--refresh-interval",
        "100ms",
        "--secret",
        "pw=secret/data/app/db#password",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    v.extend(extra.iter().map(|e| e.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_command_runs_after_the_swap_and_sees_the_new_value() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let log = dir.path().join("notified.log");
    let cmd = format!(
        "printf '%s:%s:%s\\n' \"$HUSH_GENERATION\" \"$HUSH_CHANGED_FILES\" \"$(cat {}/pw)\" >> {}",
        tmpfs.path.display(),
        log.display()
    );
    let agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &["--notify-command", &cmd, "--notify-timeout", "5s"],
    ));
    wait_for(Duration::from_secs(30), "first notification", || {
        read(&log) == "1:pw:v1\n"
    })
    .await;
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(10), "second notification", || {
        read(&log) == "1:pw:v1\n2:pw:v2\n"
    })
    .await;
    // A version with the same bytes is no change: no swap, no notification.
    h.kv_put("app/db", json!({"password": "v2"})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(&log), "1:pw:v1\n2:pw:v2\n", "{}", agent.stderr());
}

/// A process that appends the file's content to `log` on each SIGHUP, and writes its pid.
fn spawn_hup_reader(dest: &Path, log: &Path, pid_file: &Path) -> std::process::Child {
    let script = format!(
        "trap 'cat {dest}/pw >> {log}; echo >> {log}' HUP; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; \
         while :; do sleep 0.05; done",
        dest = dest.display(),
        log = log.display(),
        pid = pid_file.display()
    );
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_signal_reaches_a_pid_file_process_after_the_swap() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let log = dir.path().join("hup.log");
    let pid_file = dir.path().join("app.pid");
    let mut app = spawn_hup_reader(&tmpfs.path, &log, &pid_file);
    wait_for(Duration::from_secs(10), "pid file", || pid_file.exists()).await;

    let agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--notify-signal",
            "SIGHUP",
            "--notify-pid-file",
            &s(&pid_file),
        ],
    ));
    wait_for(Duration::from_secs(30), "first signal", || {
        read(&log) == "v1\n"
    })
    .await;
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(10), "second signal", || {
        read(&log) == "v1\nv2\n"
    })
    .await;
    let _ = app.kill();
    let _ = app.wait();
    assert!(!agent.stderr().contains("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_child_is_signalled_on_change_and_stopped_on_sigterm() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let log = dir.path().join("child.log");
    let script = format!(
        "echo \"start:$PW\" >> {log}; trap 'echo \"hup:$(cat {dest}/pw)\" >> {log}' HUP; \
         trap 'echo term >> {log}; exit 0' TERM; while :; do sleep 0.05; done",
        dest = tmpfs.path.display(),
        log = log.display()
    );
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--env",
            "PW=pw",
            "--child-on-change",
            "signal:SIGHUP",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
    ));
    wait_for(Duration::from_secs(30), "child start", || {
        read(&log) == "start:v1\n"
    })
    .await;
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(10), "child signalled", || {
        read(&log) == "start:v1\nhup:v2\n"
    })
    .await;

    let t = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(read(&log), "start:v1\nhup:v2\nterm\n");
    assert_eq!(read(&tmpfs.path.join("pw")), "v2", "files left in place");
    assert!(!agent.stderr().contains("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_child_is_restarted_with_new_env_and_its_exit_code_is_the_agents() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let log = dir.path().join("child.log");
    let stop = dir.path().join("stop");
    // Exits 7 when the test creates `stop`.
    let script = format!(
        "echo \"start:$PW\" >> {log}; while [ ! -e {stop} ]; do sleep 0.05; done; exit 7",
        log = log.display(),
        stop = stop.display()
    );
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--env",
            "PW=pw",
            "--child-on-change",
            "restart",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
    ));
    wait_for(Duration::from_secs(30), "child start", || {
        read(&log) == "start:v1\n"
    })
    .await;
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(15), "child restarted", || {
        read(&log) == "start:v1\nstart:v2\n"
    })
    .await;
    std::fs::write(&stop, "").unwrap();
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(7), "{}", agent.stderr());
}

//! hush-agent tells the application after the swap: a notify command and a signal (the
//! receiver reads the file and must see the new value), and a supervised child (`-- CMD`)
//! signalled or restarted with new environment variables.

use std::path::{Path, PathBuf};
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

/// hushd with `app/db` = {password: v1}, a temp dir holding the root token, and a tmpfs.
async fn setup() -> (Hushd, tempfile::TempDir, Tmpfs, PathBuf) {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    (h, dir, tmpfs, token)
}

/// Waits (up to 30 s) until the file `log` reads `want`.
async fn log_reads(log: &Path, what: &str, want: &str) {
    wait_for(Duration::from_secs(30), what, || read(log) == want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_command_runs_after_the_swap_and_sees_the_new_value() {
    let (h, dir, tmpfs, token) = setup().await;
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
    log_reads(&log, "first notification", "1:pw:v1\n").await;
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    log_reads(&log, "second notification", "1:pw:v1\n2:pw:pwtwo\n").await;
    // A version with the same bytes is no change: no swap, no notification.
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(read(&log), "1:pw:v1\n2:pw:pwtwo\n", "{}", agent.stderr());
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
    let (h, dir, tmpfs, token) = setup().await;
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
    log_reads(&log, "first signal", "v1\n").await;
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    log_reads(&log, "second signal", "v1\npwtwo\n").await;
    let _ = app.kill();
    let _ = app.wait();
    assert!(!agent.stderr().contains("pwtwo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_child_is_signalled_on_change_and_stopped_on_sigterm() {
    let (h, dir, tmpfs, token) = setup().await;
    let log = dir.path().join("child.log");
    let script = format!(
        "echo \"start:$PW\" >> {log}; trap 'echo \"hup:$(cat {dest}/pw)\" >> {log}' HUP; \
         trap 'echo usr1 >> {log}' USR1; \
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
    log_reads(&log, "child start", "start:v1\n").await;
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    log_reads(&log, "child signalled", "start:v1\nhup:pwtwo\n").await;
    // HUP and USR1 sent to the agent are passed on; the agent does not die of them.
    agent.signal("USR1");
    log_reads(&log, "USR1 passed on", "start:v1\nhup:pwtwo\nusr1\n").await;
    agent.signal("HUP");
    log_reads(
        &log,
        "HUP passed on",
        "start:v1\nhup:pwtwo\nusr1\nhup:pwtwo\n",
    )
    .await;
    assert!(agent.running(), "{}", agent.stderr());

    let t = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(read(&log), "start:v1\nhup:pwtwo\nusr1\nhup:pwtwo\nterm\n");
    assert_eq!(read(&tmpfs.path.join("pw")), "pwtwo", "files left in place");
    assert!(!agent.stderr().contains("pwtwo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_nohup_the_child_still_gets_sighup() {
    // nohup starts the agent with SIGHUP ignored; a child inheriting that could not even trap
    // it (a non-interactive shell keeps signals ignored on entry), and signal:SIGHUP would
    // reach nobody.
    let (h, dir, tmpfs, token) = setup().await;
    let log = dir.path().join("child.log");
    let script = format!(
        "echo start >> {log}; trap 'echo hup >> {log}' HUP; while :; do sleep 0.05; done",
        log = log.display()
    );
    let extra = [
        "--child-on-change",
        "signal:SIGHUP",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ];
    let mut agent = Agent::spawn_wrapped(
        &["nohup"],
        &agent_args(&h.addr, &token, &tmpfs.path, &extra),
    );
    log_reads(&log, "child start", "start\n").await;
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    log_reads(&log, "child signalled", "start\nhup\n").await;
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_child_is_restarted_with_new_env_and_its_exit_code_is_the_agents() {
    let (h, dir, tmpfs, token) = setup().await;
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
    log_reads(&log, "child start", "start:v1\n").await;
    h.kv_put("app/db", json!({"password": "pwtwo"})).await;
    log_reads(&log, "child restarted", "start:v1\nstart:pwtwo\n").await;
    std::fs::write(&stop, "").unwrap();
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(7), "{}", agent.stderr());
}

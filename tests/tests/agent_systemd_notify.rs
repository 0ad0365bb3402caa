//! systemd's notify protocol, on a real `NOTIFY_SOCKET`: each test binds a unix datagram socket
//! (a path in a temp dir, or an abstract `@name`), starts the real hush-agent or hushd with
//! `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) set on the child's command, and reads what it sends:
//! no `READY=1` before the files exist, `STATUS=` lines, `WATCHDOG=1` at about half
//! `WATCHDOG_USEC`, `RELOADING=1`/`READY=1` around a `SIGHUP` config reload (a good config
//! applied with the files kept, a bad one refused with the old files untouched), `STOPPING=1`
//! at `SIGTERM`; hushd's `READY=1` once it listens and `STATUS=sealed` -> `unsealed`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_tests::{bin, free_port, http_client, wait_for, write_token, Agent, Hushd, Proc, Tmpfs};
use serde_json::{json, Value};

/// One datagram received, and whether the watched file existed when it came.
#[derive(Debug, Clone)]
struct Msg {
    at: Instant,
    lines: Vec<String>,
    file_there: bool,
}

/// A service manager's end of the protocol: every datagram, in order.
struct NotifySocket {
    /// What `NOTIFY_SOCKET` is set to.
    env: String,
    msgs: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    /// Bound on a path (`abstract_name: None`) or on an abstract name. `watch`: the file whose
    /// presence is noted with each message.
    fn bind(abstract_name: Option<&str>, watch: Option<PathBuf>) -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let (socket, env) = match abstract_name {
            Some(name) => {
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
                (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
            }
            None => {
                let path = dir.path().join("notify.sock");
                (
                    UnixDatagram::bind(&path).unwrap(),
                    path.display().to_string(),
                )
            }
        };
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (msgs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let file_there = watch.as_ref().is_some_and(|p| p.exists());
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    m.lock().unwrap().push(Msg {
                        at: Instant::now(),
                        lines: text.lines().map(str::to_owned).collect(),
                        file_there,
                    });
                }
            }
        });
        NotifySocket {
            env,
            msgs,
            stop,
            _dir: dir,
        }
    }

    fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// Messages holding `line` exactly.
    fn with(&self, line: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.lines.iter().any(|l| l == line))
            .collect()
    }

    /// Every line, in order, except watchdog pings.
    fn lines(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .flat_map(|m| m.lines)
            .filter(|l| l != "WATCHDOG=1")
            .collect()
    }

    /// Wait until a message after the first `skip` ones holds `line`; returns its index.
    async fn wait(&self, line: &str, skip: usize, what: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self
                .all()
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, m)| m.lines.iter().any(|l| l == line))
                .map(|(i, _)| i)
            {
                return i;
            }
            if Instant::now() >= deadline {
                let lines = self.lines();
                let tail = &lines[lines.len().saturating_sub(20)..];
                panic!("timed out waiting for {what} ({line}); the last lines: {tail:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn config(addr: &str, token: &Path, dest: &Path, files: &str) -> String {
    format!(
        r#"[server]
addr = "{addr}"
token_file = "{}"

[agent]
refresh_interval = "100ms"
backoff_max = "200ms"

[destination]
path = "{}"

[secrets]
db = "secret/data/app/db"
{files}"#,
        token.display(),
        dest.display()
    )
}

const PW_FILE: &str = r#"
[[file]]
name = "pw"
secret = "db"
field = "password"
"#;

const PW_AND_USER: &str = r#"
[[file]]
name = "pw"
secret = "db"
field = "password"
mode = "0440"

[[file]]
name = "user"
secret = "db"
field = "user"
"#;

/// A dev store's agent: a token file, a tmpfs destination and a config file reading `pw`.
struct Setup {
    _dir: tempfile::TempDir,
    tmpfs: Tmpfs,
    token: PathBuf,
    cfg: PathBuf,
}

impl Setup {
    fn new(h: &Hushd) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let tmpfs = Tmpfs::new();
        let token = write_token(dir.path(), "root");
        let cfg = dir.path().join("agent.toml");
        std::fs::write(&cfg, config(&h.addr, &token, &tmpfs.path, PW_FILE)).unwrap();
        Setup {
            _dir: dir,
            tmpfs,
            token,
            cfg,
        }
    }

    /// The destination, the token file and the config file.
    fn paths(&self) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.tmpfs.path.clone(),
            self.token.clone(),
            self.cfg.clone(),
        )
    }
}

fn spawn_agent(config_path: &Path, env: &[(&str, &str)]) -> Agent {
    let config = config_path.display().to_string();
    Agent::spawn_env(&["--config", config.as_str()], env).stop_on_drop(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ready_after_first_render_status_watchdog_reload_and_stopping() {
    let h = Hushd::dev().await;
    let setup = Setup::new(&h);
    let (dest, token, cfg) = setup.paths();
    let sock = NotifySocket::bind(None, Some(dest.join("pw")));
    // 400 ms: a ping every 200 ms.
    let mut agent = spawn_agent(
        &cfg,
        &[("NOTIFY_SOCKET", &sock.env), ("WATCHDOG_USEC", "400000")],
    );

    // The secret is not there yet: the agent runs, pings the watchdog and says why it waits,
    // but is not ready.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(agent.running(), "{}", agent.stderr());
    assert!(sock.with("READY=1").is_empty(), "{:?}", sock.lines());
    let waiting: Vec<String> = sock
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("STATUS=waiting for the first complete render"))
        .collect();
    assert!(!waiting.is_empty(), "{:?}", sock.lines());
    assert!(
        waiting
            .iter()
            .any(|l| l.contains("last error: secret") && l.contains("secret/data/app/db")),
        "{waiting:?}"
    );
    let pings = sock.with("WATCHDOG=1");
    let elapsed = started.elapsed().as_secs_f64();
    let expected = elapsed / 0.2;
    assert!(
        (pings.len() as f64) >= expected * 0.6 && (pings.len() as f64) <= expected * 1.4 + 1.0,
        "{} pings in {elapsed:.2}s, want about {expected:.0}",
        pings.len()
    );
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!((0.15..0.3).contains(&mean), "mean gap {mean:.3}s: {gaps:?}");

    // The secret appears: READY=1 comes, and the file was there when it came.
    h.kv_put("app/db", json!({"password": "s3cret", "user": "app"}))
        .await;
    let i = sock.wait("READY=1", 0, "first READY").await;
    let ready = &sock.all()[i];
    assert!(ready.file_there, "READY=1 before the file existed");
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "s3cret");
    assert!(
        ready
            .lines
            .iter()
            .any(|l| l.starts_with("STATUS=generation ") && l.contains("no errors")),
        "{:?}",
        ready.lines
    );
    assert_eq!(sock.with("READY=1").len(), 1);

    // A good config on SIGHUP: RELOADING=1 (with the monotonic clock), then READY=1 with the new
    // set on disk; the old file stayed all along.
    std::fs::write(&cfg, config(&h.addr, &token, &dest, PW_AND_USER)).unwrap();
    let before = sock.all().len();
    agent.signal("HUP");
    let r = sock.wait("RELOADING=1", before, "RELOADING").await;
    let reloading = &sock.all()[r];
    assert!(
        reloading
            .lines
            .iter()
            .any(|l| l.starts_with("MONOTONIC_USEC=")
                && l["MONOTONIC_USEC=".len()..].parse::<u64>().is_ok()),
        "{:?}",
        reloading.lines
    );
    assert!(reloading.file_there);
    let ready = sock.wait("READY=1", r + 1, "READY after reload").await;
    assert!(sock.all()[ready].file_there);
    assert_eq!(std::fs::read_to_string(dest.join("user")).unwrap(), "app");
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "s3cret");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dest.join("pw")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o440);
    assert!(
        agent.stderr().contains("config reloaded"),
        "{}",
        agent.stderr()
    );
    // No file went missing during the reload: every message since it began saw `pw`.
    assert!(sock.all()[before..].iter().all(|m| m.file_there));

    // A bad config on SIGHUP: refused with its exact message, the files untouched.
    let generation = std::fs::read_to_string(dest.join("..data/.generation")).unwrap();
    std::fs::write(&cfg, "[server\naddr = 1\n").unwrap();
    let before = sock.all().len();
    agent.signal("HUP");
    let r = sock
        .wait("RELOADING=1", before, "RELOADING (bad config)")
        .await;
    let ready = sock
        .wait("READY=1", r, "READY after a refused reload")
        .await;
    let msg = &sock.all()[ready];
    assert!(
        msg.lines.iter().any(|l| l.starts_with("STATUS=")
            && l.contains("config reload refused: invalid config file")),
        "{:?}",
        msg.lines
    );
    let log = agent.stderr();
    let wanted = format!("invalid config file {} line 1", cfg.display());
    assert!(
        log.contains("config reload refused") && log.contains(&wanted),
        "{log}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(agent.running(), "{}", agent.stderr());
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "s3cret");
    assert_eq!(std::fs::read_to_string(dest.join("user")).unwrap(), "app");
    assert_eq!(
        std::fs::read_to_string(dest.join("..data/.generation")).unwrap(),
        generation
    );
    // ...and the running config still works: a new value reaches the file.
    h.kv_put("app/db", json!({"password": "rotated", "user": "app"}))
        .await;
    wait_for(Duration::from_secs(10), "rotated value", || {
        std::fs::read_to_string(dest.join("pw")).unwrap_or_default() == "rotated"
    })
    .await;

    // SIGTERM: STOPPING=1, then a clean exit.
    let before = sock.all().len();
    agent.signal("TERM");
    sock.wait("STOPPING=1", before, "STOPPING").await;
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", agent.stderr());
    assert_eq!(sock.with("READY=1").len(), 3, "{:?}", sock.lines());
    assert!(!agent.stderr().contains("rotated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reaches_an_abstract_socket_and_leaves_another_pids_watchdog_alone() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "abc"})).await;
    let setup = Setup::new(&h);
    let (dest, _, cfg) = setup.paths();
    let name = format!("hush-test-notify-{}-{}", std::process::id(), free_port());
    let sock = NotifySocket::bind(Some(&name), Some(dest.join("pw")));
    // The watchdog is meant for pid 1, not for the agent: it sends no pings.
    let mut agent = spawn_agent(
        &cfg,
        &[
            ("NOTIFY_SOCKET", &sock.env),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let i = sock
        .wait("READY=1", 0, "READY on the abstract socket")
        .await;
    assert!(sock.all()[i].file_there);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sock.with("WATCHDOG=1").is_empty(), "{:?}", sock.all());
    agent.signal("TERM");
    sock.wait("STOPPING=1", 0, "STOPPING").await;
    assert!(agent.wait_exit(Duration::from_secs(10)).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_notify_socket_sends_nothing_and_still_reloads() {
    // Without NOTIFY_SOCKET nothing is sent (the socket bound here is never named to it), and
    // SIGHUP still reloads.
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "abc", "user": "u"}))
        .await;
    let setup = Setup::new(&h);
    let (dest, token, cfg) = setup.paths();
    let mut agent = spawn_agent(&cfg, &[]);
    wait_for(Duration::from_secs(20), "pw", || dest.join("pw").exists()).await;
    std::fs::write(&cfg, config(&h.addr, &token, &dest, PW_AND_USER)).unwrap();
    agent.signal("HUP");
    wait_for(Duration::from_secs(20), "user after SIGHUP", || {
        dest.join("user").exists()
    })
    .await;
    assert!(dest.join("pw").exists());
    assert!(agent.running(), "{}", agent.stderr());
    assert!(
        !agent.stderr().contains("NOTIFY_SOCKET"),
        "{}",
        agent.stderr()
    );
}

async fn sys(port: u16, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let client = http_client();
    let url = format!("http://127.0.0.1:{port}/v1/{path}");
    let mut req = match method {
        "PUT" => client.put(url),
        _ => client.post(url),
    };
    if let Some(t) = token {
        req = req.header("X-Vault-Token", t);
    }
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hushd_ready_when_it_listens_and_reports_seal_state() {
    let dir = tempfile::tempdir().unwrap();
    let sock = NotifySocket::bind(None, None);
    let port = free_port();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let mut cmd = Command::new(bin("hushd"));
    cmd.args([
        "--storage",
        storage.as_str(),
        "--insecure-no-tls",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .env("NOTIFY_SOCKET", &sock.env);
    let mut hushd = Proc::spawn(cmd, "hushd").unwrap();

    let i = sock.wait("READY=1", 0, "hushd READY").await;
    // It listens: a connection goes through at once.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        sock.all()[i].lines.contains(&"STATUS=sealed".to_string()),
        "{:?}",
        sock.lines()
    );

    let init = sys(
        port,
        "PUT",
        "sys/init",
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    // sys/init unseals for a moment inside; that is not reported.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        sock.with("STATUS=unsealed").is_empty(),
        "{:?}",
        sock.lines()
    );
    let key = init["keys_base64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    sys(port, "PUT", "sys/unseal", None, json!({"key": key})).await;
    sock.wait("STATUS=unsealed", i, "STATUS=unsealed").await;
    sys(port, "PUT", "sys/seal", Some(&root), json!({})).await;
    let u = sock.wait("STATUS=unsealed", i, "unsealed").await;
    sock.wait("STATUS=sealed", u, "STATUS=sealed again").await;

    let before = sock.all().len();
    hushd.signal("TERM");
    sock.wait("STOPPING=1", before, "hushd STOPPING").await;
    assert!(hushd.wait_exit(Duration::from_secs(10)).await.is_some());
    assert_eq!(
        sock.lines().into_iter().filter(|l| l == "READY=1").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_needs_a_missing_secret_keeps_the_old_set_until_it_appears() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "abc"})).await;
    let setup = Setup::new(&h);
    let (dest, token, cfg) = setup.paths();
    let sock = NotifySocket::bind(None, Some(dest.join("pw")));
    let mut agent = spawn_agent(&cfg, &[("NOTIFY_SOCKET", &sock.env)]);
    sock.wait("READY=1", 0, "READY").await;
    let generation = std::fs::read_to_string(dest.join("..data/.generation")).unwrap();

    // The new config reads a secret nobody wrote yet, and drops nothing.
    let later = format!(
        "later = \"secret/data/app/later\"\n{PW_FILE}\n[[file]]\nname = \"later\"\nsecret = \"later\"\nfield = \"token\"\n"
    );
    std::fs::write(&cfg, config(&h.addr, &token, &dest, &later)).unwrap();
    let before = sock.all().len();
    agent.signal("HUP");
    let r = sock.wait("RELOADING=1", before, "RELOADING").await;
    let ready = sock.wait("READY=1", r, "READY after the reload").await;
    let msg = &sock.all()[ready];
    assert!(
        msg.lines
            .iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("secret/data/app/later")),
        "{:?}",
        msg.lines
    );
    // The old set stays whole while the new one cannot be complete.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "abc");
    assert!(!dest.join("later").exists());
    assert_eq!(
        std::fs::read_to_string(dest.join("..data/.generation")).unwrap(),
        generation
    );
    // The secret appears: the new set goes on disk, with the old file in it.
    h.kv_put("app/later", json!({"token": "t0k"})).await;
    wait_for(Duration::from_secs(10), "the later file", || {
        std::fs::read_to_string(dest.join("later")).unwrap_or_default() == "t0k"
    })
    .await;
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "abc");
    assert_eq!(sock.with("READY=1").len(), 2, "{:?}", sock.lines());
    assert!(agent.running(), "{}", agent.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_supervised_child_sighup_reloads_and_still_reaches_the_child() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "abc", "user": "app"}))
        .await;
    let setup = Setup::new(&h);
    let (dest, token, cfg) = setup.paths();
    let log = setup._dir.path().join("child.log");
    // The child records whether it inherited NOTIFY_SOCKET, and each SIGHUP.
    let script = format!(
        "echo \"start:${{NOTIFY_SOCKET:-none}}\" >> {log}; trap 'echo hup >> {log}' HUP; while :; do sleep 0.05; done",
        log = log.display()
    );
    let sock = NotifySocket::bind(None, Some(dest.join("pw")));
    let config_arg = cfg.display().to_string();
    let mut agent = Agent::spawn_env(
        &["--config", &config_arg, "--", "/bin/sh", "-c", &script],
        &[("NOTIFY_SOCKET", &sock.env)],
    )
    .stop_on_drop(Duration::from_secs(5));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(Duration::from_secs(20), "the child", || {
        read_log() == "start:none\n"
    })
    .await;
    sock.wait("READY=1", 0, "READY").await;

    std::fs::write(&cfg, config(&h.addr, &token, &dest, PW_AND_USER)).unwrap();
    let before = sock.all().len();
    agent.signal("HUP");
    let r = sock.wait("RELOADING=1", before, "RELOADING").await;
    sock.wait("READY=1", r, "READY after the reload").await;
    wait_for(Duration::from_secs(10), "the new file", || {
        dest.join("user").exists()
    })
    .await;
    wait_for(Duration::from_secs(10), "the child's SIGHUP", || {
        read_log().contains("hup\n")
    })
    .await;
    // Signalled, never restarted.
    assert_eq!(read_log().matches("start:").count(), 1, "{}", read_log());
    assert!(agent.running(), "{}", agent.stderr());
}

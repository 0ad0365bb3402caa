//! Issue 15 items 4-5 end to end: real hushd (SQLite storage, a file audit device), real
//! hush-agent FUSE mounts reporting to `sys/agents/report`, real reader processes.
//!
//! - Start-up: a bad `--agent-id` and a spool file on a disk are refused with exact messages.
//! - Two processes (different executables and uids) open a file: hushd's fleet view
//!   (`sys/agents/access`, and `hush agents who-read` with the sudo-free fleet-reader policy)
//!   names both with pid, exe and uid.
//! - hushd is killed, more opens happen, hushd comes back: every access event (the agent's own
//!   access log is the truth) is in `sys/agents/access` exactly once and in the audit log
//!   exactly once, and `hush audit verify` passes. An agent with a tiny spool accounts for
//!   every open: shipped + `dropped_total` = opened; one with a spool file on tmpfs loses none.
//! - `hush agents stale` names an agent whose token lost read access before a new version.
//! - Default ids: `NAMESPACE/POD` from the downward API env, else `HOST:DESTINATION`; a
//!   tmpfs-mode agent's state (files, versions, refresh, render latency, RSS) and its update.
//! - Opens made just before SIGTERM (reports an hour apart) are shipped by the shutdown flush.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hush_tests::{http_client, wait_for, write_token, Agent, Hushd, UnmountOnDrop};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn disp(p: &Path) -> String {
    p.display().to_string()
}

fn agent_args(addr: &str, token: &Path, dest: &Path) -> Vec<String> {
    [
        "--addr",
        addr,
        "--token-file",
        &disp(token),
        "--dest",
        &disp(dest),
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
            "hush-agent: agent id {id:?} (from {origin}) {problem}: want 1 to 253 bytes of \
             printable characters without whitespace\n"
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
    assert!(err.contains("is 254 bytes long (at most 253)"), "{err}");
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
        .args(["-f", "-c", "%T", &disp(dir.path())])
        .output()
        .unwrap();
    let fs = String::from_utf8_lossy(&on_disk.stdout).trim().to_owned();
    if fs != "tmpfs" {
        let spool = dir.path().join("spool.jsonl");
        let (code, err) = refused(&["--report-spool-file", &disp(&spool)], &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!("report_spool_file {}: it is on ", spool.display()))
                && err.contains("(disk-backed); put it on a tmpfs, or pass --allow-disk"),
            "{err}"
        );
        assert!(!spool.exists(), "nothing written to the disk");
    }
}

/// A hushd on SQLite (restartable on the same port and data) with KV v2 at `secret/` and a
/// file audit device.
struct Store {
    h: Hushd,
    args: Vec<String>,
    key: String,
    root: String,
}

impl Store {
    async fn start(dir: &Path, audit: &Path) -> Store {
        let storage = format!("sqlite://{}/hush.db", dir.display());
        let args: Vec<String> = vec!["--storage".into(), storage, "--insecure-no-tls".into()];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut h = Hushd::start(&argv, "http", http_client()).await;
        let key = h.init_unseal().await;
        let (s, b) = h
            .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
            .await;
        assert_eq!(s, 204, "{b}");
        let options = json!({"file_path": disp(audit)});
        let (s, b) = h
            .call(
                "PUT",
                "sys/audit/file",
                Some(json!({"type": "file", "options": options})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
        let root = h.token.clone().unwrap();
        Store { h, args, key, root }
    }

    /// SIGKILL, then the same binary, data and port again, unsealed.
    fn kill(&mut self) -> u16 {
        self.h.kill9();
        self.h.port
    }

    async fn restart(&mut self, port: u16) {
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.h = Hushd::start_on(port, &argv, "http", http_client()).await;
        self.h.unseal(&self.key).await;
        self.h.token = Some(self.root.clone());
    }

    async fn get(&self, path: &str) -> Value {
        let (s, b) = self.h.call("GET", path, None).await;
        assert_eq!(s, 200, "GET {path}: {b}");
        b["data"].clone()
    }

    /// `sys/agents/access` for the path, this agent's records only.
    async fn accesses(&self, agent: &str) -> Vec<Value> {
        let data = self
            .get("sys/agents/access?path=secret/data/app/db&since=1h")
            .await;
        data["accesses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["agent_id"] == agent)
            .cloned()
            .collect()
    }
}

/// One FUSE agent reporting every 200 ms.
struct FleetAgent {
    agent: Agent,
    mnt: PathBuf,
    log: PathBuf,
    _unmount: UnmountOnDrop,
}

/// `extra`: more `[agent]` keys; `report_interval` defaults to 200ms.
fn start_agent(dir: &Path, addr: &str, token: &str, id: &str, extra: &str) -> FleetAgent {
    let interval = if extra.contains("report_interval") {
        String::new()
    } else {
        "report_interval = \"200ms\"".to_owned()
    };
    let base = dir.join(id);
    std::fs::create_dir_all(&base).unwrap();
    let mnt = base.join("mnt");
    let log = base.join("access.log");
    let token = write_token(&base, token);
    let config = base.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
addr = "{addr}"
token_file = "{token}"

[agent]
id = "{id}"
refresh_interval = "200ms"
backoff_max = "300ms"
{interval}
{extra}

[destination]
path = "{mnt}"
fuse = true
fuse_cache = "audited"
access_log = "{log}"

[secrets]
db = "secret/data/app/db"

[[file]]
name = "db.password"
secret = "db"
field = "password"
mode = "0444"
"#,
            token = disp(&token),
            mnt = disp(&mnt),
            log = disp(&log),
        ),
    )
    .unwrap();
    let agent = Agent::spawn(&["--config", &disp(&config)]).stop_on_drop(Duration::from_secs(5));
    FleetAgent {
        agent,
        _unmount: UnmountOnDrop(mnt.clone()),
        mnt,
        log,
    }
}

impl FleetAgent {
    async fn serving(&mut self) {
        let file = self.mnt.join("db.password");
        let agent = &mut self.agent;
        wait_for(WAIT, "the FUSE file", || {
            assert!(agent.running(), "agent exited: {}", agent.stderr());
            std::fs::read(&file).is_ok()
        })
        .await;
    }

    /// The agent's own access log: (pid, time) of every line.
    fn logged(&self) -> Vec<(u64, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["pid"].as_u64().unwrap(),
                    v["time"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// `argv` (reading the file) as a process; its pid.
    fn open_with(&self, argv: &[&str]) -> u32 {
        let file = disp(&self.mnt.join("db.password"));
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{argv:?} {file}");
        pid
    }
}

/// `hush ARGS` as `token`; its stdout (it must succeed).
fn hush_cli(h: &Hushd, token: &str, args: &[&str]) -> String {
    let out = hush_tests::run_hush(
        args,
        &[("HUSH_ADDR", h.addr.as_str()), ("HUSH_TOKEN", token)],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hush {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// (pid, time) of records, sorted.
fn keys(records: &[Value]) -> Vec<(u64, String)> {
    let mut k: Vec<(u64, String)> = records
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["time"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    k.sort();
    k
}

/// The `agent-access` entries of the audit file for `agent`.
fn audited(file: &Path, agent: &str) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "agent-access" && e["agent_access"]["agent_id"] == agent)
        .map(|e| e["agent_access"].clone())
        .collect()
}

/// A wait of at most [`WAIT`] for `what`.
struct Deadline(std::time::Instant, &'static str);

impl Deadline {
    fn new(what: &'static str) -> Deadline {
        Deadline(std::time::Instant::now() + WAIT, what)
    }

    /// Panics once the time is up; else sleeps a little.
    async fn tick(&self) {
        assert!(
            std::time::Instant::now() < self.0,
            "timed out waiting for {}",
            self.1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_read_exactly_once_through_an_outage_overflow_counted_and_stale() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let mut st = Store::start(dir.path(), &audit).await;
    st.h.kv_put("app/db", json!({"password": "pw-1"})).await;
    let policy = r#"
path "secret/data/app/db" { capabilities = ["read"] }
path "secret/metadata/app/db" { capabilities = ["read"] }
"#;
    let (s, b) =
        st.h.call(
            "PUT",
            "sys/policies/acl/app-read",
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    // The agents' token: the app's policy and `default` (which allows the reports).
    let token =
        st.h.create_token(json!({"policies": ["app-read"], "ttl": "1h"}))
            .await;
    let mut a = start_agent(dir.path(), &st.h.addr, &token, "fleet-a", "");
    let mut tiny = start_agent(
        dir.path(),
        &st.h.addr,
        &token,
        "fleet-tiny",
        "report_spool = 2",
    );
    // Memory for one event, the rest in a spool file on tmpfs.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let spool_file = shm.path().join("spool.jsonl");
    let mut spilled = start_agent(
        dir.path(),
        &st.h.addr,
        &token,
        "fleet-file",
        &format!(
            "report_spool = 1\nreport_spool_file = \"{}\"",
            disp(&spool_file)
        ),
    );
    a.serving().await;
    tiny.serving().await;
    spilled.serving().await;

    // Two processes, two executables, two uids.
    let cat = a.open_with(&["/usr/bin/cat"]);
    let head = a.open_with(&[
        "setpriv",
        "--reuid",
        "1000",
        "--regid",
        "1000",
        "--clear-groups",
        "/usr/bin/head",
        "-c",
        "100",
    ]);
    let d = Deadline::new("both readers in sys/agents/access");
    let seen = loop {
        let seen = st.accesses("fleet-a").await;
        if [cat, head]
            .iter()
            .all(|pid| seen.iter().any(|r| r["pid"] == *pid))
        {
            break seen;
        }
        assert!(
            !a.agent.stderr().contains("refused a report batch"),
            "{}",
            a.agent.stderr_tail(5)
        );
        d.tick().await;
    };
    let by_pid = |pid: u32| seen.iter().find(|r| r["pid"] == pid).unwrap().clone();
    let r = by_pid(cat);
    assert_eq!(
        (r["exe"].as_str(), r["uid"].as_u64(), r["result"].as_str()),
        (Some("/usr/bin/cat"), Some(0), Some("allowed")),
        "{r}"
    );
    assert_eq!(
        (r["file"].as_str(), r["version"].as_u64()),
        (Some("db.password"), Some(1))
    );
    assert_eq!(r["path"], "secret/data/app/db");
    let r = by_pid(head);
    assert_eq!(
        (r["exe"].as_str(), r["uid"].as_u64()),
        (Some("/usr/bin/head"), Some(1000)),
        "{r}"
    );
    // The CLI, with the documented sudo-free fleet-reader policy.
    let fleet_policy = r#"
path "sys/agents" { capabilities = ["list"] }
path "sys/agents/*" { capabilities = ["read", "list"] }
"#;
    let (code, b) =
        st.h.call(
            "PUT",
            "sys/policies/acl/fleet-reader",
            Some(json!({ "policy": fleet_policy })),
        )
        .await;
    assert_eq!(code, 204, "{b}");
    let reader =
        st.h.create_token(json!({"policies": ["fleet-reader"], "no_default_policy": true}))
            .await;
    let out = hush_cli(
        &st.h,
        &reader,
        &["agents", "who-read", "secret/data/app/db"],
    );
    let row = |pid: u32| {
        out.lines()
            .find(|l| l.split_whitespace().any(|w| w == pid.to_string()))
            .unwrap_or_else(|| panic!("pid {pid} in:\n{out}"))
            .to_owned()
    };
    let (cat_row, head_row) = (row(cat), row(head));
    assert!(
        cat_row.contains("/usr/bin/cat") && cat_row.contains("fleet-a"),
        "{out}"
    );
    assert!(
        head_row.contains("/usr/bin/head") && head_row.split_whitespace().any(|w| w == "1000"),
        "{out}"
    );

    // hushd goes away; readers keep reading; the events wait in the spools.
    let port = st.kill();
    let mut outage = Vec::new();
    for _ in 0..5 {
        outage.push(a.open_with(&["/usr/bin/cat"]));
    }
    for _ in 0..10 {
        tiny.open_with(&["/usr/bin/cat"]);
        spilled.open_with(&["/usr/bin/cat"]);
    }
    // Several report intervals of failed sends (each batch retried unchanged).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    st.restart(port).await;

    // Every event of agent a, exactly once, in the query and in the audit log.
    let truth = {
        let mut t = a.logged();
        t.sort();
        t
    };
    assert!(truth.len() >= 7, "{truth:?}");
    let d = Deadline::new("every access of fleet-a after the outage");
    while st.accesses("fleet-a").await.len() < truth.len() {
        d.tick().await;
    }
    // A little longer: a duplicate would show up now.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let truth = {
        let mut t = a.logged();
        t.sort();
        t
    };
    assert_eq!(
        keys(&st.accesses("fleet-a").await),
        truth,
        "query: each once"
    );
    assert_eq!(
        keys(&audited(&audit, "fleet-a")),
        truth,
        "audit log: each once"
    );
    for pid in &outage {
        assert!(truth.iter().any(|(p, _)| *p == u64::from(*pid)));
    }

    // The tiny spool overflowed: what arrived plus what it counted is what was opened.
    let d = Deadline::new("fleet-tiny's accounting");
    let shown = loop {
        let opened = tiny.logged().len();
        let arrived = st.accesses("fleet-tiny").await.len();
        let dropped = st.get("sys/agents/fleet-tiny").await["dropped_total"]
            .as_u64()
            .unwrap() as usize;
        if arrived + dropped == opened {
            break (opened, arrived, dropped);
        }
        d.tick().await;
    };
    let (opened, arrived, dropped) = shown;
    assert!(dropped >= 1, "a spool of 2 took 10 opens: {shown:?}");
    assert_eq!(keys(&audited(&audit, "fleet-tiny")).len(), arrived);
    println!("fleet-tiny: opened {opened}, arrived {arrived}, dropped {dropped}");

    // The spool file held what memory could not: everything arrived, nothing dropped.
    let d = Deadline::new("fleet-file's accesses");
    loop {
        let mut truth = spilled.logged();
        truth.sort();
        if keys(&st.accesses("fleet-file").await) == truth {
            break;
        }
        d.tick().await;
    }
    let info = st.get("sys/agents/fleet-file").await;
    assert_eq!(info["dropped_total"], 0, "{info}");
    assert_eq!(
        keys(&audited(&audit, "fleet-file")).len(),
        spilled.logged().len()
    );
    assert!(spilled.logged().len() >= 11);

    // The audit chain still verifies, across the restart.
    let out = hush_tests::run_hush(&["audit", "verify", &disp(&audit)], &[], None);
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Nobody is stale while everyone holds the current version.
    let stale = st.get("sys/agents/stale?path=secret/data/app/db").await;
    assert_eq!(stale["agents"], json!([]), "{stale}");
    // The token loses read access; then a new version is written.
    let (s, b) =
        st.h.call(
            "PUT",
            "sys/policies/acl/app-read",
            Some(json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    st.h.kv_put("app/db", json!({"password": "pw-2"})).await;
    let d = Deadline::new("fleet-a named stale");
    let stale = loop {
        let stale = st.get("sys/agents/stale?path=secret/data/app/db").await;
        if stale["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "fleet-a" && x["held_version"] == 1)
        {
            break stale;
        }
        d.tick().await;
    };
    assert_eq!(stale["current_version"], 2, "{stale}");
    let out = hush_cli(&st.h, &reader, &["agents", "stale", "secret/data/app/db"]);
    assert!(
        out.starts_with("Current version of secret/data/app/db: 2") && out.contains("fleet-a"),
        "{out}"
    );
    // Its state says why (at its next look): the read is refused; the file still serves
    // version 1.
    let d = Deadline::new("fleet-a's state to name the refusal");
    let info = loop {
        let info = st.get("sys/agents/fleet-a").await;
        let source = &info["state"]["sources"][0];
        if source["error"].is_string() {
            assert_eq!(source["version"], 1, "{info}");
            break info;
        }
        d.tick().await;
    };
    let errors = info["state"]["errors"].to_string();
    assert!(
        errors.contains("403") || errors.contains("denied"),
        "{info}"
    );
    assert_eq!(
        std::fs::read_to_string(a.mnt.join("db.password")).unwrap(),
        "pw-1"
    );
    assert!(
        info["version"].as_str().unwrap().starts_with("0.1.0+"),
        "{info}"
    );
    assert_eq!(info["destination"], disp(&a.mnt));
    for agent in [&a.agent, &tiny.agent] {
        let log = agent.stderr();
        assert!(!log.contains("refused a report batch"), "{log}");
        assert!(!log.contains(&token), "no token in the agent's log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_just_before_sigterm_are_shipped_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let st = Store::start(dir.path(), &audit).await;
    st.h.kv_put("app/db", json!({"password": "pw-1"})).await;
    let root = st.root.clone();
    // An hour between reports: only the shutdown flush can send these.
    let mut a = start_agent(
        dir.path(),
        &st.h.addr,
        &root,
        "flush-a",
        "report_interval = \"1h\"",
    );
    a.serving().await;
    let pids: Vec<u32> = (0..3).map(|_| a.open_with(&["/usr/bin/cat"])).collect();
    // The start-up state report is there; the accesses are not (yet).
    let d = Deadline::new("the start-up state report");
    while st.h.call("GET", "sys/agents/flush-a", None).await.0 != 200 {
        d.tick().await;
    }
    assert!(st.accesses("flush-a").await.is_empty());
    a.agent.signal("TERM");
    let status = a
        .agent
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exit");
    assert!(status.success(), "{}", a.agent.stderr());
    let shipped = st.accesses("flush-a").await;
    let truth = a.logged();
    assert_eq!(keys(&shipped), {
        let mut t = truth.clone();
        t.sort();
        t
    });
    for pid in pids {
        assert!(
            shipped.iter().any(|r| r["pid"] == pid),
            "{pid}: {shipped:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ids_from_the_downward_api_or_host_and_destination_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let st = Store::start(dir.path(), &audit).await;
    st.h.kv_put("app/db", json!({"password": "pw-1"})).await;
    let token = write_token(dir.path(), &st.root);
    let spawn = |name: &str, env: &[(&str, &str)]| {
        let dest = dir.path().join(name);
        std::fs::create_dir(&dest).unwrap();
        let mut args = agent_args(&st.h.addr, &token, &dest);
        args.extend(
            [
                "--allow-disk",
                "--refresh-interval",
                "200ms",
                "--report-interval",
                "200ms",
            ]
            .map(String::from),
        );
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.push(("HUSH_AGENT_ID", ""));
        (
            Agent::spawn_env(&args, &env).stop_on_drop(Duration::from_secs(5)),
            dest,
        )
    };
    let (_pod, _) = spawn(
        "pod",
        &[
            ("HUSH_POD_NAMESPACE", "web"),
            ("HUSH_POD_NAME", "web-0"),
            ("HOSTNAME", "node-7"),
        ],
    );
    let (_host, host_dest) = spawn("host", &[("HOSTNAME", "node-7")]);

    let d = Deadline::new("both agents in LIST sys/agents");
    let host_id = format!("node-7:{}", host_dest.display());
    let list = loop {
        let (code, list) = st.h.call("LIST", "sys/agents", None).await;
        let keys = list["data"]["keys"].to_string();
        if code == 200 && keys.contains("web/web-0") && keys.contains(&host_id) {
            break list;
        }
        d.tick().await;
    };
    let pod = &list["data"]["key_info"]["web/web-0"];
    assert_eq!(
        (pod["pod"].as_str(), pod["host"].as_str()),
        (Some("web/web-0"), Some("node-7")),
        "{list}"
    );
    let host = &list["data"]["key_info"][host_id.as_str()];
    assert!(host["pod"].is_null(), "{list}");

    // The state of a tmpfs-mode agent (no accesses: those come from FUSE).
    let info = st.get("sys/agents/web/web-0").await;
    let state = &info["state"];
    assert_eq!(state["files"][0]["file"], "db", "{info}");
    assert_eq!(state["files"][0]["paths"], json!(["secret/data/app/db"]));
    assert!(
        state["files"][0]["generation"].as_u64().unwrap() >= 1,
        "{info}"
    );
    assert_eq!(state["sources"][0]["version"], 1, "{info}");
    assert!(state["sources"][0]["last_refresh"].is_string(), "{info}");
    assert!(state["last_refresh"].is_string(), "{info}");
    assert!(state["render_latency_ms"].as_f64().is_some(), "{info}");
    assert!(state["rss_bytes"].as_u64().unwrap() > 1 << 20, "{info}");
    assert_eq!(state["errors"], json!([]));
    assert_eq!(info["dropped_total"], 0);
    // A new version: the next state report holds it (sent on the change).
    st.h.kv_put("app/db", json!({"password": "pw-2"})).await;
    let d = Deadline::new("the new version in the state");
    while st.get("sys/agents/web/web-0").await["state"]["sources"][0]["version"] != 2 {
        d.tick().await;
    }
}

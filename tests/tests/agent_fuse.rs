//! hush-agent --fuse against a real `hushd --dev`, mounting for real (root, /dev/fuse): content,
//! modes and listing; read-only (EROFS); a reader that drops to another uid is denied by the
//! file's uid list and the denial is logged; access-log lines name the reader's pid and exe;
//! rotation visible at the next open while an open handle keeps its version; fast cache mode;
//! SIGTERM unmounts and exits 0; a stale mount left by kill -9 is cleaned at the next start;
//! lazy secrets (a real PostgreSQL for the dynamic one) leased at the first open, or failing it.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hush_tests::pg::Postgres;
use hush_tests::{is_mount_point, wait_for, write_token, Agent, Hushd, UnmountOnDrop};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A temp dir with the token, the config, the mount point and the access log.
struct Setup {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    log: PathBuf,
    config: PathBuf,
    _unmount: UnmountOnDrop,
}

/// Files: `db.password` (0444, only uid 0 may open), `db.json` (0440, owner 1000:1000),
/// `api.key` (0444, anyone).
fn setup(h: &Hushd, cache: &str) -> Setup {
    let uids = if cache == "audited" { "uids = [0]" } else { "" };
    let body = format!(
        r#"
[secrets]
db = "secret/data/app/db"
api = "secret/data/app/api"

[[file]]
name = "db.password"
secret = "db"
field = "password"
mode = "0444"
{uids}

[[file]]
name = "db.json"
secret = "db"
mode = "0440"
uid = 1000
gid = 1000

[[file]]
name = "api.key"
secret = "api"
field = "key"
mode = "0444"
"#
    );
    setup_with(h, cache, "root", &body)
}

/// A config with this token, cache mode and `[secrets]` + `[[file]]` part.
fn setup_with(h: &Hushd, cache: &str, token: &str, body: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let log = dir.path().join("access.log");
    let token = write_token(dir.path(), token);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
addr = "{addr}"
token_file = "{token}"

[agent]
refresh_interval = "100ms"

[destination]
path = "{mnt}"
fuse = true
fuse_cache = "{cache}"
access_log = "{log}"
{body}"#,
            addr = h.addr,
            token = s(&token),
            mnt = s(&mnt),
            log = s(&log),
        ),
    )
    .unwrap();
    Setup {
        _unmount: UnmountOnDrop(mnt.clone()),
        dir,
        mnt,
        log,
        config,
    }
}

async fn seeded() -> Hushd {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"user": "app", "password": "pw-1"}))
        .await;
    h.kv_put("app/api", json!({"key": "k-1"})).await;
    h
}

async fn start(st: &Setup) -> Agent {
    start_serving(st, "db.password").await
}

/// Starts the agent and waits until `file` reads.
async fn start_serving(st: &Setup, file: &str) -> Agent {
    let mut agent = Agent::spawn(&["--config", &s(&st.config)]);
    let pw = st.mnt.join(file);
    wait_for(WAIT, "the FUSE files", || {
        assert!(agent.running(), "agent exited: {}", agent.stderr());
        // Read, not stat: a stale mount's attributes may still be cached.
        std::fs::read(&pw).is_ok()
    })
    .await;
    agent
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits for an access-log line matching `pred` and returns it.
async fn logged(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    wait_for(WAIT, what, || {
        found = log_lines(path).into_iter().find(|v| pred(v));
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// Runs `argv` and returns (pid, exit success, stdout, stderr).
fn run(argv: &[&str]) -> (u32, bool, String, String) {
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (
        pid,
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_modes_listing_read_only_and_access_log() {
    let h = seeded().await;
    let st = setup(&h, "audited");
    let mut agent = start(&st).await;

    assert_eq!(
        std::fs::read_to_string(st.mnt.join("db.password")).unwrap(),
        "pw-1"
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(st.mnt.join("db.json")).unwrap()).unwrap();
    assert_eq!(doc, json!({"user": "app", "password": "pw-1"}));
    let m = std::fs::metadata(st.mnt.join("db.json")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o440, 1000, 1000));
    assert_eq!(m.len(), doc.to_string().len() as u64);
    let m = std::fs::metadata(st.mnt.join("api.key")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o444, 0));
    let root = std::fs::metadata(&st.mnt).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.ino(), 1);
    let mut names: Vec<String> = std::fs::read_dir(&st.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["api.key", "db.json", "db.password"]);
    // Inodes are stable: the config's order.
    assert_eq!(
        std::fs::metadata(st.mnt.join("db.password")).unwrap().ino(),
        2
    );
    assert_eq!(std::fs::metadata(st.mnt.join("api.key")).unwrap().ino(), 4);

    // Read-only, whatever is tried.
    let erofs = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(st.mnt.join("api.key"))
        .map(drop);
    assert_eq!(erofs(write), Some(30), "EROFS");
    assert_eq!(erofs(std::fs::write(st.mnt.join("new"), b"x")), Some(30));
    assert_eq!(
        erofs(std::fs::remove_file(st.mnt.join("api.key"))),
        Some(30)
    );
    assert_eq!(erofs(std::fs::create_dir(st.mnt.join("d"))), Some(30));
    let chmod = std::fs::set_permissions(
        st.mnt.join("api.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    );
    assert_eq!(erofs(chmod), Some(30));
    assert_eq!(
        std::fs::read_to_string(st.mnt.join("api.key")).unwrap(),
        "k-1"
    );

    // The access log names the reader: its pid and its executable.
    let key = s(&st.mnt.join("api.key"));
    let (pid, ok, out, _) = run(&["cat", &key]);
    assert!(ok);
    assert_eq!(out, "k-1");
    let line = logged(&st.log, "cat's open", |v| v["pid"] == pid).await;
    assert_eq!(line["event"], "open");
    assert_eq!(line["result"], "allowed");
    assert_eq!(line["path"], key.as_str());
    assert_eq!(line["file"], "api.key");
    assert_eq!(
        (line["uid"].as_u64(), line["gid"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(line["exe"].as_str().unwrap().ends_with("/cat"), "{line}");
    assert_eq!(line["version"], 1);
    assert!(line["generation"].as_u64().unwrap() >= 1);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert!(line.get("reason").is_none());
    // Never a value, anywhere.
    let text = std::fs::read_to_string(&st.log).unwrap();
    assert!(!text.contains("pw-1") && !text.contains("k-1"), "{text}");
    assert!(!agent.stderr().contains("pw-1"));
    assert!(agent.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_uid_is_denied_by_the_uid_list_and_logged() {
    let h = seeded().await;
    let st = setup(&h, "audited");
    let _agent = start(&st).await;
    let pw = s(&st.mnt.join("db.password"));
    let nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "cat",
    ];

    // Mode 0444 lets uid 65534 in, the file's `uids = [0]` does not.
    let (pid, ok, out, err) = run(&[&nobody[..], &[pw.as_str()]].concat());
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("Permission denied"), "{err}");
    let line = logged(&st.log, "the denial", |v| v["pid"] == pid).await;
    assert_eq!(line["result"], "denied");
    assert_eq!(line["reason"], "uid not in the file's uids list");
    assert_eq!(
        (line["uid"].as_u64(), line["gid"].as_u64()),
        (Some(65534), Some(65534))
    );
    assert!(line["exe"].as_str().unwrap().ends_with("/cat"), "{line}");
    assert_eq!(line["file"], "db.password");

    // Root is on the list.
    let (pid, ok, out, _) = run(&["cat", &pw]);
    assert!(ok && out == "pw-1");
    let line = logged(&st.log, "root's open", |v| v["pid"] == pid).await;
    assert_eq!(line["result"], "allowed");

    // A file without a list: the mode decides (0444: nobody may read it).
    let key = s(&st.mnt.join("api.key"));
    let (_, ok, out, _) = run(&[&nobody[..], &[key.as_str()]].concat());
    assert!(ok && out == "k-1", "{out}");
    // 0440 owned by 1000:1000: the kernel refuses uid 65534 (default_permissions).
    let json_file = s(&st.mnt.join("db.json"));
    let (_, ok, _, err) = run(&[&nobody[..], &[json_file.as_str()]].concat());
    assert!(!ok && err.contains("Permission denied"), "{err}");

    // Both results are counted.
    let lines = log_lines(&st.log);
    assert!(lines.iter().any(|v| v["result"] == "denied"));
    assert!(lines.iter().any(|v| v["result"] == "allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_seen_at_the_next_open_while_open_handles_keep_their_version() {
    let h = seeded().await;
    let st = setup(&h, "audited");
    let _agent = start(&st).await;
    let pw = st.mnt.join("db.password");

    let mut held = std::fs::File::open(&pw).unwrap();
    let mut first = [0u8; 2];
    held.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"pw");

    h.kv_put("app/db", json!({"user": "app", "password": "pw-2-longer"}))
        .await;
    wait_for(WAIT, "the new version at the next open", || {
        std::fs::read_to_string(&pw).unwrap() == "pw-2-longer"
    })
    .await;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().len(),
        11,
        "attributes follow"
    );
    // The handle opened before the rotation still reads its own version, to the end.
    let mut rest = String::new();
    held.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "-1");
    // Same inode across versions.
    assert_eq!(std::fs::metadata(&pw).unwrap().ino(), 2);
    drop(held);

    // Now a rotation to something shorter while a handle on the longer version is open: the
    // handle still reads all of its version (the kernel must not size it by the new one).
    let mut long = std::fs::File::open(&pw).unwrap();
    let mut head = [0u8; 3];
    long.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"pw-");
    h.kv_put("app/db", json!({"user": "app", "password": "pw3"}))
        .await;
    wait_for(WAIT, "the shorter version at the next open", || {
        std::fs::read_to_string(&pw).unwrap() == "pw3"
    })
    .await;
    let mut rest = String::new();
    long.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "2-longer", "the open handle kept its whole version");
    drop(long);
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), "pw3");

    // The log is written asynchronously: wait for the new version's opens.
    let line = logged(&st.log, "an open of version 2", |v| {
        v["file"] == "db.password" && v["version"] == 2
    })
    .await;
    assert!(line["generation"].as_u64().unwrap() >= 2, "{line}");
    let first = log_lines(&st.log)
        .into_iter()
        .find(|v| v["file"] == "db.password")
        .unwrap();
    assert_eq!(first["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_mode_serves_from_the_kernel_cache_and_follows_rotation() {
    let h = seeded().await;
    let st = setup(&h, "fast");
    let _agent = start(&st).await;
    let pw = st.mnt.join("db.password");
    for _ in 0..3 {
        assert_eq!(std::fs::read_to_string(&pw).unwrap(), "pw-1");
    }
    // Logged per lookup, not per open.
    let line = logged(&st.log, "a lookup", |v| v["file"] == "db.password").await;
    assert_eq!(line["event"], "lookup");
    assert_eq!(line["result"], "allowed");
    assert!(!log_lines(&st.log).iter().any(|v| v["event"] == "open"));

    h.kv_put("app/db", json!({"user": "app", "password": "pw-2-longer"}))
        .await;
    wait_for(WAIT, "the new version through the kernel cache", || {
        std::fs::read_to_string(&pw).unwrap() == "pw-2-longer"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_unmounts_and_exits_0() {
    let h = seeded().await;
    let st = setup(&h, "audited");
    let mut agent = start(&st).await;
    assert!(is_mount_point(&st.mnt));
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(5)).await.expect("exit");
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(!is_mount_point(&st.mnt), "still mounted");
    assert!(
        std::fs::read_dir(&st.mnt).unwrap().next().is_none(),
        "empty directory again"
    );
    assert!(
        agent.stderr().contains("unmounted the FUSE filesystem"),
        "{}",
        agent.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_mount_from_kill_9_is_cleaned_at_the_next_start() {
    let h = seeded().await;
    let st = setup(&h, "audited");
    let mut agent = start(&st).await;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    // Opening the directory reaches the (dead) filesystem: a stat may come from the cache.
    let err = std::fs::read_dir(&st.mnt).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(107), "ENOTCONN: {err}");

    let second = start(&st).await;
    assert_eq!(
        std::fs::read_to_string(st.mnt.join("db.password")).unwrap(),
        "pw-1"
    );
    assert!(
        second.stderr().contains("removed a stale FUSE mount"),
        "{}",
        second.stderr()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_mnt = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(s(&st.mnt).as_str()));
    assert_eq!(on_mnt.count(), 1, "one mount, not stacked");

    // A live mount is not taken over.
    let mut third = Agent::spawn(&["--config", &s(&st.config)]);
    let status = third.wait_exit(WAIT).await.expect("exit");
    assert_eq!(status.code(), Some(1));
    assert!(
        third
            .stderr()
            .contains("is already a live FUSE mount (another hush-agent?)"),
        "{}",
        third.stderr()
    );
    drop(st.dir);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `[[file]]` entries (mode 0444) for (name, secret, field).
fn files_toml(files: &[(&str, &str, &str)]) -> String {
    files
        .iter()
        .map(|(name, secret, field)| {
            format!(
                "\n[[file]]\nname = \"{name}\"\nsecret = \"{secret}\"\nfield = \"{field}\"\n\
                 mode = \"0444\"\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_database_secret_is_leased_at_its_first_open() {
    let pg = Postgres::start().await;
    let h = seeded().await;
    let create = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' \
                  VALID UNTIL '{{expiration}}';";
    pg.mount_engine(&h, "ro", create, 300, 600).await;
    let st = setup_with(
        &h,
        "audited",
        "root",
        &(r#"
[secrets]
api = "secret/data/app/api"
pg = { path = "database/creds/ro", lazy = true }
"#
        .to_owned()
            + &files_toml(&[
                ("api.key", "api", "key"),
                ("pg.user", "pg", "username"),
                ("pg.pass", "pg", "password"),
            ])),
    );
    let mut agent = start_serving(&st, "api.key").await;

    // Listed and empty; nothing leased, no role made.
    assert_eq!(listing(&st.mnt), ["api.key", "pg.pass", "pg.user"]);
    assert_eq!(std::fs::metadata(st.mnt.join("pg.user")).unwrap().len(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await; // several refresh intervals
    assert!(h.lease_keys("database/creds/ro/").await.is_empty());
    assert!(pg.dynamic_roles().await.is_empty());

    // The first open leases: the reader waits for the credentials, then reads them.
    let (pid, read, user, err) = run(&["cat", &s(&st.mnt.join("pg.user"))]);
    assert!(read, "{err}\n{}", agent.stderr());
    assert!(user.starts_with("v-"), "{user:?}");
    let pass = std::fs::read_to_string(st.mnt.join("pg.pass")).unwrap();
    pg.connect(&user, &pass)
        .await
        .expect("the lazily leased credentials log in");
    assert_eq!(h.lease_keys("database/creds/ro/").await.len(), 1);
    // One lease for both files, kept: later opens read the same credentials.
    assert_eq!(
        std::fs::read_to_string(st.mnt.join("pg.user")).unwrap(),
        user
    );
    assert_eq!(pg.dynamic_roles().await, std::slice::from_ref(&user));
    assert_eq!(
        std::fs::metadata(st.mnt.join("pg.user")).unwrap().len() as usize,
        user.len()
    );

    let line = logged(&st.log, "the first open", |v| {
        v["file"] == "pg.user" && v["pid"] == pid
    })
    .await;
    assert_eq!(line["result"], "allowed");
    assert_eq!(line["event"], "open");
    assert!(line["exe"].as_str().unwrap().ends_with("/cat"), "{line}");
    let text = std::fs::read_to_string(&st.log).unwrap() + &agent.stderr();
    assert!(!text.contains(&pass), "a password reached a log");
    assert!(agent
        .stderr()
        .contains("first open: leasing the lazy secret"));

    // At exit the lease is revoked like any other: the role is dropped.
    agent.signal("TERM");
    let status = agent.wait_exit(WAIT).await.expect("exits");
    assert!(status.success(), "{}", agent.stderr());
    let deadline = Instant::now() + WAIT;
    while !pg.dynamic_roles().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the role was not dropped at exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_opens_fail_when_the_secret_is_missing_or_refused_and_recover() {
    let h = seeded().await;
    let token = h
        .token_with_policy(
            "app",
            r#"
path "secret/data/app/api" { capabilities = ["read"] }
path "secret/metadata/app/api" { capabilities = ["read"] }
path "secret/data/app/later" { capabilities = ["read"] }
path "secret/metadata/app/later" { capabilities = ["read"] }
"#,
        )
        .await;
    let st = setup_with(
        &h,
        "audited",
        &token,
        &(r#"
[secrets]
api = "secret/data/app/api"
later = { path = "secret/data/app/later", lazy = true }
hidden = { path = "secret/data/app/db", lazy = true }
"#
        .to_owned()
            + &files_toml(&[
                ("api.key", "api", "key"),
                ("later.key", "later", "key"),
                ("hidden.pw", "hidden", "password"),
            ])),
    );
    // Ready without the lazy files.
    let mut agent = start_serving(&st, "api.key").await;

    let (pid, read, _, err) = run(&["cat", &s(&st.mnt.join("later.key"))]);
    assert!(!read && err.contains("No such file or directory"), "{err}");
    let line = logged(&st.log, "the missing one", |v| v["pid"] == pid).await;
    assert_eq!(
        (&line["result"], &line["reason"]),
        (&json!("denied"), &json!("lazy secret not found"))
    );

    let (pid, read, _, err) = run(&["cat", &s(&st.mnt.join("hidden.pw"))]);
    assert!(!read && err.contains("Permission denied"), "{err}");
    let line = logged(&st.log, "the refused one", |v| v["pid"] == pid).await;
    assert_eq!(line["reason"], "lazy secret refused by the store");
    assert_eq!(line["file"], "hidden.pw");

    // Once the secret exists, the next open gets it.
    h.kv_put("app/later", json!({"key": "later-1"})).await;
    let (_, read, out, err) = run(&["cat", &s(&st.mnt.join("later.key"))]);
    assert!(read, "{err}\n{}", agent.stderr());
    assert_eq!(out, "later-1");
    assert!(agent.running());
    assert_eq!(
        std::fs::read_to_string(st.mnt.join("api.key")).unwrap(),
        "k-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_mode_leases_a_lazy_secret_at_its_first_lookup() {
    let h = seeded().await;
    let st = setup_with(
        &h,
        "fast",
        "root",
        &(r#"
[secrets]
api = "secret/data/app/api"
db = { path = "secret/data/app/db", lazy = true }
"#
        .to_owned()
            + &files_toml(&[("api.key", "api", "key"), ("db.password", "db", "password")])),
    );
    let _agent = start_serving(&st, "api.key").await;
    assert_eq!(listing(&st.mnt), ["api.key", "db.password"]);
    // Opens never reach the agent in fast mode: the lookup of a new path leases.
    let (pid, read, out, err) = run(&["cat", &s(&st.mnt.join("db.password"))]);
    assert!(read, "{err}");
    assert_eq!(out, "pw-1");
    let line = logged(&st.log, "the lookup", |v| {
        v["pid"] == pid && v["file"] == "db.password"
    })
    .await;
    assert_eq!(
        (&line["event"], &line["result"]),
        (&json!("lookup"), &json!("allowed"))
    );
}

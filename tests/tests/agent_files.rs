//! hush-agent against a real `hushd --dev`: files with the right content, mode and owner on a
//! real tmpfs; `--once` success and failure; disk-backed destinations refused; bad config; and
//! readers that never see a partial, missing or mixed set during rapid version changes.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_tests::{wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::json;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The real file behind a top-level name (through `..data`).
fn meta(dest: &Path, name: &str) -> std::fs::Metadata {
    std::fs::metadata(dest.join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_renders_every_format_with_mode_and_owner() {
    let h = Hushd::dev().await;
    h.kv_put(
        "app/db",
        json!({"user": "app", "password": "s3cr'et $x", "port": 5432}),
    )
    .await;
    h.kv_put("app/api", json!({"key": "k-1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
addr = "{addr}"
token_file = "{token}"

[destination]
path = "{dest}"

[secrets]
db = "secret/data/app/db"
api = "secret/data/app/api"

[[file]]
name = "db.password"
secret = "db"
field = "password"
mode = "0440"
uid = 1000
gid = 1000

[[file]]
name = "db.json"
secret = "db"

[[file]]
name = "db.env"
secret = "db"
format = "dotenv"
mode = "0600"

[[file]]
name = "app.conf"
template = "user={{{{ secrets.db.user }}}}\nkey={{{{ secrets.api.key }}}}\n"
"#,
            addr = h.addr,
            token = s(&token),
            dest = s(&tmpfs.path),
        ),
    )
    .unwrap();
    let mut agent = Agent::spawn(&["--config", &s(&config), "--once"]);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{}", agent.stderr());

    let dest = &tmpfs.path;
    assert_eq!(
        std::fs::read_to_string(dest.join("db.password")).unwrap(),
        "s3cr'et $x"
    );
    let db: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("db.json")).unwrap()).unwrap();
    assert_eq!(
        db,
        json!({"user": "app", "password": "s3cr'et $x", "port": 5432})
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("db.env")).unwrap(),
        "user='app'\npassword='s3cr'\\''et $x'\nport='5432'\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("app.conf")).unwrap(),
        "user=app\nkey=k-1\n"
    );

    let m = meta(dest, "db.password");
    assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o440, 1000, 1000));
    assert_eq!(meta(dest, "db.env").mode() & 0o777, 0o600);
    assert_eq!(meta(dest, "db.json").mode() & 0o777, 0o400, "default mode");
    assert_eq!(
        meta(dest, "db.json").uid(),
        0,
        "no uid given: the agent's own"
    );
    let generation = std::fs::read_to_string(dest.join("..data/.generation")).unwrap();
    assert_eq!(generation.trim(), "1");
    // Nothing of the secret in the log.
    assert!(!agent.stderr().contains("s3cr"), "{}", agent.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_fails_naming_the_secret_and_writes_nothing() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let mut agent = Agent::spawn(&[
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token),
        "--dest",
        &s(&tmpfs.path),
        "--secret",
        "pw=secret/data/app/db#password",
        "--secret",
        "missing.json=secret/data/app/missing",
        "--once",
    ]);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(1), "{}", agent.stderr());
    let err = agent.stderr();
    assert!(
        err.contains("hush-agent: could not render every file:\n  secret \"secret/data/app/missing\": not found or deleted"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&tmpfs.path).unwrap().count(), 0);

    // A field that is not there names the file, the secret and the field.
    let mut agent = Agent::spawn(&[
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token),
        "--dest",
        &s(&tmpfs.path),
        "--secret",
        "pw=secret/data/app/db#passwd",
        "--once",
    ]);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        agent
            .stderr()
            .contains("file \"pw\": secret \"secret/data/app/db\" has no field \"passwd\""),
        "{}",
        agent.stderr()
    );

    // A token without access: 403 is named too.
    let denied = write_token(dir.path(), "not-a-token");
    let mut agent = Agent::spawn(&[
        "--addr",
        &h.addr,
        "--token-file",
        &s(&denied),
        "--dest",
        &s(&tmpfs.path),
        "--secret",
        "pw=secret/data/app/db#password",
        "--once",
    ]);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        agent
            .stderr()
            .contains("secret \"secret/data/app/db\": server answered 403"),
        "{}",
        agent.stderr()
    );
    assert_eq!(std::fs::read_dir(&tmpfs.path).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_destination_is_refused_before_anything_is_fetched() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw"})).await;
    // A directory under the target dir: a disk, not tmpfs.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let token = write_token(disk.path(), "root");
    let dest = disk.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--addr".to_string(),
            h.addr.clone(),
            "--token-file".into(),
            s(&token),
            "--dest".into(),
            s(&dest),
            "--secret".into(),
            "pw=secret/data/app/db#password".into(),
            "--once".into(),
        ];
        v.extend(extra.iter().map(|e| e.to_string()));
        v
    };
    let mut agent = Agent::spawn(&args(&[]));
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(1));
    let err = agent.stderr();
    assert!(
        err.contains(&format!("refusing to write secrets to {}", dest.display()))
            && err.contains("--allow-disk"),
        "{err}"
    );
    assert!(
        !err.contains("read a new version"),
        "nothing fetched: {err}"
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);

    // With --allow-disk it is accepted (and warned about).
    let mut agent = Agent::spawn(&args(&["--allow-disk"]));
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{}", agent.stderr());
    assert_eq!(std::fs::read_to_string(dest.join("pw")).unwrap(), "pw");
    assert!(agent.stderr().contains("disk-backed"), "{}", agent.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_tmpfs_mounts_one_first() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw"})).await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let token = write_token(dir.path(), "root");
    let dest = dir.path().join("mounted");
    let mut agent = Agent::spawn(&[
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token),
        "--dest",
        &s(&dest),
        "--secret",
        "pw=secret/data/app/db#password",
        "--mount-tmpfs",
        "--tmpfs-size",
        "1m",
        "--once",
    ]);
    let status = agent.wait_exit(Duration::from_secs(30)).await.unwrap();
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .contains(&format!(" {} tmpfs ", dest.display()));
    let content = std::fs::read_to_string(dest.join("pw"));
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&dest)
        .status();
    assert!(status.success(), "{}", agent.stderr());
    assert!(mounted, "a tmpfs is mounted on the destination");
    assert_eq!(content.unwrap(), "pw");
}

#[tokio::test]
async fn bad_config_exits_64_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[server]\naddr = \"http://127.0.0.1:1\"\nbogus = 1\n",
    )
    .unwrap();
    let mut agent = Agent::spawn(&["--config", &s(&config)]);
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(64));
    assert_eq!(
        agent.stderr(),
        format!(
            "hush-agent: invalid config file {} line 3: unknown field `bogus`, expected one of `addr`, `ca_cert`, `token_file`, `request_timeout`\n",
            config.display()
        )
    );
    let mut agent = Agent::spawn(&["--secret", "x", "--addr", "http://127.0.0.1:1"]);
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(64));
    assert_eq!(
        agent.stderr(),
        "hush-agent: --secret \"x\": want NAME=PATH[#FIELD], e.g. db.json=secret/data/app/db\n"
    );
    let mut agent = Agent::spawn(&["--refresh-interval"]);
    assert_eq!(
        agent
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap()
            .code(),
        Some(64)
    );
}

/// Parse `user=u-N\npass=pw-N\n`; both N must agree.
fn template_version(text: &str) -> Result<u64, String> {
    let mut lines = text.lines();
    let user = lines.next().and_then(|l| l.strip_prefix("user=u-"));
    let pass = lines.next().and_then(|l| l.strip_prefix("pass=pw-"));
    match (user, pass) {
        (Some(u), Some(p)) if u == p => u.parse().map_err(|_| format!("bad number {text:?}")),
        _ => Err(format!("mixed or partial template: {text:?}")),
    }
}

/// One pass of the reader: every name, each parsed; returns the versions seen.
fn read_all(dest: &Path) -> Result<(u64, u64, u64), String> {
    let read = |n: &str| std::fs::read(dest.join(n)).map_err(|e| format!("{n}: {e}"));
    let json: serde_json::Value = serde_json::from_slice(&read("db.json")?)
        .map_err(|e| format!("db.json is not JSON: {e}"))?;
    let (Some(u), Some(p)) = (json["user"].as_str(), json["password"].as_str()) else {
        return Err(format!("db.json lacks fields: {json}"));
    };
    let ju = u.strip_prefix("u-").unwrap_or("x");
    let jp = p.strip_prefix("pw-").unwrap_or("y");
    if ju != jp {
        return Err(format!("db.json mixes versions: {json}"));
    }
    let pw = String::from_utf8(read("pw")?).map_err(|e| e.to_string())?;
    let pw_v: u64 = pw
        .strip_prefix("pw-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("partial pw {pw:?}"))?;
    let t = String::from_utf8(read("app.conf")?).map_err(|e| e.to_string())?;
    Ok((ju.parse().unwrap_or(0), pw_v, template_version(&t)?))
}

/// Resolve `..data` once and read two files of that one generation; `None` when that
/// generation was rotated away meanwhile (the writer keeps only the previous one).
fn read_one_generation(dest: &Path) -> Option<Result<(), String>> {
    let gen = std::fs::read_link(dest.join("..data")).ok()?;
    let dir: PathBuf = dest.join(gen);
    let user = std::fs::read_to_string(dir.join("user")).ok()?;
    let conf = std::fs::read_to_string(dir.join("app.conf")).ok()?;
    let marker = std::fs::read_to_string(dir.join(".generation")).ok()?;
    Some(match template_version(&conf) {
        Ok(v) if user == format!("u-{v}") && !marker.trim().is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "one generation mixes versions: {user:?} / {conf:?}"
        )),
        Err(e) => Err(e),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_partial_missing_or_mixed_files_during_rapid_changes() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"user": "u-0", "password": "pw-0"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let config = dir.path().join("agent.toml");
    let refresh = Duration::from_millis(300);
    std::fs::write(
        &config,
        format!(
            r#"
[server]
addr = "{addr}"
token_file = "{token}"
[agent]
refresh_interval = "300ms"
[destination]
path = "{dest}"
[secrets]
db = "secret/data/app/db"
[[file]]
name = "db.json"
secret = "db"
[[file]]
name = "pw"
secret = "db"
field = "password"
[[file]]
name = "user"
secret = "db"
field = "user"
[[file]]
name = "app.conf"
template = "user={{{{ secrets.db.user }}}}\npass={{{{ secrets.db.password }}}}\n"
"#,
            addr = h.addr,
            token = s(&token),
            dest = s(&tmpfs.path),
        ),
    )
    .unwrap();
    let mut agent = Agent::spawn(&["--config", &s(&config)]);
    let dest = tmpfs.path.clone();
    wait_for(Duration::from_secs(30), "first render", || {
        dest.join("app.conf").exists()
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let whole_generations = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let reader = {
        let (stop, reads, whole, failures, seen, dest) = (
            stop.clone(),
            reads.clone(),
            whole_generations.clone(),
            failures.clone(),
            seen.clone(),
            dest.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match read_all(&dest) {
                    Ok((a, _, _)) => {
                        seen.lock().unwrap().insert(a);
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
                match read_one_generation(&dest) {
                    Some(Ok(())) => {
                        whole.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) => failures.lock().unwrap().push(e),
                    None => {}
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut last = 0;
    for i in 1..=200u64 {
        last = h
            .kv_put(
                "app/db",
                json!({"user": format!("u-{i}"), "password": format!("pw-{i}")}),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(last, 201);
    let done = Instant::now();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    // The last version shows within two refresh intervals of the last change.
    wait_for(refresh * 2, "the last version in every file", || {
        matches!(read_all(&dest), Ok((200, 200, 200)))
    })
    .await;
    let caught_up = done.elapsed();

    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} bad reads, first: {:?}",
        failures.len(),
        failures.first()
    );
    let distinct = seen.lock().unwrap().len();
    assert!(reads.load(Ordering::Relaxed) > 1000, "the reader ran");
    assert!(
        distinct >= 3,
        "the reader saw several versions ({distinct})"
    );
    assert!(whole_generations.load(Ordering::Relaxed) > 100);
    assert!(agent.running(), "{}", agent.stderr());
    eprintln!(
        "reads={} distinct versions seen={distinct} caught up after {caught_up:?}",
        reads.load(Ordering::Relaxed)
    );
}

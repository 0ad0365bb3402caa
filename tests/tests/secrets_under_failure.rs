//! Secrets stay secret when things go wrong: hushd and hush-agent are not dumpable (no core
//! file, no ptrace by their own user, `/proc/PID/mem` root's), and with every crate logging at
//! trace level, a run full of failures (bad input quoting the secret, wrong credentials,
//! refused tokens, an unreachable store) leaves no secret value or token in either log.
//! The suite-wide check of every log is `leak-grep` (`hush_tests::leaks`), run by
//! `scripts/test` after the tests.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hush_tests::process::{bin, free_port, Proc};
use hush_tests::{wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::json;

const NOBODY: u32 = 65534;

/// The owner of `/proc/PID/mem`: the process's own uid when it is dumpable, root when not.
fn proc_mem_owner(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid()
}

fn as_nobody(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.uid(NOBODY).gid(NOBODY);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hushd_and_the_agent_are_not_dumpable() {
    // The control: an ordinary process of the same user owns its /proc/PID/mem.
    let mut sleeper = Command::new("sleep");
    sleeper
        .arg("30")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null());
    let sleeper = Proc::spawn(sleeper, "sleep").unwrap();
    assert_eq!(proc_mem_owner(sleeper.child.id()), NOBODY);

    let port = free_port();
    let mut hushd = as_nobody(&bin("hushd"));
    hushd.args([
        "--dev",
        "--dev-root-token",
        "root-token-dumpable",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let hushd = Proc::spawn(hushd, "hushd").unwrap();
    let client = hush_tests::http_client();
    let url = format!("http://127.0.0.1:{port}/v1/sys/seal-status");
    let mut up = false;
    for _ in 0..500 {
        if client.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "hushd as nobody did not start: {}", hushd.stderr());
    assert_eq!(
        proc_mem_owner(hushd.child.id()),
        0,
        "hushd (uid {NOBODY}) must be marked not dumpable"
    );

    // The agent, as nobody too, following a secret into a directory nobody owns.
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "root-token-dumpable");
    std::os::unix::fs::chown(&token, Some(NOBODY), Some(NOBODY)).unwrap();
    let tmpfs = Tmpfs::new();
    std::os::unix::fs::chown(&tmpfs.path, Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let written = client
        .post(format!("http://127.0.0.1:{port}/v1/secret/data/app"))
        .header("X-Vault-Token", "root-token-dumpable")
        .json(&json!({"data": {"v": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 200);
    let mut agent = as_nobody(&bin("hush-agent"));
    agent.args([
        "--addr",
        &format!("http://127.0.0.1:{port}"),
        "--token-file",
        &token.display().to_string(),
        "--dest",
        &tmpfs.path.display().to_string(),
        "--secret",
        "app.json=secret/data/app",
    ]);
    let mut agent = Agent::from_command(agent).unwrap();
    let file = tmpfs.path.join("app.json");
    wait_for(Duration::from_secs(20), "the agent's file", || {
        file.exists()
    })
    .await;
    assert!(agent.running(), "{}", agent.stderr());
    assert_eq!(
        proc_mem_owner(agent.child.id()),
        0,
        "hush-agent (uid {NOBODY}) must be marked not dumpable"
    );
}

/// A value no log may hold, in every place a careless error message could quote it.
const CANARY: &str = "canary-value-3f9a1c77e2";

/// hushd and the agent at trace level for every crate (hyper, rustls and h2 included), through
/// a run of failures; then neither log holds the secret value, the root token or the tokens
/// made on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_a_run_full_of_failures_hold_no_secret() {
    let data = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", data.path().join("hush.db").display());
    let args = [
        "--storage",
        &storage,
        "--insecure-no-tls",
        "--log-level",
        "trace",
    ];
    let port = free_port();
    let mut h = Hushd::start_on(port, &args, "http", hush_tests::http_client()).await;
    let unseal_key = h.init_unseal().await;
    let root = h.token.clone().unwrap();
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");

    // The value written, read, patched and read at a version.
    h.kv_put("app/db", json!({"password": CANARY, "user": "app"}))
        .await;
    let (s, b) = h.call("GET", "secret/data/app/db", None).await;
    assert_eq!(
        (s, b["data"]["data"]["password"].as_str()),
        (200, Some(CANARY))
    );
    let (s, _) = h
        .call_body(
            Some(&root),
            "PATCH",
            "secret/data/app/db",
            Some("application/merge-patch+json"),
            json!({"data": {"note": CANARY}}).to_string(),
        )
        .await;
    assert_eq!(s, 200);

    // Bad input that quotes the value back at a careless parser.
    for (method, path, body) in [
        (
            "POST",
            "secret/data/app/x",
            json!({"data": {"p": CANARY}, "options": {"cas": CANARY}}),
        ),
        ("POST", "secret/data/app/x", json!({"data": CANARY})),
        (
            "POST",
            "secret/metadata/app/x",
            json!({"max_versions": CANARY}),
        ),
        (
            "POST",
            "auth/token/create",
            json!({"ttl": CANARY, "policies": [CANARY]}),
        ),
        ("POST", "auth/token/lookup", json!({"token": CANARY})),
        (
            "POST",
            "sys/policies/acl/p",
            json!({"policy": format!("path \"{CANARY}\" {{ capabilities = [{CANARY}] }}")}),
        ),
        ("PUT", "sys/unseal", json!({"key": CANARY})),
    ] {
        let (s, b) = h.call(method, path, Some(body)).await;
        assert!((400..500).contains(&s), "{method} {path}: {s} {b}");
    }
    let (s, _) = h
        .call_body(
            Some(&root),
            "POST",
            "secret/data/app/x",
            Some("application/json"),
            format!("{{\"data\": {{\"p\": \"{CANARY}\"}} trailing {CANARY}"),
        )
        .await;
    assert_eq!(s, 400);
    // The value (and the root token) as a token: refused.
    for token in [CANARY, &format!("{root}x")] {
        let (s, _) = h
            .call_as(Some(token), "GET", "secret/data/app/db", None)
            .await;
        assert_eq!(s, 403);
    }

    // A token made, used, refused where its policy ends, revoked, then refused.
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let app_token = h
        .create_token(json!({"policies": ["app"], "ttl": "1h"}))
        .await;
    let (s, _) = h
        .call_as(Some(&app_token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call_as(
            Some(&app_token),
            "POST",
            "secret/data/app/db",
            Some(json!({"data": {"p": CANARY}})),
        )
        .await;
    assert_eq!(s, 403);

    // The agent follows the secret at trace level, then the store goes away under it.
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), &app_token);
    let tmpfs = Tmpfs::new();
    let mut agent = Agent::spawn_env(
        &[
            "--addr",
            &h.addr,
            "--token-file",
            &token_file.display().to_string(),
            "--dest",
            &tmpfs.path.display().to_string(),
            "--secret",
            "pw=secret/data/app/db#password",
            "--refresh-interval",
            "200ms",
            "--backoff-max",
            "500ms",
        ],
        &[("HUSH_LOG", "trace")],
    );
    let pw = tmpfs.path.join("pw");
    wait_for(Duration::from_secs(20), "the agent's file", || {
        std::fs::read_to_string(&pw).is_ok_and(|v| v == CANARY)
    })
    .await;
    h.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.running(), "{}", agent.stderr());
    assert_eq!(
        std::fs::read_to_string(&pw).unwrap(),
        CANARY,
        "kept through the outage"
    );

    // Back: unsealed with the key, the token revoked; the agent is refused from now on.
    let first_log = h.stderr();
    let mut h = Hushd::start_on(port, &args, "http", hush_tests::http_client()).await;
    h.token = Some(root.clone());
    h.unseal(&unseal_key).await;
    let (s, _) = h
        .call(
            "POST",
            "auth/token/revoke",
            Some(json!({"token": app_token})),
        )
        .await;
    assert_eq!(s, 204);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let hushd_log = format!("{first_log}{}", h.stderr());
    let agent_log = agent.stderr();
    // The logs say what happened (so their silence about secrets means something)...
    for (log, expected) in [
        (&hushd_log, "request served"),
        (&hushd_log, "request refused"),
        (&hushd_log, "token created"),
        (&hushd_log, "sqlite: committed"),
        (&agent_log, "TRACE"),
    ] {
        assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
    }
    // ...and hold none of the secrets.
    for (name, log) in [("hushd", &hushd_log), ("hush-agent", &agent_log)] {
        for (what, secret) in [
            ("the value", CANARY),
            ("the root token", root.as_str()),
            ("the app token", app_token.as_str()),
            ("the unseal key", unseal_key.as_str()),
        ] {
            let lines: Vec<String> = log
                .lines()
                .filter(|l| l.contains(secret))
                .map(|l| l.replace(secret, "<SECRET>"))
                .collect();
            assert!(
                lines.is_empty(),
                "{what} is in the {name} log:\n{}",
                lines.join("\n")
            );
        }
    }
}

//! hush-agent over time: outages of hushd (kill -9 of a SQLite-backed server), shutdown on
//! SIGTERM, revoke-on-exit, readiness and metrics (a secret's age counted from its version's
//! creation in the store), token renewal and rotation, 403 handling.

use std::path::Path;
use std::time::{Duration, Instant};

use hush_tests::{free_port, http_client, wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::json;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read(dest: &Path, name: &str) -> String {
    std::fs::read_to_string(dest.join(name)).unwrap_or_default()
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
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    v.extend(extra.iter().map(|e| e.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_files_and_agent_then_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    let (st, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(st, 204, "{b}");
    h.kv_put("app/db", json!({"password": "before"})).await;

    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), h.token.as_deref().unwrap());
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--secret",
            "pw=secret/data/app/db#password",
            "--secret",
            "db.json=secret/data/app/db",
            "--backoff-max",
            "1s",
        ],
    ));
    let dest = tmpfs.path.clone();
    wait_for(Duration::from_secs(30), "first render", || {
        read(&dest, "pw") == "before"
    })
    .await;

    kill9_and_wait(&mut h).await;
    // Down for a while: files untouched, agent alive and retrying.
    let generation = read(&dest, "..data/.generation");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.running(), "{}", agent.stderr());
    assert_eq!(read(&dest, "pw"), "before");
    assert_eq!(read(&dest, "db.json"), r#"{"password":"before"}"#);
    assert_eq!(read(&dest, "..data/.generation"), generation);
    assert!(
        agent
            .stderr()
            .contains("keeping the last files and retrying"),
        "{}",
        agent.stderr()
    );

    // Back (sealed first: 503 is an outage too), unsealed, a new version: caught up.
    let port = h.port;
    drop(h);
    let mut h = Hushd::start_on(port, &args, "http", http_client()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read(&dest, "pw"), "before", "sealed: files kept");
    h.unseal(&key).await;
    h.token = Some(std::fs::read_to_string(&token).unwrap().trim().to_string());
    h.kv_put("app/db", json!({"password": "after"})).await;
    wait_for(Duration::from_secs(20), "the agent to catch up", || {
        read(&dest, "pw") == "after"
    })
    .await;
    assert_eq!(read(&dest, "db.json"), r#"{"password":"after"}"#);
    assert!(agent.running());
}

/// kill -9 and wait until the port no longer answers.
async fn kill9_and_wait(h: &mut Hushd) {
    h.kill9();
    let port = h.port;
    wait_for(Duration::from_secs(10), "hushd to be gone", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_quickly_leaving_files_and_revoke_on_exit_revokes() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();

    // Without --revoke-on-exit: the token stays valid.
    let kept = h.create_token(json!({"ttl": "1h"})).await;
    let token = write_token(dir.path(), &kept);
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &["--secret", "pw=secret/data/app/db#password"],
    ));
    let dest = tmpfs.path.clone();
    wait_for(Duration::from_secs(30), "first render", || {
        read(&dest, "pw") == "pw"
    })
    .await;
    let t = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(read(&dest, "pw"), "pw", "files left in place");
    let (st, _) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": kept})))
        .await;
    assert_eq!(st, 200, "token still valid");

    // SIGINT works the same; with --revoke-on-exit the token is gone afterwards.
    let revoked = h.create_token(json!({"ttl": "1h"})).await;
    let token = write_token(dir.path(), &revoked);
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--secret",
            "pw=secret/data/app/db#password",
            "--revoke-on-exit",
        ],
    ));
    wait_for(Duration::from_secs(30), "agent up", || {
        agent.stderr().contains("every file rendered")
    })
    .await;
    let t = Instant::now();
    agent.signal("INT");
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(read(&dest, "pw"), "pw");
    assert!(agent.stderr().contains("revoked the agent's token"));
    let (st, b) = h
        .call_as(Some(&revoked), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(st, 403, "revoked: {b}");
    // Never a token in the log.
    assert!(!agent.stderr().contains(&revoked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_render_and_metrics_are_hush_named() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--secret",
            "pw=secret/data/app/later#password",
            "--metrics-listen",
            &listen,
        ],
    ));
    let client = http_client();
    let get = |path: &str| {
        let client = client.clone();
        let url = format!("http://{listen}{path}");
        async move {
            match client.get(&url).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "{}", agent.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The secret does not exist yet: not ready, and no file.
    assert_eq!(get("/readyz").await.0, 503);
    assert!(!tmpfs.path.join("pw").exists());

    h.kv_put("app/later", json!({"password": "now"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "{}", agent.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read(&tmpfs.path, "pw"), "now");
    let (st, metrics) = get("/metrics").await;
    assert_eq!(st, 200);
    for name in [
        "hush_renders_total",
        "hush_store_requests_total",
        "hush_ready",
        "hush_token_ttl_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(metrics.contains("op=\"kv_read\""), "{metrics}");
    assert!(!metrics.contains("now\""), "no value in metrics");
    assert!(agent.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_renewed_before_it_expires_and_a_rotated_file_is_picked_up() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    // A short-lived renewable token: without renewal it is gone after 3 s.
    let short = h
        .create_token(json!({"ttl": "3s", "explicit_max_ttl": "1h", "renewable": true}))
        .await;
    let token = write_token(dir.path(), &short);
    let mut agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &["--secret", "pw=secret/data/app/db#password"],
    ));
    let dest = tmpfs.path.clone();
    wait_for(Duration::from_secs(30), "first render", || {
        read(&dest, "pw") == "v1"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (st, b) = h
        .call_as(Some(&short), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(st, 200, "the agent kept its token alive: {b}");
    assert!(
        agent.stderr().contains("renewed the agent's token"),
        "{}",
        agent.stderr()
    );
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(10), "v2", || read(&dest, "pw") == "v2").await;

    // Rotate the token file (rename over it, like a projected token); revoke the old one.
    let next = h.create_token(json!({"ttl": "1h"})).await;
    let tmp = dir.path().join("token.new");
    std::fs::write(&tmp, &next).unwrap();
    std::fs::rename(&tmp, &token).unwrap();
    let (st, _) = h
        .call_as(
            Some(&short),
            "POST",
            "auth/token/revoke-self",
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 204);
    h.kv_put("app/db", json!({"password": "v3"})).await;
    wait_for(Duration::from_secs(10), "v3 with the new token", || {
        read(&dest, "pw") == "v3"
    })
    .await;
    assert!(agent.running());
    let log = agent.stderr();
    assert!(
        !log.contains(&short) && !log.contains(&next),
        "no token in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_keeps_files_by_default_and_removes_them_when_asked() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "pw"})).await;
    h.kv_put("app/other", json!({"key": "k"})).await;
    let (st, b) = h
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert!(st == 204 || st == 200, "{b}");
    let dir = tempfile::tempdir().unwrap();

    for (mode, expect_kept) in [("keep", true), ("remove", false)] {
        let tmpfs = Tmpfs::new();
        let app = h
            .create_token(json!({"policies": ["app"], "ttl": "1h"}))
            .await;
        let token = write_token(dir.path(), &app);
        let mut agent = Agent::spawn(&agent_args(
            &h.addr,
            &token,
            &tmpfs.path,
            &[
                "--secret",
                "pw=secret/data/app/db#password",
                "--secret",
                "other=secret/data/app/other#key",
                "--on-forbidden",
                mode,
            ],
        ));
        let dest = tmpfs.path.clone();
        wait_for(Duration::from_secs(30), "first render", || {
            read(&dest, "pw") == "pw" && read(&dest, "other") == "k"
        })
        .await;
        // Take away the token's access: revoke it, so every read is 403.
        let (st, _) = h
            .call("POST", "auth/token/revoke", Some(json!({"token": app})))
            .await;
        assert_eq!(st, 204);
        wait_for(Duration::from_secs(10), "the 403 to be seen", || {
            agent.stderr().contains("403")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if expect_kept {
            assert_eq!(read(&dest, "pw"), "pw", "{mode}");
            assert_eq!(read(&dest, "other"), "k");
        } else {
            wait_for(Duration::from_secs(10), "files removed", || {
                !dest.join("pw").exists() && !dest.join("other").exists()
            })
            .await;
        }
        assert!(agent.running(), "{mode}: {}", agent.stderr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_metadata_access_still_follows_new_versions() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let (st, b) = h
        .call(
            "PUT",
            "sys/policies/acl/data-only",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert!(st == 204 || st == 200, "{b}");
    let app = h
        .create_token(json!({"policies": ["data-only"], "ttl": "1h"}))
        .await;
    let (st, _) = h
        .call_as(Some(&app), "GET", "secret/metadata/app/db", None)
        .await;
    assert_eq!(st, 403, "metadata is forbidden to this token");
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), &app);
    let agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &["--secret", "pw=secret/data/app/db#password"],
    ));
    let dest = tmpfs.path.clone();
    wait_for(Duration::from_secs(30), "v1", || read(&dest, "pw") == "v1").await;
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(10), "v2", || read(&dest, "pw") == "v2").await;
    assert!(
        agent.stderr().contains("comparing full reads instead"),
        "{}",
        agent.stderr()
    );
}

/// The value of the metric line starting with `prefix` in `/metrics` at `listen`, once there.
async fn metric(listen: &str, prefix: &str) -> f64 {
    let url = format!("http://{listen}/metrics");
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(&url).send().await {
            let text = r.text().await.unwrap_or_default();
            if let Some(v) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
                return v.trim().parse().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "no {prefix} in /metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_age_counts_from_the_versions_creation_in_the_store() {
    let h = Hushd::dev().await;
    h.kv_put("app/db", json!({"password": "v1"})).await;
    let written = Instant::now();
    // The version is 3 s old when the agent first reads it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::new();
    let token = write_token(dir.path(), "root");
    let listen = format!("127.0.0.1:{}", free_port());
    let agent = Agent::spawn(&agent_args(
        &h.addr,
        &token,
        &tmpfs.path,
        &[
            "--secret",
            "pw=secret/data/app/db#password",
            "--metrics-listen",
            &listen,
        ],
    ));
    wait_for(Duration::from_secs(20), "the first render", || {
        read(&tmpfs.path, "pw") == "v1"
    })
    .await;
    let age = metric(&listen, "hush_secret_age_seconds{file=\"pw\"}").await;
    let most = written.elapsed().as_secs_f64() + 1.0;
    assert!(
        (2.9..most).contains(&age),
        "age {age}: not counted from the version's creation\n{}",
        agent.stderr()
    );
    // A new version is young again.
    h.kv_put("app/db", json!({"password": "v2"})).await;
    wait_for(Duration::from_secs(20), "the new version", || {
        read(&tmpfs.path, "pw") == "v2"
    })
    .await;
    let age = metric(&listen, "hush_secret_age_seconds{file=\"pw\"}").await;
    assert!(age < 2.0, "age {age} of the new version");
    assert_eq!(
        metric(&listen, "hush_secret_version{file=\"pw\"}").await,
        2.0
    );
}

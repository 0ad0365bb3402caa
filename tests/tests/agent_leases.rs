//! hush-agent with dynamic PostgreSQL credentials, end to end: real hushd, real PostgreSQL,
//! real tmpfs. The agent renews the lease, leases new credentials before the max TTL ends
//! (username and password always from the same lease), an app connecting every 100 ms with
//! the files' credentials never fails, shutdown revokes the lease, and a `--once` run hands
//! its lease to the long-running agent instead of the pod holding two (whose metrics count the
//! credentials' age from the lease's issue and show the time left on it).

use std::path::Path;
use std::time::{Duration, Instant};

use hush_tests::pg::Postgres;
use hush_tests::{free_port, http_client, wait_for, write_token, Agent, Hushd, Tmpfs};

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
     GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";

/// What the agent's token may do: read creds, renew, look up and revoke leases.
const POLICY: &str = r#"
path "database/creds/ro" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// hushd with `database/` against `pg`, role `ro` with these TTLs; a token file for the agent.
async fn setup(pg: &Postgres, ttl: u64, max_ttl: u64) -> (Hushd, tempfile::TempDir) {
    let h = Hushd::dev().await;
    pg.mount_engine(&h, "ro", CREATE, ttl, max_ttl).await;
    let token = h.token_with_policy("app", POLICY).await;
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), &token);
    (h, dir)
}

fn agent_args(h: &Hushd, token_dir: &Path, dest: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--addr",
        &h.addr,
        "--token-file",
        &s(&token_dir.join("token")),
        "--dest",
        &s(dest),
        "--secret",
        "user=database/creds/ro#username",
        "--secret",
        "pass=database/creds/ro#password",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// `/metrics` at `listen`, once it has a line starting with `want`.
async fn scrape(listen: &str, want: &str) -> String {
    let url = format!("http://{listen}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http_client().get(&url).send().await {
            let text = r.text().await.unwrap_or_default();
            if text.lines().any(|l| l.starts_with(want)) {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no {want} in /metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the line starting with `prefix`.
fn value(metrics: &str, prefix: &str) -> f64 {
    let v = metrics.lines().find_map(|l| l.strip_prefix(prefix));
    v.unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

fn read_pair(dest: &Path) -> Option<(String, String)> {
    let u = std::fs::read_to_string(dest.join("user")).ok()?;
    let p = std::fs::read_to_string(dest.join("pass")).ok()?;
    Some((u, p))
}

#[tokio::test]
async fn the_app_never_holds_expired_credentials_across_three_max_ttls() {
    let pg = Postgres::start().await;
    // 4 s leases, 8 s max: renewed once, then new credentials each ~7 s.
    let (h, token_dir) = setup(&pg, 4, 8).await;
    let tmpfs = Tmpfs::new();
    let mut agent = Agent::spawn(&agent_args(&h, token_dir.path(), &tmpfs.path, &[]));
    wait_for(Duration::from_secs(20), "first credentials", || {
        read_pair(&tmpfs.path).is_some()
    })
    .await;

    let mut seen = std::collections::BTreeSet::new();
    let mut connects = 0u32;
    let started = Instant::now();
    // Until three new leases were taken after the first (or 40 s).
    while seen.len() < 4 && started.elapsed() < Duration::from_secs(40) {
        let (user, pass) = read_pair(&tmpfs.path).expect("the files are always there");
        // A pair read while the set is swapped must still be one lease's pair.
        if let Err(e) = pg.connect(&user, &pass).await {
            panic!(
                "connecting as {user} failed after {:?} ({connects} good connections): {e}\n{}",
                started.elapsed(),
                agent.stderr()
            );
        }
        connects += 1;
        seen.insert(user);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = agent.stderr();
    assert!(
        seen.len() >= 4,
        "only {} leases in {:?}:\n{log}",
        seen.len(),
        started.elapsed()
    );
    assert!(log.contains("renewed the lease"), "{log}");
    assert!(
        !log.contains(&read_pair(&tmpfs.path).unwrap().1),
        "a password leaked into the log"
    );
    assert!(agent.running());

    // Shutdown revokes the lease it holds: its user is dropped at once.
    let (last, _) = read_pair(&tmpfs.path).unwrap();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{}", agent.stderr());
    assert!(
        !pg.role_exists(&last).await,
        "the agent's lease was not revoked at exit:\n{}",
        agent.stderr()
    );
}

#[tokio::test]
async fn a_once_run_hands_its_lease_to_the_long_running_agent() {
    let pg = Postgres::start().await;
    let (h, token_dir) = setup(&pg, 60, 600).await;
    let tmpfs = Tmpfs::new();
    let mut once = Agent::spawn(&agent_args(&h, token_dir.path(), &tmpfs.path, &["--once"]));
    let status = once.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{}", once.stderr());
    let (user, pass) = read_pair(&tmpfs.path).unwrap();
    let state = tmpfs.path.join(".hush-leases.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o400);
    assert!(
        !once.stderr().contains(&pass),
        "a password leaked into the log"
    );

    // The lease is 2 s old (and has 58 s left) when the long-running agent takes it over.
    let issued = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut agent = Agent::spawn(&agent_args(
        &h,
        token_dir.path(),
        &tmpfs.path,
        &["--metrics-listen", &listen],
    ));
    wait_for(Duration::from_secs(20), "the adoption", || {
        agent.stderr().contains("adopted the lease")
    })
    .await;
    let metrics = scrape(&listen, "hush_lease_ttl_seconds").await;
    let age = value(&metrics, "hush_secret_age_seconds{file=\"user\"}");
    assert!(
        age >= 1.9 && age < issued.elapsed().as_secs_f64() + 5.0,
        "age {age}: not counted from the lease's issue\n{metrics}"
    );
    let ttl = value(
        &metrics,
        "hush_lease_ttl_seconds{secret=\"database/creds/ro\"}",
    );
    assert!(ttl > 40.0 && ttl <= 58.5, "ttl {ttl}\n{metrics}");
    assert!(
        !metrics.contains("database/creds/ro/"),
        "no lease ID in a label"
    );
    // Same credentials, one database user: no second lease.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        read_pair(&tmpfs.path).unwrap(),
        (user.clone(), pass.clone())
    );
    assert_eq!(pg.dynamic_roles().await, vec![user.clone()]);
    // The once-run's file was taken; the long-running agent keeps its own record of the same
    // lease there (0400) for a successor after a crash (tests/tests/hostile_crash.rs).
    let record = std::fs::read_to_string(&state).unwrap();
    assert!(
        record.contains("database/creds/ro/"),
        "the adopted lease is recorded"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o400);
    assert!(pg.connect(&user, &pass).await.is_ok());
    agent.signal("TERM");
    assert!(agent
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
    assert!(!pg.role_exists(&user).await, "{}", agent.stderr());
}

//! Crash loops: `kill -9` at random points (seeded; the seed is printed, `HUSH_CRASH_SEED`
//! replays it) of a real hushd on SQLite under 64 concurrent KV writers plus token lease churn,
//! restarted and unsealed each round; and of a real hush-agent while it swaps sets of files
//! whose secret changes every few milliseconds. Numbers are printed (`--nocapture`) and
//! recorded in docs/TESTING.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use hush_tests::{http_client, wait_for, write_token, Agent, Hushd, Tmpfs};
use serde_json::{json, Value};

/// splitmix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded(name: &str) -> Rng {
        let seed = std::env::var("HUSH_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{name}: seed {seed} (replay with HUSH_CRASH_SEED={seed})");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

const ROUNDS: usize = 50;
const WRITERS: usize = 64;
const CHURNERS: usize = 4;

/// A token created by the churn: when it was asked for and acknowledged, its TTL, and
/// whether its revocation was acknowledged.
#[derive(Clone, Debug)]
struct Leased {
    token: String,
    sent: Instant,
    acked: Instant,
    ttl: Duration,
    /// A revocation was sent (its answer may have been lost to the kill).
    revoke_sent: bool,
    /// ... and acknowledged.
    revoked: bool,
}

#[derive(Default)]
struct Ledger {
    /// key -> (latest acknowledged version, its value)
    kv: BTreeMap<String, (u64, String)>,
    writes: u64,
    tokens: Vec<Leased>,
    /// Token creations sent whose answer never came (the kill): may or may not exist.
    unanswered: u64,
}

async fn kv_writer(
    h: (reqwest::Client, String, String),
    w: usize,
    round: usize,
    ledger: Arc<Mutex<Ledger>>,
) {
    let (client, addr, token) = h;
    let mut i = 0u64;
    loop {
        let k = format!("w{w}/k{}", i % 5);
        let v = format!("r{round}-w{w}-{i}");
        let r = client
            .post(format!("{addr}/v1/secret/data/{k}"))
            .header("X-Vault-Token", &token)
            .json(&json!({"data": {"v": v}}))
            .send()
            .await;
        let Ok(r) = r else { return };
        let status = r.status().as_u16();
        let Ok(b) = r.json::<Value>().await else {
            return;
        };
        assert_eq!(status, 200, "write {k}: {b}");
        let ver = b["data"]["version"].as_u64().unwrap();
        let mut l = ledger.lock().unwrap();
        l.kv.insert(k, (ver, v));
        l.writes += 1;
        i += 1;
    }
}

/// Create tokens with short and long TTLs (leases under `auth/token/create/`) and revoke
/// every third one, until the connection breaks.
async fn churner(h: (reqwest::Client, String, String), c: usize, ledger: Arc<Mutex<Ledger>>) {
    let (client, addr, root) = h;
    let mut mine: Vec<usize> = Vec::new();
    let mut i = 0u64;
    loop {
        let ttl = [2u64, 4, 3600][(i as usize + c) % 3];
        let sent = Instant::now();
        let r = client
            .post(format!("{addr}/v1/auth/token/create"))
            .header("X-Vault-Token", &root)
            .json(&json!({"ttl": format!("{ttl}s"), "policies": ["default"], "no_parent": true}))
            .send()
            .await;
        let b = match r {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        let Some(b) = b else {
            ledger.lock().unwrap().unanswered += 1;
            return;
        };
        let token = b["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token create: {b}"))
            .to_string();
        {
            let mut l = ledger.lock().unwrap();
            l.tokens.push(Leased {
                token: token.clone(),
                sent,
                acked: Instant::now(),
                ttl: Duration::from_secs(ttl),
                revoke_sent: false,
                revoked: false,
            });
            mine.push(l.tokens.len() - 1);
        }
        if i % 3 == 2 {
            let at = mine[mine.len() - 2];
            let victim = {
                let mut l = ledger.lock().unwrap();
                l.tokens[at].revoke_sent = true;
                l.tokens[at].token.clone()
            };
            let r = client
                .post(format!("{addr}/v1/auth/token/revoke"))
                .header("X-Vault-Token", &root)
                .json(&json!({ "token": victim }))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 204 => ledger.lock().unwrap().tokens[at].revoked = true,
                Ok(r) => panic!("revoke: {}", r.status()),
                Err(_) => return,
            }
        }
        i += 1;
    }
}

async fn restart(args: &[&str], key: &str, root: &str) -> (Hushd, Duration) {
    let started = Instant::now();
    let mut h = Hushd::start(args, "http", http_client()).await;
    h.unseal(key).await;
    h.token = Some(root.to_string());
    (h, started.elapsed())
}

/// Every acknowledged write is there: its version (or a later one) with its value.
async fn check_kv(h: &Hushd, kv: &BTreeMap<String, (u64, String)>) {
    let checks = kv.iter().map(|(k, (ver, v))| async move {
        let (s, b) = h
            .call("GET", &format!("secret/data/{k}?version={ver}"), None)
            .await;
        assert_eq!(s, 200, "{k} v{ver}: {b}");
        assert_eq!(b["data"]["data"]["v"], json!(v), "{k} v{ver}");
        let (s, b) = h.call("GET", &format!("secret/metadata/{k}"), None).await;
        assert_eq!(s, 200, "{k}: {b}");
        let current = b["data"]["current_version"].as_u64().unwrap();
        assert!(
            current >= *ver,
            "{k}: current {current} < acknowledged {ver}"
        );
    });
    stream::iter(checks)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_kill_9s_under_writes_and_lease_churn_lose_nothing() {
    let mut rng = Rng::seeded("hushd crash loop");
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let audit = dir.path().join("audit.log");
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    let root = h.token.clone().unwrap();
    let (s, b) = h
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");
    // Every version is kept: a key whose writes are cut off by kill after kill still grows
    // (an unacknowledged write may land), and the default of 10 versions would prune the
    // acknowledged one the check reads.
    let (s, b) = h
        .call(
            "POST",
            "secret/config",
            Some(json!({"max_versions": 10000})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": audit}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");

    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let started = Instant::now();
    let mut recoveries = Vec::new();
    for round in 0..ROUNDS {
        let conn = (h.client.clone(), h.addr.clone(), root.clone());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            tasks.push(tokio::spawn(kv_writer(
                conn.clone(),
                w,
                round,
                ledger.clone(),
            )));
        }
        for c in 0..CHURNERS {
            tasks.push(tokio::spawn(churner(conn.clone(), c, ledger.clone())));
        }
        tokio::time::sleep(rng.millis(20, 400)).await;
        h.kill9();
        for t in tasks {
            t.await.expect("a writer saw a wrong answer");
        }
        let (h2, took) = restart(&args, &key, &root).await;
        h = h2;
        recoveries.push(took);
        // This round's (and every earlier round's) acknowledged writes are all there.
        let kv = ledger.lock().unwrap().kv.clone();
        check_kv(&h, &kv).await;
        if round % 10 == 9 {
            let l = ledger.lock().unwrap();
            println!(
                "round {}: {} writes acknowledged, {} tokens, {:?}",
                round + 1,
                l.writes,
                l.tokens.len(),
                started.elapsed()
            );
        }
    }

    // Leases: each acknowledged token is valid until its TTL, gone after it (on schedule,
    // across the restarts) or once its revocation was acknowledged; none listed twice.
    let tokens = ledger.lock().unwrap().tokens.clone();
    let checks = tokens.iter().map(|t| {
        let h = &h;
        async move {
            let asked = Instant::now();
            let (s, _) = h
                .call_as(Some(&t.token), "GET", "auth/token/lookup-self", None)
                .await;
            let expired = asked > t.acked + t.ttl + Duration::from_secs(3);
            let live = !t.revoke_sent && asked + Duration::from_secs(1) < t.sent + t.ttl;
            if t.revoked || expired {
                assert_eq!(s, 403, "revoked or expired token still works: {t:?}");
            } else if live {
                assert_eq!(s, 200, "acknowledged token lost: {t:?}");
            }
            u64::from(live && s == 200)
        }
    });
    let live: u64 = stream::iter(checks)
        .buffer_unordered(16)
        .collect::<Vec<u64>>()
        .await
        .iter()
        .sum();
    let keys = h.lease_keys("auth/token/create/").await;
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a lease listed twice");
    let (unanswered, writes) = {
        let l = ledger.lock().unwrap();
        (l.unanswered, l.writes)
    };
    assert!(
        writes >= 50,
        "only {writes} writes acknowledged in {ROUNDS} rounds: the test proves little"
    );
    assert!(
        keys.len() as u64 >= live,
        "{} leases listed, {live} tokens live",
        keys.len()
    );
    // At most the tokens not revoked and not expired, plus creations in flight at a kill:
    // no lease made twice, none outliving its token.
    let now = Instant::now();
    let possible = tokens
        .iter()
        .filter(|t| !t.revoked && now < t.acked + t.ttl + Duration::from_secs(3))
        .count() as u64;
    assert!(
        keys.len() as u64 <= possible + unanswered,
        "{} leases listed, at most {possible} possible + {unanswered} unanswered",
        keys.len()
    );
    // Every listed lease can be looked up, unless it expired since the list was read (the
    // 2 s and 4 s tokens of the last round run out while the checks above run): then it is
    // gone from the list too.
    for id in keys.iter().take(50) {
        let (s, b) = h
            .call(
                "PUT",
                "sys/leases/lookup",
                Some(json!({"lease_id": format!("auth/token/create/{id}")})),
            )
            .await;
        if s != 200 {
            assert_eq!(s, 400, "{id}: {b}");
            let now_listed = h.lease_keys("auth/token/create/").await;
            assert!(
                !now_listed.contains(id),
                "{id} is listed but cannot be looked up: {b}"
            );
        }
    }

    // The audit chain verifies across 50 kills (torn last lines cut at reopen).
    let summary = hush_api::audit::verify(std::io::BufReader::new(
        std::fs::File::open(&audit).unwrap(),
    ))
    .unwrap_or_else(|e| panic!("audit chain broken: {e}"));
    let stderr = h.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    recoveries.sort();
    println!(
        "hushd crash loop: {ROUNDS} rounds, {writes} KV writes and {} tokens acknowledged, \
         {live} live at the end, {} audit lines verified; restart+unseal median {:?}, max {:?}; \
         total {:?}",
        tokens.len(),
        summary.lines,
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1],
        started.elapsed()
    );
}

/// The set of files: three names, each `v<N>:` and a pad, all from one KV secret.
const NAMES: [&str; 3] = ["a", "b", "c"];

fn value(n: u64) -> String {
    format!("v{n}:{}", "z".repeat(30_000 + (n as usize % 7) * 1000))
}

/// The version all files carry; panics on a mixed or torn set.
fn check_set(dest: &Path, round: usize) -> u64 {
    let mut seen = BTreeSet::new();
    for name in NAMES {
        let text = std::fs::read_to_string(dest.join(name))
            .unwrap_or_else(|e| panic!("round {round}: {name} unreadable: {e}"));
        let n: u64 = text
            .strip_prefix('v')
            .and_then(|t| t.split(':').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: {name} has no marker"));
        assert_eq!(text, value(n), "round {round}: {name} torn");
        seen.insert(n);
    }
    assert_eq!(seen.len(), 1, "round {round}: a mixed set {seen:?}");
    seen.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_mid_swap_leaves_one_whole_set() {
    const AGENT_ROUNDS: usize = 40;
    let mut rng = Rng::seeded("agent crash loop");
    let h = Hushd::dev().await;
    let set = |n: u64| json!({"a": value(n), "b": value(n), "c": value(n)});
    h.kv_put("app/set", set(0)).await;
    let tmpfs = Tmpfs::new();
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "root");
    let dest = tmpfs.path.display().to_string();
    let args: Vec<String> = [
        "--addr",
        &h.addr,
        "--token-file",
        &token.display().to_string(),
        "--dest",
        &dest,
        "--secret",
        "a=secret/data/app/set#a",
        "--secret",
        "b=secret/data/app/set#b",
        "--secret",
        "c=secret/data/app/set#c",
        "--refresh-interval",
        "20ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // The secret changes every few milliseconds for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let version = Arc::new(Mutex::new(0u64));
    let changer = {
        let (client, addr, stop, version) = (
            h.client.clone(),
            h.addr.clone(),
            stop.clone(),
            version.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = client
                    .post(format!("{addr}/v1/secret/data/app/set"))
                    .header("X-Vault-Token", "root")
                    .json(&json!({ "data": set(n) }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                *version.lock().unwrap() = n;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let started = Instant::now();
    let mut agent = Agent::spawn(&args);
    wait_for(Duration::from_secs(30), "the first set", || {
        tmpfs.path.join("c").exists()
    })
    .await;
    let mut versions = BTreeSet::new();
    let mut first_sets = Vec::new();
    for round in 0..AGENT_ROUNDS {
        tokio::time::sleep(rng.millis(10, 250)).await;
        let _ = agent.child.kill();
        let _ = agent.child.wait();
        versions.insert(check_set(&tmpfs.path, round));
        let restarted = Instant::now();
        let before = std::fs::read_to_string(tmpfs.path.join("..data/.generation")).unwrap();
        agent = Agent::spawn(&args);
        // The restarted agent writes a newer set (and cleans up what the kill left).
        wait_for(
            Duration::from_secs(20),
            "a new set after the restart",
            || {
                std::fs::read_to_string(tmpfs.path.join("..data/.generation"))
                    .is_ok_and(|g| g != before)
            },
        )
        .await;
        first_sets.push(restarted.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    changer.await.unwrap();
    let last = *version.lock().unwrap();
    wait_for(Duration::from_secs(20), "the last version", || {
        std::fs::read_to_string(tmpfs.path.join("a")).is_ok_and(|t| t == value(last))
    })
    .await;
    check_set(&tmpfs.path, AGENT_ROUNDS);
    // What a kill left (a half-built generation, a `..data_tmp`) is gone: at most the current
    // and the previous generation.
    let leftovers: Vec<String> = std::fs::read_dir(&tmpfs.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != "..data")
        .collect();
    assert!(leftovers.len() <= 2, "{leftovers:?}");
    assert!(agent.running(), "{}", agent.stderr());
    first_sets.sort();
    println!(
        "agent crash loop: {AGENT_ROUNDS} kills, {} distinct versions found on disk after a kill, \
         {last} secret versions written; restart to a new set median {:?}, max {:?}; total {:?}",
        versions.len(),
        first_sets[first_sets.len() / 2],
        first_sets[first_sets.len() - 1],
        started.elapsed()
    );
}

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// What the agent's token may do: read creds, renew, look up and revoke leases.
const POLICY: &str = r#"
path "database/creds/ro" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

/// A long-running agent killed with -9 leaves `.hush-leases.json` (kept current while it
/// runs); the next one adopts the lease: same credentials in the files, one database user.
/// Regression: the record was written by `--once` only, so each restart after a crash leased
/// a second set of credentials and left the first to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_successor_adopts_its_lease() {
    let pg = hush_tests::pg::Postgres::start().await;
    let h = Hushd::dev().await;
    pg.mount_engine(&h, "ro", CREATE, 60, 600).await;
    let token = h.token_with_policy("app", POLICY).await;
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), &token);
    let tmpfs = Tmpfs::new();
    let args: Vec<String> = [
        "--addr",
        &h.addr,
        "--token-file",
        &token.display().to_string(),
        "--dest",
        &tmpfs.path.display().to_string(),
        "--secret",
        "user=database/creds/ro#username",
        "--secret",
        "pass=database/creds/ro#password",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let read_pair = || {
        let u = std::fs::read_to_string(tmpfs.path.join("user")).ok()?;
        let p = std::fs::read_to_string(tmpfs.path.join("pass")).ok()?;
        Some((u, p))
    };
    let record = tmpfs.path.join(".hush-leases.json");
    let mut agent = Agent::spawn(&args);
    wait_for(
        Duration::from_secs(30),
        "credentials and the lease record",
        || read_pair().is_some() && record.exists(),
    )
    .await;
    let first = read_pair().unwrap();
    for round in 0..3 {
        let _ = agent.child.kill();
        let _ = agent.child.wait();
        assert!(
            record.exists(),
            "round {round}: no lease record after the kill"
        );
        agent = Agent::spawn(&args);
        wait_for(Duration::from_secs(20), "the adoption", || {
            agent.stderr().contains("adopted the lease")
        })
        .await;
        wait_for(Duration::from_secs(10), "the record again", || {
            record.exists()
        })
        .await;
        assert_eq!(
            read_pair().unwrap(),
            first,
            "round {round}: new credentials"
        );
        assert_eq!(
            pg.dynamic_roles().await,
            vec![first.0.clone()],
            "round {round}"
        );
    }
    // A clean stop revokes the lease and leaves nothing to adopt.
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(10)).await.is_some());
    assert!(!record.exists(), "the record outlived the revoked lease");
    assert!(pg.dynamic_roles().await.is_empty(), "{}", agent.stderr());
}

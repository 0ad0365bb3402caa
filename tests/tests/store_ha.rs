//! HA: several hushd on one real PostgreSQL (`hush_tests::pg`). First the lock and its fence
//! on the storage backend itself; then real hushd processes: kill -9 of the active under load
//! from 64 hvac clients, a frozen active (SIGSTOP) fenced out, an active cut off from
//! PostgreSQL by an iptables rule.

use std::time::Duration;

use hush_store::storage::postgres::{HaSettings, PostgresBackend, PostgresUrl};
use hush_store::storage::{Backend, HaLock, Op, StorageError};
use hush_tests::pg::Postgres;

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

async fn node(
    url: &str,
    name: &str,
) -> (
    PostgresBackend,
    std::sync::Arc<hush_store::storage::postgres::PostgresLock>,
) {
    PostgresBackend::connect_ha(
        &PostgresUrl::parse(url).unwrap(),
        HaSettings {
            node_id: name.to_string(),
            api_addr: format!("http://{name}.example:8200"),
            call_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_fences_every_write_of_a_node_that_lost_it() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("lock", "sslmode=disable").await;
    let (a, lock_a) = node(&url, "a").await;
    let (b, lock_b) = node(&url, "b").await;

    // Nobody holds the lock: nobody writes.
    assert!(matches!(
        a.write(vec![put("k", "before")]).await,
        Err(StorageError::NotActive)
    ));
    assert_eq!(lock_a.leader().await.unwrap(), None);

    let ttl = Duration::from_millis(1500);
    let gen_a = lock_a
        .try_acquire(ttl)
        .await
        .unwrap()
        .expect("a takes the free lock");
    assert_eq!(lock_b.try_acquire(ttl).await.unwrap(), None, "held by a");
    a.write(vec![put("k", "a1")]).await.unwrap();
    assert!(matches!(
        b.write(vec![put("k", "b1")]).await,
        Err(StorageError::NotActive)
    ));
    let leader = lock_b.leader().await.unwrap().unwrap();
    assert_eq!(
        (
            leader.node_id.as_str(),
            leader.api_addr.as_str(),
            leader.generation
        ),
        ("a", "http://a.example:8200", gen_a)
    );
    assert!(lock_a.renew(gen_a, ttl).await.unwrap());

    // a stops renewing (frozen, cut off); once the row expired b takes it, and a's writes,
    // which still carry its generation, land nowhere.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let gen_b = lock_b
        .try_acquire(ttl)
        .await
        .unwrap()
        .expect("b takes the expired lock");
    assert!(gen_b > gen_a);
    assert!(matches!(
        a.write(vec![put("k", "a2-late"), put("other", "a2")]).await,
        Err(StorageError::NotActive)
    ));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"a1"[..]));
    assert_eq!(b.get("other").await.unwrap(), None);
    assert!(!lock_a.renew(gen_a, ttl).await.unwrap(), "a learns it lost");
    b.write(vec![put("k", "b2")]).await.unwrap();

    // An expired lock fences its own holder too, before anyone took it.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(matches!(
        b.write(vec![put("k", "b3-late")]).await,
        Err(StorageError::NotActive)
    ));
    assert_eq!(lock_a.leader().await.unwrap(), None);

    // A release hands over at once.
    let gen_b2 = lock_b.try_acquire(ttl).await.unwrap().unwrap();
    lock_b.release(gen_b2).await.unwrap();
    assert!(matches!(
        b.write(vec![put("k", "b4")]).await,
        Err(StorageError::NotActive)
    ));
    let gen_a2 = lock_a.try_acquire(ttl).await.unwrap().expect("released");
    assert!(gen_a2 > gen_b2);
    a.write(vec![put("k", "a3")]).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"a3"[..]));

    // Every row written came from the holder of its time: b2 and a3 only after a1.
    let admin = pg.admin_on("lock").await;
    let keys: Vec<Vec<u8>> = admin
        .query("SELECT key FROM hush_store ORDER BY key", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, vec![b"k".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_gets_the_lock_table() {
    let pg = Postgres::start().await;
    let url = pg.storage_url("v1", "sslmode=disable").await;
    let plain = PostgresBackend::connect(&PostgresUrl::parse(&url).unwrap())
        .await
        .unwrap();
    plain.write(vec![put("kept", "v")]).await.unwrap();
    drop(plain);
    // As a hushd of schema version 1 left it.
    pg.admin_on("v1")
        .await
        .batch_execute("DROP TABLE hush_lock; UPDATE hush_schema SET version = 1")
        .await
        .unwrap();
    let (b, lock) = node(&url, "b").await;
    let version: i32 = pg
        .admin_on("v1")
        .await
        .query_one("SELECT version FROM hush_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    let generation = lock.try_acquire(Duration::from_secs(5)).await.unwrap();
    assert!(generation.is_some());
    assert_eq!(b.get("kept").await.unwrap().as_deref(), Some(&b"v"[..]));
    b.write(vec![put("new", "v")]).await.unwrap();
}

// ---- real hushd processes ----

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hush_tests::ha::{no_redirect_client, Cluster, Partition};
use serde_json::{json, Value};

/// The process tests measure takeover times on a 2-core machine: one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn mount_kv(c: &Cluster) {
    let (s, b) = c
        .node(0)
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}\nnode 0:\n{}", c.node(0).stderr());
}

/// `(status, body)` of a request to node `i` sent as is, without following a redirect.
async fn raw_call(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut rb = no_redirect_client()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/v1/{path}", c.node(i).addr),
        )
        .header("X-Vault-Token", &c.token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standbys_report_themselves_and_send_clients_to_the_active_node() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let c = Cluster::start(2, "3s").await;
    mount_kv(&c).await;

    let (s, _, b) = raw_call(&c, 0, "GET", "sys/health", None).await;
    assert_eq!(
        (s, &b["standby"], &b["sealed"]),
        (200, &json!(false), &json!(false))
    );
    let (s, _, b) = raw_call(&c, 1, "GET", "sys/health", None).await;
    assert_eq!(
        (s, &b["standby"], &b["sealed"]),
        (429, &json!(true), &json!(false)),
        "{b}"
    );
    let (s, _, _) = raw_call(&c, 1, "GET", "sys/health?standbyok=true", None).await;
    assert_eq!(s, 200);
    let (s, _, _) = raw_call(&c, 1, "GET", "sys/health?standbycode=473", None).await;
    assert_eq!(s, 473);
    let (s, _, b) = raw_call(&c, 1, "GET", "sys/seal-status", None).await;
    assert_eq!((s, &b["sealed"]), (200, &json!(false)));

    let leader = c.leader(0).await;
    assert_eq!(
        (
            &leader["ha_enabled"],
            &leader["is_self"],
            &leader["leader_address"]
        ),
        (&json!(true), &json!(true), &json!(c.api_addr(0)))
    );
    assert_ne!(leader["active_time"], json!("0001-01-01T00:00:00Z"));
    c.wait_standby_of(1, 0, Duration::from_secs(5)).await;

    // Everything else: a 307 to the same path and query on the active node, before the
    // body is read; followed, the request is served there.
    let (s, headers, b) = raw_call(
        &c,
        1,
        "POST",
        "secret/data/through-standby?x=1",
        Some(json!({"data": {"v": "1"}})),
    )
    .await;
    assert_eq!(s, 307, "{b}");
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("{}/v1/secret/data/through-standby?x=1", c.api_addr(0))
    );
    let (s, b) = c
        .node(1)
        .call(
            "POST",
            "secret/data/through-standby",
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = c
        .node(0)
        .call("GET", "secret/data/through-standby", None)
        .await;
    assert_eq!((s, &b["data"]["data"]["v"]), (200, &json!("1")));
    // A standby answers no token questions itself: not even a bad token is looked at there.
    let (s, _, _) = raw_call(&c, 1, "GET", "auth/token/lookup-self", None).await;
    assert_eq!(s, 307);

    // sys/step-down: the active node hands over and stands by.
    let (s, _, b) = raw_call(&c, 0, "PUT", "sys/step-down", None).await;
    assert_eq!(s, 204, "{b}");
    let started = Instant::now();
    assert_eq!(c.wait_active(&[1], Duration::from_secs(10)).await, 1);
    println!("takeover after step-down: {:?}", started.elapsed());
    c.wait_standby_of(0, 1, Duration::from_secs(5)).await;
    let (s, b) = c
        .node(0)
        .call("GET", "secret/data/through-standby", None)
        .await;
    assert_eq!((s, &b["data"]["data"]["v"]), (200, &json!("1")), "{b}");
    // Not for a token without sudo on it.
    let (s, _, _) = raw_call(&c, 1, "GET", "sys/leader", None).await;
    assert_eq!(s, 200);
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_active_under_64_hvac_writers_loses_no_acknowledged_write() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut c = Cluster::start(3, "5s").await;
    mount_kv(&c).await;
    c.wait_standby_of(1, 0, Duration::from_secs(5)).await;
    c.wait_standby_of(2, 0, Duration::from_secs(5)).await;

    // 64 hvac clients, each on one of the standbys (they follow the 307 to the active node),
    // so every client outlives the kill and none is told of a new address.
    let out = tempfile::NamedTempFile::new().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/ha_writers.py");
    let mut load = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--addrs", &format!("{},{}", c.api_addr(1), c.api_addr(2))])
        .args(["--token", &c.token, "--threads", "64", "--seconds", "24"])
        .arg("--out")
        .arg(out.path())
        .spawn()
        .expect("python3 with hvac (scripts/test installs it)");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let killed_at = now_secs();
    let started = Instant::now();
    c.kill9(0);
    let new_active = c.wait_active(&[1, 2], Duration::from_secs(10)).await;
    let failover = started.elapsed();
    println!("node {new_active} active {failover:?} after kill -9 of the active node");
    assert!(failover < Duration::from_secs(10), "{failover:?}");
    let status = load.wait().await.unwrap();
    assert!(status.success(), "ha_writers.py failed");

    let result: Value = serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    let acked = result["acked"].as_array().unwrap();
    let failed = result["failed"].as_array().unwrap();
    let before = acked
        .iter()
        .filter(|a| a[4].as_f64().unwrap() < killed_at)
        .count();
    println!(
        "{} writes acknowledged ({before} before the kill), {} failed",
        acked.len(),
        failed.len()
    );
    assert!(before >= 64, "too few writes before the kill: {before}");
    // Every client succeeded again after the failover, with the address it started with.
    let takeover = killed_at + failover.as_secs_f64();
    let mut recovered = std::collections::BTreeSet::new();
    for a in acked {
        if a[4].as_f64().unwrap() > takeover {
            recovered.insert(a[0].as_u64().unwrap());
        }
    }
    assert_eq!(
        recovered.len(),
        64,
        "clients that never succeeded after the takeover: {failed:?}"
    );

    // No acknowledged write is lost: each reads back from the new active node.
    let keys: Vec<(String, String)> = acked
        .iter()
        .map(|a| {
            (
                a[1].as_str().unwrap().to_string(),
                a[2].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let node = c.node(new_active);
    let (client, addr, token) = (node.client.clone(), node.addr.clone(), c.token.clone());
    let lost = Arc::new(Mutex::new(Vec::new()));
    let chunks: Vec<Vec<(String, String)>> = keys
        .chunks(keys.len().div_ceil(16))
        .map(<[_]>::to_vec)
        .collect();
    let mut readers = Vec::new();
    for chunk in chunks {
        let (client, addr, token, lost) =
            (client.clone(), addr.clone(), token.clone(), lost.clone());
        readers.push(tokio::spawn(async move {
            for (key, value) in chunk {
                let r = client
                    .get(format!("{addr}/v1/secret/data/{key}"))
                    .header("X-Vault-Token", &token)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if status != 200 || body["data"]["data"]["v"] != json!(value) {
                    lost.lock().unwrap().push((key, status));
                }
            }
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    let lost = lost.lock().unwrap().clone();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost: {:?}",
        &lost[..lost.len().min(20)]
    );

    // The killed node comes back as a standby of the new active node.
    c.restart(0).await;
    c.wait_standby_of(0, new_active, Duration::from_secs(10))
        .await;
}

/// Logs every row written to `hush_store` with the application name of the connection that
/// wrote it and the lock holder of that moment, from inside the writing transaction.
async fn log_writes(c: &Cluster) {
    c.pg.admin_on(c.db)
        .await
        .batch_execute(&format!(
            "CREATE TABLE ha_write_log (app text NOT NULL, holder text NOT NULL, \
                                        generation bigint NOT NULL, \
                                        at timestamptz NOT NULL DEFAULT clock_timestamp());
             GRANT INSERT ON ha_write_log TO {user};
             CREATE FUNCTION ha_log_write() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO ha_write_log (app, holder, generation)
                 SELECT current_setting('application_name'), 'hushd ' || api_addr, generation
                 FROM hush_lock WHERE id = 1;
               RETURN NULL;
             END $$;
             CREATE TRIGGER ha_log AFTER INSERT OR UPDATE OR DELETE ON hush_store
               FOR EACH ROW EXECUTE FUNCTION ha_log_write();",
            user = hush_tests::pg::STORAGE_USER
        ))
        .await
        .unwrap();
}

/// Rows of `ha_write_log` per (writer, holder at the time).
async fn writes_by(c: &Cluster) -> BTreeMap<(String, String), i64> {
    c.pg.admin_on(c.db)
        .await
        .query(
            "SELECT app, holder, count(*) FROM ha_write_log GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

/// Asserts that every row in `ha_write_log` was written by the lock holder of its moment;
/// returns the rows per (writer, holder).
async fn only_holders_wrote(c: &Cluster) -> BTreeMap<(String, String), i64> {
    let by = writes_by(c).await;
    println!("rows written, by (writer, lock holder): {by:?}");
    let foreign: Vec<_> = by
        .iter()
        .filter(|((app, holder), _)| app != holder)
        .collect();
    assert!(
        foreign.is_empty(),
        "writes by a node that did not hold the lock: {foreign:?}"
    );
    by
}

/// One write's outcome: status (0: no answer), sent and answered, seconds since the epoch.
type Outcome = (u16, f64, f64);

/// `n` tasks writing KV to `addr` without following redirects, until `stop`.
fn writers(
    addr: String,
    token: String,
    n: usize,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..n)
        .map(|w| {
            let (addr, token, stop) = (addr.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let client = no_redirect_client();
                let mut out = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = now_secs();
                    let r = client
                        .post(format!("{addr}/v1/secret/data/w{w}/k{i}"))
                        .header("X-Vault-Token", &token)
                        .timeout(timeout)
                        .json(&json!({"data": {"v": i}}))
                        .send()
                        .await;
                    let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                    out.push((status, sent, now_secs()));
                    if status != 200 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    i += 1;
                }
                out
            })
        })
        .collect()
}

async fn outcomes(tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn signal(c: &Cluster, i: usize, sig: &str) {
    let pid = c.node(i).child.id().to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_active_node_cannot_write_after_a_standby_took_over() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut c = Cluster::start(2, "2s").await;
    mount_kv(&c).await;
    c.wait_standby_of(1, 0, Duration::from_secs(5)).await;
    log_writes(&c).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = writers(
        c.node(0).addr.clone(),
        c.token.clone(),
        16,
        Duration::from_secs(60),
        stop.clone(),
    );
    // Freeze node 0 once its writes are landing (not after a fixed time: a busy machine).
    let node0 = format!("hushd {}", c.api_addr(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    while writes_by(&c)
        .await
        .get(&(node0.clone(), node0.clone()))
        .copied()
        .unwrap_or(0)
        < 16
    {
        assert!(
            Instant::now() < deadline,
            "node 0 wrote nothing within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&c, 0, "-STOP");
    let stopped_at = now_secs();
    let started = Instant::now();
    assert_eq!(c.wait_active(&[1], Duration::from_secs(10)).await, 1);
    println!("node 1 active {:?} after node 0 froze", started.elapsed());
    let (s, b) = c
        .node(1)
        .call(
            "POST",
            "secret/data/after-takeover",
            Some(json!({"data": {"v": 1}})),
        )
        .await;
    assert_eq!(s, 200, "{b}\nnode 1:\n{}", c.node(1).stderr());
    signal(&c, 0, "-CONT");
    let resumed_at = now_secs();
    // Node 0 finds out, and stays up as a standby of node 1.
    c.wait_standby_of(0, 1, Duration::from_secs(10)).await;
    let (s, _, _) = raw_call(&c, 0, "GET", "sys/health", None).await;
    assert_eq!(s, 429);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let all = outcomes(tasks).await;
    assert!(
        c.node_mut(0).child.try_wait().unwrap().is_none(),
        "node 0 exited"
    );

    let in_flight: Vec<&Outcome> = all
        .iter()
        .filter(|(_, sent, done)| *sent < stopped_at && *done > resumed_at)
        .collect();
    println!(
        "{} writes, {} in flight across the freeze: {:?}",
        all.len(),
        in_flight.len(),
        in_flight.iter().map(|o| o.0).collect::<Vec<_>>()
    );
    assert!(
        !in_flight.is_empty(),
        "no write was in flight when node 0 froze"
    );
    let late_ok: Vec<&Outcome> = all
        .iter()
        .filter(|(s, sent, _)| *s == 200 && *sent > resumed_at)
        .collect();
    assert!(
        late_ok.is_empty(),
        "node 0 acknowledged writes sent after it resumed: {late_ok:?}"
    );

    // In the table: every row was written by the node holding the lock at that moment.
    let by = only_holders_wrote(&c).await;
    let node0 = format!("hushd {}", c.api_addr(0));
    let node1 = format!("hushd {}", c.api_addr(1));
    assert!(by.contains_key(&(node0.clone(), node0.clone())));
    assert!(by.contains_key(&(node1.clone(), node1.clone())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_active_node_cut_off_from_postgresql_stops_and_rejoins_as_a_standby() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let c = Cluster::start(2, "3s").await;
    let ttl = 3.0;
    mount_kv(&c).await;
    c.wait_standby_of(1, 0, Duration::from_secs(5)).await;
    log_writes(&c).await;
    let (s, _) = c
        .node(0)
        .call(
            "POST",
            "secret/data/before",
            Some(json!({"data": {"v": 1}})),
        )
        .await;
    assert_eq!(s, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = writers(
        c.node(0).addr.clone(),
        c.token.clone(),
        8,
        Duration::from_secs(30),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let partition = Partition::cut(&Cluster::pg_address(0), c.pg.port);
    let cut_at = now_secs();
    let started = Instant::now();
    assert_eq!(c.wait_active(&[1], Duration::from_secs(10)).await, 1);
    println!(
        "node 1 active {:?} after node 0 lost PostgreSQL",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs_f64(ttl + 1.5)).await;
    stop.store(true, Ordering::Relaxed);
    let all = outcomes(tasks).await;

    let after: Vec<&Outcome> = all.iter().filter(|(_, sent, _)| *sent > cut_at).collect();
    assert!(!after.is_empty());
    // Nothing is acknowledged without PostgreSQL, nothing hangs past the lease, and once the
    // lease is over node 0 refuses at once.
    for (status, sent, done) in &after {
        assert_ne!(*status, 200, "a write acknowledged without PostgreSQL");
        assert_ne!(*status, 0, "a write got no answer");
        assert!(
            done - sent < 2.0 * ttl + 1.0,
            "a write took {}s",
            done - sent
        );
        if *sent > cut_at + ttl + 0.5 {
            assert!(
                done - sent < 1.0,
                "node 0 still answers slowly: {}s",
                done - sent
            );
        }
    }
    println!(
        "{} writes to node 0 after the cut: statuses {:?}",
        after.len(),
        after
            .iter()
            .map(|o| o.0)
            .collect::<std::collections::BTreeSet<_>>()
    );

    // Healed: node 0 rejoins as a standby of node 1 and sends clients there.
    partition.heal();
    c.wait_standby_of(0, 1, Duration::from_secs(20)).await;
    let (s, b) = c
        .node(0)
        .call(
            "POST",
            "secret/data/after-heal",
            Some(json!({"data": {"v": 2}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = c.node(1).call("GET", "secret/data/before", None).await;
    assert_eq!((s, &b["data"]["data"]["v"]), (200, &json!(1)));
    only_holders_wrote(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_on_a_standby_follows_it_to_the_active_node_for_pushed_changes() {
    use hush_tests::push::{Fleet, FleetSpec};
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let c = Cluster::start(2, "3s").await;
    mount_kv(&c).await;
    c.wait_standby_of(1, 0, Duration::from_secs(5)).await;
    c.node(0).kv_put("push/ha", json!({"v": "v0"})).await;
    // Polling once an hour: a change in seconds can only come through the subscription, which
    // the standby redirects (a 307 on the WebSocket upgrade) to the active node.
    let spec = FleetSpec {
        agents: 1,
        paths: vec!["push/ha".into()],
        refresh: "1h".into(),
        push: true,
        token: c.token.clone(),
        program: None,
        log: "info,hush_agent=debug".into(),
        ca_cert: None,
    };
    let mut fleet = Fleet::start(&c.node(1).addr, &spec).unwrap();
    fleet
        .wait_value(0, "v0", Instant::now(), Duration::from_secs(30))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.logged("subscribed to the store's events", 1) < 1 {
        assert!(
            Instant::now() < deadline,
            "{}",
            fleet.agents[0].stderr_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let times = fleet
        .write_and_time(c.node(0), 0, "v1", Duration::from_secs(10))
        .await
        .unwrap();
    println!("change to file through a standby's redirect: {times:?}");
}

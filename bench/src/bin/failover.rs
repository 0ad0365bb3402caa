//! hush-bench-failover: how long a cluster of HA hushd is without an active node after
//! `kill -9` of the active one.
//!
//! Each kill comes at a random point of the lock's renewal cycle (after a random wait of one to
//! two TTLs), as a crash would: the takeover time is then what is left of the lease, plus the
//! standby's poll, plus becoming active.
//!
//! Starts a real PostgreSQL and `--nodes` hushd with `--ha` through the test harness
//! (`hush_tests::ha::Cluster`), mounts KV v2, then `--kills` times: `kill -9` of the active
//! node, and from that moment the time until a surviving node says it is active
//! (`sys/leader` polled every 50 ms) and until a KV write sent to a surviving *standby* (which
//! redirects to the active node) succeeds (retried every 20 ms); then the killed node is
//! started again, unsealed, and waited for as a standby. hushd is the binary next to this one
//! (`cargo build --release -p hush-store -p hush-bench`). Prints Markdown on stdout.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use hush_tests::ha::Cluster;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "hush-bench-failover", version)]
struct Args {
    /// Kills of the active node.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// hushd nodes (2 or 3).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// `--ha-lock-ttl` of every node.
    #[arg(long, default_value = "5s")]
    ttl: String,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "| {label} | {:.0} | {median:.0} | {:.0} |",
        v[0],
        v[v.len() - 1]
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !(2..=3).contains(&args.nodes) {
        bail!("--nodes must be 2 or 3");
    }
    let mut c = Cluster::start(args.nodes, &args.ttl).await;
    let (s, b) = c
        .node(0)
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    if s != 204 {
        bail!("mount: {s} {b}");
    }
    let mut active = 0;
    for i in 1..args.nodes {
        c.wait_standby_of(i, active, Duration::from_secs(10)).await;
    }
    println!(
        "| kill | killed node | new active | active after (ms) | first write through a standby after (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let (mut takeovers, mut writes) = (Vec::new(), Vec::new());
    let ttl = hush_store::logical::duration::parse_secs(&args.ttl)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .ok_or_else(|| anyhow::anyhow!("--ttl {:?}: not a whole number of seconds", args.ttl))?;
    for kill in 1..=args.kills {
        // The clock's nanoseconds: random enough for a phase.
        let phase = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.5, |d| f64::from(d.subsec_nanos()) / 1e9);
        let wait = ttl.mul_f64(1.0 + phase);
        tokio::time::sleep(wait).await;
        let survivors: Vec<usize> = (0..args.nodes).filter(|&i| i != active).collect();
        let started = Instant::now();
        c.kill9(active);
        let new_active = c.wait_active(&survivors, Duration::from_secs(60)).await;
        let takeover = started.elapsed();
        // A write through a standby if there is one, else through the new active node.
        let via = survivors
            .iter()
            .copied()
            .find(|&i| i != new_active)
            .unwrap_or(new_active);
        let written = loop {
            // Until the standby learns of the takeover it redirects to the dead node: a
            // refused connection, tried again.
            let answer = c
                .node(via)
                .client
                .post(format!(
                    "{}/v1/secret/data/failover/{kill}",
                    c.node(via).addr
                ))
                .header("X-Vault-Token", &c.token)
                .timeout(Duration::from_secs(5))
                .json(&json!({"data": {"kill": kill}}))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() == 200) {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no write succeeded within 60 s after kill {kill}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!(
            "| {kill} | {active} | {new_active} | {:.0} | {:.0} |",
            millis(takeover),
            millis(written)
        );
        takeovers.push(millis(takeover));
        writes.push(millis(written));
        c.restart(active).await;
        c.wait_standby_of(active, new_active, Duration::from_secs(20))
            .await;
        active = new_active;
    }
    println!();
    println!("| ms, over {} kills | min | median | max |", args.kills);
    println!("|---|---:|---:|---:|");
    println!("{}", summary("a survivor is active", takeovers));
    println!("{}", summary("a write through a standby succeeds", writes));
    Ok(())
}

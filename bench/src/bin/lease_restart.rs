//! hush-bench-lease-restart: hushd start-to-ready after a restart with N stored leases.
//!
//! For each count, fills a fresh SQLite store through the store library (initialise, unseal,
//! then N leases written with the expiration manager's own index ops, in batches, as hushd
//! writes them: encrypted entry + by-expiry key), closes it, then starts the real `hushd` on
//! it and times, from `spawn()`: the first answer of `sys/seal-status`, the unseal, and the
//! first authenticated request (`auth/token/lookup-self`) — ready to serve. Afterwards checks
//! the count through `sys/leases/count?type=all`. hushd is started and called through the test
//! harness (`hush_tests::Hushd`). Prints Markdown on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Parser;
use hush_store::core::lease::{LeaseEntry, LeaseKind};
use hush_store::core::Core;
use hush_store::storage::SqliteBackend;
use hush_tests::reqwest::Client;
use hush_tests::{bin_or, free_port, http_client, Hushd};
use secrecy::ExposeSecret;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "hush-bench-lease-restart", version)]
struct Args {
    /// Stored lease counts, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0,100000,1000000")]
    leases: Vec<usize>,
    /// Restarts timed per count.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// hushd binary (default: next to this binary).
    #[arg(long)]
    hushd: Option<PathBuf>,
}

/// Fill `db` with `n` leases; returns (the unseal key in hex, the root token).
async fn fill(db: &Path, n: usize) -> Result<(String, String)> {
    let backend = Arc::new(SqliteBackend::open(db)?);
    let core = Core::new(backend.clone(), hush_store::backends());
    let (keys, root) = core.initialize(1, 1).await?;
    let key = keys.into_iter().next().context("one key")?;
    core.unseal_with(&key).await?;
    let index = core.unsealed()?.expiration.index().clone();
    let now = Utc::now();
    let mut ops = Vec::new();
    for i in 0..n {
        // Due between 1 and 25 hours from now: none expires during the measurement.
        let expire = now + chrono::Duration::seconds(3600 + (i as i64 * 7919) % 86_400);
        let mut internal = serde_json::Map::new();
        internal.insert("username".into(), json!(format!("v-bench-ro-{i:08}")));
        let entry = LeaseEntry {
            lease_id: format!("database/creds/ro/{i:024}"),
            kind: LeaseKind::Secret,
            mount_accessor: "database_bench".into(),
            internal,
            token_hash: None,
            issue_time: now,
            expire_time: expire,
            max_expire: Some(expire),
            last_renewal: None,
            renewable: true,
            due: expire,
            revoke_attempts: 0,
            irrevocable: None,
        };
        ops.extend(index.put_ops(&entry, None)?);
        if ops.len() >= 4000 || i + 1 == n {
            index.view().write(std::mem::take(&mut ops)).await?;
        }
        if i > 0 && i % 100_000 == 0 {
            eprintln!("  {i} leases written");
        }
    }
    core.seal().await;
    backend.checkpoint().await?;
    let key = hex::encode(key.as_slice());
    // Let the sealed store's expiry task end, so the last handle on the database closes.
    drop((index, core, backend));
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok((key, root.expose_secret().to_string()))
}

struct Timing {
    listening: Duration,
    unsealed: Duration,
    ready: Duration,
}

async fn restart(
    hushd: &Path,
    client: &Client,
    db: &Path,
    key: &str,
    token: &str,
    n: usize,
) -> Result<Timing> {
    let storage = format!("sqlite://{}", db.display());
    let args = [
        "--storage",
        &storage,
        "--insecure-no-tls",
        "--log-level",
        "warn",
    ];
    let port = free_port();
    let start = Instant::now();
    let mut h = Hushd::spawn(hushd, port, &args, "http", client.clone());
    h.wait_ready_every(Duration::from_millis(1), Duration::from_secs(60))
        .await;
    let listening = start.elapsed();
    h.unseal(key).await;
    let unsealed = start.elapsed();
    let (s, b) = h
        .call_as(Some(token), "GET", "auth/token/lookup-self", None)
        .await;
    if s != 200 {
        bail!("lookup-self failed: {s} {b}");
    }
    let ready = start.elapsed();
    let (s, b) = h
        .call_as(Some(token), "GET", "sys/leases/count?type=all", None)
        .await;
    if s != 200 || b["data"]["lease_count"] != json!(n) {
        bail!("expected {n} leases, got {s} {b}");
    }
    Ok(Timing {
        listening,
        unsealed,
        ready,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let hushd = bin_or(args.hushd.as_deref(), "hushd")?;
    // Made once, outside the timings (building a client costs milliseconds).
    let client = http_client();
    let rt = tokio::runtime::Runtime::new()?;
    println!("| stored leases | DB size MB | fill s | listening ms | unsealed ms | ready ms (median of {}) | ready ms (max) |", args.runs);
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &args.leases {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("hush.db");
        eprintln!("filling {n} leases");
        let t = Instant::now();
        let (key, token) = rt.block_on(fill(&db, n))?;
        let fill_s = t.elapsed().as_secs_f64();
        // Fold the WAL into the database, as a long-running hushd's checkpointer has done.
        rusqlite::Connection::open(&db)?.query_row(
            "PRAGMA wal_checkpoint(TRUNCATE)",
            [],
            |_| Ok(()),
        )?;
        let size: u64 = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();

        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(rt.block_on(restart(&hushd, &client, &db, &key, &token, n))?);
        }
        runs.sort_by_key(|r| r.ready);
        let mid = &runs[runs.len() / 2];
        let max = runs.last().context("at least one run")?;
        println!(
            "| {n} | {:.0} | {fill_s:.1} | {} | {} | {} | {} |",
            size as f64 / 1e6,
            ms(mid.listening),
            ms(mid.unsealed),
            ms(mid.ready),
            ms(max.ready)
        );
    }
    Ok(())
}

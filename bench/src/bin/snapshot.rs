//! hush-bench-snapshot: snapshot save and restore rates (entries/s) of a real hushd, on SQLite
//! and on PostgreSQL (a cluster the test harness starts, `hush_tests::pg`).
//!
//! For each backend: a fresh store is initialised and filled through the store library (N
//! barrier-encrypted entries under `bulk/`, 1000 per atomic batch, as hushd writes them),
//! then the real `hushd` is started on it and unsealed; timed over HTTP: `GET
//! sys/storage/snapshot` streamed to a file (save), then `POST sys/storage/snapshot` of that
//! file back into the same store (restore: upload, the check pass, the one-transaction
//! replace). Prints Markdown on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hush_store::core::Core;
use hush_store::storage::postgres::{PostgresBackend, PostgresUrl};
use hush_store::storage::{Backend, Op, SqliteBackend};
use hush_tests::pg::Postgres;
use hush_tests::{bin_or, http_client, Hushd};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
#[command(name = "hush-bench-snapshot", version)]
struct Args {
    /// Entries in the store.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Backends, comma separated: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Save/restore rounds per backend.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// hushd binary (default: next to this binary).
    #[arg(long)]
    hushd: Option<PathBuf>,
}

/// Initialise `backend`, write `n` entries, seal; returns (unseal key hex, root token).
async fn fill(backend: Arc<dyn Backend>, n: usize) -> Result<(String, String)> {
    let core = Core::new(backend, hush_store::backends());
    let (keys, root) = core.initialize(1, 1).await?;
    let key = keys.into_iter().next().context("one key")?;
    core.unseal_with(&key).await?;
    let mut ops = Vec::new();
    for i in 0..n {
        ops.push(Op::Put {
            key: format!("bulk/{:03}/{i:08}", i % 997),
            value: format!("entry {i} {}", "x".repeat(64)).into_bytes(),
        });
        if ops.len() >= 1000 || i + 1 == n {
            core.barrier().write(std::mem::take(&mut ops)).await?;
        }
    }
    core.seal().await;
    Ok((
        hex::encode(key.as_slice()),
        root.expose_secret().to_string(),
    ))
}

struct Round {
    save: Duration,
    restore: Duration,
    bytes: u64,
}

async fn round(h: &Hushd, token: &str, key: &str, file: &Path) -> Result<Round> {
    let client = http_client();
    let started = Instant::now();
    let mut resp = client
        .get(format!("{}/v1/sys/storage/snapshot", h.addr))
        .header("X-Vault-Token", token)
        .timeout(Duration::from_secs(3600))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("save: {}", resp.status());
    }
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(file).await?);
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    let save = started.elapsed();
    let body = tokio::fs::read(file).await?;
    let started = Instant::now();
    let resp = client
        .post(format!("{}/v1/sys/storage/snapshot", h.addr))
        .header("X-Vault-Token", token)
        .timeout(Duration::from_secs(3600))
        .body(body)
        .send()
        .await?;
    let restore = started.elapsed();
    if resp.status().as_u16() != 204 {
        bail!("restore: {} {}", resp.status(), resp.text().await?);
    }
    h.unseal(key).await;
    Ok(Round {
        save,
        restore,
        bytes,
    })
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`: peak), in MB.
fn proc_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let hushd = bin_or(args.hushd.as_deref(), "hushd")?;
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "| backend | entries | snapshot MB | save s (median of {runs}) | save entries/s | restore s (median) | restore entries/s | hushd RSS MB before | hushd peak RSS MB |",
        runs = args.runs
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let mut pg = None;
        for name in &args.backends {
            let (storage, backend): (String, Arc<dyn Backend>) = match name.as_str() {
                "sqlite" => {
                    let db = dir.path().join("bench.db");
                    (
                        format!("sqlite://{}", db.display()),
                        Arc::new(SqliteBackend::open(&db)?),
                    )
                }
                "postgres" => {
                    let cluster = pg.get_or_insert(Postgres::start_durable().await);
                    let url = cluster.storage_url("bench", "sslmode=disable").await;
                    let parsed = PostgresUrl::parse(&url).map_err(anyhow::Error::msg)?;
                    let backend = PostgresBackend::connect(&parsed).await?;
                    (url, Arc::new(backend))
                }
                other => bail!("unknown backend {other}"),
            };
            eprintln!("{name}: filling {} entries", args.entries);
            let (key, token) = fill(backend, args.entries).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let args_h = [
                "--storage",
                &storage,
                "--insecure-no-tls",
                "--log-level",
                "warn",
            ];
            let h = Hushd::start_bin(&hushd, &args_h, "http", http_client()).await;
            h.unseal(&key).await;
            let rss_before = proc_mb(h.child.id(), "VmRSS:");
            let mut rounds = Vec::new();
            for i in 0..args.runs {
                let r = round(&h, &token, &key, &dir.path().join("bench.snap")).await?;
                eprintln!(
                    "{name} round {i}: save {:?}, restore {:?}",
                    r.save, r.restore
                );
                rounds.push(r);
            }
            let n = args.entries;
            let mut saves: Vec<_> = rounds.iter().map(|r| r.save).collect();
            let mut restores: Vec<_> = rounds.iter().map(|r| r.restore).collect();
            saves.sort();
            restores.sort();
            let (save, restore) = (saves[saves.len() / 2], restores[restores.len() / 2]);
            println!(
                "| {name} | {n} | {:.1} | {:.2} | {} | {:.2} | {} | {rss_before:.0} | {:.0} |",
                rounds[0].bytes as f64 / 1e6,
                save.as_secs_f64(),
                rate(n, save),
                restore.as_secs_f64(),
                rate(n, restore),
                proc_mb(h.child.id(), "VmHWM:"),
            );
            drop(h);
        }
        Ok(())
    })
}

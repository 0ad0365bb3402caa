//! hush-bench-push: change-to-file latency of hush-agent with push (hushd's events) against the
//! poll floor, in the same run.
//!
//! Starts a real `hushd --dev` on loopback and N real `hush-agent` processes (each its own
//! subscription, its own destination on one tmpfs) following the same KV v2 paths, from the
//! test harness (`hush_tests::push`). Then, per round, writes a new value to one path and times,
//! for every agent, from the write's HTTP 200 to the new content read back from its file (files
//! polled every millisecond).
//!
//! - **push**: refresh interval 1 h, so only events explain a change;
//! - **poll floor**: the same agents with `--no-push` and a short refresh interval
//!   (`--poll-refresh`, default 1 s): what polling gives at that interval.
//!
//! Prints Markdown for `docs/BENCHMARKS.md` on stdout (with the agents' RSS); progress goes to
//! stderr. Needs root (it mounts tmpfs) and Linux `/proc`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use hush_tests::load::machine;
use hush_tests::push::{percentile, summary, Fleet, FleetSpec, SUBSCRIBED};
use hush_tests::{bin_or, http_client, Hushd};
use serde_json::json;

/// Change-to-file latency: push against the poll floor.
#[derive(Debug, Parser)]
#[command(name = "hush-bench-push", version, max_term_width = 100)]
struct Args {
    /// Agents (real processes, one subscription each).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// KV v2 paths every agent follows.
    #[arg(long, default_value_t = 2)]
    paths: usize,
    /// Writes per mode (each timed to every agent's file).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Refresh interval of the poll floor (`--no-push`).
    #[arg(long, default_value = "1s")]
    poll_refresh: String,
    /// Skip the poll floor.
    #[arg(long)]
    skip_poll: bool,
    /// Give up on one write after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
    /// hushd binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    hushd: Option<PathBuf>,
    /// hush-agent binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    agent: Option<PathBuf>,
}

/// One mode's samples and the agents' memory.
struct Run {
    samples: Vec<Duration>,
    rss_kib: Vec<u64>,
    subscribed: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Two threads: the bench polls 100+ files every millisecond and writes over HTTP.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    if args.agents == 0 || args.paths == 0 || args.rounds == 0 {
        bail!("--agents, --paths and --rounds must be at least 1");
    }
    let hushd = bin_or(args.hushd.as_deref(), "hushd")?;
    let agent = bin_or(args.agent.as_deref(), "hush-agent")?;
    let mut h = Hushd::start_bin(
        &hushd,
        &["--dev", "--dev-root-token", "root"],
        "http",
        http_client(),
    )
    .await;
    h.token = Some("root".into());
    let paths: Vec<String> = (0..args.paths).map(|i| format!("bench/push/{i}")).collect();
    for p in &paths {
        h.kv_put(p, json!({"v": "v0"})).await;
    }
    let spec = |push: bool, refresh: &str| FleetSpec {
        agents: args.agents,
        paths: paths.clone(),
        refresh: refresh.into(),
        push,
        token: "root".into(),
        program: Some(agent.clone()),
        log: "info".into(),
        ca_cert: None,
    };
    let push = run(&h, &args, spec(true, "1h"), "push").await?;
    let poll = if args.skip_poll {
        None
    } else {
        Some(run(&h, &args, spec(false, &args.poll_refresh), "poll").await?)
    };

    let mut out = String::new();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(
        out,
        "| mode | agents (processes) | subscribed | writes | samples | p50 | p90 | p99 | max | RSS per agent (mean / max) |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut row = |name: &str, r: &Run| {
        let mean = r.rss_kib.iter().sum::<u64>() as f64 / r.rss_kib.len().max(1) as f64 / 1024.0;
        let max = r.rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0;
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {mean:.1} / {max:.1} MiB |",
            args.agents,
            r.subscribed,
            args.rounds,
            r.samples.len(),
            ms(percentile(&r.samples, 50.0)),
            ms(percentile(&r.samples, 90.0)),
            ms(percentile(&r.samples, 99.0)),
            ms(percentile(&r.samples, 100.0)),
        );
    };
    row("push (refresh 1h)", &push);
    if let Some(p) = &poll {
        row(
            &format!("poll floor (--no-push, refresh {})", args.poll_refresh),
            p,
        );
    }
    let _ = writeln!(out, "\nMachine: {}", machine());
    print!("{out}");
    Ok(())
}

async fn run(h: &Hushd, args: &Args, spec: FleetSpec, name: &str) -> Result<Run> {
    let limit = Duration::from_secs(args.timeout_seconds);
    eprintln!("{name}: starting {} agents", spec.agents);
    let push = spec.push;
    let mut fleet = Fleet::start(&h.addr, &spec)?;
    // Ready: every file shows what is in the store now.
    for i in 0..spec.paths.len() {
        let (s, b) = h
            .call("GET", &format!("secret/data/{}", spec.paths[i]), None)
            .await;
        let value = b["data"]["data"]["v"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if s != 200 {
            bail!("read {}: {s} {b}", spec.paths[i]);
        }
        fleet.wait_value(i, &value, Instant::now(), limit).await?;
    }
    let subscribed = if push {
        let deadline = Instant::now() + limit;
        while fleet.logged(SUBSCRIBED, 1) < spec.agents {
            if Instant::now() > deadline {
                bail!(
                    "{} of {} agents subscribed",
                    fleet.logged(SUBSCRIBED, 1),
                    spec.agents
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the full check each agent makes after subscribing pass.
        tokio::time::sleep(Duration::from_secs(1)).await;
        spec.agents
    } else {
        0
    };
    let rss_kib = fleet.rss_kib();
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        let i = round % spec.paths.len();
        let value = format!("{name}-{round}");
        let times = fleet.write_and_time(h, i, &value, limit).await?;
        eprintln!("{name} round {round}: {}", summary(&times));
        samples.extend(times);
        // Writes apart, so each one's fan-out is measured alone (and, polling, so the writes
        // land at different points of the agents' intervals).
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    eprintln!("{name}: {}", summary(&samples));
    Ok(Run {
        samples,
        rss_kib,
        subscribed,
    })
}

//! hush-bench-fuse: the cost of reading a secret through `hush-agent --fuse` against tmpfs, in
//! the same run, and the agent's memory in FUSE mode.
//!
//! Starts a real `hushd --dev` on loopback with one KV v2 secret whose `value` is 1 KiB, then
//! one `hush-agent` per mode, all serving that secret as one file:
//!
//! - `tmpfs`: the agent in tmpfs mode (`--mount-tmpfs`); read through its `..data` link, as an
//!   application does; `tmpfs-plain`: the same bytes in a plain tmpfs file (no link);
//! - `fuse-audited` and `fuse-fast`: the agent with `--fuse --fuse-cache MODE`, its access log
//!   written to a file;
//! - `fuse-floor`: a no-op filesystem with the same `fuser` and mount options, answering opens as
//!   audited mode does ([`floor`]), served by a child process (this binary again, with the
//!   hidden `--serve-floor DIR`) as the agent is: the kernel's FUSE round trips alone, the least
//!   any audited open costs on this machine. Build this binary with the agent's optimizations
//!   (`--release`) for a fair floor.
//!
//! Each op is single-threaded `open` + `read` to EOF + `close` (`std::fs::File`). The modes are
//! interleaved in rounds (each round runs every mode once, in turn), and each mode's result is
//! the median over rounds of the mean time per op in that round. The audited agent's RSS
//! (`VmRSS`, `VmHWM`) is read after its rounds.
//!
//! hushd, the agents and the floor are started through the test harness (`hush_tests`).
//! Prints Markdown for `docs/BENCHMARKS.md` on stdout; progress goes to stderr. Needs root
//! (mounts) and `/dev/fuse`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hush_tests::load::{machine, percentile};
use hush_tests::{bin_or, http_client, Agent, Hushd, Proc, UnmountOnDrop};
use serde_json::json;

mod floor;

/// Benchmark reading a secret through hush-agent --fuse against tmpfs.
#[derive(Debug, Parser)]
#[command(name = "hush-bench-fuse", version, max_term_width = 100)]
struct Args {
    /// Ops (open + read + close) per mode per round.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Rounds; each runs every mode once, interleaved.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Size of the secret in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// hushd binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    hushd: Option<PathBuf>,
    /// hush-agent binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    agent: Option<PathBuf>,
    /// Lazy secrets for the first-open measurement (each its own KV secret); 0 skips it.
    #[arg(long, default_value_t = 50)]
    lazy: usize,
    /// Internal: serve the floor filesystem on DIR until killed.
    #[arg(long, hide = true, value_name = "DIR")]
    serve_floor: Option<PathBuf>,
}

const FILE: &str = "secret.txt";

/// How long a stopped agent or floor gets to unmount after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// `hushd --dev` (root token `root`) with the secret at `secret/bench/fuse`.
async fn start_hushd(bin: &Path, value: &str) -> Hushd {
    let args = ["--dev", "--dev-root-token", "root", "--log-level", "warn"];
    let mut hushd = Hushd::start_bin(bin, &args, "http", http_client()).await;
    hushd.token = Some("root".into());
    hushd.kv_put("bench/fuse", json!({ "value": value })).await;
    hushd
}

/// Starts an agent serving the secret as `FILE` in `dest`; waits until it reads right.
fn start_agent(
    bin: &Path,
    hushd: &Hushd,
    dir: &Path,
    dest: &Path,
    mode: &[&str],
    value: &str,
) -> Result<Agent> {
    let token = dir.join("token");
    fs::write(&token, "root\n")?;
    let mut command = Command::new(bin);
    command
        .args(["--addr", &hushd.addr])
        .arg("--token-file")
        .arg(&token)
        .arg("--dest")
        .arg(dest)
        .args(["--secret", &format!("{FILE}=secret/data/bench/fuse#value")])
        .args(["--file-mode", "0444"])
        .args(mode);
    let mut agent = Agent::from_command(command)
        .context("cannot start hush-agent")?
        .stop_on_drop(GRACE);
    let what = format!("hush-agent {mode:?}");
    wait_serving(&mut agent, &dest.join(FILE), value, &what)?;
    Ok(agent)
}

/// Starts this binary serving the floor filesystem on `dest`.
fn start_floor(dest: &Path, size: usize, value: &str) -> Result<Proc> {
    fs::create_dir(dest)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--serve-floor")
        .arg(dest)
        .args(["--size", &size.to_string()]);
    let mut floor = Proc::spawn(command, "floor")
        .context("cannot start the floor filesystem")?
        .stop_on_drop(GRACE);
    wait_serving(&mut floor, &dest.join(FILE), value, "the floor")?;
    Ok(floor)
}

/// Waits until `path` reads `value` (20 s at most); `proc` must not exit meanwhile.
fn wait_serving(proc: &mut Proc, path: &Path, value: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(path).ok().as_deref() != Some(value) {
        if let Some(st) = proc.child.try_wait()? {
            bail!("{what} exited ({st}): {}", proc.stderr());
        }
        if Instant::now() > deadline {
            bail!("{what} not serving within 20 s");
        }
        sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The secret's bytes: `size` letters.
fn secret_value(size: usize) -> String {
    (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

/// `--serve-floor`: mount the floor on `dest` and serve until killed.
fn serve_floor(dest: &Path, size: usize) -> Result<()> {
    let floor = floor::Floor {
        name: FILE.into(),
        data: secret_value(size).into_bytes(),
    };
    let _session = floor::mount(floor, dest).context("cannot mount the floor filesystem")?;
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// Latency of the first open of lazy files: `n` KV secrets, each a lazy file of one audited
/// agent; each file is opened once (the open waits for the lease), then again. Returns the
/// first and second opens' times in µs, in file order.
async fn lazy_first_opens(
    agent_bin: &Path,
    hushd: &Hushd,
    dir: &Path,
    n: usize,
    value: &str,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let dest = dir.join("lazy");
    let mut extra = vec![
        "--fuse".to_string(),
        "--access-log".to_string(),
        dir.join("lazy-access.log").display().to_string(),
    ];
    for i in 0..n {
        let path = format!("bench/lazy{i}");
        hushd.kv_put(&path, json!({ "value": value })).await;
        let api = format!("secret/data/{path}");
        extra.extend([
            "--secret".to_string(),
            format!("lazy{i}={api}#value"),
            "--lazy".to_string(),
            api,
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let agent = start_agent(agent_bin, hushd, dir, &dest, &extra, value)?;
    let mut buf = Vec::new();
    let mut time_read = |path: &Path| -> Result<f64> {
        let t = Instant::now();
        buf.clear();
        fs::File::open(path)?.read_to_end(&mut buf)?;
        let us = t.elapsed().as_nanos() as f64 / 1e3;
        if buf != value.as_bytes() {
            bail!("{}: wrong content", path.display());
        }
        Ok(us)
    };
    let mut first = Vec::with_capacity(n);
    let mut second = Vec::with_capacity(n);
    for i in 0..n {
        let path = dest.join(format!("lazy{i}"));
        first.push(time_read(&path)?);
        second.push(time_read(&path)?);
    }
    drop(agent);
    Ok((first, second))
}

/// Mean nanoseconds per open + read-to-EOF + close of `path`, over `ops`.
fn measure(path: &Path, ops: usize, size: usize) -> Result<f64> {
    let mut buf = vec![0u8; size.max(4096) * 2];
    let start = Instant::now();
    for _ in 0..ops {
        let mut f = fs::File::open(path)?;
        let mut got = 0;
        loop {
            let n = f.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got != size {
            bail!("{}: read {got} bytes, want {size}", path.display());
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / ops as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.ops == 0 || args.rounds == 0 || args.size == 0 {
        bail!("--ops, --rounds and --size must be at least 1");
    }
    if let Some(dest) = &args.serve_floor {
        return serve_floor(dest, args.size);
    }
    let hushd_bin = bin_or(args.hushd.as_deref(), "hushd")?;
    let agent_bin = bin_or(args.agent.as_deref(), "hush-agent")?;
    let work = tempfile::tempdir()?;
    let dir = work.path();
    let value = secret_value(args.size);
    // For the calls to hushd only; the measured reads run on this thread, outside it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hushd = rt.block_on(start_hushd(&hushd_bin, &value));

    let tmpfs_dest = dir.join("tmpfs");
    let audited_dest = dir.join("audited");
    let fast_dest = dir.join("fast");
    let floor_dest = dir.join("floor");
    // Dropped after the processes: the floor dies by SIGTERM without unmounting, and tmpfs
    // mode leaves its files (and the tmpfs it mounted) in place.
    let _unmount = [
        UnmountOnDrop(floor_dest.clone()),
        UnmountOnDrop(tmpfs_dest.clone()),
    ];
    let floor = start_floor(&floor_dest, args.size, &value)?;
    let access_log = dir.join("access.log");
    let log_flag = access_log.display().to_string();
    let tmpfs_agent = start_agent(
        &agent_bin,
        &hushd,
        dir,
        &tmpfs_dest,
        &["--mount-tmpfs"],
        &value,
    )?;
    let audited = start_agent(
        &agent_bin,
        &hushd,
        dir,
        &audited_dest,
        &[
            "--fuse",
            "--fuse-cache",
            "audited",
            "--access-log",
            &log_flag,
        ],
        &value,
    )?;
    let fast = start_agent(
        &agent_bin,
        &hushd,
        dir,
        &fast_dest,
        &["--fuse", "--fuse-cache", "fast", "--access-log", &log_flag],
        &value,
    )?;
    // The same bytes in a plain file on the agent's tmpfs, outside its `..data` layout.
    let plain = tmpfs_dest.join("plain.txt");
    fs::write(&plain, &value)?;

    let modes: [(&str, PathBuf); 5] = [
        ("tmpfs-plain", plain.clone()),
        ("tmpfs", tmpfs_dest.join(FILE)),
        ("fuse-floor", floor_dest.join(FILE)),
        ("fuse-audited", audited_dest.join(FILE)),
        ("fuse-fast", fast_dest.join(FILE)),
    ];
    for (_, path) in &modes {
        measure(path, args.ops / 10 + 1, args.size)?; // warm-up
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..args.rounds {
        for (i, (name, path)) in modes.iter().enumerate() {
            let ns = measure(path, args.ops, args.size)?;
            eprintln!("round {round} {name}: {:.2} µs/op", ns / 1e3);
            results[i].push(ns);
        }
    }
    let rss = status_kib(audited.child.id(), "VmRSS");
    let hwm = status_kib(audited.child.id(), "VmHWM");
    let fast_rss = status_kib(fast.child.id(), "VmRSS");
    let log_lines = fs::read_to_string(&access_log)?.lines().count();

    let med: Vec<f64> = results.into_iter().map(median).collect();
    let base = med[1];
    println!("Machine: {}.", machine());
    println!(
        "{} rounds x {} ops per mode, single thread, open + read to EOF + close of a {}-byte secret; \
         median over rounds of the mean per op.\n",
        args.rounds, args.ops, args.size
    );
    println!("| mode | µs per op | vs tmpfs (agent link) | vs plain tmpfs file |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, _), ns) in modes.iter().zip(&med) {
        println!(
            "| {name} | {:.2} | {:.2}x | {:.2}x |",
            ns / 1e3,
            ns / base,
            ns / med[0]
        );
    }
    let kib = |v: Option<u64>| v.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "\nAgent RSS in FUSE mode after the runs: audited {} (peak {}), fast {}. \
         Access-log lines written: {log_lines}.",
        kib(rss),
        kib(hwm),
        kib(fast_rss)
    );
    println!(
        "The agent's own work per audited open (audited minus the no-op floor): {:.2} µs.",
        (med[3] - med[2]) / 1e3
    );
    if args.lazy > 0 {
        let (first, second) =
            rt.block_on(lazy_first_opens(&agent_bin, &hushd, dir, args.lazy, &value))?;
        println!(
            "\nLazy secrets: {} KV secrets, each a lazy file of one audited agent, opened in turn. \
             First open (waits for the read from hushd): median {:.0} µs, p90 {:.0} µs, max {:.0} \
             µs; the first of all {:.0} µs, the last {:.0} µs. Second open: median {:.1} µs.",
            args.lazy,
            percentile(&first, 0.5),
            percentile(&first, 0.9),
            percentile(&first, 1.0),
            first[0],
            first[first.len() - 1],
            percentile(&second, 0.5),
        );
    }
    drop((tmpfs_agent, audited, fast, floor));
    Ok(())
}

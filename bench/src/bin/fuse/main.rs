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
//!   (`--release`) for a fair floor;
//! - optional, in the same rounds: `fuse-audited-shipping` (`--shipping`), an audited agent
//!   reporting its accesses to this hushd every second, against `fuse-audited` (every other
//!   agent here runs with `--no-report`); `fuse-audited-cmp`, an audited agent from another
//!   binary (`--compare-agent`), for an A/B of two builds.
//!
//! While it runs, the bench holds `/dev/cpu_dma_latency` at 0 (idle CPUs poll, not halt;
//! `--allow-idle` leaves them be): in a VM a halted vCPU's wake-up would add tens of µs to
//! every round trip, and how many depends on the machine's other load, not on the modes.
//!
//! For the modes served by a process (the floor and the FUSE agents), that process's CPU time
//! (all its threads, from `/proc/PID/task/*/schedstat`) and its threads' context switches are
//! read around each measurement and shown per op: what the serving side spends on an open.
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
    /// Adds the mode `fuse-audited-cmp`: an audited agent from this binary, in the same rounds
    /// (an A/B of two builds).
    #[arg(long, value_name = "PATH")]
    compare_agent: Option<PathBuf>,
    /// Adds the mode `fuse-audited-shipping`: an audited agent reporting to this hushd
    /// (`--report-interval 1s`), against `fuse-audited` (`--no-report`, as every other agent
    /// here) in the same rounds.
    #[arg(long)]
    shipping: bool,
    /// Let the CPUs halt when idle. By default the bench holds `/dev/cpu_dma_latency` at 0
    /// while it runs (the kernel's PM QoS: idle CPUs poll instead of halting), as latency
    /// benchmarks do: in a VM, each FUSE round trip would otherwise pay for waking a halted
    /// vCPU, tens of µs that depend on what else the machine runs, not on the filesystem.
    #[arg(long)]
    allow_idle: bool,
    /// With --shipping: an extra argument of the shipping agent (repeat it, one argument each;
    /// `{addr}` is replaced by hushd's address).
    #[arg(long = "shipping-arg", value_name = "ARG", allow_hyphen_values = true)]
    shipping_args: Vec<String>,
    /// Run hushd at `SCHED_IDLE` (all its threads, by `chrt`) during the rounds: it then stands
    /// for a store on another machine, whose intake of the shipping agent's reports takes no CPU
    /// from the measured reads (the shipping agent's own work still does). Set back after them.
    #[arg(long)]
    hushd_idle: bool,
    /// Internal: serve the floor filesystem on DIR until killed.
    #[arg(long, hide = true, value_name = "DIR")]
    serve_floor: Option<PathBuf>,
}

const FILE: &str = "secret.txt";

/// The shipping agent's argument: it reports to hushd (the others run with `--no-report`).
const SHIPPING: &str = "--report-interval";

/// How long a stopped agent or floor gets to unmount after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

/// Sets the scheduling policy of every thread of `pid` (`chrt --all-tasks POLICY -p 0 PID`).
fn sched(pid: u32, policy: &str) -> Result<()> {
    let status = std::process::Command::new("chrt")
        .args(["--all-tasks", policy, "-p", "0", &pid.to_string()])
        .status()
        .context("run chrt (util-linux)")?;
    anyhow::ensure!(status.success(), "chrt {policy} of hushd failed: {status}");
    Ok(())
}

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
    if !mode.contains(&SHIPPING) {
        command.arg("--no-report");
    }
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

/// What hushd holds from the shipping agent (the only one reporting): its accesses of the
/// secret (the answer lists 10,000 at most) and the drops it reported.
async fn shipped(hushd: &Hushd) -> String {
    let (_, list) = hushd.call("LIST", "sys/agents", None).await;
    let ids: Vec<String> = list["data"]["keys"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut dropped = Vec::new();
    for id in &ids {
        let (_, info) = hushd.call("GET", &format!("sys/agents/{id}"), None).await;
        dropped.push(info["data"]["dropped_total"].as_u64().unwrap_or(0));
    }
    let (_, access) = hushd
        .call(
            "GET",
            "sys/agents/access?path=secret/data/bench/fuse&since=1h",
            None,
        )
        .await;
    let stored = access["data"]["accesses"].as_array().map_or(0, Vec::len);
    format!(
        "Shipping: hushd lists {} reporting agent(s); accesses of secret/data/bench/fuse it \
         answers: {stored} (at most 10,000 are listed); drops the agent reported (spool \
         overflow): {dropped:?}.",
        ids.len()
    )
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

/// CPU time of every thread of `pid` so far, in ns, and their context switches.
fn server_usage(pid: u32) -> Option<(u64, u64)> {
    let mut cpu = 0;
    let mut switches = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?.path();
        // schedstat: time on CPU (ns), time waiting to run, timeslices.
        let Ok(stat) = fs::read_to_string(task.join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        cpu += stat.split(' ').next()?.parse::<u64>().ok()?;
        let status = fs::read_to_string(task.join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some((cpu, switches))
}

/// One thing measured: a file, and the process serving it, if any.
struct Mode {
    name: String,
    path: PathBuf,
    server: Option<u32>,
}

/// A mode's medians over rounds: µs per op, and its server's CPU µs and context switches per
/// op.
struct Medians {
    op: f64,
    /// The fastest round's mean per op (the least disturbed by the machine's other work).
    best: f64,
    cpu: Option<f64>,
    switches: Option<f64>,
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
    // Held (open) until the end: idle CPUs poll while the request stands.
    let cpu_latency = if args.allow_idle {
        None
    } else {
        let mut qos = fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .context("cannot hold /dev/cpu_dma_latency (needs root; --allow-idle skips it)")?;
        std::io::Write::write_all(&mut qos, &0i32.to_ne_bytes())?;
        Some(qos)
    };
    let work = tempfile::tempdir()?;
    let dir = work.path();
    let value = secret_value(args.size);
    // For the calls to hushd only; the measured reads run on this thread, outside it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hushd = rt.block_on(start_hushd(&hushd_bin, &value));

    let tmpfs_dest = dir.join("tmpfs");
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
    let fuse_args = |cache: &str| -> Vec<String> {
        ["--fuse", "--fuse-cache", cache, "--access-log", &log_flag]
            .map(String::from)
            .to_vec()
    };
    // The FUSE agents: mode, binary, arguments.
    let mut fuse_modes: Vec<(&str, &Path, Vec<String>)> = vec![
        ("fuse-audited", agent_bin.as_path(), fuse_args("audited")),
        ("fuse-fast", agent_bin.as_path(), fuse_args("fast")),
    ];
    if args.shipping {
        let mut shipping = fuse_args("audited");
        shipping.extend([SHIPPING.to_string(), "1s".to_string()]);
        shipping.extend(
            args.shipping_args
                .iter()
                .map(|a| a.replace("{addr}", &hushd.addr)),
        );
        fuse_modes.insert(1, ("fuse-audited-shipping", agent_bin.as_path(), shipping));
    }
    if let Some(other) = &args.compare_agent {
        fuse_modes.insert(
            1,
            ("fuse-audited-cmp", other.as_path(), fuse_args("audited")),
        );
    }
    let mut agents = Vec::new();
    let mut modes = Vec::new();
    for (name, bin, agent_args) in &fuse_modes {
        let dest = dir.join(name);
        let agent_args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
        let agent = start_agent(bin, &hushd, dir, &dest, &agent_args, &value)?;
        modes.push(Mode {
            name: name.to_string(),
            path: dest.join(FILE),
            server: Some(agent.child.id()),
        });
        agents.push(agent);
    }
    // The same bytes in a plain file on the agent's tmpfs, outside its `..data` layout.
    let plain = tmpfs_dest.join("plain.txt");
    fs::write(&plain, &value)?;
    let first = [
        ("tmpfs-plain", plain.clone(), None),
        ("tmpfs", tmpfs_dest.join(FILE), None),
        ("fuse-floor", floor_dest.join(FILE), Some(floor.child.id())),
    ];
    let modes: Vec<Mode> = first
        .into_iter()
        .map(|(name, path, server)| Mode {
            name: name.into(),
            path,
            server,
        })
        .chain(modes)
        .collect();

    if args.hushd_idle {
        sched(hushd.child.id(), "--idle")?;
    }
    for mode in &modes {
        measure(&mode.path, args.ops / 10 + 1, args.size)?; // warm-up
    }
    let mut ops: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut switches: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..args.rounds {
        for (i, mode) in modes.iter().enumerate() {
            let before = mode.server.and_then(server_usage);
            let ns = measure(&mode.path, args.ops, args.size)?;
            let after = mode.server.and_then(server_usage);
            let mut note = String::new();
            if let (Some(b), Some(a)) = (before, after) {
                let per_op = |x: u64, y: u64| y.saturating_sub(x) as f64 / args.ops as f64;
                cpu[i].push(per_op(b.0, a.0));
                switches[i].push(per_op(b.1, a.1));
                note = format!(
                    ", server CPU {:.2} µs/op, {:.2} switches/op",
                    per_op(b.0, a.0) / 1e3,
                    per_op(b.1, a.1)
                );
            }
            eprintln!("round {round} {}: {:.2} µs/op{note}", mode.name, ns / 1e3);
            ops[i].push(ns);
        }
    }
    if args.hushd_idle {
        sched(hushd.child.id(), "--other")?;
    }
    let audited = &agents[0];
    let rss = status_kib(audited.child.id(), "VmRSS");
    let hwm = status_kib(audited.child.id(), "VmHWM");
    let log_lines = fs::read_to_string(&access_log)?.lines().count();

    let some_median = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
    let per_round = ops.clone();
    let med: Vec<Medians> = ops
        .into_iter()
        .zip(cpu)
        .zip(switches)
        .map(|((o, c), s)| Medians {
            best: o.iter().copied().fold(f64::INFINITY, f64::min),
            op: median(o),
            cpu: some_median(c),
            switches: some_median(s),
        })
        .collect();
    let by_name = |name: &str| {
        modes
            .iter()
            .position(|m| m.name == name)
            .map(|i| &med[i])
            .expect("a mode of this run")
    };
    let (plain_m, tmpfs_m, floor_m) = (
        by_name("tmpfs-plain"),
        by_name("tmpfs"),
        by_name("fuse-floor"),
    );
    let audited_m = by_name("fuse-audited");
    // Each round's own ratio against the floor (the same minute of the machine's load).
    let round_ratio = |name: &str| {
        let i = modes.iter().position(|m| m.name == name)?;
        let f = modes.iter().position(|m| m.name == "fuse-floor")?;
        let r = per_round[i].iter().zip(&per_round[f]).map(|(a, b)| a / b);
        Some(median(r.collect()))
    };
    println!("Machine: {}.", machine());
    println!(
        "{} rounds x {} ops per mode, single thread, open + read to EOF + close of a {}-byte secret; \
         median over rounds of the mean per op; best: the fastest round's. Server CPU: the \
         serving process's CPU time (all threads) per op; switches: its threads' context \
         switches per op (medians). {}\n",
        args.rounds,
        args.ops,
        args.size,
        if cpu_latency.is_some() {
            "CPU idle: polling (`/dev/cpu_dma_latency` held at 0 during the run)."
        } else {
            "CPU idle: as configured (`--allow-idle`)."
        }
    );
    println!(
        "| mode | µs per op | vs fuse-floor | best round µs | best vs best floor | vs tmpfs (agent link) | vs plain tmpfs file | server CPU µs/op | server switches/op |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (mode, m) in modes.iter().zip(&med) {
        let opt =
            |v: Option<f64>, scale: f64| v.map_or("-".into(), |v| format!("{:.2}", v / scale));
        println!(
            "| {} | {:.2} | {:.3}x | {:.2} | {:.3}x | {:.2}x | {:.2}x | {} | {} |",
            mode.name,
            m.op / 1e3,
            m.op / floor_m.op,
            m.best / 1e3,
            m.best / floor_m.best,
            m.op / tmpfs_m.op,
            m.op / plain_m.op,
            opt(m.cpu, 1e3),
            opt(m.switches, 1.0),
        );
    }
    let kib = |v: Option<u64>| v.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let fast_rss = modes
        .iter()
        .find(|m| m.name == "fuse-fast")
        .and_then(|m| status_kib(m.server?, "VmRSS"));
    println!(
        "\nAgent RSS in FUSE mode after the runs: audited {} (peak {}), fast {}. \
         Access-log lines written (all FUSE agents): {log_lines}.",
        kib(rss),
        kib(hwm),
        kib(fast_rss)
    );
    println!(
        "The agent's own work per audited open (audited minus the no-op floor): {:.2} µs; \
         audited / floor: **{:.3}x** (medians), {:.3}x (best rounds), {:.3}x (median of the \
         rounds' own ratios).",
        (audited_m.op - floor_m.op) / 1e3,
        audited_m.op / floor_m.op,
        audited_m.best / floor_m.best,
        round_ratio("fuse-audited").unwrap_or(f64::NAN),
    );
    if args.shipping {
        println!("{}", rt.block_on(shipped(&hushd)));
    }
    for other in ["fuse-audited-shipping", "fuse-audited-cmp"] {
        if let Some(i) = modes.iter().position(|m| m.name == other) {
            println!(
                "{other} / fuse-audited: **{:.3}x** ({:+.2} µs per op; best rounds {:.3}x); \
                 {other} / floor: {:.3}x (median of the rounds' own ratios).",
                med[i].op / audited_m.op,
                (med[i].op - audited_m.op) / 1e3,
                med[i].best / audited_m.best,
                round_ratio(other).unwrap_or(f64::NAN),
            );
        }
    }
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
    drop((tmpfs_agent, agents, floor));
    Ok(())
}

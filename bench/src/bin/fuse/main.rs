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
//! Prints Markdown for `docs/BENCHMARKS.md` on stdout; progress goes to stderr. Needs root
//! (mounts) and `/dev/fuse`.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

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

fn binary(given: &Option<PathBuf>, name: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let p = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join(name);
    if !p.exists() {
        bail!("{} not found: build it, or pass its path", p.display());
    }
    Ok(p)
}

/// A child process stopped with SIGTERM (then SIGKILL) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `POST` of a KV v2 secret over a fresh loopback connection; returns the HTTP status.
fn kv_put(addr: SocketAddr, token: &str, path: &str, body: &str) -> Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST /v1/secret/data/{path} HTTP/1.1\r\nhost: x\r\nx-vault-token: {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

fn start_hushd(bin: &Path, dir: &Path, value: &str) -> Result<(Proc, SocketAddr)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(bin)
        .args(["--dev", "--dev-root-token", "root", "--log-level", "warn"])
        .args(["--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("hushd.log"))?)
        .spawn()
        .context("cannot start hushd")?;
    let hushd = Proc(child);
    let body = format!("{{\"data\":{{\"value\":\"{value}\"}}}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv_put(addr, "root", "bench/fuse", &body).ok() != Some(200) {
        if Instant::now() > deadline {
            bail!("hushd did not take the secret within 20 s");
        }
        sleep(Duration::from_millis(50));
    }
    Ok((hushd, addr))
}

/// Starts an agent serving the secret as `FILE` in `dest`; waits until it reads right.
fn start_agent(
    bin: &Path,
    addr: SocketAddr,
    dir: &Path,
    dest: &Path,
    mode: &[&str],
    value: &str,
) -> Result<Proc> {
    let token = dir.join("token");
    fs::write(&token, "root\n")?;
    let log = dir.join(format!(
        "agent-{}.log",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let child = Command::new(bin)
        .args(["--addr", &format!("http://{addr}")])
        .arg("--token-file")
        .arg(&token)
        .arg("--dest")
        .arg(dest)
        .args(["--secret", &format!("{FILE}=secret/data/bench/fuse#value")])
        .args(["--file-mode", "0444"])
        .args(mode)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .context("cannot start hush-agent")?;
    let agent = Proc(child);
    wait_serving(
        agent,
        &dest.join(FILE),
        value,
        &format!("hush-agent {mode:?}"),
        &log,
    )
}

/// Starts this binary serving the floor filesystem on `dest`.
fn start_floor(dir: &Path, dest: &Path, size: usize, value: &str) -> Result<Proc> {
    fs::create_dir(dest)?;
    let log = dir.join("floor.log");
    let child = Command::new(std::env::current_exe()?)
        .arg("--serve-floor")
        .arg(dest)
        .args(["--size", &size.to_string()])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .context("cannot start the floor filesystem")?;
    wait_serving(Proc(child), &dest.join(FILE), value, "the floor", &log)
}

/// Waits until `path` reads `value` (20 s at most); `proc` must not exit meanwhile.
fn wait_serving(mut proc: Proc, path: &Path, value: &str, what: &str, log: &Path) -> Result<Proc> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(path).ok().as_deref() != Some(value) {
        if let Some(st) = proc.0.try_wait()? {
            bail!("{what} exited ({st}): {}", fs::read_to_string(log)?);
        }
        if Instant::now() > deadline {
            bail!("{what} not serving within 20 s");
        }
        sleep(Duration::from_millis(20));
    }
    Ok(proc)
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
fn lazy_first_opens(
    agent_bin: &Path,
    addr: SocketAddr,
    dir: &Path,
    n: usize,
    value: &str,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let body = format!("{{\"data\":{{\"value\":\"{value}\"}}}}");
    let dest = dir.join("lazy");
    let mut extra = vec![
        "--fuse".to_string(),
        "--access-log".to_string(),
        dir.join("lazy-access.log").display().to_string(),
    ];
    for i in 0..n {
        let path = format!("bench/lazy{i}");
        if kv_put(addr, "root", &path, &body)? != 200 {
            bail!("cannot write secret/{path}");
        }
        let api = format!("secret/data/{path}");
        extra.extend([
            "--secret".to_string(),
            format!("lazy{i}={api}#value"),
            "--lazy".to_string(),
            api,
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let agent = start_agent(agent_bin, addr, dir, &dest, &extra, value)?;
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

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
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

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("nproc {cpus}, CPU {model}, kernel {}", kernel.trim())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.ops == 0 || args.rounds == 0 || args.size == 0 {
        bail!("--ops, --rounds and --size must be at least 1");
    }
    if let Some(dest) = &args.serve_floor {
        return serve_floor(dest, args.size);
    }
    let hushd_bin = binary(&args.hushd, "hushd")?;
    let agent_bin = binary(&args.agent, "hush-agent")?;
    let work = tempfile::tempdir()?;
    let dir = work.path();
    let value = secret_value(args.size);
    let (_hushd, addr) = start_hushd(&hushd_bin, dir, &value)?;

    let tmpfs_dest = dir.join("tmpfs");
    let audited_dest = dir.join("audited");
    let fast_dest = dir.join("fast");
    let floor_dest = dir.join("floor");
    let floor = start_floor(dir, &floor_dest, args.size, &value)?;
    let access_log = dir.join("access.log");
    let log_flag = access_log.display().to_string();
    let tmpfs_agent = start_agent(
        &agent_bin,
        addr,
        dir,
        &tmpfs_dest,
        &["--mount-tmpfs"],
        &value,
    )?;
    let audited = start_agent(
        &agent_bin,
        addr,
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
        addr,
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
    let rss = status_kib(audited.0.id(), "VmRSS");
    let hwm = status_kib(audited.0.id(), "VmHWM");
    let fast_rss = status_kib(fast.0.id(), "VmRSS");
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
        let (first, second) = lazy_first_opens(&agent_bin, addr, dir, args.lazy, &value)?;
        println!(
            "\nLazy secrets: {} KV secrets, each a lazy file of one audited agent, opened in turn. \
             First open (waits for the read from hushd): median {:.0} µs, p90 {:.0} µs, max {:.0} \
             µs; the first of all {:.0} µs, the last {:.0} µs. Second open: median {:.1} µs.",
            args.lazy,
            percentile(first.clone(), 0.5),
            percentile(first.clone(), 0.9),
            percentile(first.clone(), 1.0),
            first[0],
            first[first.len() - 1],
            percentile(second, 0.5),
        );
    }
    drop((tmpfs_agent, audited, fast, floor));
    // The floor dies by SIGTERM without unmounting.
    let _ = Command::new("umount").arg("-l").arg(&floor_dest).status();
    // tmpfs mode leaves its files (and the tmpfs it mounted) in place.
    let _ = Command::new("umount").arg("-l").arg(&tmpfs_dest).status();
    Ok(())
}

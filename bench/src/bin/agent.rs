//! hush-bench-agent: start-to-ready, steady-state memory and idle CPU of `hush-agent`.
//!
//! Starts a real `hushd --dev` on loopback, writes N KV v2 secrets over HTTP, then runs
//! `hush-agent` against it with a fresh tmpfs as the destination for every run:
//!
//! - **start-to-ready**: time from `spawn()` to the first `200` of `GET /readyz` on the agent's
//!   metrics listener (polled every millisecond), and to the appearance of `..data` (the atomic
//!   writer's complete set). Every file is checked afterwards against the value written.
//! - **steady state**: after ready and a settle time, `VmRSS`/`VmHWM` from `/proc/PID/status`,
//!   then CPU (`utime + stime` from `/proc/PID/stat`) and context switches over an idle window,
//!   once per refresh interval.
//!
//! hushd, the agents and their tmpfs come from the test harness (`hush_tests`), and so does the
//! HTTP client: reqwest, and for the 1 ms readiness poll the harness's raw request (a poll that
//! costs next to no CPU, which the agent under test would otherwise lose on a small machine).
//!
//! Prints Markdown for `docs/BENCHMARKS.md` on stdout; progress goes to stderr. Needs root (it
//! mounts tmpfs) and Linux `/proc`.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hush_tests::load::machine;
use hush_tests::{bin_or, free_port, http_client, try_raw_request, Agent, Hushd, Tmpfs};
use serde_json::{json, Value};
use tokio::time::sleep;

/// Benchmark hush-agent against a real hushd --dev on loopback.
#[derive(Debug, Parser)]
#[command(name = "hush-bench-agent", version, max_term_width = 100)]
struct Args {
    /// Secret counts for start-to-ready, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    secrets: Vec<usize>,
    /// Agent starts per secret count and input kind.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How the secrets reach the agent: `flags` (one --secret each), `config` (a TOML file).
    #[arg(long, value_delimiter = ',', default_value = "flags,config")]
    input: Vec<String>,
    /// Secret count of the steady-state (memory, idle CPU) runs.
    #[arg(long, default_value_t = 100)]
    steady_secrets: usize,
    /// Refresh intervals of the steady-state runs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "60s,1s")]
    refresh: Vec<String>,
    /// Seconds between ready and the first memory reading.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    /// Seconds of the idle CPU window.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Fields per secret.
    #[arg(long, default_value_t = 3)]
    fields: usize,
    /// Give up on one agent start after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
    /// Extra environment for the agent, e.g. MALLOC_ARENA_MAX=2. Repeatable.
    #[arg(long = "agent-env", value_name = "KEY=VALUE")]
    agent_env: Vec<String>,
    /// Skip the start-to-ready runs.
    #[arg(long)]
    skip_start: bool,
    /// Skip the steady-state runs.
    #[arg(long)]
    skip_steady: bool,
    /// hushd binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    hushd: Option<PathBuf>,
    /// hush-agent binary [default: next to this binary].
    #[arg(long, value_name = "PATH")]
    agent: Option<PathBuf>,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

// ---------------------------------------------------------------------------------------------
// hushd with the seeded secrets.

struct Seeded {
    hushd: Hushd,
    /// Expected `password` of secret i.
    passwords: Vec<String>,
}

impl Seeded {
    async fn start(bin: &Path, secrets: usize, fields: usize) -> Result<Self> {
        let token = format!("hbench-{}", random_hex(16)?);
        let args = ["--dev", "--dev-root-token", &token, "--log-level", "warn"];
        let mut hushd = Hushd::start_bin(bin, &args, "http", http_client()).await;
        hushd.token = Some(token);
        let mut passwords = Vec::new();
        let t = Instant::now();
        for i in 0..secrets {
            let password = format!("pw-{i}-{}", random_hex(12)?);
            let mut data = serde_json::Map::new();
            data.insert("password".into(), json!(password));
            for f in 1..fields {
                data.insert(format!("field{f}"), json!(format!("value-{i}-{f}")));
            }
            hushd.kv_put(&format!("bench/s{i}"), data.into()).await;
            passwords.push(password);
        }
        eprintln!(
            "hushd --dev on {}: seeded {secrets} secrets in {:.0} ms",
            hushd.addr.trim_start_matches("http://"),
            t.elapsed().as_secs_f64() * 1e3
        );
        Ok(Seeded { hushd, passwords })
    }
}

// ---------------------------------------------------------------------------------------------
// One agent run.

#[derive(Clone, Copy, PartialEq)]
enum Input {
    Flags,
    Config,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Flags => "flags",
            Input::Config => "config",
        }
    }
}

/// One agent (stopped with SIGTERM on drop) on its own tmpfs.
struct AgentRun {
    agent: Agent,
    metrics: SocketAddr,
    dest: PathBuf,
    // Declared last: dropped after the agent has stopped.
    _tmpfs: Tmpfs,
}

struct Setup<'a> {
    bin: &'a Path,
    hushd: &'a Seeded,
    dir: &'a Path,
    token_file: &'a Path,
    env: &'a [(String, String)],
}

impl Setup<'_> {
    /// Mount a fresh tmpfs and spawn the agent; returns it with the instant just before spawn.
    fn spawn(
        &self,
        run: &str,
        secrets: usize,
        input: Input,
        refresh: &str,
    ) -> Result<(AgentRun, Instant)> {
        let dest = self.dir.join(format!("dest-{run}"));
        let tmpfs = Tmpfs::mount_at(dest.clone(), "size=64m,mode=0700")?;
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = Command::new(self.bin);
        let addr = self.hushd.hushd.addr.clone();
        match input {
            Input::Flags => {
                cmd.args(["--addr", &addr])
                    .arg("--token-file")
                    .arg(self.token_file)
                    .arg("--dest")
                    .arg(&dest)
                    .args(["--refresh-interval", refresh])
                    .args(["--metrics-listen", &metrics.to_string()]);
                for i in 0..secrets {
                    cmd.arg("--secret")
                        .arg(format!("s{i}.json=secret/data/bench/s{i}"));
                }
            }
            Input::Config => {
                let path = self.dir.join(format!("agent-{run}.toml"));
                fs::write(
                    &path,
                    config_toml(&addr, self.token_file, &dest, refresh, metrics, secrets),
                )?;
                cmd.arg("--config").arg(path);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let t0 = Instant::now();
        let agent = Agent::from_command(cmd)
            .with_context(|| format!("cannot start {}", self.bin.display()))?
            .stop_on_drop(Duration::from_secs(6));
        Ok((
            AgentRun {
                agent,
                metrics,
                dest,
                _tmpfs: tmpfs,
            },
            t0,
        ))
    }
}

fn config_toml(
    addr: &str,
    token_file: &Path,
    dest: &Path,
    refresh: &str,
    metrics: SocketAddr,
    secrets: usize,
) -> String {
    let mut t = String::new();
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let _ = writeln!(t, "[server]\naddr = {}", q(addr));
    let _ = writeln!(t, "token_file = {}\n", q(&token_file.to_string_lossy()));
    let _ = writeln!(t, "[agent]\nrefresh_interval = {}", q(refresh));
    let _ = writeln!(t, "metrics_listen = {}\n", q(&metrics.to_string()));
    let _ = writeln!(t, "[destination]\npath = {}\n", q(&dest.to_string_lossy()));
    t.push_str("[secrets]\n");
    for i in 0..secrets {
        let _ = writeln!(t, "s{i} = \"secret/data/bench/s{i}\"");
    }
    for i in 0..secrets {
        let _ = writeln!(
            t,
            "\n[[file]]\nname = \"s{i}.json\"\nsecret = \"s{i}\"\nformat = \"json\""
        );
    }
    t
}

/// `GET http://METRICS/PATH`: (status, body).
async fn get(
    client: &hush_tests::reqwest::Client,
    metrics: SocketAddr,
    path: &str,
) -> Result<(u16, String)> {
    let resp = client.get(format!("http://{metrics}{path}")).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// The readiness poll, on a fresh connection each time.
const READYZ: &str = "GET /readyz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";

/// Poll /readyz (and `..data`) every millisecond; returns (ready, files) times since `t0`.
async fn wait_ready(
    run: &mut AgentRun,
    t0: Instant,
    timeout: Duration,
) -> Result<(Duration, Option<Duration>)> {
    let data = run.dest.join("..data");
    let mut files = None;
    loop {
        if files.is_none() && fs::symlink_metadata(&data).is_ok() {
            files = Some(t0.elapsed());
        }
        if let Ok((200, _)) = try_raw_request(run.metrics.port(), READYZ).await {
            let ready = t0.elapsed();
            if files.is_none() && fs::symlink_metadata(&data).is_ok() {
                files = Some(ready);
            }
            return Ok((ready, files));
        }
        if let Some(st) = run.agent.child.try_wait()? {
            bail!(
                "hush-agent exited ({st}) before ready:\n{}",
                run.agent.stderr_tail(20)
            );
        }
        if t0.elapsed() > timeout {
            bail!(
                "hush-agent not ready after {} s:\n{}",
                timeout.as_secs(),
                run.agent.stderr_tail(20)
            );
        }
        sleep(Duration::from_millis(1)).await;
    }
}

/// (calls, seconds) of the agent's requests to hushd, from its /metrics.
async fn store_calls(run: &AgentRun, client: &hush_tests::reqwest::Client) -> Option<(f64, f64)> {
    let (status, text) = get(client, run.metrics, "/metrics").await.ok()?;
    if status != 200 {
        return None;
    }
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Some((
        sum("hush_store_request_duration_seconds_count"),
        sum("hush_store_request_duration_seconds_sum"),
    ))
}

/// Every file is there and holds the value written to hushd.
fn verify(run: &AgentRun, hushd: &Seeded, secrets: usize) -> Result<()> {
    for i in 0..secrets {
        let path = run.dest.join(format!("s{i}.json"));
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if v["password"].as_str() != Some(hushd.passwords[i].as_str()) {
            bail!("{}: wrong or missing password field", path.display());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

fn proc_status(pid: u32) -> Result<String> {
    Ok(fs::read_to_string(format!("/proc/{pid}/status"))?)
}

/// A `kB` (or plain number) line of /proc/PID/status.
fn status_value(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime of the whole process (all threads, live and exited), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ")": field 3 (state) is index 0; utime is field 14, stime 15.
    Ok(f.get(11).context("bad stat")?.parse::<u64>()?
        + f.get(12).context("bad stat")?.parse::<u64>()?)
}

/// Voluntary + involuntary context switches of the live threads.
fn ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            status_value(&s, "voluntary_ctxt_switches").unwrap_or(0)
                + status_value(&s, "nonvoluntary_ctxt_switches").unwrap_or(0)
        })
        .sum()
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Summary {
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
}

fn summarize(mut v: Vec<f64>) -> Summary {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    // Nearest rank.
    let p90 = v[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
    Summary {
        median,
        p90,
        min: v[0],
        max: v[n - 1],
    }
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    // One thread: the bench only waits on the agents and reads /proc.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let inputs = args
        .input
        .iter()
        .map(|s| match s.as_str() {
            "flags" => Ok(Input::Flags),
            "config" => Ok(Input::Config),
            other => bail!("--input takes flags and/or config, not {other:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    let env = args
        .agent_env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--agent-env {kv:?}: want KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let hushd_bin = bin_or(args.hushd.as_deref(), "hushd")?;
    let agent_bin = bin_or(args.agent.as_deref(), "hush-agent")?;
    let client = http_client();
    let timeout = Duration::from_secs(args.timeout_seconds);

    let dir = tempfile::Builder::new()
        .prefix("hush-bench-agent")
        .tempdir()?;
    let start_counts: &[usize] = if args.skip_start { &[] } else { &args.secrets };
    let steady_count = if args.skip_steady {
        0
    } else {
        args.steady_secrets
    };
    let most = start_counts
        .iter()
        .copied()
        .chain([steady_count])
        .max()
        .unwrap_or(0);
    let hushd = Seeded::start(&hushd_bin, most, args.fields.max(1)).await?;
    let token_file = dir.path().join("token");
    fs::write(
        &token_file,
        hushd.hushd.token.as_deref().unwrap_or_default(),
    )?;
    let setup = Setup {
        bin: &agent_bin,
        hushd: &hushd,
        dir: dir.path(),
        token_file: &token_file,
        env: &env,
    };

    let mut out = String::new();
    let cmdline: Vec<String> = std::env::args().collect();
    let _ = writeln!(out, "Command: `{}`", cmdline.join(" "));
    if !env.is_empty() {
        let _ = writeln!(out, "\nAgent environment: `{}`", args.agent_env.join(" "));
    }
    let _ = writeln!(out, "\nMachine: {}", machine());
    let size = fs::metadata(&agent_bin).map_or(0, |m| m.len());
    let _ = writeln!(
        out,
        "\nhush-agent binary: {:.1} MiB",
        size as f64 / 1048576.0
    );

    if !args.skip_start {
        let _ = writeln!(
            out,
            "\n### Start to ready ({} runs each; spawn -> first 200 of /readyz)\n",
            args.runs
        );
        let _ = writeln!(
            out,
            "| secrets | input | median ms | p90 ms | min ms | max ms | files (..data) median ms | requests to hushd | time in them, median ms |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for &n in &args.secrets {
            for &input in &inputs {
                let mut ready = Vec::new();
                let mut files = Vec::new();
                let (mut calls, mut store) = (Vec::new(), Vec::new());
                for r in 0..args.runs {
                    let run = format!("{n}-{}-{r}", input.name());
                    let (mut agent, t0) = setup.spawn(&run, n, input, "60s")?;
                    let (rt, ft) = wait_ready(&mut agent, t0, timeout).await?;
                    verify(&agent, &hushd, n)?;
                    if let Some((c, secs)) = store_calls(&agent, &client).await {
                        calls.push(c);
                        store.push(secs * 1e3);
                    }
                    ready.push(ms(rt));
                    files.extend(ft.map(ms));
                    eprintln!(
                        "start {n} secrets ({}), run {r}: ready {:.1} ms",
                        input.name(),
                        ms(rt)
                    );
                }
                let s = summarize(ready);
                let f = if files.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.1}", summarize(files).median)
                };
                let (c, st) = if calls.is_empty() {
                    ("-".to_string(), "-".to_string())
                } else {
                    (
                        format!("{:.0}", summarize(calls).median),
                        format!("{:.1}", summarize(store).median),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {n} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {f} | {c} | {st} |",
                    input.name(),
                    s.median,
                    s.p90,
                    s.min,
                    s.max
                );
            }
        }
    }

    if !args.skip_steady {
        let tck = clk_tck() as f64;
        let n = args.steady_secrets;
        let _ = writeln!(
            out,
            "\n### Steady state ({n} secrets; memory {} s after ready, CPU over the next {} s)\n",
            args.settle_seconds, args.idle_seconds
        );
        let _ = writeln!(
            out,
            "| refresh | VmRSS MiB | VmHWM MiB | RssAnon MiB | RssFile MiB | threads | agent CPU % of a core | agent ctx switches/s | hushd CPU % | VmRSS MiB at end |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for refresh in &args.refresh {
            let run = format!(
                "steady-{}",
                refresh.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            );
            let (mut agent, t0) = setup.spawn(&run, n, inputs[0], refresh)?;
            wait_ready(&mut agent, t0, timeout).await?;
            verify(&agent, &hushd, n)?;
            sleep(Duration::from_secs(args.settle_seconds)).await;
            let pid = agent.agent.child.id();
            if let Some(st) = agent.agent.child.try_wait()? {
                bail!("hush-agent exited ({st}):\n{}", agent.agent.stderr_tail(20));
            }
            let status = proc_status(pid)?;
            let get = |k: &str| status_value(&status, k).unwrap_or(0);
            let (rss, hwm, anon, file, threads) = (
                get("VmRSS"),
                get("VmHWM"),
                get("RssAnon"),
                get("RssFile"),
                get("Threads"),
            );
            let (a0, h0, c0, w0) = (
                cpu_ticks(pid)?,
                cpu_ticks(hushd.hushd.child.id())?,
                ctx_switches(pid),
                Instant::now(),
            );
            sleep(Duration::from_secs(args.idle_seconds)).await;
            let (a1, h1, c1, secs) = (
                cpu_ticks(pid)?,
                cpu_ticks(hushd.hushd.child.id())?,
                ctx_switches(pid),
                w0.elapsed().as_secs_f64(),
            );
            let end = status_value(&proc_status(pid)?, "VmRSS").unwrap_or(0);
            verify(&agent, &hushd, n)?;
            let pct = |t: u64| t as f64 / tck / secs * 100.0;
            let _ = writeln!(
                out,
                "| {refresh} | {:.2} | {:.2} | {:.2} | {:.2} | {threads} | {:.2} | {:.1} | {:.2} | {:.2} |",
                mib(rss),
                mib(hwm),
                mib(anon),
                mib(file),
                pct(a1 - a0),
                c1.saturating_sub(c0) as f64 / secs,
                pct(h1 - h0),
                mib(end),
            );
            eprintln!(
                "steady refresh {refresh}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                mib(rss),
                mib(hwm)
            );
        }
        let _ = writeln!(
            out,
            "\nCPU from utime+stime in /proc (1/{tck:.0} s ticks: resolution {:.2} % over the window).",
            100.0 / tck / args.idle_seconds as f64
        );
    }
    print!("{out}");
    Ok(())
}

//! A fleet of real hush-agents following the same KV v2 paths, for the push tests and the
//! change-to-file benchmark: each agent has its own destination under one tmpfs, and
//! [`Fleet::write_and_time`] measures a write's latency to every agent's file: from the write's
//! HTTP 200 to the new content read back from the file (polled every millisecond).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{bin_or, Agent, Hushd, Tmpfs};

/// What the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub agents: usize,
    /// Paths under `secret/` (KV v2): each is file `f<i>`, its field `v`.
    pub paths: Vec<String>,
    /// `--refresh-interval`.
    pub refresh: String,
    /// false: `--no-push`.
    pub push: bool,
    /// The agents' token.
    pub token: String,
    /// The agent binary (default: the workspace's `hush-agent`).
    pub program: Option<PathBuf>,
    /// Log level of the agents (`HUSH_LOG`).
    pub log: String,
    /// The CA the agents trust for an `https://` store (`[server] ca_cert`).
    pub ca_cert: Option<PathBuf>,
}

/// Running agents and their destinations (under one tmpfs).
#[derive(Debug)]
pub struct Fleet {
    pub agents: Vec<Agent>,
    pub dests: Vec<PathBuf>,
    pub paths: Vec<String>,
    // Dropped after the agents (fields drop in order): the tmpfs, then the configs.
    _tmpfs: Tmpfs,
    _dir: tempfile::TempDir,
}

/// The file name of `spec.paths[i]`.
pub fn file_name(i: usize) -> String {
    format!("f{i}")
}

impl Fleet {
    /// Start `spec.agents` agents on `addr`; does not wait for them.
    pub fn start(addr: &str, spec: &FleetSpec) -> anyhow::Result<Fleet> {
        let program = bin_or(spec.program.as_deref(), "hush-agent")?;
        let dir = tempfile::tempdir()?;
        let token = crate::write_token(dir.path(), &spec.token);
        let tmpfs = Tmpfs::mount_at(dir.path().join("dest"), "size=64m,mode=0755")?;
        let mut config = format!(
            "[server]\naddr = \"{addr}\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        if let Some(ca) = &spec.ca_cert {
            config.push_str(&format!("ca_cert = \"{}\"\n", ca.display()));
        }
        config.push_str("\n[secrets]\n");
        for (i, p) in spec.paths.iter().enumerate() {
            config.push_str(&format!("s{i} = \"secret/data/{p}\"\n"));
        }
        for i in 0..spec.paths.len() {
            config.push_str(&format!(
                "\n[[file]]\nname = \"{}\"\nsecret = \"s{i}\"\nfield = \"v\"\n",
                file_name(i)
            ));
        }
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config)?;
        let (mut agents, mut dests) = (Vec::new(), Vec::new());
        for n in 0..spec.agents {
            let dest = tmpfs.path.join(format!("a{n}"));
            std::fs::create_dir(&dest)?;
            let mut command = Command::new(&program);
            command
                .arg("--config")
                .arg(&config_path)
                .arg("--dest")
                .arg(&dest)
                .args(["--refresh-interval", &spec.refresh])
                .env("HUSH_LOG", &spec.log);
            if !spec.push {
                command.arg("--no-push");
            }
            agents.push(Agent::from_command(command)?.stop_on_drop(Duration::from_secs(3)));
            dests.push(dest);
        }
        Ok(Fleet {
            agents,
            dests,
            paths: spec.paths.clone(),
            _tmpfs: tmpfs,
            _dir: dir,
        })
    }

    /// Wait until file `i` of every agent holds `value`; the time each agent's file took,
    /// counted from `since`.
    pub async fn wait_value(
        &mut self,
        i: usize,
        value: &str,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let name = file_name(i);
        let mut seen: Vec<Option<Duration>> = vec![None; self.dests.len()];
        loop {
            for (n, dest) in self.dests.iter().enumerate() {
                if seen[n].is_none() && read(dest, &name).as_deref() == Some(value) {
                    seen[n] = Some(since.elapsed());
                }
            }
            if seen.iter().all(Option::is_some) {
                return Ok(seen.into_iter().flatten().collect());
            }
            if since.elapsed() > limit {
                let late = seen.iter().filter(|s| s.is_none()).count();
                let first = seen.iter().position(Option::is_none).unwrap_or(0);
                anyhow::bail!(
                    "{late} of {} agents did not show {name} = {value:?} within {limit:?}; agent {first}'s log:\n{}",
                    self.dests.len(),
                    self.agents[first].stderr_tail(20)
                );
            }
            for a in &mut self.agents {
                if !a.running() {
                    anyhow::bail!("an agent exited: {}", a.stderr_tail(20));
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Write `value` to path `i` and time it to every agent's file (from the write's 200).
    pub async fn write_and_time(
        &mut self,
        h: &Hushd,
        i: usize,
        value: &str,
        limit: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        h.kv_put(&self.paths[i], json!({ "v": value })).await;
        let since = Instant::now();
        self.wait_value(i, value, since, limit).await
    }

    /// How many agents logged `needle` at least `times` times.
    pub fn logged(&self, needle: &str, times: usize) -> usize {
        self.agents
            .iter()
            .filter(|a| a.stderr().matches(needle).count() >= times)
            .count()
    }

    /// Resident memory of each agent, in KiB (`/proc/PID/status`).
    pub fn rss_kib(&self) -> Vec<u64> {
        self.agents
            .iter()
            .filter_map(|a| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", a.child.id())).ok()?;
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .collect()
    }
}

fn read(dest: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dest.join(name)).ok()
}

/// The log line of a subscription made (hush-agent's `events::subscribe`).
pub const SUBSCRIBED: &str = "subscribed to the store's events";

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// `p50 .. p99 .. max` in milliseconds, for printing.
pub fn summary(samples: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "n={} p50={:.1}ms p90={:.1}ms p99={:.1}ms max={:.1}ms",
        samples.len(),
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 90.0)),
        ms(percentile(samples, 99.0)),
        ms(percentile(samples, 100.0)),
    )
}

//! A private Docker Engine for one test: its own `dockerd` (and the containerd it starts) on a
//! socket, data root, exec root and pidfile under a fresh directory, with no bridge, iptables
//! or IP masquerading, so it leaves the machine's main engine (/var/run/docker.sock), its
//! networks and its firewall rules alone. Stopped (SIGTERM, then SIGKILL) and removed on drop.
//!
//! Every docker CLI call for it passes `-H unix://SOCKET` on its own command line; the test
//! process's environment is never changed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A `dockerd` the test started, stopped and removed (with its directories) on drop.
#[derive(Debug)]
pub struct PrivateDockerd {
    /// `unix://DIR/docker.sock`: pass as `docker -H`.
    pub host: String,
    /// Holds the socket, `data/`, `exec/` (kept short: unix socket paths are limited), the
    /// pidfile, the config and the daemon's log.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl PrivateDockerd {
    /// Start `dockerd` under a new directory in /tmp and wait (up to `limit`) until
    /// `docker -H ... info` answers.
    pub fn start(limit: Duration) -> anyhow::Result<PrivateDockerd> {
        let dir = PathBuf::from(format!("/tmp/hdk-{}", std::process::id()));
        unmount_under(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::create_dir_all(dir.join("exec"))?;
        // An empty config, so /etc/docker/daemon.json (the main engine's) is not read.
        std::fs::write(dir.join("daemon.json"), "{}\n")?;
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let host = format!("unix://{}", dir.join("docker.sock").display());
        let ns = format!("hush-e2e-{}", std::process::id());
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--containerd-namespace",
                &ns,
                "--containerd-plugins-namespace",
                &format!("{ns}-plugins"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot run dockerd")?;
        let mut engine = PrivateDockerd {
            host,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + limit;
        loop {
            if engine
                .docker(&["info", "--format", "{{.ServerVersion}}"])
                .is_ok()
            {
                return Ok(engine);
            }
            if let Some(status) = engine
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the private dockerd exited ({status}):\n{}",
                    engine.log_tail(30)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the private dockerd did not answer within {limit:?}:\n{}",
                    engine.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker -H HOST ARGS`, whatever the exit status.
    pub fn docker_output<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> anyhow::Result<Output> {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run docker")
    }

    /// `docker -H HOST ARGS`: its stdout (trimmed), or an error with its stderr.
    pub fn docker<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        let out = self.docker_output(args)?;
        if !out.status.success() {
            let shown: Vec<_> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            bail!(
                "docker -H {} {} failed ({}): {}",
                self.host,
                shown.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Copy `images` from the main engine: `docker save IMAGE... | docker -H HOST load`.
    pub fn load_from_main(&self, images: &[&str]) -> anyhow::Result<()> {
        let mut save = Command::new("docker")
            .arg("save")
            .args(images)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run docker save")?;
        let stdout = save.stdout.take().context("docker save: no stdout")?;
        let load = Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(["load", "--quiet"])
            .stdin(stdout)
            .output()
            .context("cannot run docker load")?;
        let saved = save.wait_with_output()?;
        if !saved.status.success() {
            bail!(
                "docker save {}: {}",
                images.join(" "),
                String::from_utf8_lossy(&saved.stderr).trim()
            );
        }
        if !load.status.success() {
            bail!(
                "docker -H {} load: {}",
                self.host,
                String::from_utf8_lossy(&load.stderr).trim()
            );
        }
        Ok(())
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Lazily unmount every mount point below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
}

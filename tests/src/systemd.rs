//! The systemd units of `manifests/systemd/` under systemd's own checkers: `systemd-analyze
//! verify` (on a copy whose `ExecStart=` names the workspace binaries, since verify wants each
//! command to exist), `systemd-analyze security --offline` (the exposure score) and
//! `systemd-sysusers --root` (the users file). Used by `tests/systemd_units.rs`; the real
//! systemd of `tests/systemd_real.rs` runs the units as installed by the package.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::docker::{run_script, workspace_root};

/// `manifests/systemd/`: the units, the sysusers file and the default configs.
pub fn units_dir() -> PathBuf {
    workspace_root().join("manifests").join("systemd")
}

/// The unit files the package installs or ships as examples.
pub const UNITS: &[&str] = &[
    "hushd.service",
    "hush-agent@.service",
    "hush-example-app.service",
];

/// The binaries the units start, as the package installs them: `(installed path, name)`.
pub const BINARIES: &[(&str, &str)] = &[
    ("/usr/bin/hushd", "hushd"),
    ("/usr/bin/hush-agent", "hush-agent"),
];

/// A copy of the units of `from` in a new temporary directory, each installed binary path
/// replaced by the file of that name in `bin_dir` (so `systemd-analyze verify` finds it).
pub fn stage_units(from: &Path, bin_dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("hush-systemd-units-")
        .tempdir()?;
    for unit in UNITS {
        let text = std::fs::read_to_string(from.join(unit))
            .with_context(|| format!("cannot read {}", from.join(unit).display()))?;
        let text = BINARIES.iter().fold(text, |text, (installed, name)| {
            text.replace(installed, &bin_dir.join(name).to_string_lossy())
        });
        std::fs::write(dir.path().join(unit), text)?;
    }
    Ok(dir)
}

/// `systemd-analyze verify` of `units` (file names or instances, e.g. `hush-agent@app.service`,
/// resolved in `dir`). An error when it fails or says anything at all: an unknown key or a bad
/// value is only a warning to systemd, and a unit with one still loads without that line.
pub fn verify(dir: &Path, units: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| format!("./{u}")))
        .current_dir(dir)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .context("cannot run systemd-analyze (Debian package systemd)")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!(
            "systemd-analyze verify {} ({}): {}",
            units.join(" "),
            out.status,
            said.trim()
        );
    }
    Ok(())
}

/// The overall exposure level `systemd-analyze security --offline=true` gives `unit` (in `dir`),
/// 0.0 (best) to 10.0.
pub fn exposure(dir: &Path, unit: &str) -> anyhow::Result<f64> {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("./{unit}"))
        .current_dir(dir)
        .output()
        .context("cannot run systemd-analyze security")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .with_context(|| {
            format!(
                "no exposure level for {unit} ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    line.split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("cannot read the level in {line:?}"))
}

/// The `/etc/passwd` that `systemd-sysusers` makes from the sysusers file `conf` in an empty
/// root (an error when it rejects a line).
pub fn sysusers_passwd(conf: &Path) -> anyhow::Result<String> {
    let root = tempfile::Builder::new()
        .prefix("hush-sysusers-")
        .tempdir()?;
    std::fs::create_dir(root.path().join("etc"))?;
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(conf)
        .output()
        .context("cannot run systemd-sysusers")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It reports each user and group it creates; anything else is a complaint.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Creating "))
        .collect();
    if !out.status.success() || !complaints.is_empty() {
        bail!(
            "systemd-sysusers {} ({}): {}",
            conf.display(),
            out.status,
            complaints.join("\n")
        );
    }
    Ok(std::fs::read_to_string(root.path().join("etc/passwd"))?)
}

/// The local image with Debian and systemd as its init (`docker/build-systemd-image`).
pub const IMAGE: &str = "hush-systemd-debian:bookworm";

/// [`IMAGE`], made once (debootstrap; the tree's tar is kept in `target/hush-systemd/`) and
/// imported again only when that tar changed.
pub fn build_image() -> anyhow::Result<()> {
    run_script("docker/build-systemd-image", &["--tag", IMAGE])?;
    Ok(())
}

/// The .deb of `scripts/build-deb` from the binaries in `bin_dir`, written under `out`.
pub fn build_deb(bin_dir: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let bin_dir = bin_dir.to_str().context("binary directory is not UTF-8")?;
    let out = out.to_str().context("output directory is not UTF-8")?;
    let deb = run_script(
        "scripts/build-deb",
        &["--bin-dir", bin_dir, "--out", out, "--fast"],
    )?;
    Ok(PathBuf::from(deb))
}

/// A container of [`IMAGE`] with systemd as PID 1 (removed on drop): a stand-in for a VM.
#[derive(Debug)]
pub struct Machine {
    pub container: crate::docker::Container,
}

impl Machine {
    /// Start one named `name` and wait (up to `limit`) until systemd has finished booting.
    /// systemd needs to mount (CAP_SYS_ADMIN and the rest; not `--privileged`, which asks for
    /// CAP_SYS_RESOURCE too, which this host's docker lacks), its own cgroup namespace, and
    /// tmpfs on /run.
    pub fn boot(name: String, limit: std::time::Duration) -> anyhow::Result<Machine> {
        let container = crate::docker::Container::run(
            name,
            &[
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--cgroupns=private",
                "--network",
                "none",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "--tmpfs",
                "/tmp",
                "--stop-signal",
                "SIGRTMIN+3",
                IMAGE,
            ],
        )?;
        let machine = Machine { container };
        // `is-system-running --wait` fails at once while systemd's bus is not up yet: poll.
        let deadline = std::time::Instant::now() + limit;
        loop {
            let state = machine
                .container
                .exec(&["systemctl", "is-system-running"])
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            match state.as_str() {
                "running" | "degraded" => break,
                _ if std::time::Instant::now() >= deadline => bail!(
                    "systemd did not finish booting within {limit:?} (state {state:?}):\n{}",
                    machine.journal()
                ),
                _ => std::thread::sleep(std::time::Duration::from_millis(250)),
            }
        }
        Ok(machine)
    }

    /// `bash -ec SCRIPT` inside; its stdout (trimmed), or an error with the script, its status,
    /// stdout and stderr.
    pub fn sh(&self, script: &str) -> anyhow::Result<String> {
        let out = self.container.exec(&["bash", "-ec", script])?;
        if !out.status.success() {
            bail!(
                "in {}: `{script}` failed ({}): {}{}",
                self.container.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Copy the host file `from` to `to` inside (not under a tmpfs: `docker cp` writes the
    /// container's own filesystem).
    pub fn copy_in(&self, from: &Path, to: &str) -> anyhow::Result<()> {
        let from = from.to_str().context("path is not UTF-8")?;
        crate::docker::docker(&["cp", from, &format!("{}:{to}", self.container.name)])?;
        Ok(())
    }

    /// The journal of this boot (the last 300 lines), for failure messages.
    pub fn journal(&self) -> String {
        match self
            .container
            .exec(&["journalctl", "-b", "--no-pager", "-n", "300"])
        {
            Ok(out) => format!(
                "--- journal of {} ---\n{}{}",
                self.container.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(no journal: {e:#})"),
        }
    }
}

//! The systemd units of `manifests/systemd/` under systemd's own checkers: `systemd-analyze
//! verify` (on a copy whose `ExecStart=` names the workspace binaries, since verify wants each
//! command to exist), `systemd-analyze security --offline` (the exposure score) and
//! `systemd-sysusers --root` (the users file). Used by `tests/systemd_units.rs`; the real
//! systemd of `tests/systemd_real.rs` runs the units as installed by the package.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::docker::workspace_root;

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

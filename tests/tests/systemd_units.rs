//! The systemd units of `manifests/systemd/` (README "systemd (VMs)") under systemd's own
//! checkers: `systemd-analyze verify` passes with nothing to say (and fails on a unit with a typo
//! or a missing binary: the negative controls), the hardening keeps the exposure score of
//! `systemd-analyze security` low, the sysusers file makes the two users, and the default
//! configs are accepted by the programs' own config parsers.

use std::path::Path;

use hush_tests::bin;
use hush_tests::systemd::{exposure, stage_units, sysusers_passwd, units_dir, verify};

fn bin_dir() -> std::path::PathBuf {
    bin("hushd").parent().unwrap().to_path_buf()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let staged = stage_units(&units_dir(), &bin_dir()).unwrap();
    // The template as an instance, and the example app (which pulls in hush-agent@app).
    verify(
        staged.path(),
        &[
            "hushd.service",
            "hush-agent@app.service",
            "hush-example-app.service",
        ],
    )
    .unwrap();
}

/// Rewrite `unit` in `dir` with `from` replaced by `to` (which must change it).
fn edit(dir: &Path, unit: &str, from: &str, to: &str) {
    let path = dir.join(unit);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{unit} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn verify_fails_on_a_typo_a_bad_value_and_a_missing_binary() {
    let agent = bin_dir().join("hush-agent").to_string_lossy().into_owned();
    // (file edited, text, replacement, unit checked, what verify must say)
    let cases = [
        (
            "hushd.service",
            "ProtectSystem=strict",
            "ProtectSytem=strict",
            "hushd.service",
            "Unknown key",
        ),
        (
            "hush-agent@.service",
            "ProtectHome=yes",
            "ProtectHome=yess",
            "hush-agent@app.service",
            "protect home",
        ),
        (
            "hush-agent@.service",
            agent.as_str(),
            "/nonexistent/hush-agent",
            "hush-agent@app.service",
            "/nonexistent/hush-agent",
        ),
    ];
    for (unit, from, to, check, says) in cases {
        let staged = stage_units(&units_dir(), &bin_dir()).unwrap();
        edit(staged.path(), unit, from, to);
        let err = verify(staged.path(), &[check])
            .expect_err(&format!("verify passed {check} with {to:?} in {unit}"))
            .to_string();
        assert!(err.contains(says), "{check}: {err}");
    }
}

#[test]
fn hardening_keeps_the_exposure_score_low() {
    let staged = stage_units(&units_dir(), &bin_dir()).unwrap();
    // 1.1 each when written (README "systemd (VMs)"); 10 is an unhardened service.
    for unit in ["hushd.service", "hush-agent@app.service"] {
        let level = exposure(staged.path(), unit).unwrap();
        assert!(level <= 1.5, "{unit}: exposure {level}");
    }
    assert!(exposure(staged.path(), "hush-example-app.service").unwrap() <= 1.0);
    // The check can fail: without its hardening a unit scores high.
    let bare = std::fs::read_to_string(staged.path().join("hushd.service")).unwrap();
    let bare: String = bare
        .lines()
        .take_while(|l| !l.starts_with("# Hardening"))
        .chain(["", "[Install]", "WantedBy=multi-user.target"])
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(staged.path().join("bare.service"), bare).unwrap();
    let level = exposure(staged.path(), "bare.service").unwrap();
    assert!(level > 5.0, "unhardened: exposure {level}");
}

#[test]
fn sysusers_file_makes_the_two_users() {
    let passwd = sysusers_passwd(&units_dir().join("hush.sysusers.conf")).unwrap();
    let users: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(users, ["hush", "hush-agent"], "{passwd}");
    assert!(
        passwd.lines().all(|l| l.ends_with(":/usr/sbin/nologin")),
        "{passwd}"
    );
}

#[test]
fn default_configs_are_accepted() {
    let hushd = units_dir().join("hushd.toml");
    let mut raw = hush_store::config::RawConfig::from_file(&hushd).unwrap();
    // Validation wants the database's directory (the unit's StateDirectory=) to exist.
    assert_eq!(
        raw.storage.as_deref(),
        Some("sqlite:///var/lib/hush/hush.db")
    );
    let state = tempfile::tempdir().unwrap();
    raw.storage = Some(format!("sqlite://{}/hush.db", state.path().display()));
    hush_store::config::Config::validate(raw, None).unwrap();
    // The agent's example (its --dest comes from the unit): parsed with unknown keys refused.
    hush_agent::config::read_file(&units_dir().join("agent-app.toml")).unwrap();
}

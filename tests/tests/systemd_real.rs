//! The units under a real systemd as PID 1: a container of Debian bookworm with systemd
//! (`docker/build-systemd-image`: debootstrap once, the tree cached in `target/hush-systemd/`),
//! standing in for a VM, with no network but its loopback. Hush goes in the way a VM gets it:
//! the .deb of `scripts/build-deb` (built from `target/debug`) installed with `dpkg -i`, whose
//! postinst runs `systemctl enable --now hushd`. Then, as an operator would (README "systemd
//! (VMs)"):
//!
//! - the installed hushd and hush-agent name the build (`--version`) they were packed from;
//! - hushd is active (Type=notify: READY=1 once it listens) and says sealed in its status; it is
//!   initialised and unsealed with the `hush` CLI, a secret and a policy written, a token made;
//! - `systemctl start hush-agent@app` returns only once the file is there (READY=1 after the
//!   first render): the file is read right after, with no wait;
//! - the example app unit (`Requires=`/`After=hush-agent@app.service`, another user in group
//!   hush-agent) reads it;
//! - with a watchdog of 2 s the agent stays up 5 s (WATCHDOG=1 pings);
//! - the config is changed and `systemctl reload hush-agent@app` (SIGHUP) applies it without
//!   dropping the file: same agent process, the file there throughout, and the new refresh
//!   interval picks up a `hush kv put` within seconds;
//! - `systemctl stop hush-agent@app` stops the app with it and leaves nothing: no /run/hush/app,
//!   no credential, no mount, no agent process, units inactive (not failed);
//! - installing the package again (an upgrade) restarts the agent, not hushd (still unsealed),
//!   and `dpkg -r` stops hushd and keeps its database.
//!
//! Every wait is bounded; the container is removed at the end; a failure prints the journal.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use hush_tests::bin;
use hush_tests::docker::require_engine;
use hush_tests::systemd::{build_deb, build_image, Machine};

const ADDR: &str = "HUSH_ADDR=http://127.0.0.1:8200";

/// Run `script` in `machine` until it succeeds, for up to `limit`; its last output.
fn wait_for(
    machine: &Machine,
    limit: Duration,
    what: &str,
    script: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        match machine.sh(script) {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() >= deadline => {
                bail!("timed out after {limit:?} waiting for {what}; last: {e:#}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// `systemctl show -p PROP --value UNIT`.
fn show(machine: &Machine, unit: &str, prop: &str) -> anyhow::Result<String> {
    machine.sh(&format!("systemctl show -p {prop} --value {unit}"))
}

#[test]
fn units_run_under_systemd_as_pid_1() {
    require_engine().unwrap();
    let started = Instant::now();
    build_image().unwrap();
    let out = tempfile::tempdir().unwrap();
    let bin_dir = bin("hushd").parent().unwrap().to_path_buf();
    let deb = build_deb(&bin_dir, out.path()).unwrap();
    let machine = Machine::boot(
        format!("hush-systemd-{}", std::process::id()),
        Duration::from_secs(60),
    )
    .unwrap();
    if let Err(e) = scenario(&machine, &deb, &bin_dir) {
        panic!("{e:#}\n{}", machine.journal());
    }
    eprintln!("real systemd scenario: {:?}", started.elapsed());
}

fn scenario(m: &Machine, deb: &Path, deb_bin_dir: &Path) -> anyhow::Result<()> {
    // Install as on a VM: dpkg, whose postinst makes the users and enables and starts hushd.
    m.copy_in(deb, "/var/tmp/hush.deb")?;
    m.sh("dpkg -i /var/tmp/hush.deb")?;
    ensure!(show(m, "hushd.service", "ActiveState")? == "active");
    ensure!(show(m, "hushd.service", "UnitFileState")? == "enabled");
    ensure!(m.sh("stat -c %U:%a /var/lib/hush")? == "hush:700");
    // The installed binaries name the build they come from.
    for name in ["hushd", "hush-agent"] {
        let here = std::process::Command::new(deb_bin_dir.join(name))
            .arg("--version")
            .output()?;
        let here = String::from_utf8_lossy(&here.stdout).trim().to_string();
        let there = m.sh(&format!("/usr/bin/{name} --version"))?;
        ensure!(
            there == here && there.contains(" (commit "),
            "{name}: {there:?} vs {here:?}"
        );
    }
    let status = show(m, "hushd.service", "StatusText")?;
    ensure!(
        status.contains("sealed") && !status.contains("unsealed"),
        "hushd's STATUS= does not say sealed: {status:?}"
    );

    // The operator: init, unseal, the kv mount, a secret, a policy, the agent's token.
    let init: serde_json::Value = serde_json::from_str(&m.sh(&format!(
        "{ADDR} hush operator init -key-shares 1 -key-threshold 1 -format=json"
    ))?)
    .context("operator init output")?;
    let key = init["unseal_keys_b64"][0].as_str().context("no key")?;
    let root = init["root_token"].as_str().context("no root token")?;
    let env = format!("export {ADDR} HUSH_TOKEN={root}");
    m.sh(&format!("{env}; hush operator unseal {key} >/dev/null"))?;
    m.sh(&format!(
        "{env}; curl -sSf -X POST -H \"X-Vault-Token: $HUSH_TOKEN\" \
         -d '{{\"type\":\"kv\",\"options\":{{\"version\":\"2\"}}}}' $HUSH_ADDR/v1/sys/mounts/secret; \
         hush kv put secret/app/db password=s3cr3t-1 >/dev/null; \
         printf '%s\\n' 'path \"secret/data/app/*\" {{ capabilities = [\"read\"] }}' \
           'path \"secret/metadata/app/*\" {{ capabilities = [\"read\"] }}' | hush policy write app - >/dev/null; \
         install -m 0600 /dev/null /etc/hush/agent/app.token; \
         hush token create -policy=app -field=token > /etc/hush/agent/app.token"
    ))?;
    wait_for(
        m,
        Duration::from_secs(10),
        "hushd's STATUS= to say unsealed",
        "systemctl show -p StatusText --value hushd | grep -qw unsealed",
    )?;

    // The agent's config and the example app, from the package's examples.
    m.sh(
        "cp /usr/share/doc/hush/examples/agent-app.toml /etc/hush/agent/app.toml; \
          cp /usr/share/doc/hush/examples/hush-example-app.service /etc/systemd/system/; \
          systemctl daemon-reload",
    )?;

    // A watchdog of 2 s (a runtime drop-in, read at start): the agent must ping (WATCHDOG=1 at
    // half of it) to stay up.
    m.sh("mkdir -p /run/systemd/system/hush-agent@app.service.d; \
          printf '[Service]\\nWatchdogSec=2s\\n' > /run/systemd/system/hush-agent@app.service.d/watchdog.conf; \
          systemctl daemon-reload")?;

    // `systemctl start` returns once READY=1 came, i.e. after the first render: the file is
    // read at once, no polling.
    m.sh("systemctl start hush-agent@app")?;
    ensure!(m.sh("cat /run/hush/app/password")? == "s3cr3t-1");
    ensure!(m.sh("stat -L -c %U:%G:%a /run/hush/app/password")? == "hush-agent:hush-agent:440");
    ensure!(m.sh("stat -c %U:%G:%a /run/hush/app")? == "hush-agent:hush-agent:750");
    let status = show(m, "hush-agent@app.service", "StatusText")?;
    ensure!(!status.is_empty(), "the agent sent no STATUS=");
    let pid = show(m, "hush-agent@app.service", "MainPID")?;
    // Nobody else reads the token: it is handed to the unit alone.
    ensure!(m.sh("stat -c %U:%a /etc/hush/agent/app.token")? == "root:600");

    // The example app, another user in group hush-agent, reads the file.
    m.sh("systemctl start hush-example-app")?;
    let digest = m.sh("printf %s s3cr3t-1 | sha256sum | cut -d' ' -f1")?;
    wait_for(
        m,
        Duration::from_secs(10),
        "the example app's line",
        &format!("journalctl -u hush-example-app --no-pager | grep -q 'sha256 {digest}'"),
    )?;
    ensure!(show(m, "hush-example-app.service", "ActiveState")? == "active");

    // Still up after 5 s: the watchdog is fed.
    std::thread::sleep(Duration::from_secs(5));
    ensure!(show(m, "hush-agent@app.service", "WatchdogUSec")? == "2s");
    ensure!(show(m, "hush-agent@app.service", "ActiveState")? == "active");
    ensure!(
        show(m, "hush-agent@app.service", "MainPID")? == pid,
        "the agent was restarted (watchdog?)"
    );

    // Reload: a new refresh interval, applied on SIGHUP, the file kept throughout.
    m.sh(
        "sed -i 's/^refresh_interval = .*/refresh_interval = \"1s\"/' /etc/hush/agent/app.toml; \
          systemctl reload hush-agent@app",
    )?;
    ensure!(m.sh("cat /run/hush/app/password")? == "s3cr3t-1");
    ensure!(
        show(m, "hush-agent@app.service", "MainPID")? == pid,
        "reload restarted the agent"
    );
    m.sh(&format!(
        "{env}; hush kv put secret/app/db password=s3cr3t-2 >/dev/null"
    ))?;
    wait_for(
        m,
        Duration::from_secs(10),
        "the rotated file (the reloaded 1s refresh)",
        "test \"$(cat /run/hush/app/password)\" = s3cr3t-2",
    )?;
    ensure!(show(m, "hush-agent@app.service", "ActiveState")? == "active");

    // An upgrade (the same package again): agents restart on the new binary and render again;
    // hushd keeps running, so it stays unsealed.
    let hushd_pid = show(m, "hushd.service", "MainPID")?;
    m.sh("dpkg -i /var/tmp/hush.deb")?;
    ensure!(
        show(m, "hushd.service", "MainPID")? == hushd_pid,
        "the upgrade restarted hushd"
    );
    ensure!(show(m, "hush-agent@app.service", "ActiveState")? == "active");
    ensure!(m.sh("cat /run/hush/app/password")? == "s3cr3t-2");

    // Stop: the app goes with the agent, and nothing is left.
    m.sh("systemctl stop hush-agent@app")?;
    for unit in ["hush-agent@app.service", "hush-example-app.service"] {
        let state = show(m, unit, "ActiveState")?;
        let result = show(m, unit, "Result")?;
        ensure!(
            state == "inactive" && result == "success",
            "{unit}: {state} {result}"
        );
    }
    m.sh("test ! -e /run/hush/app")?;
    m.sh("test ! -e /run/credentials/hush-agent@app.service")?;
    m.sh("! grep -E ' /run/(hush|credentials/hush)' /proc/mounts")?;
    m.sh("! pgrep -x hush-agent")?;
    m.sh("! pgrep -u hush-agent")?;

    // Removal stops hushd; its database stays.
    m.sh("dpkg -r hush")?;
    ensure!(show(m, "hushd.service", "Result")? == "success");
    m.sh("! pgrep -x hushd")?;
    m.sh("test ! -e /usr/bin/hushd && test -e /var/lib/hush/hush.db")?;
    Ok(())
}

//! `hush dev`: the one-command local demo. Starts `hushd --dev` with a random root token,
//! waits until it is healthy, runs a short tour of real `hush` commands against it (each shown
//! as the command a user would type, then its output), prints the exports and waits for
//! Ctrl-C. hushd is stopped on every way out: success, a failed step, a signal, an error.
//!
//! The tour runs this same executable as child processes, so what it shows is exactly what
//! the commands print. The steps are in `tour`; this module runs hushd and handles signals.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};

use crate::args::DevArgs;
use crate::context::usage;

mod agent;
mod tour;
use agent::DevAgent;
use tour::Tour;

/// Where hushd listens unless told otherwise (Vault's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8200";
/// How long hushd may take to answer after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long hushd may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The demo secret and the policy that lets the scoped token read it.
const DEMO_SECRET: &str = "secret/demo/app";
const POLICY_NAME: &str = "demo-read";
const POLICY: &str = "# Read the demo secrets, nothing else.\n\
                      path \"secret/data/demo/*\" {\n  capabilities = [\"read\"]\n}\n";

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Signals first: from here on Ctrl-C and SIGTERM go through the cleanup below.
    let mut signals = Signals::new()?;
    let (listen, note) = choose_listen(args.listen.as_deref())?;
    let exe = std::env::current_exe().context("cannot find the hush executable")?;
    let hushd = find_hushd(
        args.hushd.as_deref(),
        &exe,
        std::env::var_os("PATH").as_deref(),
    )?;
    let agent_bin = find_program(
        "hush-agent",
        "-agent",
        args.agent.as_deref(),
        &exe,
        std::env::var_os("PATH").as_deref(),
    )?;
    let dir = tempfile::Builder::new()
        .prefix("hush-dev-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let addr = format!("http://{listen}");
    let token = random_token();

    println!("Starting a dev server: hushd --dev (in memory, unsealed, kv v2 at secret/).");
    if let Some(note) = note {
        println!("{note}");
    }
    let log = dir.path().join("hushd.log");
    let mut server = DevServer::spawn(&hushd, listen, &token, &log, args.log_format)?;
    let rows = [
        ("hushd", hushd.display().to_string()),
        ("address", addr.clone()),
        ("root token", token.expose_secret().to_string()),
        ("log", log.display().to_string()),
    ];
    for (k, v) in rows {
        println!("    {k:<12}{v}");
    }

    let result = session(
        &mut server,
        &mut signals,
        &args,
        Programs {
            hush: &exe,
            agent: &agent_bin,
        },
        &addr,
        &token,
        dir.path(),
    )
    .await;
    match (server.stop().await, &result) {
        (Ok(true), _) => println!("hushd stopped."),
        (Ok(false), _) => {}
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(_)) => eprintln!("Error: {e:#}"),
    }
    result
}

/// The executables the demo runs besides hushd.
#[derive(Debug, Clone, Copy)]
struct Programs<'a> {
    /// This `hush`, for the tour's steps.
    hush: &'a Path,
    agent: &'a Path,
}

/// Everything between starting hushd and stopping it.
async fn session(
    server: &mut DevServer,
    signals: &mut Signals,
    args: &DevArgs,
    programs: Programs<'_>,
    addr: &str,
    token: &SecretString,
    dir: &Path,
) -> anyhow::Result<()> {
    let DevServer { child, log } = server;
    guarded(child, signals, log, wait_ready(addr)).await?;
    println!("Ready.\n");
    let tour = Tour {
        exe: programs.hush,
        addr,
        root: token,
        dir,
        log_format: args.log_format,
        done: std::cell::Cell::new(0),
    };
    let scoped = guarded(child, signals, log, tour.run()).await?;
    let mut agent = guarded(child, signals, log, tour.files(programs.agent, &scoped)).await?;
    guarded(child, signals, log, tour.fuse(programs.agent, &scoped)).await?;
    let result = wait(child, signals, log, args, addr, token, &agent).await;
    if let Err(e) = agent.stop().await {
        eprintln!("Error: {e:#}");
    }
    result
}

/// After the tour: print how to go on, then wait for Ctrl-C (unless --no-wait).
async fn wait(
    child: &mut Child,
    signals: &mut Signals,
    log: &Path,
    args: &DevArgs,
    addr: &str,
    token: &SecretString,
    agent: &DevAgent,
) -> anyhow::Result<()> {
    if args.no_wait {
        println!("\nDone (--no-wait): stopping hush-agent and hushd.");
        return Ok(());
    }
    let t = token.expose_secret();
    println!("\nDone. hushd keeps running at {addr}. Try the commands above in any shell:\n");
    println!("    export HUSH_ADDR='{addr}'");
    println!("    export HUSH_TOKEN='{t}'");
    println!("    # the vault CLI and hvac read these instead:");
    println!("    export VAULT_ADDR='{addr}'");
    println!("    export VAULT_TOKEN='{t}'\n");
    let dest = tour::shell_quote(&agent.dest.display().to_string());
    println!(
        "hush-agent keeps {dest} up to date (every {}). Change the secret and watch:\n",
        agent::REFRESH
    );
    println!("    hush kv put {DEMO_SECRET} username=demo password=another-one");
    println!("    cat {dest}/password\n");
    println!("Everything lives in memory and is gone when hushd stops. Press Ctrl-C to stop.");
    tokio::select! {
        // Biased: on Ctrl-C hushd gets SIGINT too and exits; that is not "unexpected".
        biased;
        _ = signals.recv() => {
            println!("\nStopping hush-agent and hushd...");
            Ok(())
        }
        status = child.wait() => Err(exited(status, log)),
    }
}

/// Run `fut` unless a signal arrives or hushd exits first.
async fn guarded<T>(
    child: &mut Child,
    signals: &mut Signals,
    log: &Path,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        // Biased: a signal explains hushd's exit, and hushd's exit explains a failed step.
        biased;
        _ = signals.recv() => Err(anyhow!("interrupted")),
        status = child.wait() => Err(exited(status, log)),
        r = fut => r,
    }
}

fn exited(status: std::io::Result<ExitStatus>, log: &Path) -> anyhow::Error {
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    anyhow!("hushd exited unexpectedly ({status}){}", log_tail(log))
}

/// The last lines of hushd's log, indented, for error messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!("; last lines of {}:", log.display());
    for line in &lines[lines.len().saturating_sub(8)..] {
        out.push_str("\n    ");
        out.push_str(&strip_ansi(line));
    }
    out
}

/// Remove terminal colour codes (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A dev root token: `hvs.` and 24 random letters and digits.
fn random_token() -> SecretString {
    let body = Alphanumeric.sample_string(&mut rand::rng(), 24);
    SecretString::from(format!("hvs.{body}"))
}

/// The hushd to run: `explicit`, else the one next to `exe`, else the first on `path`.
pub fn find_hushd(
    explicit: Option<&Path>,
    exe: &Path,
    path: Option<&std::ffi::OsStr>,
) -> anyhow::Result<PathBuf> {
    find_program("hushd", "-hushd", explicit, exe, path)
}

/// The program `name` (hushd, hush-agent): `explicit` (given with `flag`), else the one next
/// to `exe`, else the first on `path`.
pub fn find_program(
    name: &str,
    flag: &str,
    explicit: Option<&Path>,
    exe: &Path,
    path: Option<&std::ffi::OsStr>,
) -> anyhow::Result<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    if let Some(p) = explicit {
        if is_executable(p) {
            return Ok(p.to_path_buf());
        }
        return Err(usage(format!(
            "{flag} {}: no such executable file",
            p.display()
        )));
    }
    let beside = exe.parent().map(|d| d.join(&file));
    let on_path = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(&file));
    if let Some(found) = beside
        .clone()
        .into_iter()
        .chain(on_path)
        .find(|p| is_executable(p))
    {
        return Ok(found);
    }
    let dir = beside.as_deref().and_then(Path::parent).map_or_else(
        || "the hush executable".to_string(),
        |d| d.display().to_string(),
    );
    Err(anyhow!(
        "{name} not found in {dir} nor on PATH. Build it next to hush with \
         `cargo build --release --workspace --bins` (scripts/demo does this and then runs \
         hush dev), or pass {flag} FILE"
    ))
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// The address for hushd and, when the default port was taken, a note saying so. Port 0
/// means any free port.
pub fn choose_listen(requested: Option<&str>) -> anyhow::Result<(SocketAddr, Option<String>)> {
    let Some(requested) = requested else {
        let default: SocketAddr = DEFAULT_LISTEN.parse()?;
        if TcpListener::bind(default).is_ok() {
            return Ok((default, None));
        }
        let free = free_port(default)?;
        return Ok((
            free,
            Some(format!(
                "{DEFAULT_LISTEN} is in use: using {free} instead (choose with -listen)"
            )),
        ));
    };
    let addr: SocketAddr = requested.parse().map_err(|_| {
        usage(format!(
            "invalid -listen {requested:?}: want IP:PORT, e.g. {DEFAULT_LISTEN}"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(usage(format!(
            "invalid -listen {requested:?}: the dev server only listens on loopback \
             (127.0.0.1 or ::1)"
        )));
    }
    if addr.port() == 0 {
        return Ok((free_port(addr)?, None));
    }
    TcpListener::bind(addr).map_err(|e| {
        anyhow!("cannot listen on {addr}: {e}; choose another address with -listen")
    })?;
    Ok((addr, None))
}

/// A port on `addr`'s IP that is free now (bound, then released for hushd).
fn free_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let probe = TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        .with_context(|| format!("cannot find a free port on {}", addr.ip()))?;
    Ok(probe.local_addr()?)
}

/// Poll `sys/seal-status` until hushd answers unsealed.
async fn wait_ready(addr: &str) -> anyhow::Result<()> {
    let client = hush_api::Client::new(addr, None, None)?;
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(s) = client.seal_status().await {
            if s.initialized && !s.sealed {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "hushd did not become ready at {addr} within {}s",
                READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The hushd child process and its log file.
struct DevServer {
    child: Child,
    log: PathBuf,
}

impl DevServer {
    /// Start `hushd --dev` on `listen`; the root token goes through the environment (not
    /// the command line, which other users can see). Killed if dropped while running.
    fn spawn(
        hushd: &Path,
        listen: SocketAddr,
        token: &SecretString,
        log: &Path,
        log_format: hush_api::LogFormat,
    ) -> anyhow::Result<DevServer> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(hushd)
            .arg("--dev")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--log-format")
            .arg(log_format.to_string())
            .env("HUSH_DEV_ROOT_TOKEN", token.expose_secret())
            .stdin(Stdio::null())
            // stdout has hushd's own banner (root token, unseal key): we print our own.
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", hushd.display()))?;
        Ok(DevServer {
            child,
            log: log.to_path_buf(),
        })
    }

    /// SIGTERM, wait for a clean exit, SIGKILL if it takes too long. Always reaps the child.
    /// `false` if it had already exited.
    async fn stop(&mut self) -> anyhow::Result<bool> {
        if self.child.try_wait()?.is_some() {
            return Ok(false);
        }
        terminate(&self.child);
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(true)
            }
            Err(_) => {
                self.child.kill().await?;
                Err(anyhow!(
                    "hushd did not stop within {}s of SIGTERM and was killed",
                    STOP_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

/// Ask the child to stop cleanly.
#[cfg(unix)]
fn terminate(child: &Child) {
    use rustix::process::{kill_process, Pid, Signal};
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = kill_process(pid, Signal::TERM);
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}

/// Ctrl-C and (on unix) SIGTERM and SIGHUP: each stops hushd before hush exits. (A closed
/// terminal must not leave hushd running.)
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `PATH` value with `dirs` (for tests).
#[cfg(test)]
fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(dirs).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[2mtime\u{1b}[0m INFO x"), "time INFO x");
    }

    #[test]
    fn tokens_are_random_and_vault_shaped() {
        let (a, b) = (random_token(), random_token());
        assert!(a.expose_secret().starts_with("hvs."));
        assert_eq!(a.expose_secret().len(), 28);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[cfg(unix)]
    fn executable(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[cfg(unix)]
    #[test]
    fn hushd_is_found_beside_hush_then_on_path() {
        let beside = tempfile::tempdir().unwrap();
        let on_path = tempfile::tempdir().unwrap();
        let exe = beside.path().join("hush");
        let path = path_of(&[on_path.path()]);

        let err = find_hushd(None, &exe, Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("hushd not found") && err.contains("cargo build"),
            "{err}"
        );

        let second = executable(on_path.path(), "hushd");
        assert_eq!(find_hushd(None, &exe, Some(&path)).unwrap(), second);
        let first = executable(beside.path(), "hushd");
        assert_eq!(find_hushd(None, &exe, Some(&path)).unwrap(), first);

        // Not executable: skipped.
        std::fs::write(beside.path().join("other"), "x").unwrap();
        let explicit = beside.path().join("other");
        assert!(find_hushd(Some(&explicit), &exe, None).is_err());
        assert_eq!(find_hushd(Some(&second), &exe, None).unwrap(), second);
    }

    #[test]
    fn listen_addresses() {
        let (addr, note) = choose_listen(Some("127.0.0.1:0")).unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        assert!(note.is_none());
        assert!(choose_listen(Some("localhost")).is_err());
        assert!(
            choose_listen(Some("0.0.0.0:8200")).is_err(),
            "loopback only"
        );
        // A taken port given explicitly is an error, not a silent fallback.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().to_string();
        let err = choose_listen(Some(&port)).unwrap_err().to_string();
        assert!(
            err.contains("cannot listen") && err.contains("-listen"),
            "{err}"
        );
        // The default: 8200, or another port with a note when 8200 is taken.
        let _hold = TcpListener::bind(DEFAULT_LISTEN);
        let (addr, note) = choose_listen(None).unwrap();
        assert_ne!(addr.port(), 8200);
        assert!(note.unwrap().contains("8200 is in use"));
    }
}

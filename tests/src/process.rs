//! Child processes of the harness: where the workspace binaries are, free ports, and [`Proc`],
//! a child with its stderr in a log file of its own, killed (or stopped with SIGTERM and a
//! grace) on drop. [`crate::Agent`] is a `Proc`; the benches start their other helpers (the
//! no-op FUSE floor) as one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A workspace binary next to the running executable: `target/PROFILE/NAME`, found from a bench
/// binary in `target/PROFILE/` and from a test executable in `target/PROFILE/deps/`.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Path of a workspace binary next to the running test executable.
pub fn bin(name: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|| {
        panic!("{name} not found: run `cargo build --workspace --bins` before the tests")
    })
}

/// `given` (a bench's `--hushd`/`--agent` flag), else the workspace binary `name` next to this
/// executable.
pub fn bin_or(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => find_bin(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{name} not found next to this binary: build it with \
                 `cargo build --release --workspace --bins`, or pass its path"
            )
        }),
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawn `command` with stdin and stdout null and stderr to `LOGDIR/NAME.log` in a new
/// temporary directory, or, when the suite keeps its logs ([`crate::leaks::LOG_DIR_ENV`]), to
/// a file of its own there. Returns the child, the log's path and the temporary directory, if
/// any (keep it alive).
pub(crate) fn spawn_logged(
    command: &mut Command,
    name: &str,
) -> std::io::Result<(Child, PathBuf, Option<tempfile::TempDir>)> {
    let (stderr_path, logdir) = match crate::leaks::kept_log_path(name) {
        Some(path) => (path, None),
        None => {
            let dir = tempfile::tempdir()?;
            (dir.path().join(format!("{name}.log")), Some(dir))
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    Ok((child, stderr_path, logdir))
}

/// Send SIGTERM, wait up to `grace` for the exit, then SIGKILL.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running child process, its stderr in [`Proc::stderr_path`]. Killed on drop, or stopped
/// with SIGTERM first when made with [`Proc::stop_on_drop`].
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub stderr_path: PathBuf,
    stop_grace: Option<Duration>,
    _logdir: Option<tempfile::TempDir>,
}

impl Proc {
    /// Spawn `command` (stdin and stdout null, stderr to the log); `name` names the log file.
    pub fn spawn(mut command: Command, name: &str) -> std::io::Result<Proc> {
        let (child, stderr_path, logdir) = spawn_logged(&mut command, name)?;
        Ok(Proc {
            child,
            stderr_path,
            stop_grace: None,
            _logdir: logdir,
        })
    }

    /// On drop, send SIGTERM and give the process `grace` to exit before SIGKILL.
    pub fn stop_on_drop(mut self, grace: Duration) -> Proc {
        self.stop_grace = Some(grace);
        self
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = self.stderr();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Send a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        terminate(&mut self.child, grace);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        match self.stop_grace {
            Some(grace) => terminate(&mut self.child, grace),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

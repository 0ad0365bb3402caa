//! Signalling the application: by pid file, or by name through `/proc` (for pods that share a
//! process namespace). The agent never signals itself.

use std::fs;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::{NotifyError, SignalSpec, SignalTarget};

/// The kernel keeps at most 15 bytes of a process name in `comm`.
const COMM_LEN: usize = 15;

/// Sends `spec.signal` to its target.
pub fn send(spec: &SignalSpec) -> Result<(), NotifyError> {
    match &spec.target {
        SignalTarget::PidFile(path) => {
            let pid = read_pid_file(path)?;
            match kill(Pid::from_raw(pid), spec.signal) {
                Ok(()) => {
                    tracing::debug!(pid, signal = %spec.signal, "signalled");
                    Ok(())
                }
                Err(Errno::ESRCH) => Err(NotifyError::ProcessGone {
                    pid,
                    path: path.clone(),
                }),
                Err(err) => Err(NotifyError::Signal {
                    signal: spec.signal,
                    pid,
                    err,
                }),
            }
        }
        SignalTarget::ProcessName(name) => {
            let pids = find_by_name(name);
            let mut sent = 0;
            for pid in pids {
                match kill(Pid::from_raw(pid), spec.signal) {
                    Ok(()) => sent += 1,
                    // Exited between the scan and the signal.
                    Err(Errno::ESRCH) => {}
                    Err(err) => {
                        return Err(NotifyError::Signal {
                            signal: spec.signal,
                            pid,
                            err,
                        })
                    }
                }
            }
            if sent == 0 {
                return Err(NotifyError::NoProcess { name: name.clone() });
            }
            tracing::debug!(name = %name, processes = sent, signal = %spec.signal, "signalled");
            Ok(())
        }
    }
}

fn read_pid_file(path: &Path) -> Result<i32, NotifyError> {
    let bad = |reason: String| NotifyError::PidFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| bad("it does not hold a pid".to_owned()))?;
    if pid <= 0 {
        return Err(bad(format!("{pid} is not a process id")));
    }
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return Err(bad("it names hush-agent itself".to_owned()));
    }
    Ok(pid)
}

/// Pids (other than ours) whose `comm` or executable file name is `name`.
fn find_by_name(name: &str) -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let comm_name = truncate_comm(name);
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let comm_matches = fs::read_to_string(dir.join("comm"))
            .is_ok_and(|c| c.trim_end_matches('\n').as_bytes() == comm_name);
        let exe_matches = || {
            fs::read_link(dir.join("exe")).is_ok_and(|p| p.file_name().is_some_and(|f| f == name))
        };
        if comm_matches || exe_matches() {
            if let Ok(pid) = i32::try_from(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn truncate_comm(name: &str) -> &[u8] {
    let b = name.as_bytes();
    &b[..b.len().min(COMM_LEN)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    fn spec(target: SignalTarget) -> SignalSpec {
        SignalSpec {
            signal: Signal::SIGTERM,
            target,
        }
    }

    #[test]
    fn pid_file_target_is_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let pidfile = tmp.path().join("app.pid");
        fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        send(&spec(SignalTarget::PidFile(pidfile))).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(15));
    }

    #[test]
    fn bad_pid_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.pid");
        let err = send(&spec(SignalTarget::PidFile(missing))).unwrap_err();
        assert!(matches!(err, NotifyError::PidFile { .. }), "{err}");

        let garbage = tmp.path().join("garbage.pid");
        fs::write(&garbage, "not a pid").unwrap();
        let err = send(&spec(SignalTarget::PidFile(garbage))).unwrap_err();
        assert!(err.to_string().contains("does not hold a pid"), "{err}");

        let ours = tmp.path().join("ours.pid");
        fs::write(&ours, std::process::id().to_string()).unwrap();
        let err = send(&spec(SignalTarget::PidFile(ours))).unwrap_err();
        assert!(err.to_string().contains("itself"), "{err}");

        for bad in ["0", "-1"] {
            let p = tmp.path().join("neg.pid");
            fs::write(&p, bad).unwrap();
            assert!(send(&spec(SignalTarget::PidFile(p))).is_err(), "{bad}");
        }
    }

    #[test]
    fn dead_pid_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let pidfile = tmp.path().join("dead.pid");
        fs::write(&pidfile, pid.to_string()).unwrap();
        let err = send(&spec(SignalTarget::PidFile(pidfile))).unwrap_err();
        assert!(matches!(err, NotifyError::ProcessGone { .. }), "{err}");
        assert!(err.to_string().contains("is not running"));
    }

    #[test]
    fn processes_are_found_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        // A copy of `sleep` under a name no other process has.
        let name = format!("hushsig{}", std::process::id() % 100_000);
        let exe = tmp.path().join(&name);
        let sleep = which("sleep");
        fs::copy(&sleep, &exe).unwrap();
        let mut a = Command::new(&exe).arg("60").spawn().unwrap();
        let mut b = Command::new(&exe).arg("60").spawn().unwrap();
        send(&spec(SignalTarget::ProcessName(name.clone()))).unwrap();
        assert_eq!(a.wait().unwrap().signal(), Some(15));
        assert_eq!(b.wait().unwrap().signal(), Some(15));
        let err = send(&spec(SignalTarget::ProcessName(name))).unwrap_err();
        assert!(matches!(err, NotifyError::NoProcess { .. }), "{err}");
    }

    #[test]
    fn never_signals_itself() {
        // Our own name matches this test binary, which must be left out. (Not sent: another
        // test's child between fork and exec carries the same name.)
        let own = fs::read_to_string("/proc/self/comm").unwrap();
        let pids = find_by_name(own.trim_end());
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(!pids.contains(&me), "{pids:?}");
    }

    #[test]
    fn long_names_match_the_truncated_comm() {
        assert_eq!(
            truncate_comm("a-very-long-process-name"),
            b"a-very-long-pro"
        );
        assert_eq!(truncate_comm("short"), b"short");
    }

    fn which(prog: &str) -> std::path::PathBuf {
        std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(prog))
                    .find(|p| p.is_file())
            })
            .unwrap()
    }
}

//! systemd's notify protocol (`sd_notify(3)`), shared by hushd and hush-agent: newline-separated
//! `KEY=VALUE` lines in one datagram to the unix socket named by `NOTIFY_SOCKET` — a path, or an
//! abstract name written `@name`. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! The `sd-notify` crate (0.5) connects to the variable's text as a path, so it cannot reach an
//! abstract socket (systemd's default for containers and `systemd-run --user`); these few lines
//! use std's datagram socket and its abstract addresses instead, with no `unsafe`.
//!
//! The environment is read once, by [`SdNotify::from_env`]; children a program starts should
//! not inherit it (see [`ENV_VARS`]).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The variables of the protocol: a process a service starts should not inherit them.
pub const ENV_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Where the service manager listens, and the watchdog it asked for.
#[derive(Debug)]
pub struct SdNotify {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

/// Why `NOTIFY_SOCKET` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SdNotifyError {
    /// Neither an absolute path nor `@name` (e.g. `vsock:`, which is not supported).
    #[error("NOTIFY_SOCKET {0:?} is neither an absolute path nor an abstract name (@name)")]
    Unsupported(String),
    #[error("cannot open a socket for NOTIFY_SOCKET {addr:?}: {err}")]
    Socket { addr: String, err: io::Error },
}

impl SdNotify {
    /// From the process environment: `None` without `NOTIFY_SOCKET` (not run by systemd's
    /// notify service types).
    pub fn from_env() -> Result<Option<SdNotify>, SdNotifyError> {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Self::new(&socket, watchdog).map(Some)
    }

    /// To the socket `notify_socket` (a path or `@name`), with this watchdog interval.
    pub fn new(notify_socket: &OsStr, watchdog: Option<Duration>) -> Result<Self, SdNotifyError> {
        let shown = notify_socket.to_string_lossy().into_owned();
        let bytes = notify_socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(notify_socket),
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            _ => return Err(SdNotifyError::Unsupported(shown)),
        }
        .map_err(|err| SdNotifyError::Socket {
            addr: shown.clone(),
            err,
        })?;
        let socket = UnixDatagram::unbound().map_err(|err| SdNotifyError::Socket {
            addr: shown.clone(),
            err,
        })?;
        // A service manager that stopped reading must never block the service.
        socket
            .set_nonblocking(true)
            .map_err(|err| SdNotifyError::Socket { addr: shown, err })?;
        Ok(SdNotify {
            socket,
            addr,
            watchdog,
        })
    }

    /// Send these lines (`READY=1`, `STATUS=...`) as one message. A line break inside a value
    /// would start another assignment: it is replaced by a space.
    pub fn send(&self, lines: &[&str]) -> io::Result<()> {
        let mut msg = String::new();
        for line in lines {
            msg.push_str(&line.replace('\n', " "));
            msg.push('\n');
        }
        let sent = self.socket.send_to_addr(msg.as_bytes(), &self.addr)?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notify message was cut short",
            ));
        }
        Ok(())
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), when the watchdog is on for
    /// this process.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// The watchdog timeout the manager asked for.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `WATCHDOG_USEC` when it is meant for `pid`: `WATCHDOG_PID`, when set, must name it (a
/// process that inherited the variables from a service is not the one watched). Zero or
/// unreadable values: no watchdog.
pub fn watchdog_interval(usec: Option<&str>, pid_var: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(p) = pid_var {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_for_the_named_pid_only() {
        let d = Some(Duration::from_secs(2));
        assert_eq!(watchdog_interval(Some("2000000"), None, 7), d);
        assert_eq!(watchdog_interval(Some("2000000"), Some("7"), 7), d);
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::new(path.as_os_str(), None).unwrap();
        n.send(&["READY=1", "STATUS=two\nlines"]).unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=two lines\n");

        let name = format!("hush-api-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = SdNotify::new(OsStr::new(&format!("@{name}")), None).unwrap();
        n.send(&["STOPPING=1"]).unwrap();
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\n");
    }

    #[test]
    fn other_addresses_are_refused() {
        let err = SdNotify::new(OsStr::new("vsock:2:1234"), None).unwrap_err();
        assert!(
            err.to_string().contains("neither an absolute path"),
            "{err}"
        );
    }
}

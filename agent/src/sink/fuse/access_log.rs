//! The access log: one JSON line per open (or, in fast cache mode, per lookup) of a secret file,
//! allowed or denied. Never the value.
//!
//! The FUSE callback only fills an [`AccessEvent`] (the clock, the caller's pid/uid/gid, its
//! executable and container, all read from procfs, which is memory) and hands it to a bounded
//! channel with `try_send`: a reader never waits on the log's I/O. A separate thread formats and
//! writes the lines; when the channel is full the event is dropped and counted
//! (`hush_fuse_access_log_dropped_total`).
//!
//! ```json
//! {"time":"2026-11-23T12:00:00.123456Z","event":"open","path":"/run/secrets/db.password",
//!  "file":"db.password","version":3,"generation":7,"pid":4242,"uid":1000,"gid":1000,
//!  "exe":"/usr/bin/python3.12","container":"3f9a...","result":"allowed"}
//! ```
//!
//! When the agent reports to hushd, the writer thread also turns each batch of events into
//! report accesses (with the API paths each file is made from) and appends them to the report
//! spool ([`ReportTap`]): one lock per batch, never on the open path.
//!
//! Denied opens add `"reason"`. `container` is the container or pod id found in the reader's
//! `/proc/PID/cgroup` (docker, containerd, cri-o, kubepods), or `null`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use crate::telemetry::spool::Spool;
use crate::telemetry::Metrics;
use hush_api::wire::agents::Access;

/// Events waiting for the writer thread; more are dropped (and counted).
const QUEUE: usize = 4096;
/// How long a pid's container id is reused before `/proc/PID/cgroup` is read again.
const CONTAINER_TTL: Duration = Duration::from_secs(2);
/// Pids remembered at most (the cache is cleared when full).
const CONTAINER_CACHE_MAX: usize = 1024;
/// `/proc/PID/exe` links kept open at most (for pids that open again).
const EXE_LINKS_MAX: usize = 64;
/// The longest executable path read in one go (the kernel's `PATH_MAX`); a longer one is
/// read again with an allocated buffer.
const EXE_BUF: usize = 4096;
/// After writing a batch the writer waits this long before taking the next: under load it
/// wakes at most this often instead of once per open (wake-ups cost readers most). Idle, it
/// blocks until an event comes.
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// What was done: `open` (audited mode) or `lookup` (fast mode: the kernel answers opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Open,
    Lookup,
}

/// Whether the access was let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied(&'static str),
}

impl Outcome {
    /// `allowed` or `denied` (the metrics label).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied(_) => "denied",
        }
    }
}

/// One access, as logged. Holds names and numbers only.
#[derive(Debug, Clone)]
pub struct AccessEvent {
    pub time: SystemTime,
    pub event: Event,
    /// The file's name; its path is the mount point joined with it.
    pub file: Arc<str>,
    pub version: u64,
    pub generation: u64,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Shared by the events of a reader while its executable stays the same.
    pub exe: Option<Arc<str>>,
    pub container: Option<Arc<str>>,
    pub outcome: Outcome,
}

/// The JSON line of an event, in field order.
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    event: &'static str,
    path: &'a str,
    file: &'a str,
    version: u64,
    generation: u64,
    pid: u32,
    uid: u32,
    gid: u32,
    exe: Option<&'a str>,
    container: Option<&'a str>,
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Turns events into lines, reusing its buffers: the writer thread's, so formatting costs
/// readers as little CPU as it can on a small machine.
#[derive(Debug)]
pub struct Formatter {
    /// The mount point as text, without a trailing `/`.
    dest: String,
    path: String,
    /// The whole seconds `time_prefix` shows (`YYYY-MM-DDTHH:MM:SS`, UTC).
    time_secs: Option<u64>,
    time_prefix: String,
    time: String,
}

impl Formatter {
    /// For files under the mount point `dest`.
    pub fn new(dest: &Path) -> Formatter {
        let dest = dest.to_string_lossy();
        Formatter {
            dest: dest.trim_end_matches('/').to_owned(),
            path: String::new(),
            time_secs: None,
            time_prefix: String::new(),
            time: String::new(),
        }
    }

    /// Writes the event's line, newline included.
    pub fn write(&mut self, event: &AccessEvent, out: &mut impl Write) -> io::Result<()> {
        self.fill(event);
        let line = Line {
            time: &self.time,
            event: match event.event {
                Event::Open => "open",
                Event::Lookup => "lookup",
            },
            path: &self.path,
            file: &event.file,
            version: event.version,
            generation: event.generation,
            pid: event.pid,
            uid: event.uid,
            gid: event.gid,
            exe: event.exe.as_deref(),
            container: event.container.as_deref(),
            result: event.outcome.label(),
            reason: match event.outcome {
                Outcome::Allowed => None,
                Outcome::Denied(reason) => Some(reason),
            },
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    }

    /// The time of the event last written (RFC 3339, microseconds, UTC).
    fn time(&self) -> &str {
        &self.time
    }

    /// The event's line without the newline.
    pub fn line(&mut self, event: &AccessEvent) -> String {
        let mut out = Vec::new();
        // Writing to memory cannot fail.
        let _ = self.write(event, &mut out);
        out.pop();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sets `path` and `time` (RFC 3339, microseconds, UTC; the date part is formatted once
    /// per second).
    fn fill(&mut self, event: &AccessEvent) {
        use std::fmt::Write as _;
        self.path.clear();
        self.path.push_str(&self.dest);
        self.path.push('/');
        self.path.push_str(&event.file);
        let since = event.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.time_secs != Some(secs) {
            let at = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
                .unwrap_or_default();
            self.time_prefix.clear();
            let _ = write!(self.time_prefix, "{}", at.format("%Y-%m-%dT%H:%M:%S"));
            self.time_secs = Some(secs);
        }
        self.time.clear();
        let _ = write!(
            self.time,
            "{}.{:06}Z",
            self.time_prefix,
            since.subsec_micros()
        );
    }
}

/// Where the writer thread leaves report accesses: the spool, and the API paths of each file.
#[derive(Debug)]
pub struct ReportTap {
    pub spool: Arc<Spool>,
    /// File name -> the API paths it is made from (shared by its accesses).
    pub paths: HashMap<String, Arc<[String]>>,
}

impl ReportTap {
    /// The report access of an event just written by `lines` (whose time it reuses): one
    /// allocation (the time); names and paths are shared with the event and the tap.
    fn access(&self, event: &AccessEvent, time: &str) -> Access {
        Access {
            time: time.to_owned(),
            event: Cow::Borrowed(match event.event {
                Event::Open => "open",
                Event::Lookup => "lookup",
            }),
            file: event.file.clone(),
            paths: self.paths.get(&*event.file).cloned().unwrap_or_default(),
            version: event.version,
            generation: event.generation,
            pid: event.pid,
            uid: event.uid,
            gid: event.gid,
            exe: event.exe.clone(),
            container: event.container.clone(),
            result: Cow::Borrowed(event.outcome.label()),
            reason: match event.outcome {
                Outcome::Allowed => None,
                Outcome::Denied(r) => Some(Cow::Borrowed(r)),
            },
        }
    }
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// The counters of accesses, kept so recording one needs no label lookup.
#[derive(Debug, Clone)]
struct Counters {
    open_allowed: Counter,
    open_denied: Counter,
    lookup_allowed: Counter,
    lookup_denied: Counter,
}

impl Counters {
    fn new(metrics: &Metrics) -> Counters {
        Counters {
            open_allowed: metrics.fuse_access_counter(false, "allowed"),
            open_denied: metrics.fuse_access_counter(false, "denied"),
            lookup_allowed: metrics.fuse_access_counter(true, "allowed"),
            lookup_denied: metrics.fuse_access_counter(true, "denied"),
        }
    }

    fn count(&self, event: &AccessEvent) {
        let counter = match (event.event, &event.outcome) {
            (Event::Open, Outcome::Allowed) => &self.open_allowed,
            (Event::Open, Outcome::Denied(_)) => &self.open_denied,
            (Event::Lookup, Outcome::Allowed) => &self.lookup_allowed,
            (Event::Lookup, Outcome::Denied(_)) => &self.lookup_denied,
        };
        counter.inc();
    }
}

/// The sending side, used from FUSE callbacks: never blocks.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<AccessEvent>,
    metrics: Arc<Metrics>,
    counters: Counters,
    procs: Arc<ProcCache>,
}

impl AccessLog {
    /// Opens the target (a file is created if missing and appended to) and starts the writer
    /// thread, which ends when every sender is gone. Paths are shown under `dest`. With
    /// `report`, every event also goes to the report spool.
    pub fn start(
        target: &Target,
        dest: &Path,
        metrics: Arc<Metrics>,
        report: Option<ReportTap>,
    ) -> io::Result<(AccessLog, JoinHandle<()>)> {
        let out: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        let formatter = Formatter::new(dest);
        let writer = std::thread::Builder::new()
            .name("hush-access-log".into())
            .spawn(move || write_lines(rx, out, formatter, report))?;
        Ok((AccessLog::with_sender(tx, metrics), writer))
    }

    fn with_sender(tx: SyncSender<AccessEvent>, metrics: Arc<Metrics>) -> AccessLog {
        AccessLog {
            tx,
            counters: Counters::new(&metrics),
            metrics,
            procs: Arc::new(ProcCache::default()),
        }
    }

    /// The reader's executable and container (from procfs), as they are now: the executable
    /// is read on every call (a process may have exec'd another program since its last open),
    /// into a reused buffer; the text is shared with the last event of the same pid when it
    /// has not changed, so a reader opening again costs one `readlink` and no allocation.
    pub fn process(&self, pid: u32) -> (Option<Arc<str>>, Option<Arc<str>>) {
        self.procs.process(pid)
    }

    /// Counts the access and queues its line; a full queue drops it (and counts the drop).
    pub fn record(&self, event: AccessEvent) {
        self.counters.count(&event);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.fuse_access_log_dropped();
            }
        }
    }
}

/// The writer thread: one line per event, flushed after each batch (what the queue holds);
/// with `report`, the batch's accesses go to the report spool too.
fn write_lines(
    rx: Receiver<AccessEvent>,
    out: Box<dyn Write + Send>,
    mut lines: Formatter,
    report: Option<ReportTap>,
) {
    let mut out = io::BufWriter::new(out);
    let mut failed = false;
    let mut first_batch = true;
    let mut accesses = Vec::new();
    while let Ok(first) = rx.recv() {
        if !first_batch {
            // Let the batch grow (a burst of opens then costs one wake-up).
            std::thread::sleep(BATCH_PAUSE);
        }
        first_batch = false;
        let mut next = Some(first);
        while let Some(event) = next {
            if let Err(e) = lines.write(&event, &mut out) {
                if !failed {
                    tracing::error!(error = %e, "cannot write the access log");
                    failed = true;
                }
            }
            if let Some(tap) = &report {
                accesses.push(tap.access(&event, lines.time()));
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_ok() {
            failed = false;
        }
        if let Some(tap) = &report {
            tap.spool.push(accesses.drain(..));
        }
    }
    let _ = out.flush();
}

/// `/proc/PID/LEAF` in `buf`, without allocating.
fn proc_path<'a>(pid: u32, leaf: &str, buf: &'a mut [u8; 32]) -> &'a str {
    use std::io::Write as _;
    let mut w = &mut buf[..];
    // 6 + 10 digits + 1 + a short leaf: fits.
    let _ = write!(w, "/proc/{pid}/{leaf}");
    let len = 32 - w.len();
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

/// `readlink` of `/proc/PID/exe` into `buf`, through `link` (that process's `exe` link, kept
/// open) when given: the length read. procfs works the link out on every read, so it names
/// the program the process runs now.
fn readlink_exe(pid: u32, link: Option<&OwnedFd>, buf: &mut [u8]) -> rustix::io::Result<usize> {
    match link {
        // An empty path: the symbolic link `link` itself (readlinkat(2), O_PATH | O_NOFOLLOW).
        Some(link) => rustix::fs::readlinkat_raw(link, "", buf),
        None => {
            let mut path = [0; 32];
            let path = proc_path(pid, "exe", &mut path);
            rustix::fs::readlinkat_raw(rustix::fs::CWD, path, buf)
        }
    }
}

/// `/proc/PID/exe` opened as the link itself (`O_PATH | O_NOFOLLOW`), for the `readlinkat`s
/// of a pid that opens again: no path lookup then. It stays that process's: once the process
/// is gone, reading it fails, even when its pid is another process's.
fn open_exe_link(pid: u32) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let mut path = [0; 32];
    let path = proc_path(pid, "exe", &mut path);
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty()).ok()
}

/// A reader's container or pod id, if any.
type Container = Option<Arc<str>>;

/// A reader process, as last seen.
#[derive(Debug)]
struct ProcInfo {
    /// Its executable when last read (shared by the events while it stays the same).
    exe: Option<Arc<str>>,
    container: Container,
    /// When `container` was read (`None`: not yet).
    container_at: Option<Instant>,
    /// Its `/proc/PID/exe` link, once it opens a second time.
    exe_link: Option<OwnedFd>,
}

#[derive(Debug)]
struct Procs {
    by_pid: HashMap<u32, ProcInfo>,
    /// `readlink`'s buffer, reused.
    buf: Vec<u8>,
    /// How many `ProcInfo::exe_link` are open.
    links: usize,
}

/// Readers by pid: their executable's text (re-read on every open, shared while unchanged)
/// and their container id (kept briefly: a reader opening many files is read once). Used
/// from the FUSE session thread: the lock is not contended.
#[derive(Debug)]
struct ProcCache {
    procs: Mutex<Procs>,
}

impl Default for ProcCache {
    fn default() -> ProcCache {
        ProcCache {
            procs: Mutex::new(Procs {
                by_pid: HashMap::new(),
                buf: vec![0; EXE_BUF],
                links: 0,
            }),
        }
    }
}

impl ProcCache {
    fn process(&self, pid: u32) -> (Option<Arc<str>>, Container) {
        use std::collections::hash_map::Entry;
        let now = Instant::now();
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        let Procs { by_pid, buf, links } = &mut *procs;
        if by_pid.len() >= CONTAINER_CACHE_MAX && !by_pid.contains_key(&pid) {
            by_pid.clear();
            *links = 0;
        }
        let info = match by_pid.entry(pid) {
            Entry::Occupied(seen) => {
                let info = seen.into_mut();
                // It opens again: read its exe link kept open (no path lookup).
                if info.exe_link.is_none() && *links < EXE_LINKS_MAX {
                    info.exe_link = open_exe_link(pid);
                    *links += usize::from(info.exe_link.is_some());
                }
                info
            }
            Entry::Vacant(new) => new.insert(ProcInfo {
                exe: None,
                container: None,
                container_at: None,
                exe_link: None,
            }),
        };
        let mut read = readlink_exe(pid, info.exe_link.as_ref(), buf);
        if read.is_err() && info.exe_link.take().is_some() {
            // That process is gone: the pid may be another's now.
            *links -= 1;
            info.container_at = None;
            read = readlink_exe(pid, None, buf);
        }
        info.exe = match read {
            Ok(n) if n < buf.len() => match &info.exe {
                Some(last) if last.as_bytes() == &buf[..n] => Some(last.clone()),
                _ => Some(String::from_utf8_lossy(&buf[..n]).into()),
            },
            // As long as the buffer: maybe cut, read again with an allocation.
            Ok(_) => {
                let mut path = [0; 32];
                std::fs::read_link(proc_path(pid, "exe", &mut path))
                    .ok()
                    .map(|p| p.to_string_lossy().into())
            }
            Err(_) => None,
        };
        if info
            .container_at
            .is_none_or(|at| now.duration_since(at) >= CONTAINER_TTL)
        {
            let mut path = [0; 32];
            info.container = std::fs::read_to_string(proc_path(pid, "cgroup", &mut path))
                .ok()
                .and_then(|text| container_id(&text))
                .map(Arc::from);
            info.container_at = Some(now);
        }
        (info.exe.clone(), info.container.clone())
    }
}

/// The container (or, failing that, pod) id in a `/proc/PID/cgroup` text: the 64-hex id of a
/// `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope` or `/docker/ID` segment, else
/// the pod uid of a `kubepods` path (`pod<uid>`, dashes or underscores). Cgroup v1 and v2.
pub fn container_id(cgroup: &str) -> Option<String> {
    let mut pod = None;
    for line in cgroup.lines() {
        // hierarchy-ID:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for segment in path.split('/') {
            let seg = segment.strip_suffix(".scope").unwrap_or(segment);
            let id = seg.rsplit(['-', ':']).next().unwrap_or(seg);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_ascii_lowercase());
            }
            if pod.is_none() && path.contains("kubepods") {
                let seg = seg.strip_suffix(".slice").unwrap_or(seg);
                if let Some(uid) = seg.rsplit_once("pod").map(|(_, u)| u) {
                    if uid.len() == 36 || uid.len() == 32 {
                        pod = Some(format!("pod{}", uid.replace('_', "-")));
                    }
                }
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn container_ids_from_cgroup_v2_and_v1() {
        let v2_containerd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(container_id(&v2_containerd).as_deref(), Some(ID));
        let v2_docker = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id(&v2_docker).as_deref(), Some(ID));
        let v1 = format!(
            "12:pids:/docker/{}\n11:memory:/docker/{}\n",
            ID.to_uppercase(),
            ID.to_uppercase()
        );
        assert_eq!(container_id(&v1).as_deref(), Some(ID), "lower-cased");
        let v1_k8s = format!(
            "4:cpu,cpuacct:/kubepods/besteffort/pod1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/{ID}\n"
        );
        assert_eq!(container_id(&v1_k8s).as_deref(), Some(ID));
        let crio = format!("0::/kubepods.slice/crio-{ID}.scope\n");
        assert_eq!(container_id(&crio).as_deref(), Some(ID));
    }

    #[test]
    fn pod_id_when_no_container_id() {
        let text = "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b3c4d_5e6f_4a7b_8c9d_0e1f2a3b4c5d.slice\n";
        assert_eq!(
            container_id(text).as_deref(),
            Some("pod1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
        );
    }

    #[test]
    fn no_container_on_a_plain_host() {
        assert_eq!(
            container_id("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(container_id("0::/\n"), None);
        assert_eq!(container_id("garbage"), None);
        // 64 characters, not all hex.
        let not_hex = format!("0::/docker-{}.scope\n", "z".repeat(64));
        assert_eq!(container_id(&not_hex), None);
    }

    fn event(outcome: Outcome) -> AccessEvent {
        AccessEvent {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            event: Event::Open,
            file: "db.password".into(),
            version: 3,
            generation: 7,
            pid: 4242,
            uid: 1000,
            gid: 1001,
            exe: Some("/usr/bin/cat".into()),
            container: None,
            outcome,
        }
    }

    #[test]
    fn line_shape_allowed_and_denied() {
        let mut lines = Formatter::new(Path::new("/run/secrets/"));
        let line = lines.line(&event(Outcome::Allowed));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(v["event"], "open");
        assert_eq!(v["path"], "/run/secrets/db.password");
        assert_eq!(v["file"], "db.password");
        assert_eq!(
            (v["version"].as_u64(), v["generation"].as_u64()),
            (Some(3), Some(7))
        );
        assert_eq!(
            (v["pid"].as_u64(), v["uid"].as_u64()),
            (Some(4242), Some(1000))
        );
        assert_eq!(v["gid"], 1001);
        assert_eq!(v["exe"], "/usr/bin/cat");
        assert!(v["container"].is_null());
        assert_eq!(v["result"], "allowed");
        assert!(v.get("reason").is_none());
        assert!(!line.contains('\n'));

        let v: serde_json::Value =
            serde_json::from_str(&lines.line(&event(Outcome::Denied("uid not allowed")))).unwrap();
        assert_eq!(v["result"], "denied");
        assert_eq!(v["reason"], "uid not allowed");
    }

    #[test]
    fn lines_reach_the_file_and_a_full_queue_counts_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let metrics = Arc::new(Metrics::new());
        let spool = Arc::new(Spool::new(100, None, 1000, metrics.report_spool_handles()).unwrap());
        let tap = ReportTap {
            spool: spool.clone(),
            paths: HashMap::from([(
                "db.password".to_owned(),
                Arc::from(["secret/data/app/db".to_owned()]),
            )]),
        };
        let (log, writer) = AccessLog::start(
            &Target::File(path.clone()),
            Path::new("/run/secrets"),
            metrics.clone(),
            Some(tap),
        )
        .unwrap();
        log.record(event(Outcome::Allowed));
        log.record(event(Outcome::Denied("uid not allowed")));
        drop(log);
        writer.join().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains("\"denied\""));
        // The same events, in order, wait in the report spool with their API paths.
        let shipped = spool.take(10);
        assert_eq!(shipped.len(), 2);
        let line0: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(shipped[0].time, line0["time"].as_str().unwrap());
        assert_eq!(&*shipped[0].paths, ["secret/data/app/db"]);
        assert_eq!(
            (shipped[0].pid, shipped[0].uid, shipped[0].gid),
            (4242, 1000, 1001)
        );
        assert_eq!(shipped[0].exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(
            (&*shipped[0].event, &*shipped[0].result),
            ("open", "allowed")
        );
        assert_eq!(shipped[1].result, "denied");
        assert_eq!(shipped[1].reason.as_deref(), Some("uid not allowed"));
        assert_eq!((shipped[1].version, shipped[1].generation), (3, 7));
        let m = metrics.encode();
        assert!(
            m.contains("hush_fuse_opens_total{result=\"allowed\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("hush_fuse_opens_total{result=\"denied\"} 1"),
            "{m}"
        );

        // No writer: every event beyond the queue is dropped, and counted.
        let (tx, _rx) = sync_channel(1);
        let log = AccessLog::with_sender(tx, metrics.clone());
        for _ in 0..3 {
            log.record(event(Outcome::Allowed));
        }
        let m = metrics.encode();
        assert!(m.contains("hush_fuse_access_log_dropped_total 2"), "{m}");
    }

    #[test]
    fn own_process_is_described() {
        let log = AccessLog::with_sender(sync_channel(1).0, Arc::new(Metrics::new()));
        let (exe, _container) = log.process(std::process::id());
        let me = std::env::current_exe().unwrap();
        assert_eq!(exe.as_deref(), Some(me.to_string_lossy().as_ref()));
        assert_eq!(log.process(u32::MAX), (None, None), "no such process");
        let (again, _) = log.process(std::process::id());
        assert!(
            Arc::ptr_eq(exe.as_ref().unwrap(), again.as_ref().unwrap()),
            "an unchanged executable's text is shared, not allocated again"
        );
    }

    #[test]
    fn a_process_that_execs_is_described_by_its_new_executable() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let which = |name: &str| {
            let path = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .unwrap()
                .stdout;
            let path = String::from_utf8(path).unwrap();
            std::fs::canonicalize(path.trim()).unwrap()
        };
        let (sh, sleep) = (which("sh"), which("sleep"));
        // A shell that waits for a line, then becomes `sleep` (same pid).
        let mut child = Command::new(&sh)
            .args(["-c", "read line; exec sleep 30"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let log = AccessLog::with_sender(sync_channel(1).0, Arc::new(Metrics::new()));
        let (before, _) = log.process(pid);
        assert_eq!(before.as_deref(), Some(sh.to_string_lossy().as_ref()));
        // Seen again: read through its kept exe link from now on.
        assert_eq!(log.process(pid).0, before);
        assert_eq!(log.procs.procs.lock().unwrap().links, 1);
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = before.clone();
        while after == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            after = log.process(pid).0;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            after.as_deref(),
            Some(sleep.to_string_lossy().as_ref()),
            "the executable is read again on every open, not kept per pid"
        );
        // Gone (and reaped): nothing is left to describe, and its exe link is let go.
        assert_eq!(log.process(pid), (None, None));
        assert_eq!(log.procs.procs.lock().unwrap().links, 0);
    }
}

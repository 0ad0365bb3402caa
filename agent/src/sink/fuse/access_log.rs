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
//! Denied opens add `"reason"`. `container` is the container or pod id found in the reader's
//! `/proc/PID/cgroup` (docker, containerd, cri-o, kubepods), or `null`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::telemetry::Metrics;

/// Events waiting for the writer thread; more are dropped (and counted).
const QUEUE: usize = 4096;
/// How long a pid's container id is reused before `/proc/PID/cgroup` is read again.
const CONTAINER_TTL: Duration = Duration::from_secs(2);
/// Pids remembered at most (the cache is cleared when full).
const CONTAINER_CACHE_MAX: usize = 1024;
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
    pub path: PathBuf,
    pub file: String,
    pub version: u64,
    pub generation: u64,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub exe: Option<String>,
    pub container: Option<String>,
    pub outcome: Outcome,
}

impl AccessEvent {
    /// The JSON line (without the newline).
    pub fn to_line(&self) -> String {
        let time = chrono::DateTime::<chrono::Utc>::from(self.time)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut v = json!({
            "time": time,
            "event": match self.event { Event::Open => "open", Event::Lookup => "lookup" },
            "path": self.path.to_string_lossy(),
            "file": self.file,
            "version": self.version,
            "generation": self.generation,
            "pid": self.pid,
            "uid": self.uid,
            "gid": self.gid,
            "exe": self.exe,
            "container": self.container,
            "result": self.outcome.label(),
        });
        if let (Outcome::Denied(reason), Some(map)) = (&self.outcome, v.as_object_mut()) {
            map.insert("reason".into(), json!(reason));
        }
        v.to_string()
    }
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// The sending side, used from FUSE callbacks: never blocks.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<AccessEvent>,
    metrics: Arc<Metrics>,
    procs: Arc<ProcCache>,
}

impl AccessLog {
    /// Opens the target (a file is created if missing and appended to) and starts the writer
    /// thread, which ends when every sender is gone.
    pub fn start(
        target: &Target,
        metrics: Arc<Metrics>,
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
        let writer = std::thread::Builder::new()
            .name("hush-access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok((
            AccessLog {
                tx,
                metrics,
                procs: Arc::new(ProcCache::default()),
            },
            writer,
        ))
    }

    /// The reader's executable and container (from procfs).
    pub fn process(&self, pid: u32) -> (Option<String>, Option<String>) {
        (exe(pid), self.procs.container(pid))
    }

    /// Counts the access and queues its line; a full queue drops it (and counts the drop).
    pub fn record(&self, event: AccessEvent) {
        self.metrics
            .fuse_access(event.event == Event::Lookup, event.outcome.label());
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.fuse_access_log_dropped();
            }
        }
    }
}

/// The writer thread: one line per event, flushed after each batch (what the queue holds).
fn write_lines(rx: Receiver<AccessEvent>, out: Box<dyn Write + Send>) {
    let mut out = io::BufWriter::new(out);
    let mut failed = false;
    let mut first_batch = true;
    while let Ok(first) = rx.recv() {
        if !first_batch {
            // Let the batch grow (a burst of opens then costs one wake-up).
            std::thread::sleep(BATCH_PAUSE);
        }
        first_batch = false;
        let mut next = Some(first);
        while let Some(event) = next {
            let line = event.to_line();
            if let Err(e) = writeln!(out, "{line}") {
                if !failed {
                    tracing::error!(error = %e, "cannot write the access log");
                    failed = true;
                }
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_ok() {
            failed = false;
        }
    }
    let _ = out.flush();
}

/// `readlink /proc/PID/exe`; `None` when the process is gone or not ours to see.
fn exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Container ids by pid, kept briefly: a reader opening many files is read once.
#[derive(Debug, Default)]
struct ProcCache {
    by_pid: Mutex<HashMap<u32, (Instant, Option<String>)>>,
}

impl ProcCache {
    fn container(&self, pid: u32) -> Option<String> {
        let now = Instant::now();
        {
            let cache = self.by_pid.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, id)) = cache.get(&pid) {
                if now.duration_since(*at) < CONTAINER_TTL {
                    return id.clone();
                }
            }
        }
        let id = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|text| container_id(&text));
        let mut cache = self.by_pid.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CONTAINER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pid, (now, id.clone()));
        id
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
            path: "/run/secrets/db.password".into(),
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
        let line = event(Outcome::Allowed).to_line();
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
            serde_json::from_str(&event(Outcome::Denied("uid not allowed")).to_line()).unwrap();
        assert_eq!(v["result"], "denied");
        assert_eq!(v["reason"], "uid not allowed");
    }

    #[test]
    fn lines_reach_the_file_and_a_full_queue_counts_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let metrics = Arc::new(Metrics::new());
        let (log, writer) = AccessLog::start(&Target::File(path.clone()), metrics.clone()).unwrap();
        log.record(event(Outcome::Allowed));
        log.record(event(Outcome::Denied("uid not allowed")));
        drop(log);
        writer.join().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains("\"denied\""));
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
        let log = AccessLog {
            tx,
            metrics: metrics.clone(),
            procs: Arc::default(),
        };
        for _ in 0..3 {
            log.record(event(Outcome::Allowed));
        }
        let m = metrics.encode();
        assert!(m.contains("hush_fuse_access_log_dropped_total 2"), "{m}");
    }

    #[test]
    fn own_process_is_described() {
        let log = AccessLog {
            tx: sync_channel(1).0,
            metrics: Arc::new(Metrics::new()),
            procs: Arc::default(),
        };
        let (exe, _container) = log.process(std::process::id());
        let me = std::env::current_exe().unwrap();
        assert_eq!(exe.as_deref(), Some(me.to_string_lossy().as_ref()));
        assert_eq!(log.process(u32::MAX), (None, None), "no such process");
    }
}

//! FUSE mode: the rendered files served from the agent's memory through a read-only
//! filesystem that logs who opened what.
//!
//! # Layout
//!
//! - [`tree`]: the immutable snapshot served (name -> bytes, mode, owner, version, uids), with
//!   stable inode numbers; rotations swap a whole new one in (`ArcSwap`).
//! - [`fs`]: the `fuser` callbacks over the current snapshot (audited and fast cache modes).
//! - [`access_log`]: one JSON line per open (or lookup), written by its own thread.
//! - [`mount`]: mount, unmount and stale-mount cleanup.
//!
//! # How it fits the agent
//!
//! The keeper hands each rendered set to [`TreeWriter`] (its [`Sink`]), which builds a new
//! [`tree::Tree`] from it in memory, swaps it in, and sends the changed inodes to the
//! invalidation thread, which drops the kernel's cached entries, attributes and pages through
//! `fuser`'s `Notifier` (never from inside a callback). Open handles keep the bytes they
//! opened. The secrets are never written to any filesystem.
//!
//! Lazy secrets ([`lazy`]): a file that reads one is a placeholder (listed, empty) until its
//! first open, which has the agent's loop lease the secret and is answered once the content is
//! in the tree.

pub mod access_log;
pub mod fs;
pub mod lazy;
pub mod mount;
pub mod tree;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use fuser::{BackgroundSession, INodeNo, Notifier};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use zeroize::Zeroizing;

use crate::config::{Config, FuseSettings};
use crate::retry::ErrorClass;
use crate::sink::{FileProjection, Sink, WriteError, WriteOutcome};
use crate::telemetry::spool::Spool;
use crate::telemetry::{Metrics, Observer};
use access_log::{AccessLog, Target};
use fs::{HushFs, Inval, Shared};
use lazy::Lazy;
pub use mount::FuseError;
use tree::{Change, Node, Tree, ROOT_INO};

/// A configured file as the sink shows it.
#[derive(Debug)]
struct FileSpec {
    name: Arc<str>,
    /// The uids allowed to open it (`None`: any the mode lets in).
    uids: Option<Arc<[u32]>>,
    /// It reads a lazy secret: shown as a placeholder while it has no content.
    lazy: bool,
    /// For its placeholder: mode, owner.
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A running FUSE sink: the mount, its snapshot, and the threads beside it.
#[derive(Debug)]
pub struct FuseSink {
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
    invalidator: Option<JoinHandle<()>>,
    log_writer: Option<JoinHandle<()>>,
    writer: Arc<TreeWriter>,
    /// Files whose lazy secrets an open asks for (taken by the agent's loop).
    requests: Option<UnboundedReceiver<usize>>,
}

impl FuseSink {
    /// Cleans a stale mount and mounts a filesystem on the destination: empty but for the
    /// placeholders of lazy files until the keeper's first set.
    pub fn start(
        config: &Config,
        settings: &FuseSettings,
        metrics: Arc<Metrics>,
        report: Option<Arc<Spool>>,
    ) -> Result<FuseSink, FuseError> {
        let dest = config.destination.path.clone();
        let target = match &settings.access_log {
            Some(path) => Target::File(path.clone()),
            None => Target::Stdout,
        };
        // Each file's API paths, worked out once here, for the writer thread's reports.
        let report = report.map(|spool| access_log::ReportTap {
            spool,
            paths: (0..config.files.len())
                .map(|i| (config.files[i].name.clone(), config.file_paths(i).into()))
                .collect(),
        });
        let (log, log_writer) =
            AccessLog::start(&target, &dest, metrics.clone(), report).map_err(|err| {
                FuseError::Io {
                    op: "open the access log",
                    path: settings
                        .access_log
                        .clone()
                        .unwrap_or_else(|| "stdout".into()),
                    err,
                }
            })?;
        mount::prepare_mount_point(&dest)?;
        let (tx, rx) = channel::<Inval>();
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let files: Vec<FileSpec> = config
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| FileSpec {
                name: Arc::from(f.name.as_str()),
                lazy: !config.lazy_sources(i).is_empty(),
                uids: f.uids.as_deref().map(Arc::from),
                mode: f.mode,
                uid: f.uid.unwrap_or(uid),
                gid: f.gid.unwrap_or(gid),
            })
            .collect();
        // Until the first write: the lazy files' placeholders.
        let mut tree = Tree::empty(files.len());
        let started = SystemTime::now();
        for (slot, file) in tree.files.iter_mut().zip(&files) {
            if file.lazy {
                *slot = Some(placeholder_node(file, 0, started));
            }
        }
        let (requests_tx, requests) = unbounded_channel();
        let shared = Arc::new(Shared {
            tree: ArcSwap::from_pointee(tree),
            dest: dest.clone(),
            cache: settings.cache,
            log,
            uid,
            gid,
            started,
            page_cache: Mutex::new(HashMap::new()),
            invalidate: Mutex::new(tx),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            lazy: Mutex::new(Lazy::new(requests_tx)),
        });
        let session = mount::mount(HushFs::new(shared.clone()), &dest)?;
        let notifier = session.notifier();
        let inval_shared = shared.clone();
        let invalidator = std::thread::Builder::new()
            .name("hush-fuse-inval".into())
            .spawn(move || invalidation_loop(&notifier, &inval_shared, rx))
            .map_err(|err| FuseError::Io {
                op: "start the invalidation thread for",
                path: dest.clone(),
                err,
            })?;
        tracing::info!(path = %dest.display(), cache = ?settings.cache, "mounted the FUSE filesystem");
        Ok(FuseSink {
            session: Some(session),
            invalidator: Some(invalidator),
            log_writer: Some(log_writer),
            writer: Arc::new(TreeWriter {
                shared: shared.clone(),
                files,
                versions: Arc::new(VersionTap {
                    inner: metrics,
                    versions: Mutex::new(HashMap::new()),
                }),
                generation: Mutex::new(0),
            }),
            shared,
            requests: Some(requests),
        })
    }

    /// The access log's writer thread, for a caller that waits for it after dropping the sink
    /// (its last events reach the report spool then); `stop` no longer waits for it.
    pub fn take_log_writer(&mut self) -> Option<JoinHandle<()>> {
        self.log_writer.take()
    }

    /// The keeper's sink: each set it writes becomes the served tree.
    pub fn writer(&self) -> Arc<dyn Sink> {
        self.writer.clone()
    }

    /// The observer to give the keeper: metrics, plus the versions the sink logs.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.writer.versions.clone()
    }

    /// The files (indexes) whose lazy secrets opens ask for; taken once, by the agent's loop.
    pub fn take_requests(&mut self) -> Option<UnboundedReceiver<usize>> {
        self.requests.take()
    }

    /// The files (indexes) that opens wait on.
    pub fn waited_files(&self) -> Vec<usize> {
        self.shared.waited_files()
    }

    /// Fails the opens waiting on file `file`: its lazy secret failed for good.
    pub fn fail_waiting(&self, file: usize, class: ErrorClass) {
        self.shared.fail_waiting(file, class);
    }

    /// Fails the opens that waited too long; returns the next deadline, if any wait.
    pub fn expire_waiting(&self, now: Instant) -> Option<Instant> {
        self.shared.expire_waiting(now);
        self.shared.next_deadline()
    }

    /// Unmounts (lazily) and stops the threads; the access log is flushed. Run on drop.
    fn stop(&mut self) {
        if let Some(session) = self.session.take() {
            mount::unmount(session, &self.shared.dest);
        }
        self.shared.send(Inval::Stop);
        if let Some(t) = self.invalidator.take() {
            let _ = t.join();
        }
        // The writer ends when the last sender (in the filesystem, now gone or going) drops;
        // do not wait on a reader still holding a file open on the detached mount.
        if let Some(t) = self.log_writer.take() {
            let deadline = std::time::Instant::now() + Duration::from_millis(300);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for FuseSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The invalidation thread: drops the kernel's cached pages, attributes and names of what
/// changed, then marks the inodes clean for their new content. `ENOENT` means the kernel had
/// nothing cached, which is fine.
fn invalidation_loop(notifier: &Notifier, shared: &Shared, rx: Receiver<Inval>) {
    while let Ok(Inval::Changes(changes)) = rx.recv() {
        for change in &changes {
            let (ino, id, result) = match change {
                Change::Content { ino, id } => {
                    (*ino, Some(*id), notifier.inval_inode(INodeNo(*ino), 0, 0))
                }
                Change::Entry { ino, name, id } => {
                    let entry = notifier.inval_entry(INodeNo(ROOT_INO), name.as_ref());
                    let inode = notifier.inval_inode(INodeNo(*ino), 0, 0);
                    (*ino, *id, entry.and(inode))
                }
            };
            match result {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) => {}
                Err(e) => {
                    tracing::warn!(change = ?change, error = %e, "could not invalidate a kernel cache");
                    continue;
                }
            }
            shared.mark_clean(ino, id);
        }
    }
}

/// The empty node shown for a lazy file before its first open.
fn placeholder_node(file: &FileSpec, generation: u64, now: SystemTime) -> Node {
    Node {
        name: file.name.clone(),
        data: Arc::new(Zeroizing::new(Vec::new())),
        mode: file.mode & 0o777,
        uid: file.uid,
        gid: file.gid,
        version: 0,
        uids: file.uids.clone(),
        mtime: now,
        id: generation,
        pending: true,
    }
}

/// The keeper's side of the FUSE sink: each set it writes becomes a new tree.
#[derive(Debug)]
pub struct TreeWriter {
    shared: Arc<Shared>,
    /// Per configured file, in inode order.
    files: Vec<FileSpec>,
    versions: Arc<VersionTap>,
    /// The generation of the last tree swapped in.
    generation: Mutex<u64>,
}

impl Sink for TreeWriter {
    /// Builds the tree of `set` (a lazy file not in it is a placeholder), swaps it in unless
    /// nothing changed, has the kernel's caches of what changed dropped, and answers the opens
    /// that waited for a lazy file now here. Never fails: it is all memory.
    fn write(&self, set: &BTreeMap<String, FileProjection>) -> Result<WriteOutcome, WriteError> {
        let mut current = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let generation = *current + 1;
        let now = SystemTime::now();
        let versions = self.versions.snapshot();
        let mut tree = Tree {
            generation,
            files: Vec::with_capacity(self.files.len()),
            mtime: Some(now),
        };
        for file in &self.files {
            let node = match set.get(&*file.name) {
                Some(p) => Some(Node {
                    name: file.name.clone(),
                    data: Arc::new(p.data.clone()),
                    mode: p.mode & 0o777,
                    uid: p.uid.unwrap_or(self.shared.uid),
                    gid: p.gid.unwrap_or(self.shared.gid),
                    version: versions.get(&*file.name).copied().unwrap_or(0),
                    uids: file.uids.clone(),
                    mtime: now,
                    id: generation,
                    pending: false,
                }),
                None if file.lazy => Some(placeholder_node(file, generation, now)),
                None => None,
            };
            tree.files.push(node);
        }
        let old = self.shared.tree.load_full();
        let changes = tree.changes_from(&old);
        if changes.is_empty() {
            return Ok(WriteOutcome {
                changed: false,
                generation: *current,
                changed_files: Vec::new(),
            });
        }
        let mut changed_files: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Content { ino, .. } => Tree::index(*ino)
                    .and_then(|i| self.files.get(i))
                    .map(|f| f.name.to_string())
                    .unwrap_or_default(),
                Change::Entry { name, .. } => name.clone(),
            })
            .collect();
        changed_files.sort();
        self.shared.tree.store(Arc::new(tree));
        *current = generation;
        drop(current);
        tracing::info!(generation, changed = changes.len(), "FUSE tree swapped");
        self.shared.send(Inval::Changes(changes));
        self.shared.answer_ready();
        Ok(WriteOutcome {
            changed: true,
            generation,
            changed_files,
        })
    }

    fn target(&self) -> &Path {
        &self.shared.dest
    }
}

/// The keeper's observer in FUSE mode: passes everything to the metrics and notes the secret
/// version of each rendered file, for the access log.
pub struct VersionTap {
    inner: Arc<Metrics>,
    versions: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for VersionTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionTap").finish_non_exhaustive()
    }
}

impl VersionTap {
    fn snapshot(&self) -> HashMap<String, u64> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Observer for VersionTap {
    fn store(&self, op: &'static str, outcome: &'static str, elapsed: Duration) {
        Observer::store(self.inner.as_ref(), op, outcome, elapsed);
    }
    fn token_ttl(&self, secs: u64) {
        Observer::token_ttl(self.inner.as_ref(), secs);
    }
    fn lease(&self, secret: &str, expires: Option<SystemTime>) {
        Observer::lease(self.inner.as_ref(), secret, expires);
    }
    fn render_ok(&self, file: &str, version: u64, created: SystemTime) {
        Observer::render_ok(self.inner.as_ref(), file, version, created);
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(file.to_owned(), version);
    }
    fn render_error(&self, file: &str) {
        Observer::render_error(self.inner.as_ref(), file);
    }
    fn write_error(&self) {
        Observer::write_error(self.inner.as_ref());
    }
}

//! The `fuser` callbacks: a thin read-only adapter over the current [`Tree`].
//!
//! - **audited** (default): every open reaches here. It is checked (read-only, the file's uid
//!   list), logged, and given a handle that keeps the bytes it opened. Reads come from the
//!   kernel's page cache (`FOPEN_KEEP_CACHE`) when that is known to hold exactly this version:
//!   its pages and attributes were invalidated since the content last changed, and no handle
//!   of another version that reads through the cache is open (the page cache is per inode,
//!   shared by every handle). Otherwise the handle uses direct I/O and reads its own bytes
//!   from here. Either way a handle reads the version it opened.
//! - **fast**: `open` answers `ENOSYS`, so the kernel stops asking (`no_open`) and serves opens
//!   and reads from its page cache (`FOPEN_KEEP_CACHE` by default), with long entry and
//!   attribute TTLs. Accesses are logged per lookup; on a rotation the notifier thread drops
//!   the cached pages, so a handle may see the new version at its next uncached read.
//!
//! Everything that would change the tree answers `EROFS` (the mount is `ro` as well).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::access_log::{AccessEvent, AccessLog, Event, Outcome};
use super::tree::{Bytes, Change, Node, Tree, ROOT_INO};
use crate::config::FuseCache;

/// Entry and attribute TTL in audited mode: opens reach the agent whatever the TTL; rotations
/// invalidate explicitly, this only bounds staleness should an invalidation be lost.
const AUDITED_TTL: Duration = Duration::from_secs(1);
/// Entry and attribute TTL in fast mode (rotations invalidate explicitly).
const FAST_TTL: Duration = Duration::from_secs(3600);
/// Mode of the root directory.
const ROOT_MODE: u16 = 0o755;

/// Reasons in the access log for denied opens.
pub const DENIED_UID: &str = "uid not in the file's uids list";
pub const DENIED_WRITE: &str = "opened for writing; the filesystem is read-only";

/// Work for the invalidation thread (it talks to the kernel; callbacks never do).
#[derive(Debug)]
pub enum Inval {
    /// Drop the kernel's caches of these changes, then mark the inodes clean.
    Changes(Vec<Change>),
    Stop,
}

/// Per inode (audited mode): may opens read through the kernel's page cache?
#[derive(Debug, Default)]
pub struct PageCache {
    /// The content id the kernel's cached pages and attributes are known to match.
    clean: Option<u64>,
    /// The content id of the open handles that read through the page cache, and their count.
    cached_id: u64,
    cached_open: usize,
}

/// State shared between the filesystem callbacks and the agent (which swaps trees).
#[derive(Debug)]
pub struct Shared {
    pub tree: ArcSwap<Tree>,
    /// The mount point (access-log paths are under it).
    pub dest: PathBuf,
    pub cache: FuseCache,
    pub log: AccessLog,
    /// Owner of the root directory (the agent).
    pub uid: u32,
    pub gid: u32,
    pub started: SystemTime,
    pub page_cache: Mutex<HashMap<u64, PageCache>>,
    /// To the invalidation thread.
    pub invalidate: Mutex<Sender<Inval>>,
}

impl Shared {
    pub fn page_cache(&self) -> MutexGuard<'_, HashMap<u64, PageCache>> {
        self.page_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues work for the invalidation thread (never blocks).
    pub fn send(&self, work: Inval) {
        let tx = self.invalidate.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(work);
    }

    /// After the kernel's caches of `ino` were dropped: they now match content `id`, unless a
    /// handle of another version still reads through them (it would refill them).
    pub fn mark_clean(&self, ino: u64, id: Option<u64>) {
        let mut pc = self.page_cache();
        let state = pc.entry(ino).or_default();
        let other_reader = state.cached_open > 0 && Some(state.cached_id) != id;
        state.clean = if other_reader { None } else { id };
    }
}

/// An open file: the bytes it opened, and whether it reads through the page cache.
#[derive(Debug)]
struct Handle {
    data: Bytes,
    ino: u64,
    id: u64,
    cached: bool,
}

/// The filesystem handed to `fuser`.
#[derive(Debug)]
pub struct HushFs {
    shared: Arc<Shared>,
    /// Open handles by number.
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
}

impl HushFs {
    pub fn new(shared: Arc<Shared>) -> HushFs {
        HushFs {
            shared,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn ttl(&self) -> Duration {
        match self.shared.cache {
            FuseCache::Audited => AUDITED_TTL,
            FuseCache::Fast => FAST_TTL,
        }
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn root_attr(&self, tree: &Tree) -> FileAttr {
        let t = tree.mtime.unwrap_or(self.shared.started);
        attr(
            ROOT_INO,
            FileType::Directory,
            0,
            ROOT_MODE,
            (self.shared.uid, self.shared.gid),
            t,
        )
    }

    /// Logs one access of `node` by the caller of `req`.
    fn log(&self, req: &Request, event: Event, node: &Node, generation: u64, outcome: Outcome) {
        let (exe, container) = self.shared.log.process(req.pid());
        self.shared.log.record(AccessEvent {
            time: SystemTime::now(),
            event,
            path: self.shared.dest.join(&node.name),
            file: node.name.clone(),
            version: node.version,
            generation,
            pid: req.pid(),
            uid: req.uid(),
            gid: req.gid(),
            exe,
            container,
            outcome,
        });
    }
}

fn attr(
    ino: u64,
    kind: FileType,
    size: u64,
    perm: u16,
    owner: (u32, u32),
    t: SystemTime,
) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: owner.0,
        gid: owner.1,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn file_attr(ino: u64, node: &Node) -> FileAttr {
    attr(
        ino,
        FileType::RegularFile,
        node.data.len() as u64,
        (node.mode & 0o777) as u16,
        (node.uid, node.gid),
        node.mtime,
    )
}

impl Filesystem for HushFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let tree = self.shared.tree.load();
        let found = name
            .to_str()
            .filter(|_| parent.0 == ROOT_INO)
            .and_then(|n| tree.lookup(n));
        let Some((ino, node)) = found else {
            return reply.error(Errno::ENOENT);
        };
        if self.shared.cache == FuseCache::Fast {
            self.log(req, Event::Lookup, node, tree.generation, Outcome::Allowed);
        }
        reply.entry(&self.ttl(), &file_attr(ino, node), Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let tree = self.shared.tree.load();
        if ino.0 == ROOT_INO {
            return reply.attr(&self.ttl(), &self.root_attr(&tree));
        }
        let node = tree.node(ino.0);
        // Asked for an open handle of an older version (the kernel sizes page-cache reads by
        // it): that version's size, not to be cached.
        if let Some(fh) = fh {
            if let Some(h) = self.handles().get(&fh.0) {
                if node.is_none_or(|n| n.id != h.id) {
                    let mut a = attr(
                        ino.0,
                        FileType::RegularFile,
                        h.data.len() as u64,
                        0o400,
                        (self.shared.uid, self.shared.gid),
                        self.shared.started,
                    );
                    if let Some(n) = node {
                        a.perm = (n.mode & 0o777) as u16;
                        (a.uid, a.gid) = (n.uid, n.gid);
                    }
                    return reply.attr(&Duration::ZERO, &a);
                }
            }
        }
        match node {
            Some(node) => reply.attr(&self.ttl(), &file_attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.shared.cache == FuseCache::Fast {
            // The kernel then opens by itself from now on (no_open, pages kept).
            return reply.error(Errno::ENOSYS);
        }
        let tree = self.shared.tree.load();
        let Some(node) = tree.node(ino.0) else {
            return reply.error(if ino.0 == ROOT_INO {
                Errno::EISDIR
            } else {
                Errno::ENOENT
            });
        };
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            self.log(
                req,
                Event::Open,
                node,
                tree.generation,
                Outcome::Denied(DENIED_WRITE),
            );
            return reply.error(Errno::EROFS);
        }
        if !node.uid_allowed(req.uid()) {
            self.log(
                req,
                Event::Open,
                node,
                tree.generation,
                Outcome::Denied(DENIED_UID),
            );
            return reply.error(Errno::EACCES);
        }
        let cached = {
            let mut pc = self.shared.page_cache();
            let state = pc.entry(ino.0).or_default();
            let other_reader = state.cached_open > 0 && state.cached_id != node.id;
            let ok = !other_reader && state.clean == Some(node.id);
            if ok {
                state.cached_id = node.id;
                state.cached_open += 1;
            }
            ok
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(
            fh,
            Handle {
                data: node.data.clone(),
                ino: ino.0,
                id: node.id,
                cached,
            },
        );
        self.log(req, Event::Open, node, tree.generation, Outcome::Allowed);
        let flags = if cached {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::FOPEN_DIRECT_IO
        };
        reply.opened(FileHandle(fh), flags);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A handle reads the version it opened; without one (fast mode) the current version.
        let held = self.handles().get(&fh.0).map(|h| h.data.clone());
        let data = match held {
            Some(d) => d,
            None => match self.shared.tree.load().node(ino.0) {
                Some(node) => node.data.clone(),
                None => return reply.error(Errno::ENOENT),
            },
        };
        let len = data.len() as u64;
        let start = offset.min(len) as usize;
        let end = offset.saturating_add(u64::from(size)).min(len) as usize;
        reply.data(&data[start..end]);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let handle = self.handles().remove(&fh.0);
        reply.ok();
        let Some(h) = handle.filter(|h| h.cached) else {
            return;
        };
        let current = self.shared.tree.load().node(h.ino).map(|n| n.id);
        let mut pc = self.shared.page_cache();
        let state = pc.entry(h.ino).or_default();
        state.cached_open = state.cached_open.saturating_sub(1);
        if state.cached_open == 0 && current != Some(h.id) {
            // The last reader of an old version through the cache: its pages may be there
            // again; have them dropped (by the invalidation thread) before the cache is used.
            state.clean = None;
            drop(pc);
            if let Some(id) = current {
                self.shared
                    .send(Inval::Changes(vec![Change::Content { ino: h.ino, id }]));
            }
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT_INO {
            return reply.error(Errno::ENOTDIR);
        }
        let tree = self.shared.tree.load();
        let dots = [
            (ROOT_INO, FileType::Directory, "."),
            (ROOT_INO, FileType::Directory, ".."),
        ];
        let files = tree.files.iter().enumerate().filter_map(|(i, n)| {
            n.as_ref()
                .map(|n| (Tree::ino(i), FileType::RegularFile, n.name.as_str()))
        });
        let entries = dots.into_iter().chain(files);
        for (i, (ino, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    // Not supported, quietly (fuser's defaults log each call): the kernel stops asking.

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    // Everything below would change the tree: read-only.

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }
}

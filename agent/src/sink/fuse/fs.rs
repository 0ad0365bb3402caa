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
use super::lazy::{Lazy, Waiter};
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
    /// Their content's length.
    cached_len: u64,
}

impl PageCache {
    /// An open of content `id` (`len` bytes): may it read through the page cache? Counted if
    /// so.
    fn open(&mut self, id: u64, len: u64) -> bool {
        let other_reader = self.cached_open > 0 && self.cached_id != id;
        let ok = !other_reader && self.clean == Some(id);
        if ok {
            self.cached_id = id;
            self.cached_len = len;
            self.cached_open += 1;
        }
        ok
    }

    /// The size to show for content `id` of `len` bytes, when it is not simply `len`: while
    /// handles of another version read through the page cache, the kernel bounds their reads
    /// by the inode's one size, so it must cover theirs too (new handles use direct I/O, which
    /// the size does not bound).
    fn overlap_size(&self, id: u64, len: u64) -> Option<u64> {
        (self.cached_open > 0 && self.cached_id != id).then(|| len.max(self.cached_len))
    }

    /// A handle that read through the cache was released; `current` is the file's content id
    /// now. True when the cache must be invalidated again before use: the last reader of an
    /// older version is gone and may have refilled it with that version's pages.
    fn release(&mut self, current: Option<u64>) -> bool {
        self.cached_open = self.cached_open.saturating_sub(1);
        let stale = self.cached_open == 0 && current != Some(self.cached_id);
        if stale {
            self.clean = None;
        }
        stale
    }

    /// The kernel's caches were just dropped: they now match content `id` (`None`: the file
    /// is gone), unless a handle of another version still reads through them.
    fn invalidated(&mut self, id: Option<u64>) {
        let other_reader = self.cached_open > 0 && Some(self.cached_id) != id;
        self.clean = if other_reader { None } else { id };
    }
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
    /// Open handles by number.
    pub handles: Mutex<HashMap<u64, Handle>>,
    pub next_fh: AtomicU64,
    /// Opens (and fast-mode lookups) waiting for a lazy secret.
    pub lazy: Mutex<Lazy>,
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
        self.page_cache().entry(ino).or_default().invalidated(id);
    }

    pub fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lazy(&self) -> MutexGuard<'_, Lazy> {
        self.lazy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entry and attribute TTL for the cache mode.
    pub fn ttl(&self) -> Duration {
        match self.cache {
            FuseCache::Audited => AUDITED_TTL,
            FuseCache::Fast => FAST_TTL,
        }
    }

    /// A handle on `node` (inode `ino`), kept, and the open flags to reply with: the page
    /// cache when it holds exactly this version, direct I/O otherwise.
    pub fn open_handle(&self, ino: u64, node: &Node) -> (FileHandle, FopenFlags) {
        let (fh, flags, handle) = self.new_handle(ino, node);
        self.keep_handle(fh, handle);
        (fh, flags)
    }

    /// A handle on `node` (inode `ino`), not kept yet (see [`Shared::keep_handle`]), and the
    /// open flags to reply with (the page cache's accounting is done).
    pub fn new_handle(&self, ino: u64, node: &Node) -> (FileHandle, FopenFlags, Handle) {
        let cached = self
            .page_cache()
            .entry(ino)
            .or_default()
            .open(node.id, node.data.len() as u64);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            data: node.data.clone(),
            ino,
            id: node.id,
            cached,
        };
        let flags = if cached {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::FOPEN_DIRECT_IO
        };
        (FileHandle(fh), flags, handle)
    }

    /// Keeps `handle` under `fh`, for the reads and the release that follow.
    pub fn keep_handle(&self, fh: FileHandle, handle: Handle) {
        self.handles().insert(fh.0, handle);
    }

    /// A file's attributes and their TTL; while old versions are read through the page cache,
    /// a size covering them, not to be cached (see [`PageCache::overlap_size`]).
    pub fn node_attr(&self, ino: u64, node: &Node) -> (FileAttr, Duration) {
        let mut attr = file_attr(ino, node);
        let overlap = self
            .page_cache()
            .get(&ino)
            .and_then(|pc| pc.overlap_size(node.id, attr.size));
        match overlap {
            Some(size) => {
                attr.size = size;
                (attr, Duration::ZERO)
            }
            None => (attr, self.ttl()),
        }
    }

    /// Logs one access of `node` by `who`.
    pub fn log(&self, who: Who, event: Event, node: &Node, generation: u64, outcome: Outcome) {
        self.log.record(AccessEvent {
            time: SystemTime::now(),
            event,
            file: node.name.clone(),
            version: node.version,
            generation,
            pid: who.pid,
            uid: who.uid,
            gid: who.gid,
            exe: who.exe,
            container: who.container,
            outcome,
        });
    }
}

/// The process behind a request, as logged: read while it waits on the request (it cannot
/// exit or exec meanwhile).
#[derive(Debug, Clone)]
pub struct Who {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub exe: Option<Arc<str>>,
    pub container: Option<Arc<str>>,
}

impl Who {
    fn of(req: &Request, log: &AccessLog) -> Who {
        let (exe, container) = log.process(req.pid());
        Who {
            pid: req.pid(),
            uid: req.uid(),
            gid: req.gid(),
            exe,
            container,
        }
    }
}

/// An open file: the bytes it opened, and whether it reads through the page cache.
#[derive(Debug)]
pub struct Handle {
    data: Bytes,
    ino: u64,
    id: u64,
    cached: bool,
}

/// The filesystem handed to `fuser`.
#[derive(Debug)]
pub struct HushFs {
    shared: Arc<Shared>,
}

impl HushFs {
    pub fn new(shared: Arc<Shared>) -> HushFs {
        HushFs { shared }
    }

    fn ttl(&self) -> Duration {
        self.shared.ttl()
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.shared.handles()
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

    fn node_attr(&self, ino: u64, node: &Node) -> (FileAttr, Duration) {
        self.shared.node_attr(ino, node)
    }

    /// Logs one access of `node` by the caller of `req`.
    fn log(&self, req: &Request, event: Event, node: &Node, generation: u64, outcome: Outcome) {
        let who = Who::of(req, &self.shared.log);
        self.shared.log(who, event, node, generation, outcome);
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
        if self.shared.cache == FuseCache::Fast && node.pending {
            // Fast mode: opens never reach the agent, so the first lookup leases.
            let who = Who::of(req, &self.shared.log);
            return self
                .shared
                .wait_for_content(ino, Waiter::Lookup(reply), who);
        }
        if self.shared.cache == FuseCache::Fast {
            self.log(req, Event::Lookup, node, tree.generation, Outcome::Allowed);
        }
        let (attr, ttl) = self.node_attr(ino, node);
        reply.entry(&ttl, &attr, Generation(0));
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
            Some(node) => {
                let (attr, ttl) = self.node_attr(ino.0, node);
                reply.attr(&ttl, &attr)
            }
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
        if node.pending {
            // A lazy secret: leased now; the open is answered once it is here.
            let who = Who::of(req, &self.shared.log);
            return self
                .shared
                .wait_for_content(ino.0, Waiter::Open(reply), who);
        }
        // Before the reply: the reader's executable (read while the reader waits, so it cannot
        // have exec'd another program) and the page cache's answer (the flags). After it, while
        // the reader goes on: keeping the handle and queuing the event. This is the session's
        // only thread (`mount::session_config`), so the handle is kept before the reader's next request.
        let who = Who::of(req, &self.shared.log);
        let (fh, flags, handle) = self.shared.new_handle(ino.0, node);
        reply.opened(fh, flags);
        self.shared.keep_handle(fh, handle);
        self.shared
            .log(who, Event::Open, node, tree.generation, Outcome::Allowed);
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
        let stale = self
            .shared
            .page_cache()
            .entry(h.ino)
            .or_default()
            .release(current);
        // Its pages may be an old version's again: have them dropped (by the invalidation
        // thread) before the cache is used.
        if let (true, Some(id)) = (stale, current) {
            self.shared
                .send(Inval::Changes(vec![Change::Content { ino: h.ino, id }]));
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
                .map(|n| (Tree::ino(i), FileType::RegularFile, &*n.name))
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

#[cfg(test)]
mod tests {
    use super::PageCache;

    #[test]
    fn the_cache_is_used_only_once_invalidated_for_that_version() {
        let mut pc = PageCache::default();
        assert!(!pc.open(1, 10), "nothing known yet: direct I/O");
        pc.invalidated(Some(1));
        assert!(pc.open(1, 10) && pc.open(1, 10), "clean for version 1");
        assert!(!pc.open(2, 20), "version 2 before its invalidation");
    }

    #[test]
    fn a_rotation_with_old_readers_open_keeps_new_opens_direct_until_they_close() {
        let mut pc = PageCache::default();
        pc.invalidated(Some(1));
        assert!(pc.open(1, 10));
        assert_eq!(pc.overlap_size(1, 10), None);
        // Rotation to 2: caches dropped, but the version-1 reader may refill them.
        pc.invalidated(Some(2));
        assert!(!pc.open(2, 20), "another version reads through the cache");
        assert_eq!(pc.overlap_size(2, 20), Some(20));
        assert_eq!(
            pc.overlap_size(2, 5),
            Some(10),
            "covers the old reader's length"
        );
        assert!(
            pc.release(Some(2)),
            "last old reader gone: invalidate again"
        );
        assert!(!pc.open(2, 20), "not before that invalidation");
        pc.invalidated(Some(2));
        assert!(pc.open(2, 20));
        assert!(
            !pc.release(Some(2)),
            "a current-version reader leaves the cache clean"
        );
        assert!(pc.open(2, 20));
    }

    #[test]
    fn same_version_readers_share_the_cache_and_removal_clears_it() {
        let mut pc = PageCache::default();
        pc.invalidated(Some(3));
        assert!(pc.open(3, 30) && pc.open(3, 30));
        assert!(!pc.release(Some(3)) && !pc.release(Some(3)));
        pc.invalidated(None);
        assert!(!pc.open(3, 30), "the file went away");
        // Released while the file is gone: stale, nothing to re-invalidate for.
        let mut pc = PageCache::default();
        pc.invalidated(Some(4));
        assert!(pc.open(4, 40));
        assert!(pc.release(None));
    }
}

//! The floor: a filesystem that does nothing but serve one file, mounted with the same `fuser`
//! version and options as `hush-agent --fuse` and answering an open the way audited mode does
//! (a handle, `FOPEN_KEEP_CACHE`, a release). What it costs is the kernel's FUSE round trips
//! alone (open, then the release of the close); the agent's audited mode pays the same trips
//! plus its own work per open (the checks, `/proc/PID/exe`, the access-log event).

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen,
    Request,
};

/// The TTL audited mode gives entries and attributes.
const TTL: Duration = Duration::from_secs(1);
const FILE_INO: u64 = 2;

/// One read-only file, `name`, holding `data`.
pub struct Floor {
    pub name: String,
    pub data: Vec<u8>,
}

impl Floor {
    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, perm, size) = if ino == FILE_INO {
            (FileType::RegularFile, 0o444, self.data.len() as u64)
        } else {
            (FileType::Directory, 0o755, 0)
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl Filesystem for Floor {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == 1 && name == OsStr::new(&self.name) {
            reply.entry(&TTL, &self.attr(FILE_INO), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.attr(&TTL, &self.attr(ino.0));
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(1), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let len = self.data.len() as u64;
        let start = offset.min(len) as usize;
        let end = offset.saturating_add(u64::from(size)).min(len) as usize;
        reply.data(&self.data[start..end]);
    }

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

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }
}

/// Mounts `floor` on `dest` with the agent's session settings.
pub fn mount(floor: Floor, dest: &Path) -> std::io::Result<BackgroundSession> {
    fuser::spawn_mount(
        floor,
        dest,
        &hush_agent::sink::fuse::mount::session_config(),
    )
}

//! Where secrets may be written: only memory-backed filesystems (tmpfs, ramfs), unless the
//! operator accepts the risk of a disk; and mounting a tmpfs for the agent when it may.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::statfs::{statfs, FsType};

/// `statfs(2)` magic numbers of the memory-backed filesystems (linux/magic.h).
const TMPFS_MAGIC: u32 = 0x0102_1994;
const RAMFS_MAGIC: u32 = 0x8584_58F6;

/// What a destination is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// tmpfs: memory (and swap, if the node has any).
    Tmpfs,
    /// ramfs: memory only, no size limit.
    Ramfs,
    /// A disk-backed (or unknown) filesystem, accepted because disk was allowed.
    DiskBacked {
        /// `ext4`, `xfs`, `overlayfs`, ... or the magic number in hex.
        fs_type: String,
    },
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsKind::Tmpfs => f.write_str("tmpfs"),
            FsKind::Ramfs => f.write_str("ramfs"),
            FsKind::DiskBacked { fs_type } => write!(f, "{fs_type} (disk-backed)"),
        }
    }
}

/// Why a destination was refused or could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    /// The destination is on a filesystem that may keep secrets on disk.
    #[error(
        "refusing to write secrets to {}: it is on {fs_type} (disk-backed); use a tmpfs \
         (or --mount-tmpfs), or pass --allow-disk to accept the risk",
        path.display()
    )]
    DiskBacked { path: PathBuf, fs_type: String },
    /// `statfs` failed (missing directory, no permission...).
    #[error("cannot inspect {}: {err}", path.display())]
    Stat { path: PathBuf, err: Errno },
    /// Mounting needs privileges the agent does not have.
    #[error(
        "cannot mount a tmpfs on {}: it needs CAP_SYS_ADMIN (run the agent with that capability, \
         or mount a tmpfs there yourself, e.g. an emptyDir with medium: Memory)",
        path.display()
    )]
    MountDenied { path: PathBuf },
    /// Another mount or unmount failure.
    #[error("cannot {op} a tmpfs on {}: {err}", path.display())]
    Mount {
        op: &'static str,
        path: PathBuf,
        err: Errno,
    },
    /// A mode with more than permission bits.
    #[error("bad mode {mode:#o} for the tmpfs on {}", path.display())]
    BadMode { path: PathBuf, mode: u32 },
    /// Creating the mount point failed.
    #[error("cannot create {}: {err}", path.display())]
    CreateDir { path: PathBuf, err: std::io::Error },
}

/// A name for a filesystem magic number (`statfs(2)`'s `f_type`).
fn fs_type_name(magic: u32) -> String {
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x0102_1997 => "9p",
        0x6573_5546 => "fuse",
        0x7371_7368 => "squashfs",
        0x4D44 => "vfat",
        0x5346_544E => "ntfs",
        0x00C3_6400 => "ceph",
        0x6165_676C => "pstorefs",
        0x6A65_6A65 => "virtiofs",
        _ => return format!("{magic:#x}"),
    };
    name.to_owned()
}

fn magic(t: FsType) -> u32 {
    // `f_type` is a signed or unsigned word depending on the libc; the magic fits in 32 bits.
    t.0 as u32
}

/// Checks that `dir` is on tmpfs or ramfs. Anything else is refused, unless `allow_disk`, in
/// which case it is reported as [`FsKind::DiskBacked`] (and logged as a warning).
pub fn check_destination(dir: &Path, allow_disk: bool) -> Result<FsKind, DestError> {
    let st = statfs(dir).map_err(|err| DestError::Stat {
        path: dir.to_path_buf(),
        err,
    })?;
    let t = magic(st.filesystem_type());
    if t == TMPFS_MAGIC {
        return Ok(FsKind::Tmpfs);
    }
    if t == RAMFS_MAGIC {
        return Ok(FsKind::Ramfs);
    }
    let fs_type = fs_type_name(t);
    if allow_disk {
        tracing::warn!(
            path = %dir.display(),
            fs_type = %fs_type,
            "writing secrets to a disk-backed filesystem (--allow-disk)"
        );
        Ok(FsKind::DiskBacked { fs_type })
    } else {
        Err(DestError::DiskBacked {
            path: dir.to_path_buf(),
            fs_type,
        })
    }
}

/// Mounts a tmpfs of `size_bytes` on `dir` (created if missing) with root mode `mode`,
/// `nosuid,nodev,noexec`.
pub fn mount_tmpfs(dir: &Path, size_bytes: u64, mode: u32) -> Result<(), DestError> {
    if mode & !0o7777 != 0 {
        return Err(DestError::BadMode {
            path: dir.to_path_buf(),
            mode,
        });
    }
    std::fs::create_dir_all(dir).map_err(|err| DestError::CreateDir {
        path: dir.to_path_buf(),
        err,
    })?;
    let data = format!("size={size_bytes},mode={mode:o}");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|err| match err {
        Errno::EPERM | Errno::EACCES => DestError::MountDenied {
            path: dir.to_path_buf(),
        },
        err => DestError::Mount {
            op: "mount",
            path: dir.to_path_buf(),
            err,
        },
    })?;
    tracing::info!(path = %dir.display(), size_bytes, mode = %format_args!("{mode:o}"), "mounted tmpfs");
    Ok(())
}

/// Unmounts what is mounted on `dir` (lazily: open files keep it alive until closed).
pub fn unmount(dir: &Path) -> Result<(), DestError> {
    nix::mount::umount2(dir, MntFlags::MNT_DETACH).map_err(|err| DestError::Mount {
        op: "unmount",
        path: dir.to_path_buf(),
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn disk_is_refused_unless_allowed() {
        // The source tree lives on a disk (ext4 here; overlayfs in a container).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let err = check_destination(dir, false).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DestError::DiskBacked { .. }), "{msg}");
        assert!(msg.starts_with(&format!(
            "refusing to write secrets to {}: it is on ",
            dir.display()
        )));
        assert!(msg.contains("(disk-backed); use a tmpfs (or --mount-tmpfs), or pass --allow-disk"));
        match check_destination(dir, true).unwrap() {
            FsKind::DiskBacked { fs_type } => assert!(!fs_type.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = check_destination(Path::new("/nonexistent/hush"), true).unwrap_err();
        assert!(
            matches!(
                err,
                DestError::Stat {
                    err: Errno::ENOENT,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn names_for_magic_numbers() {
        assert_eq!(fs_type_name(0xEF53), "ext4");
        assert_eq!(fs_type_name(0x794C_7630), "overlayfs");
        assert_eq!(fs_type_name(0x1234), "0x1234");
    }

    #[test]
    fn a_mounted_tmpfs_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        match mount_tmpfs(&dir, 1 << 20, 0o750) {
            Ok(()) => {
                let kind = check_destination(&dir, false);
                let root_mode = std::fs::metadata(&dir).unwrap().mode() & 0o7777;
                let st = statfs(&dir).unwrap();
                unmount(&dir).unwrap();
                assert_eq!(kind.unwrap(), FsKind::Tmpfs);
                assert_eq!(root_mode, 0o750);
                assert_eq!(st.blocks() * st.block_size() as u64, 1 << 20);
                // Unmounted: back on the disk.
                assert!(check_destination(&dir, false).is_err());
            }
            Err(e) => {
                assert!(!nix::unistd::geteuid().is_root(), "root can mount: {e}");
                assert!(e.to_string().contains("needs CAP_SYS_ADMIN"), "{e}");
            }
        }
    }

    #[test]
    fn bad_mode_is_refused_before_mounting() {
        let tmp = tempfile::tempdir().unwrap();
        let err = mount_tmpfs(tmp.path(), 1 << 20, 0o170000).unwrap_err();
        assert!(matches!(err, DestError::BadMode { .. }));
        assert!(
            check_destination(tmp.path(), false).is_err(),
            "nothing mounted"
        );
    }
}

//! Mount plumbing, kept in one place: clean a stale mount left by a crashed agent, mount the
//! filesystem with `fuser` (`ro,nosuid,nodev,noexec,default_permissions,allow_other`,
//! `fsname=hush`), and unmount at shutdown.
//!
//! No `unsafe`: `fuser` mounts through `mount(2)` when the agent may (root or CAP_SYS_ADMIN)
//! and through `fusermount3` otherwise; unmounting and the stale-mount cleanup use `nix`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use fuser::{BackgroundSession, MountOption, SessionACL};
use nix::errno::Errno;
use nix::mount::MntFlags;

use super::fs::HushFs;

/// Why the FUSE sink could not start. Messages name paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error(
        "--fuse needs /dev/fuse, which is missing (in a container: give it the device and \
         CAP_SYS_ADMIN); or drop --fuse to write files on a tmpfs instead"
    )]
    NoDevice,
    #[error(
        "cannot mount FUSE on {}: not permitted (with CAP_SYS_ADMIN the agent mounts itself; \
         without, /dev/fuse must be open to its user, fusermount3 setuid root, and \
         /etc/fuse.conf must say user_allow_other); or drop --fuse to write files on a tmpfs \
         instead",
        path.display()
    )]
    MountDenied { path: PathBuf },
    #[error("cannot mount FUSE on {}: {err}", path.display())]
    Mount { path: PathBuf, err: io::Error },
    #[error("{} is already a live FUSE mount (another hush-agent?)", path.display())]
    Busy { path: PathBuf },
    #[error("cannot remove the stale FUSE mount on {}: {err}", path.display())]
    Stale { path: PathBuf, err: String },
    #[error("{} is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error("cannot {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
}

/// Makes `dest` ready to mount on: created when missing; a stale FUSE mount (its agent died:
/// `ENOTCONN`) is detached first; a live one is refused.
pub fn prepare_mount_point(dest: &Path) -> Result<(), FuseError> {
    // statfs always reaches the filesystem (a stat may be answered from the kernel's cache
    // for a while after the agent died).
    if let Err(Errno::ENOTCONN | Errno::ECONNABORTED) = nix::sys::statfs::statfs(dest) {
        return clean_stale(dest);
    }
    match std::fs::metadata(dest) {
        Ok(m) if !m.is_dir() => Err(FuseError::NotDir {
            path: dest.to_path_buf(),
        }),
        Ok(_) if is_fuse_mount(dest) => Err(FuseError::Busy {
            path: dest.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(|err| FuseError::Io {
                op: "create",
                path: dest.to_path_buf(),
                err,
            })
        }
        Err(err) => Err(FuseError::Io {
            op: "inspect",
            path: dest.to_path_buf(),
            err,
        }),
    }
}

fn clean_stale(dest: &Path) -> Result<(), FuseError> {
    let detached = match nix::mount::umount2(dest, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        // Not root: the setuid helper may unmount what the user mounted.
        Err(Errno::EPERM) => fusermount_unmount(dest),
        Err(e) => Err(e.to_string()),
    };
    detached.map_err(|err| FuseError::Stale {
        path: dest.to_path_buf(),
        err,
    })?;
    tracing::warn!(path = %dest.display(), "removed a stale FUSE mount left by an agent that died");
    Ok(())
}

fn fusermount_unmount(dest: &Path) -> Result<(), String> {
    let status = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(dest)
        .status()
        .map_err(|e| format!("fusermount3: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("fusermount3 -u -z exited with {status}"))
    }
}

/// Whether `/proc/self/mountinfo` has a FUSE mount on `dest`.
pub fn is_fuse_mount(dest: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mountinfo_has_fuse(&text, dest)
}

/// `mountinfo` lines: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER`.
fn mountinfo_has_fuse(mountinfo: &str, dest: &Path) -> bool {
    let want = dest.to_string_lossy();
    mountinfo.lines().any(|line| {
        let mut fields = line.split(' ');
        let point = fields.nth(4).map(unescape_mountinfo);
        let fstype = line.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        point.as_deref() == Some(want.as_ref()) && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mountinfo(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The session settings every hush FUSE mount uses: `ro,nosuid,nodev,noexec,noatime,
/// default_permissions`, `allow_other` (other users may look, subject to the files' modes), one
/// session thread.
pub fn session_config() -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
        MountOption::FSName("hush".into()),
        MountOption::Subtype("hush".into()),
    ];
    config.acl = SessionACL::All;
    // One thread: `fs.rs` answers an open before it keeps the handle, which is sound only while
    // no other request can be served in between.
    config.n_threads = Some(1);
    config
}

/// Mounts `fs` on `dest`, served by one background thread.
pub fn mount(fs: HushFs, dest: &Path) -> Result<BackgroundSession, FuseError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(FuseError::NoDevice);
    }
    let config = session_config();
    fuser::spawn_mount(fs, dest, &config).map_err(|err| {
        let not_root = !nix::unistd::geteuid().is_root();
        match err.kind() {
            io::ErrorKind::PermissionDenied => FuseError::MountDenied {
                path: dest.to_path_buf(),
            },
            // Not root and no fusermount3 to fall back on.
            io::ErrorKind::NotFound if not_root => FuseError::MountDenied {
                path: dest.to_path_buf(),
            },
            _ => FuseError::Mount {
                path: dest.to_path_buf(),
                err,
            },
        }
    })
}

/// Detaches the mount (readers holding a file open keep it until they close) and lets the
/// session thread end with the connection.
pub fn unmount(session: BackgroundSession, dest: &Path) {
    match nix::mount::umount2(dest, MntFlags::MNT_DETACH) {
        Ok(()) => tracing::info!(path = %dest.display(), "unmounted the FUSE filesystem"),
        Err(Errno::EPERM) => match fusermount_unmount(dest) {
            Ok(()) => tracing::info!(path = %dest.display(), "unmounted the FUSE filesystem"),
            Err(e) => tracing::warn!(path = %dest.display(), error = %e, "could not unmount"),
        },
        Err(e) => tracing::warn!(path = %dest.display(), error = %e, "could not unmount"),
    }
    // The session thread ends once the kernel lets go of the connection (at once when no file
    // is open); dropped after that, fuser finds nothing left to unmount.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while !session.guard.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(session);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fuse_lines_are_found_by_mount_point() {
        let text = "\
36 25 0:32 / /run/secrets rw,nosuid - tmpfs tmpfs rw
40 25 0:45 / /run/hush\\040app ro,nosuid,nodev,noexec - fuse.hush hush ro,user_id=0
41 25 0:46 / /plain rw - ext4 /dev/sda1 rw
";
        assert!(mountinfo_has_fuse(text, Path::new("/run/hush app")));
        assert!(
            !mountinfo_has_fuse(text, Path::new("/run/secrets")),
            "tmpfs"
        );
        assert!(!mountinfo_has_fuse(text, Path::new("/plain")));
        assert!(!mountinfo_has_fuse(text, Path::new("/nowhere")));
        assert_eq!(unescape_mountinfo("a\\134b\\011c"), "a\\b\tc");
        assert_eq!(unescape_mountinfo("trailing\\"), "trailing\\");
    }

    #[test]
    fn a_plain_directory_is_ready_and_a_missing_one_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        prepare_mount_point(tmp.path()).unwrap();
        let missing = tmp.path().join("a/b");
        prepare_mount_point(&missing).unwrap();
        assert!(missing.is_dir());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = prepare_mount_point(&file).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not a directory", file.display())
        );
    }
}

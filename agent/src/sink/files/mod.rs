//! Files on tmpfs, changed all together through a `..data` symlink swap.
//!
//! - [`atomic`]: the writer ([`AtomicWriter`]): one generation directory per change, swapped in
//!   by renaming a link.
//! - [`fs_check`]: refuses disk-backed destinations; mounts a tmpfs when asked.

pub mod atomic;

pub use atomic::AtomicWriter;
pub mod fs_check;

pub use fs_check::{check_destination, mount_tmpfs, DestError, FsKind};

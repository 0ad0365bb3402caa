//! Sinks: where rendered secrets go.
//!
//! - this file: the contract between the keeper and a sink: [`Sink`], the set it is handed
//!   ([`FileProjection`] per name), what a write did ([`WriteOutcome`]) and why it failed
//!   ([`WriteError`]);
//! - [`files`]: files on a tmpfs, swapped all together (the default);
//! - [`fuse`]: a read-only FUSE filesystem served from the agent's memory, logging every open
//!   (`--fuse`).

pub mod files;
pub mod fuse;

use std::collections::BTreeMap;
use std::path::Path;

use std::fmt;
use std::io;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Where the keeper hands each rendered set: the whole set every time (names not in it go
/// away). Called from a blocking thread.
pub trait Sink: Send + Sync {
    /// Makes `set` current; `changed: false` when it equals the current set.
    fn write(&self, set: &BTreeMap<String, FileProjection>) -> Result<WriteOutcome, WriteError>;
    /// Where the set is shown (for messages).
    fn target(&self) -> &Path;
}

/// One file to write: its bytes, permission bits and, optionally, owner.
pub struct FileProjection {
    /// The content; zeroized when dropped.
    pub data: Zeroizing<Vec<u8>>,
    /// Permission bits only (at most `0o777`).
    pub mode: u32,
    /// Owner to `chown` to; `None` leaves the writer's own (and is not compared).
    pub uid: Option<u32>,
    /// Group to `chown` to; `None` leaves the writer's own (and is not compared).
    pub gid: Option<u32>,
}

impl FileProjection {
    /// A file with the given content and mode, owned by the writer.
    pub fn new(data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            data: Zeroizing::new(data.into()),
            mode,
            uid: None,
            gid: None,
        }
    }
}

impl fmt::Debug for FileProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileProjection")
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .finish()
    }
}

/// What a [`Sink::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Whether a new generation was written.
    pub changed: bool,
    /// The generation now current (unchanged when `changed` is false).
    pub generation: u64,
    /// Names added, changed (content, mode or owner) or removed; sorted. Never values.
    pub changed_files: Vec<String>,
}

/// Why a write (or opening the writer) failed. Messages name files, never their content.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A name in the payload is not a clean relative path.
    #[error("bad file name {name:?}: {reason}")]
    BadPath { name: String, reason: &'static str },
    /// A mode with more than permission bits.
    #[error("bad mode {mode:#o} for {name:?}: only permission bits (at most 0o777) are allowed")]
    BadMode { name: String, mode: u32 },
    /// A user-visible name is taken by something this writer did not make.
    #[error("{} exists and is not a link made by hush-agent; refusing to replace it", path.display())]
    Conflict { path: PathBuf },
    /// The generation marker of the current set cannot be read as a number.
    #[error("{}: generation marker is not a number", path.display())]
    BadGeneration { path: PathBuf },
    /// The target directory is missing or not a directory.
    #[error("target directory {} does not exist or is not a directory", path.display())]
    NoTarget { path: PathBuf },
    /// A filesystem call failed.
    #[error("{op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
}

//! Sinks: where rendered secrets go.
//!
//! - [`files`]: files on a tmpfs, swapped all together (the default).
//! - [`fuse`]: a read-only FUSE filesystem served from the agent's memory, logging every open
//!   (`--fuse`).

pub mod files;
pub mod fuse;

use std::collections::BTreeMap;
use std::path::Path;

use files::{AtomicWriter, FileProjection, WriteError, WriteOutcome};

/// Where the keeper hands each rendered set: the whole set every time (names not in it go
/// away). Called from a blocking thread.
pub trait Sink: Send + Sync {
    /// Makes `set` current; `changed: false` when it equals the current set.
    fn write(&self, set: &BTreeMap<String, FileProjection>) -> Result<WriteOutcome, WriteError>;
    /// Where the set is shown (for messages).
    fn target(&self) -> &Path;
}

impl Sink for AtomicWriter {
    fn write(&self, set: &BTreeMap<String, FileProjection>) -> Result<WriteOutcome, WriteError> {
        AtomicWriter::write(self, set)
    }

    fn target(&self) -> &Path {
        self.target_dir()
    }
}

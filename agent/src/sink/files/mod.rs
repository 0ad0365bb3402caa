//! Files on tmpfs, changed all together through a `..data` symlink swap.
//!
//! - [`atomic`]: the writer ([`AtomicWriter`]): one generation directory per change, swapped in
//!   by renaming a link.

pub mod atomic;

pub use atomic::{AtomicWriter, FileProjection, WriteError, WriteOutcome};

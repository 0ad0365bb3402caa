//! Sinks: where rendered secrets go.
//!
//! - [`files`]: files on a tmpfs, swapped all together (the default).
//! - [`fuse`]: a read-only FUSE filesystem served from the agent's memory, logging every open
//!   (`--fuse`).

pub mod files;
pub mod fuse;

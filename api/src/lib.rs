//! hush-api: what the Hush programs share about the wire.
//!
//! # Layout
//!
//! - [`audit`]: the hash chain over audit log lines (written by hushd, checked by `hush`).
pub mod audit;

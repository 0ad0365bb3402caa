//! The `hush.dev/` annotations of a pod, read and checked.

/// The annotation prefix.
pub const PREFIX: &str = "hush.dev/";

//! The core: router of mounts, token store, policies, audit, and the `sys/` backend.

pub mod audit;
pub mod policy;
pub mod token;

/// The store's core. Placeholder until wired.
#[derive(Debug)]
pub struct Core;

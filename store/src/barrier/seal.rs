//! The Shamir seal: init, unseal progress, seal status. Placeholder until implemented.

/// Storage keys under this prefix belong to the seal and are written in the clear or under
/// the unseal key, never through the barrier.
pub const SEAL_PREFIX: &str = "core/seal/";

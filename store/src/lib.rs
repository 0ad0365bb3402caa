//! hushd: the Hush secret store.
//!
//! hushd speaks a subset of the HashiCorp Vault HTTP API so that existing Vault clients work
//! against it unchanged.
//!
//! # Layout
//!
//! The layers follow Vault's, bottom to top; each only calls the one below it.
//!
//! - [`storage`]: dumb, durable key/value backends (SQLite with group commit, in-memory).
//! - [`barrier`]: AES-256-GCM encryption of everything written to storage, with key terms,
//!   and the Shamir seal that protects the root key.
//! - [`core`]: the router of mounts, the token store, ACL policies, the audit broker and the
//!   `sys/` system backend.
//! - [`engines`]: secrets engines mounted under the router (KV version 2).
//! - [`api`]: HTTP(S) front end: Vault's wire format, TLS, body limits, path normalisation.
//! - [`logical`]: the request/response/error types every layer above the barrier shares.

pub mod api;
pub mod barrier;
pub mod config;
pub mod core;
pub mod engines;
pub mod logical;
pub mod storage;

pub use crate::core::Core;

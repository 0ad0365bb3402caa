//! The token store, mounted at `auth/token/`. Tokens are stored only as keyed hashes
//! (HMAC-SHA256 with a key kept behind the barrier); accessors index them; children are
//! revoked with their parent.
//!
//! # Layout
//!
//! - the stored [`TokenEntry`] is in [`crate::logical::token`]: requests carry it;
//! - [`store`]: the [`TokenStore`] (storage, authentication, creation, renewal, revocation);
//! - [`backend`]: the `auth/token/` endpoints;
//! - [`roles`]: token roles (`roles/:name`) and `create/:role`;
//! - Vault's TTL rules are in [`crate::logical::ttl`];
//! - `lease`: token leases in the expiration manager's index;
//! - `scan`: every live token, a page at a time ([`TokenStore::page`]);
//! - [`cache`]: parsed entries of tokens in use, invalidated by every entry write.

pub mod backend;
pub mod cache;
mod lease;
pub mod roles;
mod scan;
pub mod store;

#[cfg(test)]
mod tests;

pub use crate::logical::token::TokenEntry;
pub use store::{Clock, CreateParams, Renewed, TokenStore};

//! HTTP(S) front end: turns Vault-style HTTP requests into [`crate::logical::Request`]s and
//! the core's answers back into Vault's JSON.
//!
//! - [`http`]: method/path/body decoding, the response envelope, errors.
//! - TLS certificates that reload when their files change: [`hush_api::tls`].
//! - [`server`]: the accept loop with graceful shutdown.

pub mod http;
pub mod server;

pub use http::{app, DEFAULT_MAX_REQUEST_BYTES};
pub use server::serve;

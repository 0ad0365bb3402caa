//! HTTP(S) front end: turns Vault-style HTTP requests into [`crate::logical::Request`]s and
//! the core's answers back into Vault's JSON.
//!
//! - [`http`]: method/path/body decoding, the response envelope, errors.
//! - [`tls`]: rustls server config whose certificate reloads when its files change.
//! - [`server`]: the accept loop with graceful shutdown.

pub mod http;
pub mod server;
pub mod tls;

pub use http::{app, DEFAULT_MAX_REQUEST_BYTES};
pub use server::serve;

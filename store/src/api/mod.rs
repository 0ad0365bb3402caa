//! HTTP(S) front end: turns Vault-style HTTP requests into [`crate::logical::Request`]s and
//! the core's answers back into Vault's JSON.
//!
//! - [`http`]: method/path/body decoding, the response envelope, errors.
//! - [`events`]: `sys/events/subscribe` over a WebSocket.
//! - [`snapshot`]: `sys/storage/snapshot` save and restore, streamed, with their own size limit.
//! - [`overload`]: the ceiling on requests in flight (503 + `Retry-After` beyond it).
//! - TLS certificates that reload when their files change: [`hush_api::tls`].
//! - the accept loop with graceful shutdown: [`hush_api::server`] (shared with the webhook).

pub mod events;
pub mod http;
pub mod overload;
pub mod snapshot;

pub use http::{app, app_with, DEFAULT_MAX_REQUEST_BYTES};
pub use hush_api::server::serve;

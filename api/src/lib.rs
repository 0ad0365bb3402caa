//! hush-api: what the Hush programs share about the wire. The CLI and the agent depend on this
//! crate, never on the server.
//!
//! # Layout
//!
//! - [`build_info`]: what `--version` prints: version, git commit, profile, target.
//! - [`core_dumps`]: `PR_SET_DUMPABLE 0`, so hushd's and the agent's memory (keys, tokens,
//!   values) never lands in a core file or another process's `ptrace`.
//! - [`wire`]: Vault's JSON shapes (response envelope, `auth`, `sys/` bodies, KV v2, tokens) and
//!   Hush's own `sys/agents` shapes (agent reports, the fleet view).
//! - [`client`]: [`Client`], an HTTP(S) client over reqwest + rustls (ring), with generic
//!   `read`/`write`/`list`/`delete`/`patch` and typed helpers per API area.
//! - [`error`]: [`ClientError`], keeping the HTTP status and the server's `errors`.
//! - [`audit`]: the hash chain over audit log lines (written by hushd, checked by `hush`).
//! - `tls` (feature `tls-server`): a server certificate reloaded from disk when its files
//!   change (hushd's listener; the webhook's).
//! - `server` (feature `tls-server`): the accept loop (TLS or plain, HTTP/1.1 and HTTP/2,
//!   graceful shutdown) hushd and the webhook serve their axum routers with.
//! - `process_stats` (feature `process-stats`): the process's own RSS and CPU time (hushd's
//!   and the agent's metrics).
//! - [`log_format`]: [`LogFormat`], the one spelling of `--log-format` (`text|json`).
//! - [`duration`]: the agent's duration strings (`100ms`, `60s`, `1h30m`), parsed and shown.
//! - [`agent_config`]: hush-agent's config file as written (raw, unknown keys refused), for the
//!   agent and for whatever writes its config.
//! - [`sd_notify`]: systemd's notify protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`...) over
//!   `NOTIFY_SOCKET`, a path or an abstract name (hushd and hush-agent).

pub mod agent_config;
pub mod audit;
pub mod build_info;
pub mod client;
pub mod core_dumps;
pub mod duration;
pub mod error;
pub mod log_format;
#[cfg(feature = "process-stats")]
pub mod process_stats;
pub mod sd_notify;
#[cfg(feature = "tls-server")]
pub mod server;
pub mod snapshot;
#[cfg(feature = "tls-server")]
pub mod tls;
pub mod wire;

pub use client::{install_crypto_provider, Client, LeaseTerms};
pub use error::ClientError;
pub use log_format::{LogFormat, LOG_FORMAT_ENV};
pub use wire::VaultResponse;

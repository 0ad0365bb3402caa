//! hush-agent: logs in to hushd, reads and leases secrets, and exposes them as files that change
//! all together (tmpfs) — or through a read-only FUSE filesystem that logs who opened what.
//!
//! # Layout
//!
//! The modules follow the agent's pipeline, left to right:
//!
//! - [`config`]: flags and the TOML file, parsed raw, then validated into [`config::Config`].
//! - [`auth`]: where the agent's token comes from (a token file, re-read when it changes) and
//!   keeping it alive (renew-self at about 2/3 of its TTL). Workload-identity logins land here.
//! - [`keeper`]: the loop that reads secrets, notices new versions (and, later, renews leases),
//!   retries with backoff during outages and never throws away the last good values.
//! - [`render`]: turns secret data into file contents (raw field, JSON, dotenv, templates).
//! - [`sink`]: where rendered files go: [`sink::files`] writes a set of files atomically
//!   (kubelet's `..data` symlink swap) on a checked tmpfs; [`sink::fuse`] (`--fuse`) serves
//!   them from memory through a read-only FUSE mount that logs every open.
//! - [`notify`]: tells the application after a swap (command, signal, supervised child).
//! - [`telemetry`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! [`run`] wires them: check the destination, open the token, then cycle until shutdown.

pub mod auth;
pub mod config;
pub mod keeper;
pub mod notify;
pub mod render;
pub mod retry;
pub mod run;
pub mod sink;
pub mod telemetry;
pub mod template;

pub use run::{run, Finished, RunError};

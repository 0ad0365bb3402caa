//! hush-agent: logs in to hushd, reads and leases secrets, and exposes them as files that change
//! all together (tmpfs) — or, later, through a read-only FUSE filesystem.
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
//!   (kubelet's `..data` symlink swap) on a checked tmpfs.
//! - [`notify`]: tells the application after a swap (command, signal, supervised child).
//! - [`telemetry`]: `/healthz`, `/readyz`, `/metrics`.

pub mod auth;
pub mod config;
pub mod keeper;
pub mod notify;
pub mod render;
pub mod sink;
pub mod telemetry;

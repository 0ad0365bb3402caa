//! hush-agent: logs in to hushd, reads and leases secrets, and exposes them as files that change
//! all together (tmpfs) — or through a read-only FUSE filesystem that logs who opened what.
//!
//! # Layout
//!
//! Lowest layer first; a module uses only those listed before it (docs/ARCHITECTURE.md holds
//! the same order, checked by `cargo test -p hush-tests --test layers`):
//!
//! - [`retry`]: how a failed request is classed ([`retry::ErrorClass`]: transient, forbidden,
//!   not found, other) and [`retry::backoff`] (exponential with jitter; renewal delays).
//! - [`telemetry`]: [`telemetry::Observer`], what the renewal, the keeper and the sinks report;
//!   [`telemetry::Metrics`] (`hush_*`) and `/healthz`, `/readyz`, `/metrics`.
//! - [`template`]: the minijinja settings and the template check shared by config and render.
//! - [`config`]: flags and the TOML file, parsed raw (`hush_api::agent_config`), then
//!   validated into [`config::Config`].
//! - [`auth`]: where the agent's token comes from (a token file, re-read when it changes, or a
//!   workload-identity login), what to do about a 403 (look again, log in again), and keeping
//!   it alive (renew-self at about 2/3 of its TTL).
//! - [`render`]: turns secret data into file contents (raw field, JSON, dotenv, templates).
//! - [`sink`]: where rendered files go, behind one contract ([`sink::Sink`]):
//!   [`sink::files`] writes a set of files atomically (kubelet's `..data` symlink swap) on a
//!   checked tmpfs; [`sink::fuse`] (`--fuse`) serves them from memory through a read-only FUSE
//!   mount that logs every open.
//! - [`notify`]: tells the application after a swap (command, signal, supervised child).
//! - [`events`]: push: the subscription to hushd's events (`sys/events/subscribe`, a
//!   WebSocket over the same rustls), which paths an event names, and the inbox the loop
//!   empties; resubscribes with backoff, falls back to the poll alone when the store has none.
//! - [`report`]: reports upstream: access events (from the FUSE access log's writer thread,
//!   through [`telemetry::spool`]) and the keeper's state shipped to hushd's
//!   `sys/agents/report` in batches, at-least-once, with the agent's own token.
//! - [`keeper`]: one cycle: reads secrets, notices new versions, renews and replaces leases,
//!   renders and hands the whole set to the sink, never throwing away the last good values.
//! - [`run`]: start-up (destination, token, keeper, background tasks), the loop (or
//!   `--once`'s single pass, under its deadline) and the ordered shutdown.
//! - [`docker_plugin`]: `hush-agent docker-plugin`, a Docker volume driver whose volumes are
//!   rendered by [`run`] (one pass before the mount answers, then a long-running agent).

pub mod auth;
pub mod config;
pub mod docker_plugin;
pub mod events;
pub mod keeper;
pub mod notify;
pub mod render;
pub mod report;
pub mod retry;
pub mod run;
pub mod sink;
pub mod telemetry;
pub mod template;

pub use run::{run, run_with, Finished, Reload, RunError};

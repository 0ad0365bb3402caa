//! Push: hushd's events (Vault 1.15+'s `sys/events/subscribe`) tell the agent at once that a
//! secret it follows changed, so the keeper reads it now instead of at the next metadata poll.
//!
//! # Layout
//!
//! - this file: an event as it arrives ([`parse`]: one CloudEvents JSON text frame), which
//!   followed source it names ([`matching`]), and the [`Inbox`] the subscriber fills and the loop
//!   empties (paths coalesced, bounded);
//! - `connect`: the WebSocket over the agent's own TLS (rustls with ring; `--ca-cert` or the
//!   system roots), the token in `X-Vault-Token`;
//! - [`subscribe`]: the task that stays subscribed, resubscribing with the agent's backoff, and
//!   says when the store has no events (a 403/404/405, a proxy that drops WebSockets): the
//!   metadata poll is then the only source, as it is the safety net always.
//!
//! After every (re)subscription the inbox asks for a full check of every followed path
//! ([`Pending::resync`]): a change made while the agent was cut off is never missed.

mod connect;
pub mod subscribe;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::Notify;

use crate::config::{Source, SourceKind};

/// The event types the agent subscribes to (a glob): every KV event.
pub const EVENT_TYPES: &str = "kv*";

/// Paths held in the inbox before it gives up listing them and asks for a full check.
const MAX_PENDING_PATHS: usize = 1024;

/// What the agent reads of one event; never a secret value (events carry none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `data.event_type`, e.g. `kv-v2/data-write`.
    pub event_type: String,
    /// `data.event.metadata.path`: the full API path, e.g. `secret/data/app/db`.
    pub path: String,
    /// `data.event.metadata.data_path`, when given (KV v2: `secret/data/app/db`).
    pub data_path: Option<String>,
}

#[derive(Deserialize)]
struct Frame {
    data: FrameData,
}

#[derive(Deserialize)]
struct FrameData {
    #[serde(default)]
    event_type: String,
    event: FrameEvent,
}

#[derive(Deserialize)]
struct FrameEvent {
    #[serde(default)]
    metadata: FrameMetadata,
}

#[derive(Deserialize, Default)]
struct FrameMetadata {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    data_path: Option<String>,
}

/// Why a frame is not an event the agent can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not a CloudEvents JSON event: {0}")]
    Shape(String),
    #[error("the event names no path")]
    NoPath,
}

/// One text frame of `sys/events/subscribe/...?json=true`.
pub fn parse(text: &str) -> Result<Event, ParseError> {
    // Not serde's message: it may quote a value of the frame.
    let frame: Frame = serde_json::from_str(text).map_err(|e| {
        ParseError::Shape(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let meta = frame.data.event.metadata;
    let path = meta
        .path
        .or_else(|| meta.data_path.clone())
        .filter(|p| !p.is_empty())
        .ok_or(ParseError::NoPath)?;
    Ok(Event {
        event_type: frame.data.event_type,
        path,
        data_path: meta.data_path.filter(|p| !p.is_empty()),
    })
}

/// The KV v2 sub-paths that name the same secret as `MOUNT/data/PATH`.
const KV2_VERBS: [&str; 6] = [
    "data", "metadata", "delete", "undelete", "destroy", "subkeys",
];

fn trim(p: &str) -> &str {
    p.trim_matches('/')
}

/// Whether an event's `path` names `source`: for KV v2 any of `MOUNT/{data,metadata,delete,
/// undelete,destroy,subkeys}/PATH`, otherwise the source's path itself.
pub fn names(source: &Source, path: &str) -> bool {
    let path = trim(path);
    match &source.kind {
        SourceKind::KvV2 { mount, path: key } => {
            let (mount, key) = (trim(mount), trim(key));
            path.strip_prefix(mount)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(verb, rest)| KV2_VERBS.contains(&verb) && trim(rest) == key)
        }
        SourceKind::Generic => trim(&source.path) == path,
    }
}

/// The sources (indices into `sources`) a changed `path` names.
pub fn matching(sources: &[Source], path: &str) -> Vec<usize> {
    sources
        .iter()
        .enumerate()
        .filter(|(_, s)| names(s, path))
        .map(|(i, _)| i)
        .collect()
}

/// What the subscriber left for the loop since it last looked.
#[derive(Debug, Default)]
pub struct Pending {
    /// API paths that changed.
    pub paths: BTreeSet<String>,
    /// Check every followed path (after a (re)subscription, or too many paths to list).
    pub resync: bool,
    /// When the oldest of these arrived (for the event-to-file latency).
    pub since: Option<Instant>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.resync
    }
}

/// Between the subscriber task and the loop: changed paths, coalesced (a burst on one path is
/// one read) and bounded.
#[derive(Debug, Default)]
pub struct Inbox {
    pending: Mutex<Pending>,
    notify: Notify,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An event for `path` arrived.
    pub fn changed(&self, path: &str) {
        {
            let mut p = self.lock();
            p.since.get_or_insert_with(Instant::now);
            if p.resync || p.paths.len() >= MAX_PENDING_PATHS {
                p.paths.clear();
                p.resync = true;
            } else {
                p.paths.insert(path.to_owned());
            }
        }
        self.notify.notify_one();
    }

    /// Every followed path must be checked (subscribed again: changes may have been missed).
    pub fn resync(&self) {
        {
            let mut p = self.lock();
            p.paths.clear();
            p.resync = true;
        }
        self.notify.notify_one();
    }

    /// Take what is pending, if anything.
    pub fn take(&self) -> Option<Pending> {
        let mut p = self.lock();
        (!p.is_empty()).then(|| std::mem::take(&mut *p))
    }

    /// Wait until something is pending, and take it.
    pub async fn wait(&self) -> Pending {
        loop {
            let notified = self.notify.notified();
            if let Some(p) = self.take() {
                return p;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests;

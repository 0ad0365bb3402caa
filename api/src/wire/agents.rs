//! `sys/agents`: what agents report to hushd, and the fleet view hushd answers with (Hush's own
//! API; Vault has none).
//!
//! - `PUT sys/agents/report` ([`Report`]): one batch from one agent, with its own token (the
//!   `default` policy allows it). At-least-once: an agent retries a batch with the same
//!   [`Report::batch_id`] until hushd acknowledges it, and hushd stores a batch id once.
//! - `LIST sys/agents` ([`AgentList`]), `GET sys/agents/:id` ([`AgentInfo`]),
//!   `GET sys/agents/access?path=&since=` ([`AccessList`]),
//!   `GET sys/agents/stale?path=` ([`StaleList`]).
//!
//! Nothing here is a secret: paths, file names, versions, lease ids, pids, uids and executables.
//! Times are RFC 3339 strings in UTC.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Most access events one batch may carry (hushd refuses more with 400).
pub const MAX_ACCESSES_PER_REPORT: usize = 1000;

/// `PUT sys/agents/report`: one batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Unique per batch (a UUID); a retried batch keeps it, and hushd stores it once.
    pub batch_id: String,
    /// Who is reporting.
    pub agent: AgentIdentity,
    /// Access-log events since the last acknowledged batch, oldest first (at most
    /// [`MAX_ACCESSES_PER_REPORT`]).
    #[serde(default)]
    pub accesses: Vec<Access>,
    /// Access events this agent lost since it started because its spool was full: a running
    /// total, never reset while the process lives.
    #[serde(default)]
    pub dropped_total: u64,
    /// What the agent holds now; `None` in a batch that only carries accesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AgentState>,
}

/// Who an agent is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AgentIdentity {
    /// Stable across restarts: `--agent-id`, `[agent] id`, else `NAMESPACE/POD` from the
    /// downward API, else `HOST:DESTINATION`.
    pub id: String,
    pub host: String,
    /// `NAMESPACE/NAME` when the downward API env is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The destination directory (`/secrets`).
    pub destination: String,
    /// hush-agent's version.
    pub version: String,
    /// Changes each time the agent process starts (a UUID).
    pub instance: String,
}

/// One access-log event (a FUSE open or, in fast cache mode, a lookup), allowed or denied.
///
/// An agent makes one for every open it ships, on its access-log thread: what many accesses
/// share (the file's name and API paths, the reader's executable and container) is shared, not
/// copied, and the fixed words are static; the time is the one allocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Access {
    /// When the open happened.
    pub time: String,
    /// `open` or `lookup`.
    pub event: Cow<'static, str>,
    /// The file's name under the destination (`db.password`).
    pub file: Arc<str>,
    /// The API paths the file is made from (`secret/data/app/db`); several for a template.
    pub paths: Arc<[String]>,
    /// The KV version the file held (0 when not versioned).
    pub version: u64,
    /// The agent's generation of the file (bumped at each swap).
    pub generation: u64,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// The reader's container or pod id from its cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Arc<str>>,
    /// `allowed` or `denied`.
    pub result: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
}

/// What an agent holds, per file and per source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AgentState {
    pub files: Vec<FileState>,
    pub sources: Vec<SourceState>,
    /// Last successful refresh of every source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// Errors now standing (no secret in them).
    pub errors: Vec<String>,
    /// Time of the last render of the files, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render_latency_ms: Option<f64>,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub uptime_seconds: u64,
}

/// One file of the destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FileState {
    pub file: String,
    pub paths: Vec<String>,
    pub generation: u64,
}

/// One secret the agent follows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SourceState {
    /// The API path (`secret/data/app/db`).
    pub path: String,
    /// The KV v2 version held; `None` for an unversioned path (a lease, a KV v1 read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// Seconds left on the lease when the report was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl_left: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// The last error reading it (status and Vault's message, never a value), if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `PUT sys/agents/report`'s answer (`data`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ReportAck {
    pub batch_id: String,
    /// False when the batch id was already stored (a retry): nothing was added.
    pub stored: bool,
    pub accesses: usize,
}

/// `LIST sys/agents`'s `data`: Vault's `keys` plus one entry per key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AgentList {
    pub keys: Vec<String>,
    pub key_info: BTreeMap<String, AgentSummary>,
}

/// One agent in a list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AgentSummary {
    pub id: String,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub destination: String,
    pub last_seen: String,
    /// Holds an older version than the current one of some KV v2 path it reports.
    pub stale: bool,
    /// The paths it holds an older version of.
    pub stale_paths: Vec<String>,
}

/// `GET sys/agents/:id`'s `data`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AgentInfo {
    #[serde(flatten)]
    pub summary: AgentSummary,
    pub version: String,
    pub instance: String,
    /// The accessor of the token that sent the last report (never the token).
    pub token_accessor: String,
    /// The token's display name (`kubernetes-ns-sa`...).
    pub token_display_name: String,
    pub dropped_total: u64,
    pub state: AgentState,
}

/// `GET sys/agents/access`'s `data`: `accesses`, oldest first; empty (not 404) when none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccessList {
    pub accesses: Vec<AccessRecord>,
}

/// One access as hushd answers it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AccessRecord {
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub host: String,
    /// The API path asked about.
    pub path: String,
    pub file: String,
    pub version: u64,
    pub pid: u32,
    pub uid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub time: String,
    /// `allowed` or `denied`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET sys/agents/stale?path=`'s `data`: the agents whose last report holds an older version
/// of `path` than the current one (agents that stopped reporting included).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct StaleList {
    /// The API path asked about.
    pub path: String,
    /// Its current KV v2 version; `None` when it is not a KV v2 path with metadata (then no
    /// agent is stale for it).
    pub current_version: Option<u64>,
    pub agents: Vec<StaleAgent>,
}

/// One agent in a [`StaleList`]: its summary (as `LIST sys/agents` shows it) and the version of
/// the path its last report holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct StaleAgent {
    #[serde(flatten)]
    pub summary: AgentSummary,
    pub held_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_defaults_missing_parts() {
        let r: Report = serde_json::from_value(serde_json::json!({
            "batch_id": "b1",
            "agent": {"id": "ns/pod", "host": "h", "destination": "/secrets",
                      "version": "0.1.0", "instance": "i"},
        }))
        .unwrap();
        assert!(r.accesses.is_empty());
        assert_eq!(r.dropped_total, 0);
        assert!(r.state.is_none());
        let back: Report = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn agent_info_flattens_the_summary() {
        let info = AgentInfo {
            summary: AgentSummary {
                id: "a".into(),
                stale: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["stale"], true);
        assert!(v["state"]["files"].is_array());
    }
}

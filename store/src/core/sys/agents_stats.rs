//! `GET sys/agents/stats?path=PREFIX&since=D`: per API path, how many opens agents reported,
//! allowed and denied, and by whom: the fleet index's answer in the shape of `hush audit
//! stats`. Hush's own API.
//!
//! `data`: `{PATH: {total, successful, failed, by_identity: {ID: {total, successful,
//! failed}}}}`, where successful = `allowed`, failed = `denied`, and the identity is the agent
//! and the process's uid: `AGENT_ID uid=UID`. `path` is a prefix of API paths (none: all),
//! `since` a duration or RFC 3339 time (default 24h). At most [`MAX_STATS_ROWS`] accesses are
//! counted; past that a warning says the counts stop there.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use super::agents::{parse_since, DEFAULT_SINCE};
use crate::core::state::Unsealed;
use crate::logical::{LogicalError, Request, Response};

/// Most access rows one answer counts.
pub const MAX_STATS_ROWS: usize = 200_000;

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Counts {
    total: u64,
    successful: u64,
    failed: u64,
}

impl Counts {
    fn add(&mut self, allowed: bool) {
        self.total += 1;
        if allowed {
            self.successful += 1;
        } else {
            self.failed += 1;
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct PathStats {
    #[serde(flatten)]
    counts: Counts,
    by_identity: BTreeMap<String, Counts>,
}

pub async fn stats(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let prefix = req.get_str("path").unwrap_or("").trim_start_matches('/');
    if prefix.len() > 1024 || prefix.chars().any(char::is_control) {
        return Err(LogicalError::invalid(
            "path: at most 1024 characters, no control characters",
        ));
    }
    let now = Utc::now();
    let since = match req.get_str("since") {
        Some(s) => parse_since(s, now)?,
        None => now - chrono::Duration::from_std(DEFAULT_SINCE).expect("24h fits"),
    };
    let mut by_path: BTreeMap<String, PathStats> = BTreeMap::new();
    let truncated = st
        .agents
        .each_access_since(prefix, since, MAX_STATS_ROWS, |a| {
            let allowed = a.result == "allowed";
            let at = by_path.entry(a.path).or_default();
            at.counts.add(allowed);
            at.by_identity
                .entry(format!("{} uid={}", a.agent_id, a.uid))
                .or_default()
                .add(allowed);
        })
        .await?;
    let data = serde_json::to_value(&by_path)
        .map_err(|e| LogicalError::Internal(format!("agent stats: {e}")))?;
    let resp = Response::data(data);
    Ok(if truncated {
        resp.with_warning(format!(
            "more than {MAX_STATS_ROWS} accesses: the counts stop there; ask with a later since or a longer path"
        ))
    } else {
        resp
    })
}

//! The fleet index behind the barrier (view `sys/agents/`): what agents reported through
//! `sys/agents/report`, kept so that "who read PATH since T" and "what does agent X hold" are
//! answered without scanning everything.
//!
//! - `batch/<escaped batch id>`: a [`BatchRecord`], one per stored batch: the dedup key (a retry
//!   of a stored batch id adds nothing);
//! - `by-receipt/<receipt millis, 20 digits>/<escaped batch id>`: the keys of the batch's access
//!   rows (JSON list), in the order retention prunes them (the head of this range is all the
//!   prune reads);
//! - `access/<escaped API path>/<access millis, 20 digits>/<escaped batch id>/<index, 5
//!   digits>`: one [`AccessRecord`] per access and API path, so the accesses of one path since
//!   T are one key range;
//! - `agent/<escaped agent id>`: the [`StoredAgent`], the latest report of each agent. Agents
//!   are never pruned: one that stopped reporting keeps its last state.
//!
//! A batch's rows, its dedup key and its agent record are written in one atomic batch: after
//! an acknowledgement everything is there, before it nothing is. Nothing here is a secret
//! (paths, file names, versions, pids), but all of it is encrypted by the barrier like any
//! other entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hush_api::wire::agents::{AccessRecord, AgentIdentity, AgentState, Report};

use crate::barrier::{BarrierError, BarrierView};
use crate::storage::Op;

const BATCH: &str = "batch/";
const BY_RECEIPT: &str = "by-receipt/";
const ACCESS: &str = "access/";
const AGENT: &str = "agent/";

/// Batches the prune removes per storage write.
const PRUNE_CHUNK: usize = 64;
/// Report locks: a report takes the stripes of its batch id and of its agent id, so reports of
/// different agents run side by side.
const STRIPES: usize = 64;

/// Escape any string into one key segment: `%`, `/` as `%25`, `%2F`; a segment made only of
/// dots (`.`, `..`, which the barrier refuses) gets its dots as `%2E`.
pub fn escape(s: &str) -> String {
    let e = s.replace('%', "%25").replace('/', "%2F");
    if !e.is_empty() && e.bytes().all(|b| b == b'.') {
        return e.replace('.', "%2E");
    }
    e
}

pub fn unescape(segment: &str) -> String {
    segment
        .replace("%2F", "/")
        .replace("%2E", ".")
        .replace("%25", "%")
}

fn millis_key(t: DateTime<Utc>) -> String {
    format!("{:020}", t.timestamp_millis().max(0))
}

/// A stored batch: who sent it and when (the token's accessor and display name, never the
/// token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    pub agent_id: String,
    pub received: DateTime<Utc>,
    pub token_accessor: String,
    pub token_display_name: String,
    pub accesses: usize,
}

/// The last report of one agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StoredAgent {
    pub identity: AgentIdentity,
    pub last_seen: Option<DateTime<Utc>>,
    /// The last state an agent sent (a batch without one keeps the one before).
    pub state: AgentState,
    pub dropped_total: u64,
    pub token_accessor: String,
    pub token_display_name: String,
}

/// Who sent a batch.
#[derive(Debug, Clone, Default)]
pub struct Sender {
    pub token_accessor: String,
    pub token_display_name: String,
}

/// The fleet index over one barrier view.
pub struct AgentIndex {
    view: BarrierView,
    /// Two copies of one batch cannot both pass the dedup check, and two reports of one agent
    /// cannot interleave their read and write of its record.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for AgentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIndex")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

/// What [`AgentIndex::report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New batch: its rows are stored.
    New { rows: usize },
    /// The batch id was stored before: nothing was added.
    Duplicate,
}

impl AgentIndex {
    pub fn new(view: BarrierView) -> Self {
        AgentIndex {
            view,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn stripe(s: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }

    /// The locks of `report`, taken in stripe order (so two reports cannot deadlock).
    async fn lock(&self, report: &Report) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut idx = vec![
            Self::stripe(&report.batch_id),
            Self::stripe(&report.agent.id),
        ];
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    /// Store a validated `report` received at `now`, unless its batch id is already stored.
    /// `before_store` runs (under the report's locks) only for a new batch, before anything is
    /// written; its error aborts the report with nothing stored (the audit devices' refusal).
    pub async fn report<E, F, Fut>(
        &self,
        report: &Report,
        sender: &Sender,
        now: DateTime<Utc>,
        before_store: F,
    ) -> Result<Stored, E>
    where
        E: From<BarrierError>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let _guards = self.lock(report).await;
        let batch_key = format!("{BATCH}{}", escape(&report.batch_id));
        if self.view.get(&batch_key).await?.is_some() {
            return Ok(Stored::Duplicate);
        }
        let agent_key = format!("{AGENT}{}", escape(&report.agent.id));
        let previous: Option<StoredAgent> = self.view.get_json(&agent_key).await?;
        before_store().await?;

        let mut ops: Vec<Op> = Vec::new();
        let mut rows = Vec::new();
        let batch_seg = escape(&report.batch_id);
        for (i, access) in report.accesses.iter().enumerate() {
            let time = DateTime::parse_from_rfc3339(&access.time)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(now);
            let mut paths: Vec<&String> = access.paths.iter().collect();
            paths.sort();
            paths.dedup();
            for path in paths {
                let key = format!(
                    "{ACCESS}{}/{}/{batch_seg}/{i:05}",
                    escape(path),
                    millis_key(time)
                );
                let record = AccessRecord {
                    agent_id: report.agent.id.clone(),
                    pod: report.agent.pod.clone(),
                    host: report.agent.host.clone(),
                    path: path.clone(),
                    file: access.file.to_string(),
                    version: access.version,
                    pid: access.pid,
                    uid: access.uid,
                    exe: access.exe.as_deref().map(str::to_owned),
                    container: access.container.as_deref().map(str::to_owned),
                    time: access.time.clone(),
                    result: access.result.to_string(),
                    reason: access.reason.as_deref().map(str::to_owned),
                };
                ops.push(self.view.put_json_op(&key, &record)?);
                rows.push(key);
            }
        }
        let n_rows = rows.len();
        let batch = BatchRecord {
            agent_id: report.agent.id.clone(),
            received: now,
            token_accessor: sender.token_accessor.clone(),
            token_display_name: sender.token_display_name.clone(),
            accesses: report.accesses.len(),
        };
        ops.push(self.view.put_json_op(&batch_key, &batch)?);
        ops.push(self.view.put_json_op(
            &format!("{BY_RECEIPT}{}/{batch_seg}", millis_key(now)),
            &rows,
        )?);
        let prev_state = previous.map(|p| p.state).unwrap_or_default();
        let agent = StoredAgent {
            identity: report.agent.clone(),
            last_seen: Some(now),
            state: report.state.clone().unwrap_or(prev_state),
            dropped_total: report.dropped_total,
            token_accessor: sender.token_accessor.clone(),
            token_display_name: sender.token_display_name.clone(),
        };
        ops.push(self.view.put_json_op(&agent_key, &agent)?);
        self.view.write(ops).await?;
        Ok(Stored::New { rows: n_rows })
    }

    /// The stored batch `batch_id`, if any.
    pub async fn batch(&self, batch_id: &str) -> Result<Option<BatchRecord>, BarrierError> {
        self.view
            .get_json(&format!("{BATCH}{}", escape(batch_id)))
            .await
    }

    /// The ids of every agent that ever reported, sorted.
    pub async fn agent_ids(&self) -> Result<Vec<String>, BarrierError> {
        let keys = self.view.list(AGENT).await?;
        let mut ids: Vec<String> = keys.iter().map(|k| unescape(k)).collect();
        ids.sort();
        Ok(ids)
    }

    pub async fn agent(&self, id: &str) -> Result<Option<StoredAgent>, BarrierError> {
        self.view.get_json(&format!("{AGENT}{}", escape(id))).await
    }

    /// Up to `limit` accesses of API path `path` at or after `since`, oldest first.
    pub async fn accesses(
        &self,
        path: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, BarrierError> {
        let prefix = format!("{ACCESS}{}/", escape(path));
        // Row keys continue with `/` after the millis, so they sort after this one.
        let after = format!("{prefix}{}", millis_key(since));
        let keys = self.view.scan_range(&prefix, Some(&after), limit).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(record) = self.view.get_json::<AccessRecord>(&key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Report batches received at or after `since` (counted a page of keys at a time, no
    /// value read), up to `cap`.
    pub async fn batches_since(
        &self,
        since: DateTime<Utc>,
        cap: usize,
    ) -> Result<usize, BarrierError> {
        let mut after = format!("{BY_RECEIPT}{}", millis_key(since));
        let mut count = 0;
        while count < cap {
            let keys = self.view.scan_range(BY_RECEIPT, Some(&after), 1024).await?;
            count += keys.len();
            match keys.last() {
                Some(last) if keys.len() == 1024 => after = last.clone(),
                _ => break,
            }
        }
        Ok(count.min(cap))
    }

    /// Visit the access rows of every path starting with `path_prefix` received for times at
    /// or after `since`, at most `limit` rows, a page at a time (nothing proportional to the
    /// index is held). Returns whether the limit cut the walk short.
    pub async fn each_access_since(
        &self,
        path_prefix: &str,
        since: DateTime<Utc>,
        limit: usize,
        mut visit: impl FnMut(AccessRecord),
    ) -> Result<bool, BarrierError> {
        const PAGE: usize = 256;
        let prefix = format!("{ACCESS}{}", escape(path_prefix));
        let since_key = millis_key(since);
        let mut after: Option<String> = None;
        let mut seen = 0;
        loop {
            let keys = self
                .view
                .scan_range(&prefix, after.as_deref(), PAGE)
                .await?;
            let Some(last) = keys.last().cloned() else {
                return Ok(false);
            };
            for key in &keys {
                // access/<path>/<millis>/<batch>/<index>: the millis is the third segment
                // from the end (escaped segments hold no `/`).
                let millis = key.rsplit('/').nth(2).unwrap_or("");
                if millis < since_key.as_str() {
                    continue;
                }
                if seen == limit {
                    return Ok(true);
                }
                if let Some(record) = self.view.get_json::<AccessRecord>(key).await? {
                    seen += 1;
                    visit(record);
                }
            }
            after = Some(last);
        }
    }

    /// Remove every batch received before `cutoff`: its access rows and its dedup key.
    /// Returns how many batches went.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize, BarrierError> {
        let cutoff_key = millis_key(cutoff);
        let mut pruned = 0;
        loop {
            let keys = self.view.scan_range(BY_RECEIPT, None, PRUNE_CHUNK).await?;
            let due: Vec<&String> = keys
                .iter()
                .filter(|k| {
                    k.strip_prefix(BY_RECEIPT)
                        .and_then(|r| r.split('/').next())
                        .is_some_and(|millis| millis < cutoff_key.as_str())
                })
                .collect();
            if due.is_empty() {
                return Ok(pruned);
            }
            let mut ops = Vec::new();
            for key in &due {
                let rows: Vec<String> = self.view.get_json(key).await?.unwrap_or_default();
                for row in rows {
                    ops.push(self.view.delete_op(&row)?);
                }
                if let Some(batch_seg) = key.rsplit('/').next() {
                    ops.push(self.view.delete_op(&format!("{BATCH}{batch_seg}"))?);
                }
                ops.push(self.view.delete_op(key)?);
            }
            self.view.write(ops).await?;
            pruned += due.len();
            if due.len() < keys.len() {
                return Ok(pruned);
            }
        }
    }
}

/// Prune batches older than `retention` every `every`, until `stop`.
pub async fn prune_task(
    index: std::sync::Arc<AgentIndex>,
    retention: std::time::Duration,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match index.prune(Utc::now() - retention).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(batches = n, "pruned agent report batches"),
            Err(e) => tracing::warn!(error = %e, "pruning agent report batches failed"),
        }
    }
}

/// How often retention `retention` is enforced: a quarter of it, between 1 s and 5 min.
pub fn prune_interval(retention: std::time::Duration) -> std::time::Duration {
    (retention / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(300),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hush_api::wire::agents::Access;

    use super::*;
    use crate::barrier::Barrier;

    async fn index() -> AgentIndex {
        let barrier = Arc::new(Barrier::new(Arc::new(crate::storage::MemoryBackend::new())));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        AgentIndex::new(BarrierView::new(barrier, "sys/agents/"))
    }

    fn report(batch: &str, times: &[&str]) -> Report {
        Report {
            batch_id: batch.into(),
            agent: AgentIdentity {
                id: "ns/pod".into(),
                ..Default::default()
            },
            accesses: times
                .iter()
                .map(|t| Access {
                    time: (*t).into(),
                    file: "db".into(),
                    paths: vec!["secret/data/a/x".into(), "secret/data/b".into()].into(),
                    result: "allowed".into(),
                    ..Default::default()
                })
                .collect(),
            dropped_total: 0,
            state: None,
        }
    }

    async fn store(ix: &AgentIndex, r: &Report, now: DateTime<Utc>) -> Stored {
        ix.report::<BarrierError, _, _>(r, &Sender::default(), now, || async { Ok(()) })
            .await
            .unwrap()
    }

    #[test]
    fn escaping_round_trips_and_never_makes_dot_segments() {
        for s in ["a/b", "%2F", ".", "..", "a.b", "x%y/z"] {
            let e = escape(s);
            assert!(!e.contains('/') && e != "." && e != "..", "{s} -> {e}");
            assert_eq!(unescape(&e), s);
        }
    }

    #[tokio::test]
    async fn rows_by_path_and_time_dedup_and_prune() {
        let ix = index().await;
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let r = report("b1", &["2026-01-01T00:00:01Z", "2026-01-01T00:00:05Z"]);
        assert_eq!(store(&ix, &r, t0).await, Stored::New { rows: 4 });
        assert_eq!(store(&ix, &r, t0).await, Stored::Duplicate);
        let all = ix.accesses("secret/data/a/x", t0, 100).await.unwrap();
        assert_eq!(all.len(), 2);
        let late = ix
            .accesses(
                "secret/data/a/x",
                "2026-01-01T00:00:05Z".parse().unwrap(),
                100,
            )
            .await
            .unwrap();
        assert_eq!(late.len(), 1);
        assert!(ix
            .accesses("secret/data/a", t0, 100)
            .await
            .unwrap()
            .is_empty());
        // A second batch received later survives a prune that takes the first.
        let t1 = t0 + chrono::Duration::hours(1);
        store(&ix, &report("b2", &["2026-01-01T01:00:00Z"]), t1).await;
        assert_eq!(ix.prune(t1).await.unwrap(), 1);
        assert!(ix.batch("b1").await.unwrap().is_none());
        assert!(ix.batch("b2").await.unwrap().is_some());
        assert_eq!(
            ix.accesses("secret/data/b", t0, 100).await.unwrap().len(),
            1
        );
        assert_eq!(ix.agent_ids().await.unwrap(), vec!["ns/pod".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_copies_of_one_batch_store_it_once() {
        let ix = Arc::new(index().await);
        let now = Utc::now();
        let r = report("dup", &["2026-01-01T00:00:01Z"]);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (ix, r) = (ix.clone(), r.clone());
                tokio::spawn(async move { store(&ix, &r, now).await })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Stored::New { .. }) {
                new += 1;
            }
        }
        assert_eq!(new, 1);
        let rows = ix
            .accesses("secret/data/b", DateTime::<Utc>::MIN_UTC, 100)
            .await;
        assert_eq!(rows.unwrap().len(), 1);
    }
}

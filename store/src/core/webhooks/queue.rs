//! The durable delivery queue behind the barrier (view `sys/webhooks/`). A delivery is written
//! before anything is sent (an outbox): once [`super::Webhooks::emit`] returns, it survives a
//! kill -9 and is sent, retried or marked failed by whichever node is active.
//!
//! Keys (`REL` = `<webhook>/<newest-first millis, 20 digits>/<delivery id>`):
//! - `delivery/REL`: the [`Delivery`] (its event, body, status, attempts, last error); one
//!   webhook's deliveries are one key range, newest first, for `sys/webhooks/:name/deliveries`;
//! - `queue/<due millis, 20 digits>/REL`: one key per pending delivery, ordered by when its
//!   next attempt is due: the worker reads the head of this range only, so a restart loads
//!   nothing but what is due next (as the lease expiry index);
//! - `pending/REL`: one key per pending delivery, counted (never read) to bound each
//!   webhook's queue;
//! - `done/<finished millis, 20 digits>/REL`: delivered and failed deliveries in the order
//!   retention prunes them;
//! - `stats/<webhook>`: [`Stats`], what overflowed.
//!
//! Every change of a delivery (written, retried, finished) is one atomic batch of these keys.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::barrier::{BarrierError, BarrierView};
use crate::storage::Op;

pub const CONFIG: &str = "config/";
const DELIVERY: &str = "delivery/";
const QUEUE: &str = "queue/";
pub const PENDING: &str = "pending/";
const DONE: &str = "done/";
const STATS: &str = "stats/";

/// Keys removed per storage write when pruning or clearing.
const CHUNK: usize = 256;

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Delivered,
    Failed,
}

/// One event for one webhook. `body` is the JSON sent on every attempt (no secret value in
/// it: event metadata only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub webhook: String,
    pub event_type: String,
    pub path: String,
    pub body: String,
    pub status: Status,
    pub attempts: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The due millis of its `queue/` key while pending.
    pub due_ms: i64,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub last_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
}

/// What overflowed a webhook's queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub dropped: u64,
    #[serde(default)]
    pub last_dropped: Option<DateTime<Utc>>,
}

fn millis(ms: i64) -> String {
    format!("{:020}", ms.max(0))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Delivery {
    /// A new pending delivery of `body`, due at once.
    pub fn new(webhook: &str, event_type: &str, path: &str, id: String, body: String) -> Self {
        let now = Utc::now();
        Delivery {
            id,
            webhook: webhook.to_string(),
            event_type: event_type.to_string(),
            path: path.to_string(),
            body,
            status: Status::Pending,
            attempts: 0,
            last_error: None,
            due_ms: now.timestamp_millis(),
            created: now,
            last_attempt: None,
            finished: None,
        }
    }

    /// `<webhook>/<newest-first millis>/<id>`: the tail of each of its keys.
    pub fn rel(&self) -> String {
        let newest_first = i64::MAX - self.created.timestamp_millis().max(0);
        format!("{}/{}/{}", self.webhook, millis(newest_first), self.id)
    }

    /// What `sys/webhooks/:name/deliveries` shows (not the body).
    pub fn public(&self) -> Value {
        let next = (self.status == Status::Pending)
            .then(|| Utc.timestamp_millis_opt(self.due_ms).single().map(rfc3339))
            .flatten();
        json!({
            "id": self.id,
            "type": self.event_type,
            "path": self.path,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "next_attempt": next,
            "created": rfc3339(self.created),
            "last_attempt": self.last_attempt.map(rfc3339),
            "finished": self.finished.map(rfc3339),
        })
    }
}

/// The queue over one barrier view.
#[derive(Debug, Clone)]
pub struct Queue {
    view: BarrierView,
}

impl Queue {
    pub fn new(view: BarrierView) -> Self {
        Queue { view }
    }

    pub fn view(&self) -> &BarrierView {
        &self.view
    }

    /// The storage ops that write `d` as a new pending delivery.
    pub fn enqueue_ops(&self, d: &Delivery) -> Result<Vec<Op>, BarrierError> {
        let rel = d.rel();
        Ok(vec![
            self.view.put_json_op(&format!("{DELIVERY}{rel}"), d)?,
            self.view
                .put_op(&format!("{QUEUE}{}/{rel}", millis(d.due_ms)), Vec::new())?,
            self.view.put_op(&format!("{PENDING}{rel}"), Vec::new())?,
        ])
    }

    /// Store `d` (read before at queue key due `old_due`) after a failed attempt: still
    /// pending at its new `due_ms`, or finished.
    pub async fn update(&self, old_due: i64, d: &Delivery) -> Result<(), BarrierError> {
        let rel = d.rel();
        let mut ops = vec![
            self.view.put_json_op(&format!("{DELIVERY}{rel}"), d)?,
            self.view
                .delete_op(&format!("{QUEUE}{}/{rel}", millis(old_due)))?,
        ];
        match (d.status, d.finished) {
            (Status::Pending, _) => ops.push(
                self.view
                    .put_op(&format!("{QUEUE}{}/{rel}", millis(d.due_ms)), Vec::new())?,
            ),
            (_, finished) => {
                let at = finished.unwrap_or_else(Utc::now).timestamp_millis();
                ops.push(self.view.delete_op(&format!("{PENDING}{rel}"))?);
                ops.push(
                    self.view
                        .put_op(&format!("{DONE}{}/{rel}", millis(at)), Vec::new())?,
                );
            }
        }
        self.view.write(ops).await
    }

    /// Up to `limit` queue entries, earliest due first: (due millis, REL).
    pub async fn head(&self, limit: usize) -> Result<Vec<(i64, String)>, BarrierError> {
        let keys = self.view.scan_range(QUEUE, None, limit).await?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                let (due, rel) = k.strip_prefix(QUEUE)?.split_once('/')?;
                Some((due.parse().ok()?, rel.to_string()))
            })
            .collect())
    }

    pub async fn load(&self, rel: &str) -> Result<Option<Delivery>, BarrierError> {
        self.view.get_json(&format!("{DELIVERY}{rel}")).await
    }

    /// Remove a queue key whose delivery is gone or no longer due there; `pending`: its
    /// pending marker too (the delivery will never be sent).
    pub async fn drop_queue_key(
        &self,
        due: i64,
        rel: &str,
        pending: bool,
    ) -> Result<(), BarrierError> {
        let mut ops = vec![self
            .view
            .delete_op(&format!("{QUEUE}{}/{rel}", millis(due)))?];
        if pending {
            ops.push(self.view.delete_op(&format!("{PENDING}{rel}"))?);
        }
        self.view.write(ops).await
    }

    /// Up to `limit` deliveries of `webhook`, newest first.
    pub async fn recent(&self, webhook: &str, limit: usize) -> Result<Vec<Delivery>, BarrierError> {
        let keys = self
            .view
            .scan_range(&format!("{DELIVERY}{webhook}/"), None, limit)
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(d) = self.view.get_json::<Delivery>(&k).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Remove deliveries finished before `cutoff`; returns how many went.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<usize, BarrierError> {
        let cutoff = millis(cutoff.timestamp_millis());
        let mut pruned = 0;
        loop {
            let keys = self.view.scan_range(DONE, None, CHUNK).await?;
            let mut ops = Vec::new();
            for k in &keys {
                let Some((at, rel)) = k.strip_prefix(DONE).and_then(|r| r.split_once('/')) else {
                    continue;
                };
                if at >= cutoff.as_str() {
                    break;
                }
                ops.push(self.view.delete_op(k)?);
                ops.push(self.view.delete_op(&format!("{DELIVERY}{rel}"))?);
            }
            if ops.is_empty() {
                return Ok(pruned);
            }
            pruned += ops.len() / 2;
            let full = ops.len() / 2 == keys.len();
            self.view.write(ops).await?;
            if !full {
                return Ok(pruned);
            }
        }
    }

    /// Everything stored for `webhook` (a delete): its deliveries, their queue keys, its
    /// stats. `done/` keys left behind point at nothing and go with the next prune.
    pub async fn clear(&self, webhook: &str) -> Result<(), BarrierError> {
        let prefix = format!("{DELIVERY}{webhook}/");
        loop {
            let keys = self.view.scan_range(&prefix, None, CHUNK).await?;
            if keys.is_empty() {
                break;
            }
            let mut ops = Vec::new();
            for k in &keys {
                if let Some(d) = self.view.get_json::<Delivery>(k).await? {
                    if d.status == Status::Pending {
                        let rel = d.rel();
                        ops.push(
                            self.view
                                .delete_op(&format!("{QUEUE}{}/{rel}", millis(d.due_ms)))?,
                        );
                        ops.push(self.view.delete_op(&format!("{PENDING}{rel}"))?);
                    }
                }
                ops.push(self.view.delete_op(k)?);
            }
            self.view.write(ops).await?;
        }
        // Pending markers without a delivery (none are written so, but a delete must leave
        // nothing).
        let pending = self
            .view
            .scan_prefix(&format!("{PENDING}{webhook}/"))
            .await?;
        for chunk in pending.chunks(CHUNK) {
            let ops = chunk
                .iter()
                .map(|k| self.view.delete_op(k))
                .collect::<Result<Vec<_>, _>>()?;
            self.view.write(ops).await?;
        }
        self.view.delete(&format!("{STATS}{webhook}")).await
    }

    pub async fn stats(&self, webhook: &str) -> Result<Stats, BarrierError> {
        Ok(self
            .view
            .get_json(&format!("{STATS}{webhook}"))
            .await?
            .unwrap_or_default())
    }

    pub async fn put_stats(&self, webhook: &str, s: &Stats) -> Result<(), BarrierError> {
        self.view.put_json(&format!("{STATS}{webhook}"), s).await
    }
}

/// The wait before retry `attempt` (1: the first retry): 1 s doubled per attempt, at most
/// 5 min.
pub fn backoff(attempt: u64) -> std::time::Duration {
    let secs = 1u64 << attempt.saturating_sub(1).min(16);
    std::time::Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::barrier::Barrier;

    async fn queue() -> Queue {
        let barrier = Arc::new(Barrier::new(Arc::new(crate::storage::MemoryBackend::new())));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        Queue::new(BarrierView::new(barrier, "sys/webhooks/"))
    }

    #[test]
    fn backoff_starts_within_five_seconds_and_is_capped() {
        assert_eq!(backoff(1).as_secs(), 1);
        assert_eq!(backoff(3).as_secs(), 4);
        assert_eq!(backoff(9).as_secs(), 256);
        assert_eq!(backoff(10).as_secs(), 300);
        assert_eq!(backoff(1000).as_secs(), 300);
    }

    #[tokio::test]
    async fn the_head_is_ordered_by_due_time_and_finished_ones_leave_it() {
        let q = queue().await;
        let mut ds = Vec::new();
        for (i, due) in [30i64, 10, 20].into_iter().enumerate() {
            let mut d = Delivery::new(
                "h",
                "kv.write",
                "secret/data/x",
                format!("id{i}"),
                "{}".into(),
            );
            d.due_ms = due;
            q.view.write(q.enqueue_ops(&d).unwrap()).await.unwrap();
            ds.push(d);
        }
        let head = q.head(10).await.unwrap();
        let dues: Vec<i64> = head.iter().map(|(d, _)| *d).collect();
        assert_eq!(dues, vec![10, 20, 30]);
        assert_eq!(q.load(&head[0].1).await.unwrap().unwrap().id, "id1");
        // A retry moves it; a finish takes it out of the queue and the pending count.
        let mut d = ds[1].clone();
        d.attempts = 1;
        d.due_ms = 40;
        q.update(10, &d).await.unwrap();
        let dues: Vec<i64> = q.head(10).await.unwrap().iter().map(|(d, _)| *d).collect();
        assert_eq!(dues, vec![20, 30, 40]);
        let mut f = ds[0].clone();
        f.status = Status::Delivered;
        f.finished = Some(Utc::now() - chrono::Duration::hours(2));
        q.update(30, &f).await.unwrap();
        assert_eq!(q.head(10).await.unwrap().len(), 2);
        assert_eq!(q.view.scan_prefix(PENDING).await.unwrap().len(), 2);
        assert_eq!(q.recent("h", 10).await.unwrap().len(), 3);
        assert_eq!(
            q.prune(Utc::now() - chrono::Duration::hours(1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(q.recent("h", 10).await.unwrap().len(), 2);
        q.clear("h").await.unwrap();
        assert!(q.head(10).await.unwrap().is_empty());
        assert!(q.view.scan_prefix("").await.unwrap().is_empty());
    }
}

//! The tasks of [`Webhooks`] that run while this node is unsealed and active (they stop with
//! `Unsealed::background`): the delivery task over the head of the due-time index, the follower
//! of the core's event bus that turns KV events into webhook events, and retention.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::queue::{backoff, Status};
use super::{send, Webhooks, RETENTION};
use crate::barrier::BarrierError;
use crate::logical::events::Event;

/// Queue entries read per pass (and sent side by side at most).
const HEAD: usize = 32;
/// The longest sleep of the delivery task (a clock that jumped is noticed within this).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Wait after an unexpected storage error.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Webhooks {
    /// Start the delivery task, the bus follower (over `events`) and retention; all end with
    /// `stop` (seal, step-down) or when the barrier seals.
    pub fn spawn(
        self: &Arc<Self>,
        events: broadcast::Receiver<Arc<Event>>,
        stop: CancellationToken,
    ) {
        drop(tokio::spawn(deliver_task(self.clone(), stop.clone())));
        drop(tokio::spawn(follow_bus(self.clone(), events, stop.clone())));
        drop(tokio::spawn(prune_task(self.clone(), stop)));
    }

    /// One pass: attempt every delivery due now among the head of the index. `None`: it did
    /// work (look again at once); else how long until the next one is due.
    pub(super) async fn deliver_due(self: &Arc<Self>) -> Result<Option<Duration>, BarrierError> {
        let head = self.queue.head(HEAD).await?;
        let now = Utc::now().timestamp_millis();
        let due: Vec<(i64, String)> = head
            .iter()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        if due.is_empty() {
            let next = head.first().map_or(i64::MAX, |(at, _)| *at);
            let ms = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
            return Ok(Some(Duration::from_millis(ms)));
        }
        let mut set = tokio::task::JoinSet::new();
        for (at, rel) in due {
            let me = self.clone();
            set.spawn(async move { me.attempt(at, &rel).await });
        }
        let mut first_err = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => tracing::error!(error = %e, "a webhook delivery task failed"),
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// One attempt of the delivery at queue key (`due`, `rel`).
    async fn attempt(&self, due: i64, rel: &str) -> Result<(), BarrierError> {
        let Some(mut d) = self.queue.load(rel).await? else {
            return self.queue.drop_queue_key(due, rel, true).await;
        };
        if d.status != Status::Pending || d.due_ms != due {
            // A key left behind (the record moved on): only the key goes.
            return self.queue.drop_queue_key(due, rel, false).await;
        }
        let Some(hook) = self.hooks.load().get(&d.webhook).cloned() else {
            // Its webhook was deleted.
            return self.queue.drop_queue_key(due, rel, true).await;
        };
        let now = Utc::now();
        let sent = send::post(
            &hook.client,
            &hook.cfg.url,
            hook.cfg.secret.as_bytes(),
            &d.id,
            now.timestamp(),
            d.body.as_bytes(),
            send::DELIVERY_TIMEOUT,
        )
        .await;
        d.attempts += 1;
        d.last_attempt = Some(now);
        let outcome = match sent {
            Ok(_) => {
                d.status = Status::Delivered;
                d.last_error = None;
                d.finished = Some(Utc::now());
                "delivered"
            }
            Err(e) if d.attempts >= hook.cfg.max_attempts => {
                tracing::warn!(webhook = %d.webhook, delivery = %d.id, attempts = d.attempts,
                    error = %e, "webhook delivery failed for the last time");
                d.status = Status::Failed;
                d.last_error = Some(e.to_string());
                d.finished = Some(Utc::now());
                "failed"
            }
            Err(e) => {
                let wait = backoff(d.attempts);
                tracing::debug!(webhook = %d.webhook, delivery = %d.id, attempt = d.attempts,
                    retry_in_ms = wait.as_millis() as u64, error = %e, "webhook delivery failed; will retry");
                d.last_error = Some(e.to_string());
                d.due_ms = Utc::now().timestamp_millis() + wait.as_millis() as i64;
                "retry"
            }
        };
        self.queue.update(due, &d).await?;
        self.metrics.attempt(outcome);
        if d.status != Status::Pending {
            self.pending_done(&d.webhook);
            self.publish_depth();
        }
        Ok(())
    }
}

async fn deliver_task(me: Arc<Webhooks>, stop: CancellationToken) {
    loop {
        let wait = tokio::select! {
            () = stop.cancelled() => return,
            pass = me.deliver_due() => match pass {
                Ok(wait) => wait,
                Err(_) if stop.is_cancelled() || me.is_sealed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery queue: storage error");
                    Some(ERROR_PAUSE)
                }
            },
        };
        let Some(wait) = wait else { continue };
        tokio::select! {
            () = stop.cancelled() => return,
            () = me.wake.notified() => {}
            () = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
        }
    }
}

async fn follow_bus(
    me: Arc<Webhooks>,
    mut events: broadcast::Receiver<Arc<Event>>,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            r = events.recv() => r,
        };
        match received {
            Ok(event) => {
                // Nothing is built for an event no webhook wants.
                let wanted =
                    kv_type(&event.event_type).is_some_and(|t| me.wanted(t, event.access_path()));
                let Some((event_type, data)) = wanted.then(|| kv_event(&event)).flatten() else {
                    continue;
                };
                if let Err(e) = me.emit(event_type, event.access_path(), data).await {
                    if stop.is_cancelled() || me.is_sealed() {
                        return;
                    }
                    me.metrics.dropped("error", 1);
                    tracing::warn!(error = %e, event = event_type, "webhook: cannot queue a KV event");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                me.metrics.dropped("lagged", n);
                tracing::warn!(
                    events = n,
                    "webhook: the event bus ran ahead of the webhook queue; events dropped"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn prune_task(me: Arc<Webhooks>, stop: CancellationToken) {
    let retention = chrono::Duration::from_std(RETENTION).expect("a day fits");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        match me.queue.prune(Utc::now() - retention).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deliveries = n, "pruned finished webhook deliveries"),
            Err(_) if me.is_sealed() => return,
            Err(e) => tracing::warn!(error = %e, "pruning webhook deliveries failed"),
        }
    }
}

/// The webhook event type of a KV event type of the bus.
fn kv_type(bus_type: &str) -> Option<&'static str> {
    Some(match bus_type {
        "kv-v2/data-write" | "kv-v2/data-patch" | "kv-v1/write" => "kv.write",
        "kv-v2/data-delete" | "kv-v2/delete" | "kv-v2/metadata-delete" | "kv-v1/delete" => {
            "kv.delete"
        }
        "kv-v2/destroy" | "kv-v2/data-destroy" => "kv.destroy",
        _ => return None,
    })
}

/// A KV event of the bus as a webhook event: its type and data (the mount, the KV operation,
/// the path it was made through, the version numbers; never a value). `None`: not one
/// webhooks carry. Its path is the event's data path (`secret/data/app/db` for a destroy too).
pub fn kv_event(e: &Event) -> Option<(&'static str, Map<String, Value>)> {
    let kind = kv_type(&e.event_type)?;
    let mut data = Map::new();
    data.insert("mount".into(), e.plugin.mount_path.clone().into());
    data.insert("operation".into(), e.event_type.clone().into());
    data.insert("api_path".into(), e.path.clone().into());
    for (k, v) in &e.metadata {
        if matches!(k.as_str(), "modified" | "operation") {
            continue;
        }
        let value = v
            .parse::<u64>()
            .map_or_else(|_| v.clone().into(), Value::from);
        data.insert(k.clone(), value);
    }
    Some((kind, data))
}

//! Webhooks (`sys/webhooks/:name`, hush's own API): signed POSTs of what happened (KV writes,
//! deletes and destroys, leases revoked or expired, failed logins, seal and unseal, audit
//! failures, and the rotation events the rotation code emits) to receivers, from a durable
//! queue, at least once, with an id receivers deduplicate on.
//!
//! # Layout
//! - [`config`]: the stored webhook, the write's validation, the event types and path globs;
//! - [`queue`]: the durable queue behind the barrier (deliveries, the due-time index,
//!   retention) and the backoff;
//! - [`send`]: one signed POST (HTTP client, signature headers, error text);
//! - [`worker`]: the tasks that run while this node is unsealed and active: delivery, the
//!   event bus follower (KV events), retention;
//! - this file: [`Webhooks`], what the rest of the core calls (`emit`, `call`, the CRUD of
//!   `sys/webhooks`).
//!
//! Event sources: KV events arrive from the core's event bus ([`worker::kv_event`] maps their
//! types); the others are emitted where they happen (core/state.rs: seal, unseal;
//! core/expiration: lease.revoked, lease.expired; core/login: login.failed; core/audit:
//! audit.failed) and by the rotation code through [`Webhooks::emit`]. A payload holds paths,
//! versions and other metadata: never a secret value, and nothing is ever logged of a body.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::barrier::{Barrier, BarrierError, BarrierView};
use crate::logical::{Data, LogicalError};
use crate::metrics::WebhookMetrics;

pub mod config;
pub mod queue;
pub mod send;
mod worker;

pub use config::EVENT_TYPES;
pub use send::{sign, SendError, HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use config::StoredWebhook;
use queue::{Delivery, Queue, Stats};

/// Delivered and failed deliveries are kept this long, then pruned.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// One rate-limited event (`login.failed`, `audit.failed`) per key per window; the ones
/// suppressed meanwhile are counted in the next one's `suppressed`.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(30);
/// Keys the rate limit remembers; past that, new keys are suppressed (and counted) until old
/// ones expire.
const LIMIT_KEYS: usize = 10_000;
/// The largest event body (JSON bytes) a delivery carries.
pub const MAX_BODY: usize = 64 * 1024;
/// Deliveries `sys/webhooks/:name/deliveries` shows when the request gives no `limit`.
pub const DEFAULT_LIST: usize = 100;
/// The most it shows.
pub const MAX_LIST: usize = 1000;

/// What a caller of [`Webhooks`] can be told.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook named {0:?}")]
    UnknownWebhook(String),
    #[error("unknown webhook event type {0:?}")]
    UnknownEventType(String),
    /// An event whose body would be over [`MAX_BODY`] bytes (or whose path is over 1 KiB).
    #[error("webhook event too large: {0} bytes (at most {MAX_BODY})")]
    TooLarge(usize),
    /// The POST of a [`Webhooks::call`] got no 2xx.
    #[error("webhook {name:?}: {error}")]
    Send { name: String, error: SendError },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

impl From<WebhookError> for LogicalError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Barrier(b) => LogicalError::Barrier(b),
            WebhookError::UnknownWebhook(_) => LogicalError::NotFound(e.to_string()),
            e => LogicalError::invalid(e.to_string()),
        }
    }
}

/// A loaded webhook: its configuration and its HTTP client.
struct Hook {
    cfg: StoredWebhook,
    client: reqwest::Client,
}

/// The rate limit of [`Webhooks::emit_limited`]: per key, when the last event went and how
/// many were suppressed since.
#[derive(Default)]
struct Limiter {
    keys: HashMap<u64, (Instant, u64)>,
}

/// The webhooks of one unseal (on `Unsealed`).
pub struct Webhooks {
    queue: Queue,
    barrier: Arc<Barrier>,
    hooks: ArcSwap<BTreeMap<String, Arc<Hook>>>,
    /// Pending deliveries per webhook (counted from storage at unseal, kept since).
    pending: parking_lot::Mutex<HashMap<String, u64>>,
    /// Serialises configuration changes.
    config_lock: tokio::sync::Mutex<()>,
    /// Wakes the delivery task: something new is due now.
    wake: tokio::sync::Notify,
    metrics: WebhookMetrics,
    limiter: parking_lot::Mutex<Limiter>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("webhooks", &self.hooks.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Load the webhooks stored in `view` (their configuration and the count of their pending
    /// deliveries; no delivery is read).
    pub async fn open(
        barrier: Arc<Barrier>,
        view: BarrierView,
        metrics: WebhookMetrics,
    ) -> Result<Arc<Self>, LogicalError> {
        let mut hooks = BTreeMap::new();
        let mut pending = HashMap::new();
        for name in view.list(queue::CONFIG).await? {
            let Some(cfg) = view
                .get_json::<StoredWebhook>(&format!("{}{name}", queue::CONFIG))
                .await?
            else {
                continue;
            };
            let client = send::client(cfg.ca_pem.as_deref()).map_err(LogicalError::Internal)?;
            let full = format!("{}{}{name}/", view.prefix(), queue::PENDING);
            pending.insert(name.clone(), barrier.backend().count_prefix(&full).await?);
            hooks.insert(name, Arc::new(Hook { cfg, client }));
        }
        metrics.set_queue_depth(pending.values().sum());
        Ok(Arc::new(Webhooks {
            queue: Queue::new(view),
            barrier,
            hooks: ArcSwap::from_pointee(hooks),
            pending: parking_lot::Mutex::new(pending),
            config_lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            metrics,
            limiter: parking_lot::Mutex::default(),
        }))
    }

    /// Does any webhook want `event_type` at `path`?
    pub fn wanted(&self, event_type: &str, path: &str) -> bool {
        self.hooks
            .load()
            .values()
            .any(|h| h.cfg.wants(event_type, path))
    }

    /// Queue `event_type` at API path `path` with `data` (non-secret metadata: versions,
    /// names, times) for every webhook that wants it, durably: when this returns `Ok`, the
    /// deliveries are stored and will be sent (after a restart too). Returns how many were
    /// queued; a webhook whose queue is full counts the event as dropped instead.
    pub async fn emit(
        &self,
        event_type: &str,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<usize, WebhookError> {
        Ok(self.enqueue(event_type, path, data).await?.len())
    }

    async fn enqueue(
        &self,
        event_type: &str,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Vec<(Arc<Hook>, Delivery)>, WebhookError> {
        if !EVENT_TYPES.contains(&event_type) {
            return Err(WebhookError::UnknownEventType(event_type.to_string()));
        }
        let hooks = self.hooks.load_full();
        let wanted: Vec<(&String, &Arc<Hook>)> = hooks
            .iter()
            .filter(|(_, h)| h.cfg.wants(event_type, path))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        if path.len() > 1024 {
            return Err(WebhookError::TooLarge(path.len()));
        }
        let time = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // The body's size, checked once: only its id differs between webhooks (a UUID).
        let size = json!({"id": uuid::Uuid::nil().to_string(), "type": event_type, "time": time,
            "path": path, "data": data})
        .to_string()
        .len();
        if size > MAX_BODY {
            return Err(WebhookError::TooLarge(size));
        }
        let mut taken = Vec::new();
        let mut overflow = Vec::new();
        {
            let mut pending = self.pending.lock();
            for (name, hook) in wanted {
                let n = pending.entry(name.clone()).or_default();
                if *n >= hook.cfg.max_pending {
                    overflow.push(name.clone());
                    continue;
                }
                *n += 1;
                let id = uuid::Uuid::new_v4().to_string();
                let body = json!({
                    "id": id,
                    "type": event_type,
                    "time": time,
                    "path": path,
                    "data": data,
                });
                let d = Delivery::new(name, event_type, path, id, body.to_string());
                taken.push((hook.clone(), d));
            }
        }
        for name in overflow {
            self.note_overflow(&name).await;
        }
        if taken.is_empty() {
            return Ok(taken);
        }
        let mut ops = Vec::new();
        for (_, d) in &taken {
            ops.extend(self.queue.enqueue_ops(d)?);
        }
        if let Err(e) = self.queue.view().write(ops).await {
            for (_, d) in &taken {
                self.pending_done(&d.webhook);
            }
            return Err(e.into());
        }
        self.publish_depth();
        self.wake.notify_one();
        Ok(taken)
    }

    /// As [`Webhooks::emit`], and also one immediate attempt of each delivery that does not
    /// wait for or touch storage: for `seal`, after which this node stops delivering. The
    /// stored delivery is sent again after the next unseal (with the same id: receivers
    /// deduplicate).
    pub async fn emit_and_send_now(
        &self,
        event_type: &str,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<usize, WebhookError> {
        let taken = self.enqueue(event_type, path, data).await?;
        for (hook, d) in &taken {
            let (hook, d) = (hook.clone(), d.clone());
            drop(tokio::spawn(async move {
                let sent = send::post(
                    &hook.client,
                    &hook.cfg.url,
                    hook.cfg.secret.as_bytes(),
                    &d.id,
                    Utc::now().timestamp(),
                    d.body.as_bytes(),
                    send::DELIVERY_TIMEOUT,
                )
                .await;
                if let Err(e) = sent {
                    tracing::debug!(webhook = %d.webhook, delivery = %d.id, error = %e,
                        "webhook: the immediate attempt failed; sent again after the next unseal");
                }
            }));
        }
        Ok(taken.len())
    }

    /// A rate-limited event (`login.failed`, `audit.failed`): at most one per `key` (a digest
    /// of who or what failed) per [`LIMIT_WINDOW`]; the ones suppressed in between are
    /// counted (metrics, and `suppressed` in the next event's data). Queued in the background:
    /// the caller (a failing login) never waits for storage.
    pub fn emit_limited(
        self: &Arc<Self>,
        key: u64,
        event_type: &'static str,
        path: String,
        mut data: Map<String, Value>,
    ) {
        if !self.wanted(event_type, &path) {
            return;
        }
        let now = Instant::now();
        let suppressed = {
            let mut l = self.limiter.lock();
            if l.keys.len() >= LIMIT_KEYS && !l.keys.contains_key(&key) {
                l.keys
                    .retain(|_, (at, _)| now.duration_since(*at) < LIMIT_WINDOW);
            }
            let full = l.keys.len() >= LIMIT_KEYS;
            match l.keys.get_mut(&key) {
                Some((at, n)) if now.duration_since(*at) < LIMIT_WINDOW => {
                    *n += 1;
                    None
                }
                Some((at, n)) => {
                    let before = *n;
                    (*at, *n) = (now, 0);
                    Some(before)
                }
                None if full => None,
                None => {
                    l.keys.insert(key, (now, 0));
                    Some(0)
                }
            }
        };
        let Some(suppressed) = suppressed else {
            self.metrics.dropped("rate_limited", 1);
            return;
        };
        data.insert("suppressed".into(), suppressed.into());
        let me = self.clone();
        drop(tokio::spawn(async move {
            if let Err(e) = me.emit(event_type, &path, data).await {
                tracing::warn!(event = event_type, error = %e, "webhook: cannot queue an event");
            }
        }));
    }

    /// One signed POST of `body` to webhook `name`, now, not queued (a fresh delivery id, the
    /// same headers as a delivery, at most [`send::CALL_TIMEOUT`]): the receiver's JSON answer
    /// on a 2xx (`null` for an empty or non-JSON one), else why not. The body is never logged.
    pub async fn call(&self, name: &str, body: &Value) -> Result<Value, WebhookError> {
        let hook = self
            .hooks
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| WebhookError::UnknownWebhook(name.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let bytes = serde_json::to_vec(body).expect("JSON values serialise");
        let answer = send::post(
            &hook.client,
            &hook.cfg.url,
            hook.cfg.secret.as_bytes(),
            &id,
            Utc::now().timestamp(),
            &bytes,
            send::CALL_TIMEOUT,
        )
        .await
        .map_err(|error| WebhookError::Send {
            name: name.to_string(),
            error,
        })?;
        Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }

    /// The names of the webhooks, sorted.
    pub fn names(&self) -> Vec<String> {
        self.hooks.load().keys().cloned().collect()
    }

    /// What `sys/webhooks/:name` reads (never the secret).
    pub fn read(&self, name: &str) -> Option<Value> {
        self.hooks.load().get(name).map(|h| h.cfg.public())
    }

    /// `sys/webhooks/:name` written with `data` (validated whole; fields not given keep their
    /// value).
    pub async fn write(&self, name: &str, data: &Data) -> Result<(), LogicalError> {
        config::check_name(name)?;
        let _guard = self.config_lock.lock().await;
        let hooks = self.hooks.load_full();
        let existing = hooks.get(name);
        if existing.is_none() && hooks.len() >= config::MAX_WEBHOOKS {
            return Err(LogicalError::invalid(format!(
                "at most {} webhooks: delete one first",
                config::MAX_WEBHOOKS
            )));
        }
        let cfg = config::from_write(data, existing.map(|h| &h.cfg), Utc::now())?;
        let client = send::client(cfg.ca_pem.as_deref()).map_err(LogicalError::invalid)?;
        self.queue
            .view()
            .put_json(&format!("{}{name}", queue::CONFIG), &cfg)
            .await?;
        let mut next = (*hooks).clone();
        next.insert(name.to_string(), Arc::new(Hook { cfg, client }));
        self.hooks.store(Arc::new(next));
        tracing::info!(webhook = %name, "webhook written");
        Ok(())
    }

    /// Delete webhook `name` with its deliveries (pending ones are not sent). `false`: none.
    pub async fn delete(&self, name: &str) -> Result<bool, LogicalError> {
        let _guard = self.config_lock.lock().await;
        let hooks = self.hooks.load_full();
        if !hooks.contains_key(name) {
            return Ok(false);
        }
        let mut next = (*hooks).clone();
        next.remove(name);
        // Out of memory first: the delivery task stops sending for it.
        self.hooks.store(Arc::new(next));
        self.queue
            .view()
            .delete(&format!("{}{name}", queue::CONFIG))
            .await?;
        self.queue.clear(name).await?;
        self.pending.lock().remove(name);
        self.publish_depth();
        tracing::info!(webhook = %name, "webhook deleted");
        Ok(true)
    }

    /// The `limit` most recent deliveries of `name`, newest first, with its counts.
    pub async fn deliveries(&self, name: &str, limit: usize) -> Result<Value, WebhookError> {
        if !self.hooks.load().contains_key(name) {
            return Err(WebhookError::UnknownWebhook(name.to_string()));
        }
        let list = self.queue.recent(name, limit.min(MAX_LIST)).await?;
        let stats = self.queue.stats(name).await?;
        let pending = self.pending.lock().get(name).copied().unwrap_or(0);
        Ok(json!({
            "deliveries": list.iter().map(Delivery::public).collect::<Vec<_>>(),
            "pending": pending,
            "dropped": stats.dropped,
            "last_dropped": stats.last_dropped.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        }))
    }

    /// The ids of the `limit` most recent deliveries of `name`, newest first.
    pub async fn delivery_ids(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<String>, WebhookError> {
        if !self.hooks.load().contains_key(name) {
            return Err(WebhookError::UnknownWebhook(name.to_string()));
        }
        let list = self.queue.recent(name, limit.min(MAX_LIST)).await?;
        Ok(list.into_iter().map(|d| d.id).collect())
    }

    /// A full queue refused an event for `name`: counted in the metrics and (durably) in its
    /// stats, which the deliveries list shows.
    async fn note_overflow(&self, name: &str) {
        self.metrics.dropped("overflow", 1);
        tracing::warn!(webhook = %name, "webhook queue full: event dropped");
        let result = async {
            let mut s: Stats = self.queue.stats(name).await?;
            s.dropped += 1;
            s.last_dropped = Some(Utc::now());
            self.queue.put_stats(name, &s).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(webhook = %name, error = %e, "cannot count a dropped webhook event");
        }
    }

    /// One pending delivery of `name` finished (or was never stored).
    fn pending_done(&self, name: &str) {
        if let Some(n) = self.pending.lock().get_mut(name) {
            *n = n.saturating_sub(1);
        }
    }

    fn publish_depth(&self) {
        self.metrics
            .set_queue_depth(self.pending.lock().values().sum());
    }

    /// The stored queue (tests of the event sources read the bodies).
    #[cfg(test)]
    pub(crate) fn queue(&self) -> &Queue {
        &self.queue
    }

    fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
    }
}

#[cfg(test)]
mod tests;

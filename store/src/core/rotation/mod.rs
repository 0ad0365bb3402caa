//! Scheduled rotation of KV secrets (`sys/rotation`, hush's own API), in the shape of AWS
//! Secrets Manager's: **create** a pending version, **set** it in the target system,
//! **test** it, **finish** by making it current. Each step is a signed POST to a configured
//! webhook (`sys/webhooks`); any failure leaves the current version untouched and marks the
//! pending one failed, retried with backoff.
//!
//! # Layout
//!
//! - `schedule`: `hourly` ... `monthly`, `@every`, cron lines.
//! - `config`: the stored settings of one secret's rotation.
//! - `run`: the steps and the one scheduler task (on the active node only: it lives and
//!   dies with the unsealed state).
//!
//! # Storage (the barrier view `sys/rotation/`)
//!
//! - `config/<name>`: [`config::RotationConfig`]; `<name>` is `secret/app/db`, escaped into
//!   one segment.
//! - `state/<name>`: [`RotationState`]: the step in progress, so a rotation cut short by a
//!   crash resumes at that step.
//! - `due/<unix millis, 20 digits>/<name>`: the index the scheduler reads by its head, as
//!   the lease expiry index: a restart loads nothing.
//!
//! The clock is the wall clock plus an offset that only a test moves
//! (`sys/internal/test/clock`, served when hushd's config sets `test_clock_endpoint`).

pub mod config;
mod run;
pub mod schedule;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::barrier::{BarrierError, BarrierView};
use crate::core::agents::{escape, unescape};
use crate::core::lease::index::millis_key;

pub use config::RotationConfig;
pub use run::{backoff, spawn, Env};

const CONFIG: &str = "config/";
const STATE: &str = "state/";
const DUE: &str = "due/";

/// The step a rotation is at (stored, so it resumes after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Nothing in progress.
    #[default]
    Idle,
    /// The pending version exists; the webhook's `create` and then `set` come next.
    Set,
    Test,
    Finish,
}

/// Where one secret's rotation stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    pub step: Step,
    /// The version being rotated to (pending while `step` is not idle).
    pub pending_version: Option<u64>,
    /// The current version the rotation started from.
    pub base_version: u64,
    /// Failures in a row (the backoff's exponent).
    pub failures: u32,
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// `succeeded` or `failed`.
    pub last_outcome: Option<String>,
    /// What failed (no secret: a step, a status, a message hushd wrote).
    pub last_error: Option<String>,
    /// What started the run in progress or the last one: `schedule`, `manual`, `access`.
    pub trigger: Option<String>,
    pub rotations: u64,
}

/// The rotations of one unsealed store.
pub struct Rotations {
    view: BarrierView,
    clock: Arc<TestClock>,
    /// Wakes the scheduler: a run became due earlier, or the clock moved.
    pub(crate) wake: Notify,
    /// `on_access`: data path -> its watch, in memory (a restart starts counting again).
    reads: RwLock<HashMap<String, ReadWatch>>,
    watching_reads: AtomicBool,
}

impl std::fmt::Debug for Rotations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotations").finish_non_exhaustive()
    }
}

/// Reads of one secret counted towards its `on_access` threshold.
#[derive(Debug)]
struct ReadWatch {
    /// The rotation's name.
    name: String,
    threshold: u64,
    count: AtomicU64,
}

/// The wall clock plus an offset a test may move forward (kept across seal and unseal).
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Move the clock forward (never back: a schedule is never run twice for one period).
    pub fn advance(&self, by: TimeDelta) {
        self.offset_ms
            .fetch_add(by.num_milliseconds().max(0), Ordering::SeqCst);
    }
}

fn due_key(at: DateTime<Utc>, name: &str) -> String {
    format!("{DUE}{}/{}", millis_key(at), escape(name))
}

impl Rotations {
    /// Open over the view `sys/rotation/`, loading the `on_access` counters' thresholds.
    pub async fn open(view: BarrierView, clock: Arc<TestClock>) -> Result<Self, BarrierError> {
        let r = Rotations {
            view,
            clock,
            wake: Notify::new(),
            reads: RwLock::new(HashMap::new()),
            watching_reads: AtomicBool::new(false),
        };
        for name in r.names().await? {
            if let Some(c) = r.config(&name).await? {
                r.watch_reads(&c);
            }
        }
        Ok(r)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The names (`secret/app/db`) of every configured rotation.
    pub async fn names(&self) -> Result<Vec<String>, BarrierError> {
        let mut names: Vec<String> = self
            .view
            .list(CONFIG)
            .await?
            .iter()
            .map(|k| unescape(k))
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn config(&self, name: &str) -> Result<Option<RotationConfig>, BarrierError> {
        self.view
            .get_json(&format!("{CONFIG}{}", escape(name)))
            .await
    }

    pub async fn state(&self, name: &str) -> Result<RotationState, BarrierError> {
        Ok(self
            .view
            .get_json(&format!("{STATE}{}", escape(name)))
            .await?
            .unwrap_or_default())
    }

    /// Store `config` (new or changed) and schedule its next run, in one batch. A run in
    /// progress keeps its place.
    pub async fn configure(&self, config: &RotationConfig) -> Result<(), BarrierError> {
        let name = config.name();
        let mut state = self.state(&name).await?;
        let mut ops = vec![self
            .view
            .put_json_op(&format!("{CONFIG}{}", escape(&name)), config)?];
        if state.step == Step::Idle {
            let next = config.parsed_schedule().map(|s| s.next_after(self.now()));
            ops.extend(self.reschedule_ops(&name, &mut state, next)?);
        }
        self.view.write(ops).await?;
        self.watch_reads(config);
        self.wake.notify_one();
        Ok(())
    }

    /// Remove a rotation's config, state and schedule. A pending version it left stays
    /// (marked by its key's metadata) and is never made current.
    pub async fn remove(&self, name: &str) -> Result<(), BarrierError> {
        let state = self.state(name).await?;
        let mut ops = vec![
            self.view.delete_op(&format!("{CONFIG}{}", escape(name)))?,
            self.view.delete_op(&format!("{STATE}{}", escape(name)))?,
        ];
        if let Some(next) = state.next_run {
            ops.push(self.view.delete_op(&due_key(next, name))?);
        }
        self.view.write(ops).await?;
        let mut reads = self.reads.write().expect("reads lock");
        reads.retain(|_, watch| watch.name != name);
        self.watching_reads
            .store(!reads.is_empty(), Ordering::Relaxed);
        Ok(())
    }

    /// Run `name` as soon as the scheduler can (`sys/rotation/rotate`, `on_access`).
    pub async fn rotate_soon(&self, name: &str, trigger: &str) -> Result<(), BarrierError> {
        let mut state = self.state(name).await?;
        if state.step != Step::Idle {
            // In progress: it finishes on its own.
            return Ok(());
        }
        state.trigger = Some(trigger.to_string());
        let ops = self.reschedule_ops(name, &mut state, Some(self.now()))?;
        self.view.write(ops).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Ops that move `name`'s due entry to `next` (none: unscheduled) and store `state`.
    fn reschedule_ops(
        &self,
        name: &str,
        state: &mut RotationState,
        next: Option<DateTime<Utc>>,
    ) -> Result<Vec<crate::storage::Op>, BarrierError> {
        let mut ops = Vec::new();
        if let Some(old) = state.next_run {
            ops.push(self.view.delete_op(&due_key(old, name))?);
        }
        if let Some(at) = next {
            ops.push(self.view.put_op(&due_key(at, name), Vec::new())?);
        }
        state.next_run = next;
        ops.push(
            self.view
                .put_json_op(&format!("{STATE}{}", escape(name)), &*state)?,
        );
        Ok(ops)
    }

    /// The earliest scheduled run: (when, name).
    async fn head(&self) -> Result<Option<(DateTime<Utc>, String)>, BarrierError> {
        let keys = self.view.scan_range(DUE, None, 1).await?;
        Ok(keys.first().and_then(|k| {
            let rest = k.strip_prefix(DUE)?;
            let (millis, name) = rest.split_once('/')?;
            let at = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
            Some((at, unescape(name)))
        }))
    }

    fn watch_reads(&self, config: &RotationConfig) {
        let mut reads = self.reads.write().expect("reads lock");
        match config.on_access {
            Some(threshold) => {
                let count = reads
                    .get(&config.data_path())
                    .map(|w| w.count.load(Ordering::Relaxed))
                    .unwrap_or(0);
                let watch = ReadWatch {
                    name: config.name(),
                    threshold,
                    count: AtomicU64::new(count),
                };
                reads.insert(config.data_path(), watch);
            }
            None => {
                reads.remove(&config.data_path());
            }
        }
        self.watching_reads
            .store(!reads.is_empty(), Ordering::Relaxed);
    }

    /// A read of `path` returned its data: count it for `on_access`. Returns the rotation's
    /// name when this read reached the threshold (the caller starts it).
    pub fn note_read(&self, path: &str) -> Option<String> {
        if !self.watching_reads.load(Ordering::Relaxed) {
            return None;
        }
        let reads = self.reads.read().expect("reads lock");
        let watch = reads.get(path)?;
        let n = watch.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n < watch.threshold {
            return None;
        }
        watch.count.store(0, Ordering::Relaxed);
        Some(watch.name.clone())
    }

    /// Rotations whose schedule has passed without a success: names, for reports.
    pub async fn overdue(&self) -> Result<Vec<String>, BarrierError> {
        let now = self.now();
        let mut out = Vec::new();
        for name in self.names().await? {
            let state = self.state(&name).await?;
            let late = state
                .next_run
                .is_some_and(|t| t < now - TimeDelta::hours(1));
            if late || state.last_outcome.as_deref() == Some("failed") {
                out.push(name);
            }
        }
        Ok(out)
    }
}

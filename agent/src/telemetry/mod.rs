//! Health, readiness and Prometheus metrics.
//!
//! # Layout
//!
//! - this file: [`Observer`], what the token renewal, the keeper and the sinks report (never
//!   a value), and [`Metrics`], the agent's metrics (all named `hush_*`), encoded in the
//!   OpenMetrics text format;
//! - [`server`]: the HTTP listener for `/healthz`, `/readyz` and `/metrics`;
//! - [`systemd`]: systemd's notify protocol (`READY=1` with `/readyz`, `STATUS=`,
//!   `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`).
//!
//! # Metrics
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `hush_renders_total` | counter | `file` | successful renders |
//! | `hush_render_errors_total` | counter | `file` | failed renders |
//! | `hush_write_errors_total` | counter | | failed writes of the file set (e.g. a full tmpfs; the last set stays) |
//! | `hush_store_requests_total` | counter | `op`, `outcome` | requests to hushd |
//! | `hush_store_request_duration_seconds` | histogram | `op`, `outcome` | their latency |
//! | `hush_last_success_timestamp_seconds` | gauge | `file` | Unix time of the last good render |
//! | `hush_secret_version` | gauge | `file` | secret version in the file |
//! | `hush_secret_age_seconds` | gauge | `file` | age of the data in the file, at scrape time (*) |
//! | `hush_lease_ttl_seconds` | gauge | `secret` | time left on the secret's lease, at scrape time |
//! | `hush_token_ttl_seconds` | gauge | | TTL left on the agent's token |
//! | `hush_ready` | gauge | | 1 once every file was rendered |
//! | `hush_process_resident_memory_bytes` | gauge | | RSS of the agent |
//! | `hush_process_cpu_seconds_total` | counter | | CPU time of the agent |
//! | `hush_fuse_opens_total` | counter | `result` | opens of FUSE files (`allowed`, `denied`) |
//! | `hush_fuse_lookups_total` | counter | `result` | logged lookups (FUSE fast cache mode) |
//! | `hush_fuse_access_log_dropped_total` | counter | | access-log lines dropped (queue full) |
//! | `hush_push_state` | gauge | | events subscription: 0 off, 1 connecting, 2 subscribed, 3 unavailable (polling only) |
//! | `hush_push_subscriptions_total` | counter | | subscriptions made (first and every resubscription) |
//! | `hush_push_unavailable_total` | counter | | subscribe attempts the store refused or a proxy broke (403/404/405/400, not a WebSocket) |
//! | `hush_push_events_total` | counter | | events received |
//! | `hush_push_event_to_file_seconds` | histogram | | from an event's arrival to its change on disk |
//! | `hush_report_batches_total` | counter | `outcome` | report batches sent to hushd: `ok`, `retry` (unreachable, 5xx, 429), `forbidden`, `unsupported` (404/405), `rejected` (other 4xx) |
//! | `hush_report_spool_events` | gauge | | access events waiting to be shipped (memory and file) |
//! | `hush_report_dropped_total` | counter | | access events lost because the spool was full (also in every report) |
//!
//! (*) Counted from when the store made the data: a KV v2 version's `created_time`, a dynamic
//! secret's lease issue, otherwise the agent's first read of that data; for a template, the
//! youngest secret it reads.
//!
//! Labels carry file, secret and operation names, never secret values (nor lease IDs: one
//! series per secret, however often its lease is replaced).

pub mod server;
pub mod spool;
pub mod systemd;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use hush_api::process_stats::ProcessStats;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    op: String,
    outcome: String,
}

/// Where the events subscription stands (`hush_push_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    /// `push = false` (or `--once`).
    Off = 0,
    Connecting = 1,
    Subscribed = 2,
    /// The store refused or a proxy broke the subscription: polling only, retrying.
    Unavailable = 3,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The agent's metrics. Cheap to update from any task; encoded at scrape.
pub struct Metrics {
    registry: Registry,
    renders: Family<FileLabels, Counter>,
    render_errors: Family<FileLabels, Counter>,
    write_errors: Counter,
    store_requests: Family<StoreLabels, Counter>,
    store_duration: Family<StoreLabels, Histogram, fn() -> Histogram>,
    last_success: Family<FileLabels, FloatGauge>,
    secret_version: Family<FileLabels, Gauge>,
    secret_age: Family<FileLabels, FloatGauge>,
    lease_ttl: Family<SecretLabels, FloatGauge>,
    token_ttl: FloatGauge,
    ready: Gauge,
    rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    fuse_opens: Family<ResultLabels, Counter>,
    fuse_lookups: Family<ResultLabels, Counter>,
    fuse_log_dropped: Counter,
    report_batches: Family<OutcomeLabels, Counter>,
    report_spool: Gauge,
    report_dropped: Counter,
    push_state: Gauge,
    push_subscriptions: Counter,
    push_unavailable: Counter,
    push_events: Counter,
    push_latency: Histogram,
    /// File -> when its data was made (for `secret_age_seconds`).
    files: Mutex<BTreeMap<String, SystemTime>>,
    /// Secret name -> when its lease ends.
    leases: Mutex<BTreeMap<String, SystemTime>>,
    process: Mutex<ProcessStats>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn store_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

impl Metrics {
    /// All metrics, registered under the `hush_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hush");
        let renders = Family::<FileLabels, Counter>::default();
        let render_errors = Family::<FileLabels, Counter>::default();
        let write_errors = Counter::default();
        let store_requests = Family::<StoreLabels, Counter>::default();
        let store_duration: Family<StoreLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(store_histogram);
        let last_success = Family::<FileLabels, FloatGauge>::default();
        let secret_version = Family::<FileLabels, Gauge>::default();
        let secret_age = Family::<FileLabels, FloatGauge>::default();
        let lease_ttl = Family::<SecretLabels, FloatGauge>::default();
        let token_ttl = FloatGauge::default();
        let ready = Gauge::default();
        let rss = Gauge::default();
        let cpu = Counter::<f64, AtomicU64>::default();
        let fuse_opens = Family::<ResultLabels, Counter>::default();
        let fuse_lookups = Family::<ResultLabels, Counter>::default();
        let fuse_log_dropped = Counter::default();
        let report_batches = Family::<OutcomeLabels, Counter>::default();
        let report_spool = Gauge::default();
        let report_dropped = Counter::default();
        registry.register(
            "report_batches",
            "Report batches sent to hushd, by outcome (ok, retry, forbidden, unsupported, rejected)",
            report_batches.clone(),
        );
        registry.register(
            "report_spool_events",
            "Access events waiting to be shipped to hushd",
            report_spool.clone(),
        );
        registry.register(
            "report_dropped",
            "Access events lost because the report spool was full",
            report_dropped.clone(),
        );
        let push_state = Gauge::default();
        let push_subscriptions = Counter::default();
        let push_unavailable = Counter::default();
        let push_events = Counter::default();
        // 1 ms .. ~16 s
        let push_latency = store_histogram();

        registry.register("renders", "Successful renders of a file", renders.clone());
        registry.register(
            "render_errors",
            "Failed renders of a file",
            render_errors.clone(),
        );
        registry.register(
            "write_errors",
            "Failed writes of the file set to the destination (the last set stays in place)",
            write_errors.clone(),
        );
        registry.register(
            "store_requests",
            "Requests to hushd by operation and outcome",
            store_requests.clone(),
        );
        registry.register(
            "store_request_duration_seconds",
            "Latency of requests to hushd",
            store_duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful render of a file",
            last_success.clone(),
        );
        registry.register(
            "secret_version",
            "Version of the secret in a file",
            secret_version.clone(),
        );
        registry.register(
            "secret_age_seconds",
            "Age of the data in a file, counted from its creation in the store",
            secret_age.clone(),
        );
        registry.register(
            "lease_ttl_seconds",
            "Time left on the lease of a secret",
            lease_ttl.clone(),
        );
        registry.register(
            "token_ttl_seconds",
            "Time left on the agent's token",
            token_ttl.clone(),
        );
        registry.register(
            "ready",
            "1 once every file has been rendered",
            ready.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the agent",
            rss.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time used by the agent",
            cpu.clone(),
        );
        registry.register(
            "fuse_opens",
            "Opens of FUSE-served files by result",
            fuse_opens.clone(),
        );
        registry.register(
            "fuse_lookups",
            "Logged lookups of FUSE-served files (fast cache mode) by result",
            fuse_lookups.clone(),
        );
        registry.register(
            "fuse_access_log_dropped",
            "Access-log lines dropped because the queue was full",
            fuse_log_dropped.clone(),
        );
        registry.register(
            "push_state",
            "Events subscription: 0 off, 1 connecting, 2 subscribed, 3 unavailable",
            push_state.clone(),
        );
        registry.register(
            "push_subscriptions",
            "Events subscriptions made (the first and every resubscription)",
            push_subscriptions.clone(),
        );
        registry.register(
            "push_unavailable",
            "Subscribe attempts refused by the store or broken by a proxy (polling only then)",
            push_unavailable.clone(),
        );
        registry.register(
            "push_events",
            "Events received from the store (the store sends only what the token may read)",
            push_events.clone(),
        );
        registry.register(
            "push_event_to_file_seconds",
            "From an event's arrival to its change on disk",
            push_latency.clone(),
        );
        Self {
            registry,
            renders,
            render_errors,
            write_errors,
            store_requests,
            store_duration,
            last_success,
            secret_version,
            secret_age,
            lease_ttl,
            token_ttl,
            ready,
            rss,
            cpu,
            fuse_opens,
            fuse_lookups,
            fuse_log_dropped,
            report_batches,
            report_spool,
            report_dropped,
            push_state,
            push_subscriptions,
            push_unavailable,
            push_events,
            push_latency,
            files: Mutex::new(BTreeMap::new()),
            leases: Mutex::new(BTreeMap::new()),
            process: Mutex::new(ProcessStats::new()),
        }
    }

    fn file(file: &str) -> FileLabels {
        FileLabels {
            file: file.to_owned(),
        }
    }

    /// A file was rendered (changed or not) with this secret version, from data made at
    /// `created` (its age counts from there).
    pub fn render_ok(&self, file: &str, version: u64, created: SystemTime) {
        let now = SystemTime::now();
        let labels = Self::file(file);
        self.renders.get_or_create(&labels).inc();
        self.last_success.get_or_create(&labels).set(unix_secs(now));
        self.secret_version
            .get_or_create(&labels)
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.insert(file.to_owned(), created);
    }

    /// The lease of `secret` ends at `expires`; `None`: it holds none (its series goes).
    pub fn lease(&self, secret: &str, expires: Option<SystemTime>) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match expires {
            Some(at) => {
                leases.insert(secret.to_owned(), at);
            }
            None => {
                leases.remove(secret);
                self.lease_ttl.remove(&SecretLabels {
                    secret: secret.to_owned(),
                });
            }
        }
    }

    /// Rendering a file failed.
    pub fn render_error(&self, file: &str) {
        self.render_errors.get_or_create(&Self::file(file)).inc();
    }

    /// Writing the file set failed.
    pub fn write_error(&self) {
        self.write_errors.inc();
    }

    /// A request to hushd (`op`: e.g. `read`, `renew`, `login`; `outcome`: e.g. `ok`, `error`,
    /// `denied`) took `secs` seconds.
    pub fn observe_store(&self, op: &str, outcome: &str, secs: f64) {
        let labels = StoreLabels {
            op: op.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.store_requests.get_or_create(&labels).inc();
        self.store_duration.get_or_create(&labels).observe(secs);
    }

    /// Time left on the agent's token.
    pub fn token_ttl(&self, secs: f64) {
        self.token_ttl.set(secs);
    }

    /// An open (or, with `lookup`, a logged lookup) of a FUSE file; `result` is `allowed` or
    /// `denied`.
    pub fn fuse_access(&self, lookup: bool, result: &'static str) {
        self.fuse_access_counter(lookup, result).inc();
    }

    /// The counter [`Metrics::fuse_access`] increments, to keep and increment directly (no
    /// label lookup per access).
    pub fn fuse_access_counter(&self, lookup: bool, result: &'static str) -> Counter {
        let family = if lookup {
            &self.fuse_lookups
        } else {
            &self.fuse_opens
        };
        family.get_or_create(&ResultLabels { result }).clone()
    }

    /// An access-log line was dropped (its queue was full).
    pub fn fuse_access_log_dropped(&self) {
        self.fuse_log_dropped.inc();
    }

    /// The spool's gauge (events waiting) and drop counter, for [`spool::Spool`] to update.
    pub fn report_spool_handles(&self) -> (Gauge, Counter) {
        (self.report_spool.clone(), self.report_dropped.clone())
    }

    /// A report batch was sent; `outcome` as in `hush_report_batches_total`.
    pub fn report_batch(&self, outcome: &'static str) {
        self.report_batches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Where the events subscription stands.
    pub fn push_state(&self, state: PushState) {
        self.push_state.set(state as i64);
    }

    /// A subscription was made.
    pub fn push_subscribed(&self) {
        self.push_subscriptions.inc();
    }

    /// A subscribe attempt was refused (or a proxy broke it): polling only.
    pub fn push_unavailable(&self) {
        self.push_unavailable.inc();
    }

    /// An event arrived.
    pub fn push_event(&self) {
        self.push_events.inc();
    }

    /// An event's change reached the files `latency` after the event arrived.
    pub fn push_event_to_file(&self, latency: Duration) {
        self.push_latency.observe(latency.as_secs_f64());
    }

    /// Whether the agent is ready (every file rendered at least once).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The OpenMetrics text of every metric, with ages and process figures taken now.
    pub fn encode(&self) -> String {
        let now = SystemTime::now();
        {
            let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            for (file, created) in files.iter() {
                let age = now.duration_since(*created).unwrap_or(Duration::ZERO);
                self.secret_age
                    .get_or_create(&Self::file(file))
                    .set(age.as_secs_f64());
            }
        }
        {
            let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            for (secret, expires) in leases.iter() {
                let left = expires.duration_since(now).unwrap_or(Duration::ZERO);
                self.lease_ttl
                    .get_or_create(&SecretLabels {
                        secret: secret.clone(),
                    })
                    .set(left.as_secs_f64());
            }
        }
        {
            let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((rss, cpu_delta)) = process.refresh() {
                self.rss.set(i64::try_from(rss).unwrap_or(i64::MAX));
                self.cpu.inc_by(cpu_delta);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Where the token renewal, the keeper and the sinks report what they do (the metrics, or
/// a sink's tap in front of them). Never given a value.
pub trait Observer: Send + Sync {
    /// One request to the store: operation, outcome (`ok`, `transient`, `forbidden`, ...).
    fn store(&self, op: &'static str, outcome: &'static str, elapsed: Duration);
    /// The agent token's remaining TTL in seconds.
    fn token_ttl(&self, secs: u64);
    /// A file rendered fine from data of this version (0 for templates and non-KV sources),
    /// made at `created` (see [`Metrics::render_ok`]).
    fn render_ok(&self, file: &str, version: u64, created: SystemTime);
    /// The lease of secret `secret` (its name) ends at `expires`; `None`: no lease held.
    fn lease(&self, secret: &str, expires: Option<SystemTime>);
    fn render_error(&self, file: &str);
    /// Writing the file set to the destination failed (the last set stays).
    fn write_error(&self) {}
}

/// An observer that drops everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn store(&self, _: &'static str, _: &'static str, _: Duration) {}
    fn token_ttl(&self, _: u64) {}
    fn render_ok(&self, _: &str, _: u64, _: SystemTime) {}
    fn lease(&self, _: &str, _: Option<SystemTime>) {}
    fn render_error(&self, _: &str) {}
}

impl Observer for Metrics {
    fn store(&self, op: &'static str, outcome: &'static str, elapsed: Duration) {
        self.observe_store(op, outcome, elapsed.as_secs_f64());
    }
    fn token_ttl(&self, secs: u64) {
        Metrics::token_ttl(self, secs as f64);
    }
    fn render_ok(&self, file: &str, version: u64, created: SystemTime) {
        Metrics::render_ok(self, file, version, created);
    }
    fn lease(&self, secret: &str, expires: Option<SystemTime>) {
        Metrics::lease(self, secret, expires);
    }
    fn render_error(&self, file: &str) {
        Metrics::render_error(self, file);
    }
    fn write_error(&self) {
        Metrics::write_error(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, prefix: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn renders_errors_and_versions() {
        let m = Metrics::new();
        m.render_ok("db/password", 3, SystemTime::now());
        m.render_ok("db/password", 4, SystemTime::now());
        m.render_error("api-key");
        let text = m.encode();
        assert_eq!(
            line_value(&text, "hush_renders_total{file=\"db/password\"}"),
            2.0
        );
        assert_eq!(
            line_value(&text, "hush_render_errors_total{file=\"api-key\"}"),
            1.0
        );
        assert_eq!(
            line_value(&text, "hush_secret_version{file=\"db/password\"}"),
            4.0
        );
        let ts = line_value(
            &text,
            "hush_last_success_timestamp_seconds{file=\"db/password\"}",
        );
        assert!(ts > 1.6e9, "{ts}");
        assert!(!text.contains("hush_renders_total{file=\"api-key\"}"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn secret_age_counts_from_the_datas_creation_at_scrape() {
        let m = Metrics::new();
        let created = SystemTime::now() - Duration::from_secs(3600);
        m.render_ok("a", 1, created);
        let age = line_value(&m.encode(), "hush_secret_age_seconds{file=\"a\"}");
        assert!((3600.0..4000.0).contains(&age), "{age}");
        // A new version made just now.
        m.render_ok("a", 2, SystemTime::now());
        let age = line_value(&m.encode(), "hush_secret_age_seconds{file=\"a\"}");
        assert!(age < 60.0, "{age}");
    }

    #[test]
    fn lease_ttl_counts_down_per_secret_and_goes_with_the_lease() {
        let m = Metrics::new();
        m.lease("db", Some(SystemTime::now() + Duration::from_secs(60)));
        let text = m.encode();
        let ttl = line_value(&text, "hush_lease_ttl_seconds{secret=\"db\"}");
        assert!(ttl > 55.0 && ttl <= 60.0, "{ttl}");
        // An end already past shows 0, never a negative time.
        m.lease("db", Some(SystemTime::now() - Duration::from_secs(5)));
        assert_eq!(
            line_value(&m.encode(), "hush_lease_ttl_seconds{secret=\"db\"}"),
            0.0
        );
        m.lease("db", None);
        assert!(!m.encode().contains("secret=\"db\""));
    }

    #[test]
    fn store_requests_token_ready_and_process() {
        let m = Metrics::new();
        m.observe_store("read", "ok", 0.003);
        m.observe_store("read", "ok", 0.5);
        m.observe_store("renew", "error", 0.01);
        m.token_ttl(1234.5);
        m.set_ready(true);
        let text = m.encode();
        assert_eq!(
            line_value(
                &text,
                "hush_store_requests_total{op=\"read\",outcome=\"ok\"}"
            ),
            2.0
        );
        assert_eq!(
            line_value(
                &text,
                "hush_store_request_duration_seconds_count{op=\"read\",outcome=\"ok\"}"
            ),
            2.0
        );
        assert_eq!(
            line_value(
                &text,
                "hush_store_request_duration_seconds_bucket{le=\"0.004\",op=\"read\",outcome=\"ok\"}"
            ),
            1.0
        );
        assert_eq!(line_value(&text, "hush_token_ttl_seconds "), 1234.5);
        assert_eq!(line_value(&text, "hush_ready "), 1.0);
        assert!(line_value(&text, "hush_process_resident_memory_bytes ") > 0.0);
        assert!(line_value(&text, "hush_process_cpu_seconds_total ") >= 0.0);
        m.set_ready(false);
        assert_eq!(line_value(&m.encode(), "hush_ready "), 0.0);
    }
}

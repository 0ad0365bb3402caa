//! hushd's metrics: one Prometheus registry every layer updates through cheap handles, served
//! by `GET /v1/sys/metrics?format=prometheus`.
//!
//! This is the lowest module of the crate (it uses none of the others), so storage, the core,
//! the event bus and the HTTP layer can all reach it without pointing a layer upwards. Names
//! start with `hush_`; counters end in `_total`. Labels hold bounded values only: a route
//! group (`sys`, `auth/<method type>`, an engine type), an operation, a status class, a login
//! method and outcome, a lease state. Never a token, a path below a mount or a secret value,
//! so writing to a million KV paths adds no series.
//!
//! What each family counts, and where it is updated:
//!
//! | family | where |
//! |---|---|
//! | `hush_requests_total{group,operation,status}` | api/http.rs, every request |
//! | `hush_request_duration_seconds{group}` | api/http.rs |
//! | `hush_storage_commit_duration_seconds` | storage/sqlite.rs writer, per transaction |
//! | `hush_storage_commit_batch_size` | storage/sqlite.rs writer, requests per transaction |
//! | `hush_audit_write_failures_total` | core/audit, each device write that fails |
//! | `hush_leases{state}`, `hush_tokens` | core/state.rs, a count every [`COUNT_EVERY`] |
//! | `hush_logins_total{method,outcome}` | core/mod.rs, around each login |
//! | `hush_event_subscribers`, `hush_events_dropped_total` | the event bus, via [`EventMetrics`] |
//! | `hush_agent_reports_total{outcome}` | core/sys/agents.rs, each `sys/agents/report` (`stored`, `duplicate`: a retried batch, `invalid`, `error`) |
//! | `hush_agent_accesses_stored_total` | core/sys/agents.rs, access events of stored batches |
//! | `hush_webhook_deliveries_total{outcome}`, `hush_webhook_queue_depth`, `hush_webhook_dropped_total{reason}` | core/webhooks, via [`WebhookMetrics`] |
//! | `hush_sealed`, `hush_process_*` | set at each scrape |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use hush_api::process_stats::ProcessStats;

/// The content type of [`Metrics::encode_prometheus`]: Prometheus text format 0.0.4, as
/// Vault's `sys/metrics?format=prometheus` answers.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often the lease and token gauges are counted (a bounded index count in storage,
/// never a scan per scrape).
pub const COUNT_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    group: String,
    operation: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// What storage reports: per committed transaction, its latency and how many write requests
/// it carried (the group commit's batch). Cloning shares the series.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    commit_duration: Histogram,
    batch_size: Histogram,
}

impl StorageMetrics {
    /// One transaction of `requests` write requests took `elapsed` (BEGIN to COMMIT, fsync
    /// included).
    pub fn commit(&self, elapsed: Duration, requests: usize) {
        self.commit_duration.observe(elapsed.as_secs_f64());
        self.batch_size.observe(requests as f64);
    }
}

/// What the event bus reports. Cloning shares the series.
///
/// Subscribe: keep the guard of [`EventMetrics::subscribed`] as long as the subscription
/// lives (it counts one subscriber, and uncounts it when dropped, whatever the reason the
/// subscription ended). An event not delivered (a full buffer, a closed slow subscriber):
/// [`EventMetrics::dropped`].
#[derive(Clone, Debug, Default)]
pub struct EventMetrics {
    subscribers: Gauge,
    dropped: Counter,
}

/// Counts one event subscriber while it lives.
#[derive(Debug)]
pub struct SubscriberGuard(Gauge);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl EventMetrics {
    /// One more subscriber, until the guard is dropped.
    #[must_use = "the subscriber is uncounted when the guard drops"]
    pub fn subscribed(&self) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(self.subscribers.clone())
    }

    /// `n` events not delivered to a subscriber.
    pub fn dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }

    pub fn subscribers(&self) -> i64 {
        self.subscribers.get()
    }
}

/// What the webhook deliveries report. Cloning shares the series.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    deliveries: Family<OutcomeLabels, Counter>,
    queue_depth: Gauge,
    dropped: Family<ReasonLabels, Counter>,
}

impl WebhookMetrics {
    /// One delivery attempt ended: `delivered`, `retry` (failed, will be retried) or `failed`
    /// (failed for the last time).
    pub fn attempt(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Deliveries waiting now, all webhooks together.
    pub fn set_queue_depth(&self, n: u64) {
        self.queue_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` events not queued: `overflow` (a webhook's queue is full), `lagged` (the event bus
    /// ran ahead of the queue), `rate_limited` (login.failed of one identity, audit.failed of
    /// one device, within its window), `error` (the queue's storage write failed).
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }
}

/// The outcome label of a login, from its HTTP status.
pub fn login_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        429 => "locked",
        400..=499 => "denied",
        _ => "error",
    }
}

/// The status class label (`2xx` .. `5xx`).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// hushd's metrics. Updating one is an atomic add (a label lookup for families); the text is
/// made only at a scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<GroupLabels, Histogram, fn() -> Histogram>,
    storage: StorageMetrics,
    audit_failures: Counter,
    leases: Family<StateLabels, Gauge>,
    tokens: Gauge,
    logins: Family<LoginLabels, Counter>,
    events: EventMetrics,
    agent_reports: Family<OutcomeLabels, Counter>,
    agent_accesses: Counter,
    webhooks: WebhookMetrics,
    sealed: Gauge,
    rss: Gauge,
    cpu: Counter<f64, AtomicU64>,
    process: Mutex<ProcessStats>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Labelled families: (name without the prefix, type, help). prometheus-client writes nothing
/// for a family without series yet, so [`Metrics::encode_prometheus`] adds their `# HELP` and
/// `# TYPE` lines itself: every family is always described, with or without samples.
const REQUESTS: (&str, &str, &str) = (
    "requests",
    "counter",
    "API requests by route group (sys, auth/<method>, engine type), operation and status class",
);
const REQUEST_DURATION: (&str, &str, &str) = (
    "request_duration_seconds",
    "histogram",
    "API request latency by route group, from the request head to the response",
);
const LEASES: (&str, &str, &str) = (
    "leases",
    "gauge",
    "Leases by state (active: waiting for expiry; irrevocable), counted periodically",
);
const AGENT_REPORTS: (&str, &str, &str) = (
    "agent_reports",
    "counter",
    "sys/agents/report batches by outcome (stored, duplicate: a retried batch already stored, invalid, error)",
);
const WEBHOOK_DELIVERIES: (&str, &str, &str) = (
    "webhook_deliveries",
    "counter",
    "Webhook delivery attempts by outcome (delivered, retry: failed and retried later, failed: given up)",
);
const WEBHOOK_DROPPED: (&str, &str, &str) = (
    "webhook_dropped",
    "counter",
    "Webhook events not queued, by reason (overflow: the webhook's queue was full, lagged, rate_limited, error)",
);
const LOGINS: (&str, &str, &str) = (
    "logins",
    "counter",
    "Auth method logins by method type and outcome (success, denied, locked, error)",
);

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hush");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(REQUESTS.0, REQUESTS.2, requests.clone());
        let request_duration: Family<GroupLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            REQUEST_DURATION.0,
            REQUEST_DURATION.2,
            request_duration.clone(),
        );
        let storage = StorageMetrics {
            commit_duration: latency_histogram(),
            // 1 .. 1024 (the group commit's MAX_GROUP)
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        };
        registry.register(
            "storage_commit_duration_seconds",
            "SQLite transaction latency, BEGIN to COMMIT including the fsync",
            storage.commit_duration.clone(),
        );
        registry.register(
            "storage_commit_batch_size",
            "Write requests committed per SQLite transaction (group commit)",
            storage.batch_size.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit device writes that failed (a request fails when no device could write)",
            audit_failures.clone(),
        );
        let leases = Family::<StateLabels, Gauge>::default();
        registry.register(LEASES.0, LEASES.2, leases.clone());
        let tokens = Gauge::default();
        registry.register(
            "tokens",
            "Service tokens in the token store, counted periodically",
            tokens.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(LOGINS.0, LOGINS.2, logins.clone());
        let events = EventMetrics::default();
        registry.register(
            "event_subscribers",
            "Event subscriptions open now",
            events.subscribers.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not delivered to a subscriber (full buffer, closed slow subscriber)",
            events.dropped.clone(),
        );
        let agent_reports = Family::<OutcomeLabels, Counter>::default();
        registry.register(AGENT_REPORTS.0, AGENT_REPORTS.2, agent_reports.clone());
        let agent_accesses = Counter::default();
        registry.register(
            "agent_accesses_stored",
            "Access events of agent reports stored in the fleet index",
            agent_accesses.clone(),
        );
        let webhooks = WebhookMetrics::default();
        registry.register(
            WEBHOOK_DELIVERIES.0,
            WEBHOOK_DELIVERIES.2,
            webhooks.deliveries.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook deliveries waiting to be sent (all webhooks)",
            webhooks.queue_depth.clone(),
        );
        registry.register(
            WEBHOOK_DROPPED.0,
            WEBHOOK_DROPPED.2,
            webhooks.dropped.clone(),
        );
        let sealed = Gauge::default();
        registry.register("sealed", "1 while hushd is sealed, else 0", sealed.clone());
        let rss = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "hushd's resident set size",
            rss.clone(),
        );
        let cpu = Counter::<f64, AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "CPU time hushd used, user and system",
            cpu.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            storage,
            audit_failures,
            leases,
            tokens,
            logins,
            events,
            agent_reports,
            agent_accesses,
            webhooks,
            sealed,
            rss,
            cpu,
            process: Mutex::new(ProcessStats::new()),
        }
    }

    /// One API request of route `group` answered `status` after `elapsed`.
    pub fn request(&self, group: &str, operation: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                group: group.to_string(),
                operation,
                status: status_class(status),
            })
            .inc();
        self.request_duration
            .get_or_create(&GroupLabels {
                group: group.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The handle storage updates.
    pub fn storage(&self) -> StorageMetrics {
        self.storage.clone()
    }

    /// The handle the event bus updates.
    pub fn events(&self) -> EventMetrics {
        self.events.clone()
    }

    /// The handle the webhook deliveries update.
    pub fn webhooks(&self) -> WebhookMetrics {
        self.webhooks.clone()
    }

    /// One audit device failed to write an entry.
    pub fn audit_write_failed(&self) {
        self.audit_failures.inc();
    }

    /// A login to a method of type `method` answered `status`.
    pub fn login(&self, method: &str, status: u16) {
        self.logins
            .get_or_create(&LoginLabels {
                method: method.to_string(),
                outcome: login_outcome(status),
            })
            .inc();
    }

    /// One `sys/agents/report` ended with `outcome`.
    pub fn agent_report(&self, outcome: &'static str) {
        self.agent_reports
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `n` access events of a report were stored.
    pub fn agent_accesses_stored(&self, n: u64) {
        self.agent_accesses.inc_by(n);
    }

    /// The periodic count of leases and tokens.
    pub fn set_counts(&self, active_leases: u64, irrevocable_leases: u64, tokens: u64) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.leases
            .get_or_create(&StateLabels { state: "active" })
            .set(n(active_leases));
        self.leases
            .get_or_create(&StateLabels {
                state: "irrevocable",
            })
            .set(n(irrevocable_leases));
        self.tokens.set(n(tokens));
    }

    /// The Prometheus text (format 0.0.4) of every family, with the seal state and the
    /// process figures taken now.
    pub fn encode_prometheus(&self, sealed: bool) -> String {
        self.sealed.set(i64::from(sealed));
        if let Some((rss, cpu_delta)) = self.process.lock().refresh() {
            self.rss.set(i64::try_from(rss).unwrap_or(i64::MAX));
            self.cpu.inc_by(cpu_delta);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        let mut text = openmetrics_to_prometheus(&out);
        for (name, kind, help) in [
            REQUESTS,
            REQUEST_DURATION,
            LEASES,
            LOGINS,
            AGENT_REPORTS,
            WEBHOOK_DELIVERIES,
            WEBHOOK_DROPPED,
        ] {
            let name = match kind {
                "counter" => format!("hush_{name}_total"),
                _ => format!("hush_{name}"),
            };
            if !text.contains(&format!("# TYPE {name} ")) {
                text.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n"));
            }
        }
        text
    }
}

/// prometheus-client writes OpenMetrics; Vault answers (and Prometheus' classic parsers, such
/// as Python's `text_string_to_metric_families`, expect) the 0.0.4 text format, where a
/// counter's `# HELP`/`# TYPE` name carries the `_total` of its samples, and which has no
/// `# UNIT` or `# EOF` lines.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|kind| {
            let rest = line.strip_prefix(kind)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{kind}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `series` (`name{labels}`; a trailing space is ignored).
    fn value(text: &str, series: &str) -> f64 {
        let series = series.trim_end();
        let found = text
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(s, _)| *s == series);
        match found {
            Some((_, v)) => v.parse().unwrap(),
            None => panic!("no sample {series:?} in\n{text}"),
        }
    }

    #[test]
    fn every_family_is_present_in_the_classic_text_format() {
        let m = Metrics::new();
        let text = m.encode_prometheus(true);
        for family in [
            "# TYPE hush_requests_total counter",
            "# TYPE hush_request_duration_seconds histogram",
            "# TYPE hush_storage_commit_duration_seconds histogram",
            "# TYPE hush_storage_commit_batch_size histogram",
            "# TYPE hush_audit_write_failures_total counter",
            "# TYPE hush_leases gauge",
            "# TYPE hush_tokens gauge",
            "# TYPE hush_logins_total counter",
            "# TYPE hush_event_subscribers gauge",
            "# TYPE hush_events_dropped_total counter",
            "# TYPE hush_webhook_deliveries_total counter",
            "# TYPE hush_webhook_queue_depth gauge",
            "# TYPE hush_webhook_dropped_total counter",
            "# TYPE hush_sealed gauge",
            "# TYPE hush_process_resident_memory_bytes gauge",
            "# TYPE hush_process_cpu_seconds_total counter",
        ] {
            assert!(text.contains(family), "{family} missing in\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        assert_eq!(value(&text, "hush_sealed "), 1.0);
        assert!(value(&text, "hush_process_resident_memory_bytes ") > 0.0);
        assert_eq!(value(&m.encode_prometheus(false), "hush_sealed "), 0.0);
    }

    #[test]
    fn updates_show_up_with_bounded_labels() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.request("kv", "read", 200, Duration::from_millis(2));
        }
        m.request("kv", "read", 404, Duration::from_millis(1));
        m.login("approle", 200);
        m.login("approle", 400);
        m.login("approle", 429);
        m.audit_write_failed();
        m.set_counts(7, 1, 3);
        m.storage().commit(Duration::from_micros(300), 5);
        let events = m.events();
        let guard = events.subscribed();
        let second = events.subscribed();
        drop(second);
        events.dropped(4);
        let text = m.encode_prometheus(false);
        let has = |prefix: &str, want: f64| assert_eq!(value(&text, prefix), want, "{prefix}");
        has(
            "hush_requests_total{group=\"kv\",operation=\"read\",status=\"2xx\"} ",
            3.0,
        );
        has(
            "hush_requests_total{group=\"kv\",operation=\"read\",status=\"4xx\"} ",
            1.0,
        );
        has("hush_request_duration_seconds_count{group=\"kv\"} ", 4.0);
        has(
            "hush_logins_total{method=\"approle\",outcome=\"success\"} ",
            1.0,
        );
        has(
            "hush_logins_total{method=\"approle\",outcome=\"denied\"} ",
            1.0,
        );
        has(
            "hush_logins_total{method=\"approle\",outcome=\"locked\"} ",
            1.0,
        );
        has("hush_audit_write_failures_total ", 1.0);
        has("hush_leases{state=\"active\"} ", 7.0);
        has("hush_leases{state=\"irrevocable\"} ", 1.0);
        has("hush_tokens ", 3.0);
        has("hush_storage_commit_batch_size_sum ", 5.0);
        has("hush_storage_commit_duration_seconds_count ", 1.0);
        has("hush_event_subscribers ", 1.0);
        has("hush_events_dropped_total ", 4.0);
        let hooks = m.webhooks();
        hooks.attempt("delivered");
        hooks.attempt("retry");
        hooks.attempt("retry");
        hooks.set_queue_depth(9);
        hooks.dropped("overflow", 3);
        let text = m.encode_prometheus(false);
        let has = |prefix: &str, want: f64| assert_eq!(value(&text, prefix), want, "{prefix}");
        has("hush_webhook_deliveries_total{outcome=\"retry\"} ", 2.0);
        has("hush_webhook_queue_depth ", 9.0);
        has("hush_webhook_dropped_total{reason=\"overflow\"} ", 3.0);
        drop(guard);
        assert_eq!(events.subscribers(), 0);
    }

    #[test]
    fn counter_names_get_total_and_the_rest_is_kept() {
        let om = "# HELP a_b Some help.\n# TYPE a_b counter\na_b_total 1\n# HELP g A gauge.\n\
                  # TYPE g gauge\n# UNIT g bytes\ng 2\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(om),
            "# HELP a_b_total Some help.\n# TYPE a_b_total counter\na_b_total 1\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
    }
}

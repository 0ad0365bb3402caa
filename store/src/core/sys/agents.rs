//! `sys/agents/*`: agents report upstream (`report`), operators read the fleet view (`LIST
//! sys/agents`, `sys/agents/:id`, `access`, `stale`; `stats` is in `agents_stats`). Hush's own
//! API (Vault has none); the wire types are `hush_api::wire::agents`.
//!
//! A report is validated whole (400 naming the field), deduplicated by batch id, written to
//! every audit device (one `agent-access` entry per access, in clear: pids, paths and file names
//! are not secrets; when no device takes them the request fails 500 and the agent retries),
//! then stored in the fleet index ([`crate::core::agents`]) in one atomic write. Staleness is
//! never taken from an agent: the current KV v2 version of each path comes from the mounted
//! engine's metadata through the router.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use hush_api::wire::agents::{
    AccessList, AgentInfo, AgentList, AgentSummary, Report, ReportAck, StaleAgent, StaleList,
    MAX_ACCESSES_PER_REPORT,
};

use crate::core::agents::{Sender, Stored, StoredAgent};
use crate::core::state::{Core, Unsealed};
use crate::logical::{LogicalError, Operation, Request, Response};

/// Ids the fleet paths use themselves: no agent may take them.
const RESERVED_IDS: &[&str] = &["report", "access", "stale", "stats"];
/// Most accesses one `access` query answers.
pub const MAX_ACCESS_ANSWER: usize = 10_000;
/// `since` when the query gives none.
pub(super) const DEFAULT_SINCE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Serve `rel` (below `sys/`) when it is under `agents`; `None` otherwise.
pub async fn handle(
    core: &Core,
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Option<Result<Response, LogicalError>> {
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    if rel == "agents" || rel == "agents/" {
        return Some(match op {
            Operation::List => list(st).await,
            _ => Err(LogicalError::UnsupportedOperation),
        });
    }
    let sub = rel.strip_prefix("agents/")?;
    Some(match sub {
        "report" if write => report(core, st, req).await,
        "access" if op == Operation::Read => access(st, req).await,
        "stale" if op == Operation::Read => stale(st, req).await,
        "stats" if op == Operation::Read => super::agents_stats::stats(st, req).await,
        "report" | "access" | "stale" | "stats" => Err(LogicalError::UnsupportedOperation),
        id if op == Operation::Read => show(st, id).await,
        _ => Err(LogicalError::UnsupportedOperation),
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `field` must be at most `max` bytes of printable text (spaces allowed when `spaces`).
fn check_text(field: &str, value: &str, max: usize, spaces: bool) -> Result<(), LogicalError> {
    if value.len() > max {
        return Err(LogicalError::invalid(format!(
            "{field}: longer than {max} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() || (!spaces && c.is_whitespace()))
    {
        let what = if spaces {
            "control characters"
        } else {
            "whitespace or control characters"
        };
        return Err(LogicalError::invalid(format!("{field}: holds {what}")));
    }
    Ok(())
}

fn check_time(field: &str, value: &str) -> Result<(), LogicalError> {
    DateTime::parse_from_rfc3339(value).map(drop).map_err(|_| {
        LogicalError::invalid(format!(
            "{field}: {value:?} is not an RFC 3339 time (2026-01-02T15:04:05Z)"
        ))
    })
}

/// An API path as agents report it: `secret/data/app/db`.
fn check_api_path(field: &str, value: &str) -> Result<(), LogicalError> {
    if value.is_empty() {
        return Err(LogicalError::invalid(format!("{field}: empty")));
    }
    check_text(field, value, 1024, false)?;
    if value.starts_with('/') || value.split('/').any(|s| s == "." || s == "..") {
        return Err(LogicalError::invalid(format!(
            "{field}: {value:?} is not an API path such as secret/data/app/db"
        )));
    }
    Ok(())
}

/// Every rule a report must meet; the error names the first field that breaks one.
pub fn validate(r: &Report) -> Result<(), LogicalError> {
    if r.batch_id.is_empty() {
        return Err(LogicalError::invalid("batch_id: empty"));
    }
    check_text("batch_id", &r.batch_id, 128, false)?;
    let a = &r.agent;
    if a.id.is_empty() {
        return Err(LogicalError::invalid("agent.id: empty"));
    }
    check_text("agent.id", &a.id, 253, false)?;
    if a.id.starts_with('/')
        || a.id.split('/').any(|s| s == "." || s == "..")
        || a.id.contains("//")
    {
        return Err(LogicalError::invalid(format!(
            "agent.id: {:?} cannot be read back as sys/agents/ID (a leading /, // or a . or .. segment)",
            a.id
        )));
    }
    if RESERVED_IDS.contains(&a.id.as_str()) {
        return Err(LogicalError::invalid(format!(
            "agent.id: {:?} is reserved (sys/agents/{} is an endpoint)",
            a.id, a.id
        )));
    }
    check_text("agent.host", &a.host, 253, false)?;
    if let Some(pod) = &a.pod {
        check_text("agent.pod", pod, 253, false)?;
    }
    check_text("agent.destination", &a.destination, 4096, true)?;
    check_text("agent.version", &a.version, 64, false)?;
    check_text("agent.instance", &a.instance, 128, false)?;
    if r.accesses.len() > MAX_ACCESSES_PER_REPORT {
        return Err(LogicalError::invalid(format!(
            "accesses: {} events, at most {MAX_ACCESSES_PER_REPORT} per report",
            r.accesses.len()
        )));
    }
    for (i, x) in r.accesses.iter().enumerate() {
        let f = |name: &str| format!("accesses[{i}].{name}");
        check_time(&f("time"), &x.time)?;
        if !matches!(&*x.event, "open" | "lookup") {
            return Err(LogicalError::invalid(format!(
                "{}: {:?}, want open or lookup",
                f("event"),
                x.event
            )));
        }
        if x.file.is_empty() {
            return Err(LogicalError::invalid(format!("{}: empty", f("file"))));
        }
        check_text(&f("file"), &x.file, 4096, true)?;
        if x.paths.len() > 64 {
            return Err(LogicalError::invalid(format!(
                "{}: {} paths, at most 64",
                f("paths"),
                x.paths.len()
            )));
        }
        for (j, p) in x.paths.iter().enumerate() {
            check_api_path(&format!("accesses[{i}].paths[{j}]"), p)?;
        }
        if let Some(exe) = &x.exe {
            check_text(&f("exe"), exe, 4096, true)?;
        }
        if let Some(c) = &x.container {
            check_text(&f("container"), c, 256, false)?;
        }
        if !matches!(&*x.result, "allowed" | "denied") {
            return Err(LogicalError::invalid(format!(
                "{}: {:?}, want allowed or denied",
                f("result"),
                x.result
            )));
        }
        if let Some(reason) = &x.reason {
            check_text(&f("reason"), reason, 1024, true)?;
        }
    }
    if let Some(s) = &r.state {
        if s.files.len() > 10_000 || s.sources.len() > 10_000 || s.errors.len() > 1000 {
            return Err(LogicalError::invalid(
                "state: at most 10000 files, 10000 sources and 1000 errors",
            ));
        }
        if let Some(t) = &s.last_refresh {
            check_time("state.last_refresh", t)?;
        }
        for (i, file) in s.files.iter().enumerate() {
            check_text(&format!("state.files[{i}].file"), &file.file, 4096, true)?;
            for (j, p) in file.paths.iter().enumerate() {
                check_api_path(&format!("state.files[{i}].paths[{j}]"), p)?;
            }
        }
        for (i, src) in s.sources.iter().enumerate() {
            check_api_path(&format!("state.sources[{i}].path"), &src.path)?;
            if let Some(t) = &src.last_refresh {
                check_time(&format!("state.sources[{i}].last_refresh"), t)?;
            }
            if let Some(l) = &src.lease_id {
                check_text(&format!("state.sources[{i}].lease_id"), l, 1024, false)?;
            }
            if let Some(e) = &src.error {
                check_text(&format!("state.sources[{i}].error"), e, 4096, true)?;
            }
        }
        for (i, e) in s.errors.iter().enumerate() {
            check_text(&format!("state.errors[{i}]"), e, 4096, true)?;
        }
    }
    Ok(())
}

/// The audit body of one access: everything in clear, numbers as numbers.
fn audit_body(r: &Report, i: usize) -> Value {
    let x = &r.accesses[i];
    json!({
        "agent_id": r.agent.id,
        "host": r.agent.host,
        "pod": r.agent.pod,
        "instance": r.agent.instance,
        "agent_version": r.agent.version,
        "batch_id": r.batch_id,
        "time": x.time,
        "event": x.event,
        "file": x.file,
        "paths": x.paths,
        "version": x.version,
        "generation": x.generation,
        "pid": x.pid,
        "uid": x.uid,
        "gid": x.gid,
        "exe": x.exe,
        "container": x.container,
        "result": x.result,
        "reason": x.reason,
    })
}

/// `PUT sys/agents/report`.
async fn report(core: &Core, st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let metrics = core.metrics();
    let parsed = serde_json::from_value::<Report>(Value::Object(req.data.clone()))
        .map_err(|e| LogicalError::invalid(format!("invalid report: {e}")))
        .and_then(|r| validate(&r).map(|()| r));
    let r = match parsed {
        Ok(r) => r,
        Err(e) => {
            metrics.agent_report("invalid");
            return Err(e);
        }
    };
    let sender = req
        .token_entry
        .as_ref()
        .map(|t| Sender {
            token_accessor: t.accessor.clone(),
            token_display_name: t.display_name.clone(),
        })
        .unwrap_or_default();
    let bodies: Vec<Value> = (0..r.accesses.len()).map(|i| audit_body(&r, i)).collect();
    let stored = st
        .agents
        .report(&r, &sender, Utc::now(), || async {
            st.audit
                .log_entries(req, "agent-access", "agent_access", &bodies)
                .await
        })
        .await;
    let stored = match stored {
        Ok(s) => s,
        Err(e) => {
            metrics.agent_report("error");
            tracing::warn!(agent_id = %r.agent.id, batch_id = %r.batch_id, error = %e, "agent report not stored");
            return Err(e);
        }
    };
    let ack = match stored {
        Stored::New { .. } => {
            metrics.agent_report("stored");
            metrics.agent_accesses_stored(r.accesses.len() as u64);
            ReportAck {
                batch_id: r.batch_id.clone(),
                stored: true,
                accesses: r.accesses.len(),
            }
        }
        Stored::Duplicate => {
            metrics.agent_report("duplicate");
            ReportAck {
                batch_id: r.batch_id.clone(),
                stored: false,
                accesses: 0,
            }
        }
    };
    Ok(Response::data(to_value(&ack)?))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, LogicalError> {
    serde_json::to_value(v).map_err(|e| LogicalError::Internal(format!("encoding: {e}")))
}

/// Current KV v2 versions, looked up once per path through the router (the engine's own
/// metadata, never what an agent says).
pub(crate) struct Versions<'a> {
    st: &'a Unsealed,
    cache: HashMap<String, Option<u64>>,
}

impl<'a> Versions<'a> {
    pub(crate) fn new(st: &'a Unsealed) -> Self {
        Versions {
            st,
            cache: HashMap::new(),
        }
    }

    /// The current version of `path` (`MOUNT/data/KEY` on a KV v2 mount); `None` for any
    /// other path or a key that has no metadata.
    pub(crate) async fn current(&mut self, path: &str) -> Result<Option<u64>, LogicalError> {
        if let Some(v) = self.cache.get(path) {
            return Ok(*v);
        }
        let v = self.lookup(path).await?;
        self.cache.insert(path.to_string(), v);
        Ok(v)
    }

    async fn lookup(&self, path: &str) -> Result<Option<u64>, LogicalError> {
        let Ok((entry, backend)) = self.st.router.route(path) else {
            return Ok(None);
        };
        let v2 = match entry.options.get("version") {
            Some(Value::String(s)) => s == "2",
            Some(Value::Number(n)) => n.as_u64() == Some(2),
            _ => false,
        };
        let key = path
            .strip_prefix(entry.path.as_str())
            .and_then(|rest| rest.strip_prefix("data/"))
            .filter(|k| !k.is_empty());
        let (true, "kv", Some(key)) = (v2, entry.kind.as_str(), key) else {
            return Ok(None);
        };
        let mut meta = Request::new(Operation::Read, format!("{}metadata/{key}", entry.path));
        meta.mount_point = entry.path.clone();
        meta.mount_type = entry.kind.clone();
        match backend.handle(&meta).await {
            Ok(resp) => Ok(resp
                .data
                .as_ref()
                .and_then(|d| d.get("current_version"))
                .and_then(Value::as_u64)),
            Err(LogicalError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The paths `agent` holds an older version of than the current one.
async fn stale_paths(
    agent: &StoredAgent,
    versions: &mut Versions<'_>,
) -> Result<Vec<String>, LogicalError> {
    let mut out = Vec::new();
    for src in &agent.state.sources {
        let Some(held) = src.version else { continue };
        if let Some(current) = versions.current(&src.path).await? {
            if held < current && !out.contains(&src.path) {
                out.push(src.path.clone());
            }
        }
    }
    Ok(out)
}

async fn summary(
    agent: &StoredAgent,
    versions: &mut Versions<'_>,
) -> Result<AgentSummary, LogicalError> {
    let stale_paths = stale_paths(agent, versions).await?;
    Ok(AgentSummary {
        id: agent.identity.id.clone(),
        host: agent.identity.host.clone(),
        pod: agent.identity.pod.clone(),
        destination: agent.identity.destination.clone(),
        last_seen: agent.last_seen.map(rfc3339).unwrap_or_default(),
        stale: !stale_paths.is_empty(),
        stale_paths,
    })
}

/// `LIST sys/agents`.
async fn list(st: &Unsealed) -> Result<Response, LogicalError> {
    let mut versions = Versions::new(st);
    let mut out = AgentList::default();
    for id in st.agents.agent_ids().await? {
        let Some(agent) = st.agents.agent(&id).await? else {
            continue;
        };
        let s = summary(&agent, &mut versions).await?;
        out.keys.push(id.clone());
        out.key_info.insert(id, s);
    }
    if out.keys.is_empty() {
        // Vault's empty list: 404 without errors.
        return Err(LogicalError::NotFound(String::new()));
    }
    Ok(Response::data(to_value(&out)?))
}

/// `GET sys/agents/:id`.
async fn show(st: &Unsealed, id: &str) -> Result<Response, LogicalError> {
    let mut found = st.agents.agent(id).await?;
    if found.is_none() && id.ends_with('/') {
        found = st.agents.agent(id.trim_end_matches('/')).await?;
    }
    let Some(agent) = found else {
        return Err(LogicalError::NotFound(String::new()));
    };
    let mut versions = Versions::new(st);
    let info = AgentInfo {
        summary: summary(&agent, &mut versions).await?,
        version: agent.identity.version.clone(),
        instance: agent.identity.instance.clone(),
        token_accessor: agent.token_accessor.clone(),
        token_display_name: agent.token_display_name.clone(),
        dropped_total: agent.dropped_total,
        state: agent.state.clone(),
    };
    Ok(Response::data(to_value(&info)?))
}

/// The `path` query parameter, checked.
fn path_param(req: &Request) -> Result<String, LogicalError> {
    let path = req
        .get_str("path")
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            LogicalError::invalid("missing path: add ?path=secret/data/app/db (the API path)")
        })?;
    check_api_path("path", path)?;
    Ok(path.to_string())
}

/// `since` as a duration back from `now` (`1h`, `30m`, `90`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, LogicalError> {
    if let Some(d) = hush_api::duration::parse(text) {
        let d = chrono::Duration::from_std(d)
            .map_err(|_| LogicalError::invalid(format!("since: {text:?} is too long")))?;
        return Ok(now
            .checked_sub_signed(d)
            .unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            LogicalError::invalid(format!(
                "since: {text:?} is neither a duration (1h, 30m) nor an RFC 3339 time"
            ))
        })
}

/// `GET sys/agents/access?path=&since=`.
async fn access(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let path = path_param(req)?;
    let now = Utc::now();
    let since = match req.get_str("since") {
        Some(s) => parse_since(s, now)?,
        None => now - chrono::Duration::from_std(DEFAULT_SINCE).expect("24h fits"),
    };
    let accesses = st
        .agents
        .accesses(&path, since, MAX_ACCESS_ANSWER + 1)
        .await?;
    let truncated = accesses.len() > MAX_ACCESS_ANSWER;
    let mut list = AccessList { accesses };
    list.accesses.truncate(MAX_ACCESS_ANSWER);
    let resp = Response::data(to_value(&list)?);
    Ok(if truncated {
        resp.with_warning(format!(
            "more than {MAX_ACCESS_ANSWER} accesses: only the oldest {MAX_ACCESS_ANSWER} are listed; ask with a later since"
        ))
    } else {
        resp
    })
}

/// `GET sys/agents/stale?path=`.
async fn stale(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let path = path_param(req)?;
    let mut versions = Versions::new(st);
    let current = versions.current(&path).await?;
    let mut out = StaleList {
        path: path.clone(),
        current_version: current,
        agents: Vec::new(),
    };
    if let Some(current) = current {
        for id in st.agents.agent_ids().await? {
            let Some(agent) = st.agents.agent(&id).await? else {
                continue;
            };
            let held = agent
                .state
                .sources
                .iter()
                .filter(|s| s.path == path)
                .filter_map(|s| s.version)
                .min();
            if let Some(held) = held.filter(|h| *h < current) {
                out.agents.push(StaleAgent {
                    summary: summary(&agent, &mut versions).await?,
                    held_version: held,
                });
            }
        }
    }
    Ok(Response::data(to_value(&out)?))
}

#[cfg(test)]
mod tests {
    use hush_api::wire::agents::{Access, AgentIdentity, AgentState, SourceState};

    use super::*;

    fn good() -> Report {
        Report {
            batch_id: "b1".into(),
            agent: AgentIdentity {
                id: "ns/pod".into(),
                host: "h".into(),
                destination: "/secrets".into(),
                ..Default::default()
            },
            accesses: vec![Access {
                time: "2026-01-01T00:00:00Z".into(),
                event: "open".into(),
                file: "db".into(),
                paths: vec!["secret/data/a".into()].into(),
                result: "allowed".into(),
                ..Default::default()
            }],
            dropped_total: 0,
            state: Some(AgentState {
                sources: vec![SourceState {
                    path: "secret/data/a".into(),
                    version: Some(1),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn message(r: &Report) -> String {
        validate(r).unwrap_err().to_string()
    }

    #[test]
    fn each_bad_field_is_named() {
        validate(&good()).unwrap();
        type Change = Box<dyn Fn(&mut Report)>;
        let cases: Vec<(&str, Change)> = vec![
            ("batch_id: empty", Box::new(|r| r.batch_id.clear())),
            (
                "batch_id: longer",
                Box::new(|r| r.batch_id = "x".repeat(129)),
            ),
            ("agent.id: empty", Box::new(|r| r.agent.id.clear())),
            ("agent.id: holds", Box::new(|r| r.agent.id = "a b".into())),
            (
                "agent.id: longer",
                Box::new(|r| r.agent.id = "a".repeat(254)),
            ),
            (
                "agent.id: \"stale\" is reserved",
                Box::new(|r| r.agent.id = "stale".into()),
            ),
            (
                "accesses: 1001",
                Box::new(|r| r.accesses = vec![r.accesses[0].clone(); MAX_ACCESSES_PER_REPORT + 1]),
            ),
            (
                "accesses[0].time",
                Box::new(|r| r.accesses[0].time = "yesterday".into()),
            ),
            (
                "accesses[0].event",
                Box::new(|r| r.accesses[0].event = "read".into()),
            ),
            (
                "accesses[0].file: empty",
                Box::new(|r| r.accesses[0].file = "".into()),
            ),
            (
                "accesses[0].paths[0]",
                Box::new(|r| r.accesses[0].paths = vec!["../x".to_owned()].into()),
            ),
            (
                "accesses[0].result",
                Box::new(|r| r.accesses[0].result = "ok".into()),
            ),
            (
                "accesses[0].exe: longer",
                Box::new(|r| r.accesses[0].exe = Some("e".repeat(5000).into())),
            ),
            (
                "state.sources[0].path",
                Box::new(|r| r.state.as_mut().unwrap().sources[0].path = String::new()),
            ),
        ];
        for (want, change) in cases {
            let mut r = good();
            change(&mut r);
            let got = message(&r);
            assert!(got.starts_with(want), "want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("1h", now).unwrap(),
            "2026-01-01T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_since("2025-12-31T00:00:00+01:00", now).unwrap(),
            "2025-12-30T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(parse_since("soon", now).unwrap_err().status(), 400);
    }
}

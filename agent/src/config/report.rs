//! `[agent] id` and the `report*` keys: who the agent is in hushd's fleet view and how it ships
//! its access events and state (`sys/agents/report`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hush_api::agent_config::RawAgent;

use super::{duration, ConfigError};

/// Longest agent id (a DNS name's length: `NAMESPACE/POD` fits).
pub const MAX_AGENT_ID: usize = 253;
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Access events kept in memory by default.
pub const DEFAULT_REPORT_SPOOL: usize = 10_000;
/// The environment variable naming the agent (below `--agent-id` and `[agent] id`).
pub const AGENT_ID_ENV: &str = "HUSH_AGENT_ID";
/// The downward API variables the injector sets.
pub const POD_NAMESPACE_ENV: &str = "HUSH_POD_NAMESPACE";
pub const POD_NAME_ENV: &str = "HUSH_POD_NAME";

/// Who the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub host: String,
    /// `NAMESPACE/NAME` when the downward API env is set.
    pub pod: Option<String>,
}

/// How reports are shipped (`[agent] report = true`, the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    /// Accesses are shipped, and a state report sent at the least, this often.
    pub interval: Duration,
    /// Access events kept in memory.
    pub spool: usize,
    /// Where events beyond `spool` wait (a tmpfs file, unless `allow_disk`).
    pub spool_file: Option<PathBuf>,
}

/// The id, host and pod: `id` (flag or file) wins, then `HUSH_AGENT_ID`, then `NAMESPACE/POD`,
/// then `HOST:DESTINATION`. `env` reads the environment (a closure, so tests need no env).
pub fn identity(
    id: Option<String>,
    dest: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Identity, ConfigError> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let host = set("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".into());
    let pod = match (set(POD_NAMESPACE_ENV), set(POD_NAME_ENV)) {
        (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
        _ => None,
    };
    let (id, origin) = match (id, set(AGENT_ID_ENV)) {
        (Some(id), _) => (id, "--agent-id / [agent] id"),
        (None, Some(id)) => (id, AGENT_ID_ENV),
        (None, None) => {
            let derived = match &pod {
                Some(p) => p.clone(),
                // Components: no `.` segment, no `//`, no trailing `/`.
                None => format!(
                    "{host}:{}",
                    dest.components().collect::<PathBuf>().display()
                ),
            };
            // A derived id is made valid rather than refused.
            let mut clean = String::new();
            for c in derived.chars() {
                let c = if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                };
                if clean.len() + c.len_utf8() > MAX_AGENT_ID {
                    break;
                }
                clean.push(c);
            }
            (clean, "the default")
        }
    };
    check_agent_id(&id, origin)?;
    Ok(Identity { id, host, pod })
}

/// Ids hushd keeps for its own endpoints (`sys/agents/report`, `access`, `stale`).
pub const RESERVED_IDS: &[&str] = &["report", "access", "stale"];

/// An agent id is 1 to [`MAX_AGENT_ID`] bytes of printable characters without whitespace,
/// and not one of [`RESERVED_IDS`].
pub fn check_agent_id(id: &str, origin: &str) -> Result<(), ConfigError> {
    let problem = if id.is_empty() {
        Some("is empty".to_owned())
    } else if id.len() > MAX_AGENT_ID {
        Some(format!(
            "is {} bytes long (at most {MAX_AGENT_ID})",
            id.len()
        ))
    } else if RESERVED_IDS.contains(&id) {
        Some("is reserved (an endpoint of sys/agents)".to_owned())
    } else if id.starts_with('/')
        || id.contains("//")
        || id.split('/').any(|s| s == "." || s == "..")
    {
        Some(
            "cannot be read back as sys/agents/ID (a leading /, // or a . or .. segment)"
                .to_owned(),
        )
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("holds whitespace or a control character".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(ConfigError(format!(
            "agent id {:?} (from {origin}) {p}: want 1 to {MAX_AGENT_ID} bytes of printable characters without whitespace",
            id.chars().take(80).collect::<String>()
        ))),
    }
}

/// `[agent] report*` -> the settings; `None` when reports are off (or with `--once`).
pub fn report_settings(
    agent: &RawAgent,
    once: bool,
) -> Result<Option<ReportSettings>, ConfigError> {
    let interval = match &agent.report_interval {
        None => DEFAULT_REPORT_INTERVAL,
        Some(t) => match duration::parse(t) {
            Some(d) if d >= Duration::from_millis(100) => d,
            Some(_) => {
                return Err(ConfigError(format!(
                    "report_interval {t:?}: must be at least 100ms"
                )))
            }
            None => {
                return Err(ConfigError(format!(
                    "report_interval {t:?}: want a duration like 10s, 1m"
                )))
            }
        },
    };
    let spool = match agent.report_spool {
        None => DEFAULT_REPORT_SPOOL,
        Some(0) => return Err(ConfigError("report_spool 0: must be at least 1".into())),
        Some(n) if n > 10_000_000 => {
            return Err(ConfigError(format!(
                "report_spool {n}: at most 10000000 events are kept in memory"
            )))
        }
        Some(n) => n as usize,
    };
    if let Some(p) = &agent.report_spool_file {
        if p.is_relative() {
            return Err(ConfigError(format!(
                "report_spool_file {}: must be an absolute path",
                p.display()
            )));
        }
    }
    if !agent.report.unwrap_or(true) || once {
        return Ok(None);
    }
    Ok(Some(ReportSettings {
        interval,
        spool,
        spool_file: agent.report_spool_file.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn id_order_flag_env_pod_host() {
        let dest = Path::new("/run/secrets");
        let env = env_of(&[
            ("HOSTNAME", "node1"),
            (AGENT_ID_ENV, "from-env"),
            (POD_NAMESPACE_ENV, "web"),
            (POD_NAME_ENV, "web-7d9f"),
        ]);
        let i = identity(Some("given".into()), dest, &env).unwrap();
        assert_eq!((i.id.as_str(), i.host.as_str()), ("given", "node1"));
        assert_eq!(i.pod.as_deref(), Some("web/web-7d9f"));
        assert_eq!(identity(None, dest, &env).unwrap().id, "from-env");
        let env = env_of(&[
            ("HOSTNAME", "node1"),
            (POD_NAMESPACE_ENV, "web"),
            (POD_NAME_ENV, "web-7d9f"),
        ]);
        assert_eq!(identity(None, dest, &env).unwrap().id, "web/web-7d9f");
        let env = env_of(&[("HOSTNAME", "node1")]);
        let a = identity(None, Path::new("/run/a"), &env).unwrap();
        let b = identity(None, Path::new("/run/b"), &env).unwrap();
        assert_eq!(a.id, "node1:/run/a");
        assert_ne!(a.id, b.id, "two agents on one host differ");
        assert_eq!(a.pod, None);
        // A derived id with a space is made valid.
        let c = identity(None, Path::new("/run/my dir"), &env).unwrap();
        assert_eq!(c.id, "node1:/run/my_dir");
    }

    #[test]
    fn bad_ids_have_exact_messages() {
        let env = env_of(&[("HOSTNAME", "h")]);
        let dest = Path::new("/d");
        let e = identity(Some(String::new()), dest, &env).unwrap_err().0;
        assert_eq!(
            e,
            "agent id \"\" (from --agent-id / [agent] id) is empty: want 1 to 253 bytes of printable characters without whitespace"
        );
        let e = identity(Some("a b".into()), dest, &env).unwrap_err().0;
        assert_eq!(
            e,
            "agent id \"a b\" (from --agent-id / [agent] id) holds whitespace or a control character: want 1 to 253 bytes of printable characters without whitespace"
        );
        let e = identity(Some("x\u{7}".into()), dest, &env).unwrap_err().0;
        assert!(e.contains("control character"), "{e}");
        let e = identity(Some("x".repeat(254)), dest, &env).unwrap_err().0;
        assert!(e.contains("is 254 bytes long (at most 253)"), "{e}");
        assert!(identity(Some("x".repeat(253)), dest, &env).is_ok());
        let e = identity(Some("é".repeat(127)), dest, &env).unwrap_err().0;
        assert!(e.contains("is 254 bytes long"), "{e}");
        for bad in ["/x", "a//b", "a/./b", "a/.."] {
            let e = identity(Some(bad.into()), dest, &env).unwrap_err().0;
            assert!(e.contains("cannot be read back as sys/agents/ID"), "{e}");
        }
        let odd = identity(None, Path::new("/run/./x//y/"), &env).unwrap().id;
        assert_eq!(odd, "h:/run/x/y");
        let e = identity(Some("stale".into()), dest, &env).unwrap_err().0;
        assert!(e.contains("is reserved (an endpoint of sys/agents)"), "{e}");
        // A long derived id is cut to the bound, on a character boundary.
        let long = format!("/{}", "é".repeat(200));
        let id = identity(None, Path::new(&long), &env).unwrap().id;
        assert!(id.len() <= 253 && id.starts_with("h:/é"), "{id}");
        let env = env_of(&[("HOSTNAME", "h"), (AGENT_ID_ENV, "tab\there")]);
        let e = identity(None, dest, &env).unwrap_err().0;
        assert!(e.contains("(from HUSH_AGENT_ID)"), "{e}");
    }

    #[test]
    fn report_settings_defaults_and_errors() {
        let s = report_settings(&RawAgent::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!(s.interval, DEFAULT_REPORT_INTERVAL);
        assert_eq!(s.spool, DEFAULT_REPORT_SPOOL);
        assert!(report_settings(&RawAgent::default(), true)
            .unwrap()
            .is_none());
        let off = RawAgent {
            report: Some(false),
            ..RawAgent::default()
        };
        assert!(report_settings(&off, false).unwrap().is_none());
        let bad = |a: RawAgent| report_settings(&a, false).unwrap_err().0;
        assert_eq!(
            bad(RawAgent {
                report_interval: Some("soon".into()),
                ..RawAgent::default()
            }),
            "report_interval \"soon\": want a duration like 10s, 1m"
        );
        assert_eq!(
            bad(RawAgent {
                report_interval: Some("1ms".into()),
                ..RawAgent::default()
            }),
            "report_interval \"1ms\": must be at least 100ms"
        );
        assert_eq!(
            bad(RawAgent {
                report_spool: Some(0),
                ..RawAgent::default()
            }),
            "report_spool 0: must be at least 1"
        );
        assert_eq!(
            bad(RawAgent {
                report_spool_file: Some("spool".into()),
                ..RawAgent::default()
            }),
            "report_spool_file spool: must be an absolute path"
        );
    }
}

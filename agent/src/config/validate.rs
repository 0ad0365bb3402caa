//! Raw config -> [`Config`]: every value checked, one exact message per mistake.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    duration, io_reason, ChildOnChange, Config, ConfigError, Destination, Exec, FileSpec, Format,
    FuseCache, FuseSettings, Notify, OnForbidden, Server, SignalTarget, Source, SourceKind,
    DEFAULT_BACKOFF_MAX, DEFAULT_LEASE_GRACE, DEFAULT_MODE, DEFAULT_NOTIFY_TIMEOUT,
    DEFAULT_ONCE_DEADLINE, DEFAULT_REFRESH, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TMPFS_SIZE,
};
use hush_api::agent_config::{RawConfig, RawDestination, RawFile, RawMode, RawNotify};

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

pub use hush_api::agent_config::{signal_name, SIGNALS};

fn parse_duration(key: &str, text: &str, min: Duration) -> Result<Duration, ConfigError> {
    let Some(d) = duration::parse(text) else {
        return err(format!(
            "{key} {text:?}: want a duration like 100ms, 60s, 5m or 1h"
        ));
    };
    if d < min {
        return err(format!(
            "{key} {text:?}: must be at least {}",
            duration::show(min)
        ));
    }
    Ok(d)
}

/// `16m`, `1g`, `65536` -> bytes.
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        "" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale).filter(|n| *n > 0)
}

fn parse_mode(file: &str, mode: &RawMode) -> Result<u32, ConfigError> {
    let digits = match mode {
        RawMode::Text(t) => {
            let t = t.trim();
            t.strip_prefix("0o").unwrap_or(t).to_string()
        }
        RawMode::Digits(n) => n.to_string(),
    };
    let shown = match mode {
        RawMode::Text(t) => t.clone(),
        RawMode::Digits(n) => n.to_string(),
    };
    match u32::from_str_radix(&digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(m),
        _ => err(format!(
            "file {file:?}: mode {shown:?} is not an octal file mode like 0400 or 0440"
        )),
    }
}

/// A file name is one plain path segment (the writer keeps `..data` and dot names for itself).
fn check_file_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        err(format!(
            "file {name:?}: a file name is one path segment, without \"/\" and not starting with \".\""
        ))
    }
}

fn check_secret_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        err(format!(
            "secret name {name:?}: use letters, digits, '_' and '-', not starting with a digit"
        ))
    }
}

/// Check an API path and tell how its versions are followed.
fn source_kind(name: &str, path: &str) -> Result<SourceKind, ConfigError> {
    let segments: Vec<&str> = path.split('/').collect();
    let bad = segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..");
    if bad || path.is_empty() {
        return err(format!(
            "secret {name:?}: path {path:?} is not an API path like secret/data/app/db"
        ));
    }
    // KV v2: MOUNT/data/PATH (the first "data" segment after the mount).
    if let Some(i) = segments.iter().skip(1).position(|s| *s == "data") {
        let i = i + 1;
        if i + 1 < segments.len() {
            return Ok(SourceKind::KvV2 {
                mount: segments[..i].join("/"),
                path: segments[i + 1..].join("/"),
            });
        }
    }
    Ok(SourceKind::Generic)
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let server = Server {
        addr: match raw.server.addr {
            Some(a) if !a.trim().is_empty() => a.trim().to_string(),
            _ => return err("no server address: set --addr or server.addr"),
        },
        ca_cert: raw.server.ca_cert,
        request_timeout: match raw.server.request_timeout {
            Some(t) => parse_duration("request_timeout", &t, Duration::from_millis(100))?,
            None => DEFAULT_REQUEST_TIMEOUT,
        },
        credential: super::credential::credential(raw.server.token_file, raw.auth)?,
    };
    if !(server.addr.starts_with("http://") || server.addr.starts_with("https://")) {
        return err(format!(
            "server address {:?}: want a URL like https://127.0.0.1:8200",
            server.addr
        ));
    }

    // Sources: one per distinct path, in order of first mention.
    let mut sources: Vec<Source> = Vec::new();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for name in &raw.lazy {
        if !raw.secrets.contains_key(name) {
            return err(format!(
                "--lazy {name:?}: no such secret; give a [secrets] name or the PATH of a --secret"
            ));
        }
    }
    for (name, secret) in &raw.secrets {
        let path = secret.path();
        if name != path {
            check_secret_name(name)?;
        }
        let path = path.trim().trim_matches('/').to_string();
        let kind = source_kind(name, &path)?;
        let lazy = secret.lazy() || raw.lazy.contains(name);
        let idx = match sources.iter().position(|s| s.path == path) {
            Some(i) => {
                // Read at start if any of its names is: lazy only when all are.
                sources[i].lazy &= lazy;
                i
            }
            None => {
                sources.push(Source {
                    names: Vec::new(),
                    path,
                    kind,
                    lazy,
                });
                sources.len() - 1
            }
        };
        sources[idx].names.push(name.clone());
        by_name.insert(name.clone(), idx);
    }

    if raw.files.is_empty() {
        return err("no files: give --secret NAME=PATH[#FIELD] or [[file]] entries");
    }
    let mut files = Vec::with_capacity(raw.files.len());
    let mut seen = BTreeSet::new();
    for f in raw.files {
        check_file_name(&f.name)?;
        if !seen.insert(f.name.clone()) {
            return err(format!("file {:?}: declared twice", f.name));
        }
        files.push(file_spec(f, &by_name)?);
    }
    let used: BTreeSet<usize> = files.iter().filter_map(|f| f.format.source()).collect();
    let has_template = files
        .iter()
        .any(|f| matches!(f.format, Format::Template { .. }));
    if !has_template {
        if let Some(unused) = sources.iter().enumerate().find(|(i, _)| !used.contains(i)) {
            return err(format!(
                "secret {}: no file uses it",
                unused.1.names.first().map(String::as_str).unwrap_or("")
            ));
        }
    }

    let fuse = fuse_settings(&raw.destination)?;
    let destination = Destination {
        path: match raw.destination.path {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => return err("no destination: set --dest or destination.path"),
        },
        allow_disk: raw.destination.allow_disk.unwrap_or(false),
        mount_tmpfs: match (raw.destination.mount_tmpfs, raw.destination.tmpfs_size) {
            (Some(true), size) => Some(match size {
                Some(s) => parse_size(&s).ok_or_else(|| {
                    ConfigError(format!("tmpfs_size {s:?}: want a size like 16m or 1g"))
                })?,
                None => DEFAULT_TMPFS_SIZE,
            }),
            (_, Some(_)) => return err("tmpfs_size is set but mount_tmpfs is not"),
            _ => None,
        },
        fuse,
    };
    if destination.path.is_relative() {
        return err(format!(
            "destination {}: must be an absolute path",
            destination.path.display()
        ));
    }

    let identity = super::report::identity(raw.agent.id.clone(), &destination.path, &|k| {
        std::env::var(k).ok()
    })?;
    let report = super::report::report_settings(&raw.agent, raw.agent.once.unwrap_or(false))?;
    let refresh_interval = match raw.agent.refresh_interval {
        Some(t) => parse_duration("refresh_interval", &t, Duration::from_millis(10))?,
        None => DEFAULT_REFRESH,
    };
    let backoff_max = match raw.agent.backoff_max {
        Some(t) => parse_duration("backoff_max", &t, Duration::from_millis(10))?,
        None => DEFAULT_BACKOFF_MAX,
    };
    let once_deadline = match raw.agent.once_deadline {
        Some(t) => parse_duration("once_deadline", &t, Duration::from_secs(1))?,
        None => DEFAULT_ONCE_DEADLINE,
    };
    let lease_grace = match raw.agent.lease_grace {
        Some(t) => parse_duration("lease_grace", &t, Duration::ZERO)?,
        None => DEFAULT_LEASE_GRACE,
    };
    let on_forbidden = match raw.agent.on_forbidden.as_deref() {
        None | Some("keep") => OnForbidden::Keep,
        Some("remove") => OnForbidden::Remove,
        Some(other) => return err(format!("on_forbidden {other:?}: want keep or remove")),
    };
    let metrics_listen = match raw.agent.metrics_listen {
        None => None,
        Some(t) => Some(t.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "metrics_listen {t:?}: want an address like 127.0.0.1:9102"
            ))
        })?),
    };

    let notify = notify(raw.notify)?;
    let exec = match raw.exec {
        None => None,
        Some(e) => {
            if e.command.is_empty() || e.command[0].is_empty() {
                return err("exec.command is empty");
            }
            let mut env = Vec::new();
            for (var, file) in e.env {
                let ok = !var.is_empty()
                    && !var.starts_with(|c: char| c.is_ascii_digit())
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return err(format!(
                        "env {var:?}: not a valid environment variable name"
                    ));
                }
                if !files.iter().any(|f| f.name == file) {
                    return err(format!("env {var:?}: no file named {file:?}"));
                }
                env.push((var, file));
            }
            let on_change = match e.on_change.as_deref().map(str::trim) {
                None => ChildOnChange::Signal("SIGHUP".into()),
                Some("restart") => ChildOnChange::Restart,
                Some(t) => match t.strip_prefix("signal:").and_then(signal_name) {
                    Some(sig) => ChildOnChange::Signal(sig.into()),
                    None => {
                        return err(format!(
                            "child_on_change {t:?}: want signal:SIG (e.g. signal:SIGHUP) or restart"
                        ))
                    }
                },
            };
            Some(Exec {
                argv: e.command,
                env,
                on_change,
            })
        }
    };

    let once = raw.agent.once.unwrap_or(false);
    if once && exec.is_some() {
        return err(
            "--once renders and exits: it cannot supervise a command (drop -- CMD or [exec])",
        );
    }
    if let (Some(lazy), None) = (sources.iter().find(|s| s.lazy), &destination.fuse) {
        return err(format!(
            "secret {}: lazy leasing needs --fuse (the agent must see the first open; in tmpfs \
             mode every file exists before the application reads it)",
            lazy.label()
        ));
    }
    if once && destination.fuse.is_some() {
        return err(
            "--once renders and exits: it cannot serve a FUSE filesystem (drop --once or --fuse)",
        );
    }
    check_uids(&files, destination.fuse.as_ref())?;

    let config = Config {
        identity,
        report,
        server,
        sources,
        files,
        destination,
        refresh_interval,
        backoff_max,
        on_forbidden,
        once,
        once_deadline,
        revoke_on_exit: raw.agent.revoke_on_exit.unwrap_or(false),
        lease_grace,
        revoke_leases_on_exit: raw.agent.revoke_leases_on_exit.unwrap_or(true) && !once,
        lease_record: !once,
        metrics_listen,
        push: raw.agent.push.unwrap_or(true) && !once,
        notify,
        exec,
    };
    if let Some(exec) = &config.exec {
        for (var, file) in &exec.env {
            let i = config.files.iter().position(|f| f.name == *file);
            if let Some(s) = i.and_then(|i| config.lazy_sources(i).first().copied()) {
                return err(format!(
                    "env {var:?}: file {file:?} reads the lazy secret {}, which is not read \
                     before the command starts",
                    config.sources[s].label()
                ));
            }
        }
    }
    Ok(config)
}

/// `[destination]`'s FUSE keys: only with `fuse = true`, which excludes the tmpfs ones.
fn fuse_settings(d: &RawDestination) -> Result<Option<FuseSettings>, ConfigError> {
    if d.fuse != Some(true) {
        if d.fuse_cache.is_some() {
            return err("fuse_cache is set but fuse is not (add --fuse)");
        }
        if d.access_log.is_some() {
            return err("access_log is set but fuse is not (add --fuse)");
        }
        return Ok(None);
    }
    if d.mount_tmpfs == Some(true) || d.tmpfs_size.is_some() {
        return err("mount_tmpfs and tmpfs_size are for tmpfs mode; --fuse serves the files from memory (drop one)");
    }
    if d.allow_disk == Some(true) {
        return err("allow_disk is for tmpfs mode; --fuse serves the files from memory (drop one)");
    }
    let cache = match d.fuse_cache.as_deref().map(str::trim) {
        None | Some("audited") => FuseCache::Audited,
        Some("fast") => FuseCache::Fast,
        Some(other) => return err(format!("fuse_cache {other:?}: want audited or fast")),
    };
    let access_log = match &d.access_log {
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) if p.is_relative() => {
            return err(format!(
                "access_log {}: must be an absolute path (or - for stdout)",
                p.display()
            ))
        }
        other => other.clone(),
    };
    Ok(Some(FuseSettings { cache, access_log }))
}

/// A file's `uids` needs FUSE (a tmpfs cannot tell who opens) in audited mode (in fast mode
/// the kernel answers opens itself).
fn check_uids(files: &[FileSpec], fuse: Option<&FuseSettings>) -> Result<(), ConfigError> {
    for f in files {
        let Some(uids) = &f.uids else { continue };
        let name = &f.name;
        match fuse {
            None => {
                return err(format!(
                    "file {name:?}: uids needs FUSE mode (--fuse): a tmpfs cannot restrict by uid"
                ))
            }
            Some(s) if s.cache == FuseCache::Fast => {
                return err(format!(
                    "file {name:?}: uids needs --fuse-cache audited: in fast mode the kernel answers opens itself"
                ))
            }
            Some(_) if uids.is_empty() => {
                return err(format!("file {name:?}: uids is empty: nobody could open it"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn file_spec(f: RawFile, by_name: &BTreeMap<String, usize>) -> Result<FileSpec, ConfigError> {
    let name = f.name;
    let mode = match &f.mode {
        Some(m) => parse_mode(&name, m)?,
        None => DEFAULT_MODE,
    };
    let template = match (f.template, f.template_file) {
        (Some(_), Some(_)) => {
            return err(format!(
                "file {name:?}: give template or template_file, not both"
            ))
        }
        (Some(t), None) => Some(t),
        (None, Some(path)) => Some(read_template(&name, &path)?),
        (None, None) => None,
    };
    let format = f.format.as_deref().unwrap_or(match (&template, &f.field) {
        (Some(_), _) => "template",
        (None, Some(_)) => "raw",
        (None, None) => "json",
    });
    let source = || -> Result<usize, ConfigError> {
        let Some(secret) = &f.secret else {
            return err(format!("file {name:?}: format {format} needs a secret"));
        };
        by_name.get(secret).copied().ok_or_else(|| {
            ConfigError(format!(
                "file {name:?}: unknown secret {secret:?}; declare it under [secrets]"
            ))
        })
    };
    if format != "template" && template.is_some() {
        return err(format!(
            "file {name:?}: template is only for format template"
        ));
    }
    if format != "raw" && f.field.is_some() {
        return err(format!("file {name:?}: field is only for format raw"));
    }
    let format = match format {
        "raw" => Format::Raw {
            source: source()?,
            field: match f.field {
                Some(field) if !field.is_empty() => field,
                _ => return err(format!("file {name:?}: format raw needs a field")),
            },
        },
        "json" => Format::Json { source: source()? },
        "dotenv" => Format::Dotenv { source: source()? },
        "template" => {
            if f.secret.is_some() {
                return err(format!(
                    "file {name:?}: a template takes no secret; it sees every secret as secrets.NAME"
                ));
            }
            let Some(text) = template else {
                return err(format!(
                    "file {name:?}: format template needs template or template_file"
                ));
            };
            crate::template::check(&name, &text).map_err(ConfigError)?;
            Format::Template { source_text: text }
        }
        other => {
            return err(format!(
                "file {name:?}: format {other:?}: want raw, json, dotenv or template"
            ))
        }
    };
    Ok(FileSpec {
        name,
        mode,
        uid: f.uid,
        gid: f.gid,
        uids: f.uids,
        format,
    })
}

fn read_template(name: &str, path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "file {name:?}: could not read template_file {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

fn notify(raw: RawNotify) -> Result<Notify, ConfigError> {
    let timeout = match raw.timeout {
        Some(t) => parse_duration("notify timeout", &t, Duration::from_millis(10))?,
        None => DEFAULT_NOTIFY_TIMEOUT,
    };
    if let Some(cmd) = &raw.command {
        if cmd.is_empty() || cmd[0].is_empty() {
            return err("notify command is empty");
        }
    }
    let target = match (raw.pid_file, raw.process) {
        (Some(_), Some(_)) => return err("notify: give a pid file or a process name, not both"),
        (Some(p), None) => Some(SignalTarget::PidFile(p)),
        (None, Some(n)) if !n.is_empty() => Some(SignalTarget::ProcessName(n)),
        (None, Some(_)) => return err("notify process name is empty"),
        (None, None) => None,
    };
    let signal = match (raw.signal, target) {
        (None, None) => None,
        (Some(s), Some(t)) => match signal_name(&s) {
            Some(sig) => Some((sig.to_string(), t)),
            None => {
                return err(format!(
                    "notify signal {s:?}: want one of {}",
                    SIGNALS.join(", ")
                ))
            }
        },
        (Some(_), None) => {
            return err("notify signal needs a target: --notify-pid-file or --notify-process")
        }
        (None, Some(_)) => return err("notify target given without --notify-signal"),
    };
    Ok(Notify {
        command: raw.command,
        timeout,
        signal,
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

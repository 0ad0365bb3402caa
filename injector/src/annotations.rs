//! The `hush.dev/` annotations of a pod, read and checked one by one into [`Annotations`].
//! Every value that cannot be used is a [`Denial`] naming the annotation, what is wrong with it
//! and what is accepted. Defaults from the injector's settings are applied later (`plan`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::syntax;

/// The annotation prefix.
pub const PREFIX: &str = "hush.dev/";
/// `hush.dev/agent-inject`: `"true"` injects.
pub const INJECT: &str = "hush.dev/agent-inject";
/// The marker the patch adds; a pod holding it is left alone (reinvocation).
pub const STATUS: &str = "hush.dev/agent-inject-status";

/// The keys after the prefix, besides `secret-NAME`, `template-NAME` and `file-mode-NAME`.
pub const KEYS: &[&str] = &[
    "agent-inject",
    "agent-inject-status",
    "role",
    "auth-path",
    "token-audience",
    "uid",
    "gid",
    "dest",
    "volume-size",
    "containers",
    "agent-pre-populate-only",
    "legacy-sidecar",
    "refresh-interval",
    "revoke-on-exit",
    "notify-signal",
    "notify-process",
    "agent-image",
    "agent-cpu",
    "agent-memory",
    "agent-cpu-request",
    "agent-cpu-limit",
    "agent-memory-request",
    "agent-memory-limit",
    "agent-config",
];

/// The shortest refresh interval the agent accepts.
const MIN_REFRESH: std::time::Duration = std::time::Duration::from_millis(10);

/// A pod refused: which annotation and why, said to the user by `kubectl`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{annotation}: {reason}")]
pub struct Denial {
    /// The full annotation key, e.g. `hush.dev/secret-db`.
    pub annotation: String,
    pub reason: String,
}

impl Denial {
    /// A denial of `hush.dev/<key>`.
    pub fn new(key: &str, reason: impl Into<String>) -> Denial {
        Denial {
            annotation: format!("{PREFIX}{key}"),
            reason: reason.into(),
        }
    }
}

/// What the annotations ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Leave the pod alone (the reason is for the log).
    Skip(&'static str),
    Inject(Box<Annotations>),
}

/// The checked `hush.dev/` annotations of a pod that asks for the agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    pub role: Option<String>,
    pub auth_path: Option<String>,
    pub token_audience: Option<String>,
    /// `secret-NAME` and `template-NAME`, by file name.
    pub files: BTreeMap<String, FileAnnotation>,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    pub dest: Option<String>,
    pub volume_size: Option<String>,
    /// `containers`: names of app or init containers, in the order given.
    pub containers: Option<Vec<String>>,
    pub pre_populate_only: bool,
    pub legacy_sidecar: Option<bool>,
    pub refresh_interval: Option<String>,
    pub revoke_on_exit: bool,
    pub notify: Option<Notify>,
    pub agent_image: Option<String>,
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
    /// `agent-config`: a ConfigMap in the pod's namespace with key `agent.toml`.
    pub agent_config: Option<String>,
}

/// One file of the destination declared by annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct FileAnnotation {
    pub source: FileSource,
    /// `file-mode-NAME`, checked octal.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileSource {
    /// `secret-NAME: PATH[#FIELD]`; `key` is its name under the agent's `[secrets]` (and in
    /// templates, `secrets.KEY`): the file name with characters other than letters, digits,
    /// '_' and '-' made '_' (and '_' put before a leading digit).
    Secret {
        key: String,
        path: String,
        field: Option<String>,
    },
    /// `template-NAME`: a minijinja template over the `secret-` secrets.
    Template(String),
}

/// `notify-signal` + `notify-process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub signal: &'static str,
    pub process: String,
}

/// Read the annotations of `pod`: skip, inject, or deny.
pub fn read(pod: &Pod) -> Result<Request, Denial> {
    let empty = BTreeMap::new();
    let all = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    match all.get(INJECT).map(String::as_str) {
        None => return Ok(Request::Skip("no hush.dev/agent-inject annotation")),
        Some("false") => return Ok(Request::Skip("hush.dev/agent-inject is \"false\"")),
        Some("true") => {}
        Some(other) => {
            return Err(Denial::new(
                "agent-inject",
                format!("{other:?}: want \"true\" (inject the agent) or \"false\""),
            ))
        }
    }
    if all.contains_key(STATUS) {
        return Ok(Request::Skip(
            "already injected (hush.dev/agent-inject-status)",
        ));
    }
    if already_has_agent(pod) {
        return Ok(Request::Skip(
            "already injected (a container named hush-agent or hush-agent-init)",
        ));
    }
    let ours = all
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.as_str())));
    let mut a = Annotations::default();
    let mut modes: BTreeMap<&str, String> = BTreeMap::new();
    let mut notify_signal = None;
    let mut notify_process = None;
    // `agent-cpu` / `agent-memory`: request and limit at once, unless given one by one.
    let (mut cpu_both, mut memory_both) = (None, None);
    for (key, value) in ours {
        let deny = |reason: String| Denial::new(key, reason);
        if let Some(name) = key.strip_prefix("secret-") {
            syntax::file_name(name).map_err(deny)?;
            let source = secret_source(name, value).map_err(deny)?;
            if let FileSource::Secret { key: k, .. } = &source {
                if let Some((other, _)) = a
                    .files
                    .iter()
                    .find(|(_, f)| matches!(&f.source, FileSource::Secret { key: o, .. } if o == k))
                {
                    return Err(deny(format!(
                        "its secret is named {k:?} in the agent's config (and in templates), \
                         as is the one of hush.dev/secret-{other}: rename one of the files"
                    )));
                }
            }
            a.files
                .insert(name.to_string(), FileAnnotation { source, mode: None });
            continue;
        }
        if let Some(name) = key.strip_prefix("template-") {
            syntax::file_name(name).map_err(deny)?;
            if a.files.contains_key(name) {
                return Err(deny(format!(
                    "the file {name:?} is already declared by hush.dev/secret-{name}: \
                     a file has one source"
                )));
            }
            if value.trim().is_empty() {
                return Err(deny(
                    "the template is empty: want minijinja text, e.g. \
                     \"user={{ secrets.db.username }}\""
                        .into(),
                ));
            }
            let source = FileSource::Template(value.to_string());
            a.files
                .insert(name.to_string(), FileAnnotation { source, mode: None });
            continue;
        }
        if let Some(name) = key.strip_prefix("file-mode-") {
            syntax::octal_mode(value).map_err(deny)?;
            modes.insert(name, value.to_string());
            continue;
        }
        match key {
            "agent-inject" | "agent-inject-status" => {}
            "role" => {
                syntax::word(value, "web").map_err(deny)?;
                a.role = Some(value.into());
            }
            "auth-path" => {
                auth_path(value).map_err(deny)?;
                a.auth_path = Some(value.into());
            }
            "token-audience" => {
                syntax::word(value, "hush").map_err(deny)?;
                a.token_audience = Some(value.into());
            }
            "uid" => a.uid = Some(id(value, 1).map_err(deny)?),
            "gid" => a.gid = Some(id(value, 0).map_err(deny)?),
            "dest" => {
                syntax::absolute_dir(value).map_err(deny)?;
                a.dest = Some(value.into());
            }
            "volume-size" => {
                let bytes = syntax::quantity(value).map_err(deny)?;
                if bytes < 1.0 {
                    return Err(deny(format!(
                        "{value:?} is less than one byte: want a size like 16Mi"
                    )));
                }
                a.volume_size = Some(value.into());
            }
            "containers" => a.containers = Some(containers(pod, value).map_err(deny)?),
            "agent-pre-populate-only" => {
                a.pre_populate_only = syntax::boolean(value).map_err(deny)?
            }
            "legacy-sidecar" => a.legacy_sidecar = Some(syntax::boolean(value).map_err(deny)?),
            "refresh-interval" => {
                refresh_interval(value).map_err(deny)?;
                a.refresh_interval = Some(value.into());
            }
            "revoke-on-exit" => a.revoke_on_exit = syntax::boolean(value).map_err(deny)?,
            "notify-signal" => {
                let signal = hush_api::agent_config::signal_name(value).ok_or_else(|| {
                    deny(format!(
                        "{value:?} is not a signal the agent sends: want one of {}",
                        hush_api::agent_config::SIGNALS.join(", ")
                    ))
                })?;
                notify_signal = Some(signal);
            }
            "notify-process" => {
                syntax::word(value, "nginx").map_err(deny)?;
                notify_process = Some(value.to_string());
            }
            "agent-image" => {
                syntax::word(value, "registry.example.com/hush-agent:0.1.0").map_err(deny)?;
                a.agent_image = Some(value.into());
            }
            "agent-cpu" | "agent-memory" => {
                syntax::quantity(value).map_err(deny)?;
                let slot = if key == "agent-cpu" {
                    &mut cpu_both
                } else {
                    &mut memory_both
                };
                *slot = Some(value.to_string());
            }
            "agent-cpu-request"
            | "agent-cpu-limit"
            | "agent-memory-request"
            | "agent-memory-limit" => {
                syntax::quantity(value).map_err(deny)?;
                let slot = match key {
                    "agent-cpu-request" => &mut a.cpu_request,
                    "agent-cpu-limit" => &mut a.cpu_limit,
                    "agent-memory-request" => &mut a.memory_request,
                    _ => &mut a.memory_limit,
                };
                *slot = Some(value.into());
            }
            "agent-config" => {
                syntax::dns_subdomain(value).map_err(deny)?;
                a.agent_config = Some(value.into());
            }
            _ => return Err(deny(unknown_key())),
        }
    }

    for (both, request, limit) in [
        (cpu_both, &mut a.cpu_request, &mut a.cpu_limit),
        (memory_both, &mut a.memory_request, &mut a.memory_limit),
    ] {
        if let Some(q) = both {
            request.get_or_insert_with(|| q.clone());
            limit.get_or_insert(q);
        }
    }

    // Checks across annotations.
    if a.agent_config.is_some() {
        let file_key = all.keys().find(|k| {
            k.strip_prefix(PREFIX).is_some_and(|k| {
                ["secret-", "template-", "file-mode-"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
        });
        if let Some(key) = file_key {
            return Err(Denial {
                annotation: key.clone(),
                reason: "hush.dev/agent-config names a ConfigMap holding the agent's whole \
                         config: put this file in the ConfigMap's agent.toml (or drop \
                         hush.dev/agent-config)"
                    .into(),
            });
        }
    }
    for (name, mode) in modes {
        let Some(file) = a.files.get_mut(name) else {
            return Err(Denial::new(
                &format!("file-mode-{name}"),
                format!(
                    "no file {name:?} is declared: a mode is for a file given by \
                     hush.dev/secret-{name} or hush.dev/template-{name}"
                ),
            ));
        };
        file.mode = Some(mode);
    }
    a.notify = match (notify_signal, notify_process) {
        (Some(signal), Some(process)) => Some(Notify { signal, process }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Denial::new(
                "notify-signal",
                "needs hush.dev/notify-process, the name of the process to signal, e.g. nginx",
            ))
        }
        (None, Some(_)) => {
            return Err(Denial::new(
                "notify-process",
                "needs hush.dev/notify-signal, the signal to send, e.g. SIGHUP",
            ))
        }
    };
    if a.agent_config.is_none() {
        if a.role.is_none() {
            return Err(Denial::new(
                "role",
                "missing: the hushd Kubernetes auth role the agent logs in as, e.g. web (or \
                 name a ConfigMap holding the agent's config in hush.dev/agent-config)",
            ));
        }
        if a.files.is_empty() {
            return Err(Denial::new(
                "agent-inject",
                "nothing to render: add hush.dev/secret-NAME: PATH[#FIELD] or \
                 hush.dev/template-NAME annotations, or name a ConfigMap holding the agent's \
                 config in hush.dev/agent-config",
            ));
        }
    }
    if a.pre_populate_only {
        if a.revoke_on_exit {
            return Err(Denial::new(
                "revoke-on-exit",
                "with hush.dev/agent-pre-populate-only the agent exits before the app starts: \
                 revoking its token then would revoke the credentials the app is given \
                 (drop one of the two)",
            ));
        }
        if a.notify.is_some() {
            return Err(Denial::new(
                "notify-signal",
                "with hush.dev/agent-pre-populate-only the agent exits before the app starts: \
                 there is no change to notify (drop one of the two)",
            ));
        }
    }
    Ok(Request::Inject(Box::new(a)))
}

/// A pod already holding the agent (injected by an earlier call, or by hand).
fn already_has_agent(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.name == crate::names::SIDECAR || c.name == crate::names::INIT)
}

fn unknown_key() -> String {
    format!(
        "unknown hush.dev/ annotation; the known ones are {}, secret-NAME, template-NAME and \
         file-mode-NAME",
        KEYS.join(", ")
    )
}

/// `PATH[#FIELD]`.
fn secret_source(name: &str, value: &str) -> Result<FileSource, String> {
    let (path, field) = match value.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (value, None),
    };
    let trimmed = path.trim_matches('/');
    let path_ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if !path_ok || field.is_some_and(|f| f.trim().is_empty()) {
        return Err(format!(
            "{value:?}: want an API PATH with an optional #FIELD, e.g. secret/data/app/db \
             (the JSON of the data) or secret/data/app/db#password (one field's value)"
        ));
    }
    let mut key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        key.insert(0, '_');
    }
    Ok(FileSource::Secret {
        key,
        path: trimmed.to_string(),
        field: field.map(str::to_string),
    })
}

/// `auth-path`: a mount path like `kubernetes` or `k8s/prod`.
fn auth_path(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an auth mount path: want letters, digits, '-', '_', '.' and \
             inner '/', e.g. kubernetes or k8s/prod"
        ))
    }
}

/// `uid` / `gid`: a number from `min` to 2147483647.
fn id(value: &str, min: i64) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(0) if min > 0 => Err(
            "\"0\": the agent never runs as root; give the uid of the app, e.g. 1000 (its files \
             are owned by it)"
                .into(),
        ),
        Ok(n) if (min..=i64::from(i32::MAX)).contains(&n) && !value.starts_with('+') => Ok(n),
        _ => Err(format!(
            "{value:?}: want a number from {min} to 2147483647, e.g. 1000"
        )),
    }
}

/// `refresh-interval`, checked with the agent's own duration parser.
fn refresh_interval(value: &str) -> Result<(), String> {
    match hush_api::duration::parse(value) {
        Some(d) if value.trim() == value && d >= MIN_REFRESH => Ok(()),
        Some(_) if value.trim() == value => Err(format!(
            "{value:?} is shorter than the agent allows: want at least {}",
            hush_api::duration::show(MIN_REFRESH)
        )),
        _ => Err(format!(
            "{value:?}: want a duration like 30s, 5m or 1h30m (units ms, s, m, h, d)"
        )),
    }
}

/// `containers`: a comma list of app or init container names of this pod.
fn containers(pod: &Pod, value: &str) -> Result<Vec<String>, String> {
    let spec = pod.spec.as_ref();
    let apps: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let inits: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|v| v.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let mut names = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(format!(
                "{value:?} has an empty name: want a comma list of container names, e.g. app,worker"
            ));
        }
        if !apps.contains(&name) && !inits.contains(&name) {
            let inits = if inits.is_empty() {
                String::new()
            } else {
                format!("; its init containers: {}", inits.join(", "))
            };
            return Err(format!(
                "no container {name:?} in this pod: its containers: {}{inits}",
                apps.join(", ")
            ));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests;

//! Annotations + settings + pod -> [`Plan`]: every default applied (from the settings and the
//! pod's securityContext), the containers to mount into chosen, and what can only be judged
//! against the pod (a destination already mounted, a request above its limit) checked.

use std::collections::BTreeMap;

use hush_api::agent_config::{RawConfig, RawFile, RawMode, RawSecret};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::annotations::{Annotations, Denial, FileSource, Notify};
use crate::names;
use crate::settings::Settings;
use crate::syntax;

/// How the agent is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An init container with `restartPolicy: Always`, first (Kubernetes 1.29+).
    NativeSidecar,
    /// Only a `--once` init container (Jobs: `agent-pre-populate-only`).
    PrePopulateOnly,
    /// A `--once` init container and a classic sidecar that adopts its leases.
    LegacySidecar,
}

/// A container that gets the read-only mount: `init` says which list, `index` where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub init: bool,
    pub index: usize,
}

/// The agent's resources (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

/// Everything the patch is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub shape: Shape,
    pub image: String,
    pub hushd_addr: String,
    pub agent_port: u16,
    pub role: Option<String>,
    pub auth_path: String,
    pub token_audience: String,
    pub dest: String,
    pub volume_size: String,
    pub targets: Vec<Target>,
    pub uid: i64,
    pub gid: i64,
    pub refresh_interval: Option<String>,
    pub revoke_on_exit: bool,
    pub notify: Option<Notify>,
    pub resources: Resources,
    /// hushd's CA ConfigMap (settings).
    pub ca_configmap: Option<String>,
    /// The `agent-config` ConfigMap.
    pub config_map: Option<String>,
    /// `HUSH_AGENT_CONFIG`: the TOML made from the file annotations (none with `agent-config`).
    pub config_toml: Option<String>,
}

/// Resolve `a` against `settings` and the pod's `spec`.
pub fn plan(a: Annotations, spec: &PodSpec, settings: &Settings) -> Result<Plan, Denial> {
    let shape = if a.pre_populate_only {
        Shape::PrePopulateOnly
    } else if a.legacy_sidecar.unwrap_or(settings.legacy_sidecar) {
        Shape::LegacySidecar
    } else {
        Shape::NativeSidecar
    };
    let inits: &[Container] = spec.init_containers.as_deref().unwrap_or_default();
    let targets: Vec<Target> = match &a.containers {
        None => (0..spec.containers.len())
            .map(|index| Target { init: false, index })
            .chain((0..inits.len()).map(|index| Target { init: true, index }))
            .collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| {
                let app = spec.containers.iter().position(|c| &c.name == n);
                let init = inits.iter().position(|c| &c.name == n);
                app.map(|index| Target { init: false, index })
                    .or(init.map(|index| Target { init: true, index }))
            })
            .collect(),
    };
    let container = |t: &Target| {
        if t.init {
            &inits[t.index]
        } else {
            &spec.containers[t.index]
        }
    };

    let dest = a.dest.clone().unwrap_or_else(|| names::DEFAULT_DEST.into());
    for t in &targets {
        let c = container(t);
        let taken = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == dest);
        if let Some(m) = taken {
            return Err(Denial::new(
                "dest",
                format!(
                    "container {:?} already mounts volume {:?} at {dest}: choose another \
                     directory with hush.dev/dest (or leave the container out with \
                     hush.dev/containers)",
                    c.name, m.name
                ),
            ));
        }
    }
    for (dir, what) in [
        (names::TOKEN_DIR, "its token"),
        (names::CA_DIR, "hushd's CA"),
        (names::CONFIG_DIR, "its config"),
    ] {
        if syntax::paths_overlap(&dest, dir) {
            return Err(Denial::new(
                "dest",
                format!(
                    "{dest} overlaps {dir}, where the agent mounts {what}: choose a directory \
                     like /secrets"
                ),
            ));
        }
    }
    let volumes = spec.volumes.iter().flatten();
    for v in volumes {
        let ours = [
            names::SECRETS_VOLUME,
            names::TOKEN_VOLUME,
            names::CA_VOLUME,
            names::CONFIG_VOLUME,
        ];
        if ours.contains(&v.name.as_str()) {
            return Err(Denial::new(
                "agent-inject",
                format!(
                    "the pod already has a volume named {:?}, a name the injector gives its \
                     own volumes (hush-secrets, hush-token, hush-ca, hush-config): rename it",
                    v.name
                ),
            ));
        }
    }

    // uid and gid: the annotation, else the first chosen app container's, else the pod's.
    let first_app = targets.iter().filter(|t| !t.init).min_by_key(|t| t.index);
    let app_ctx = first_app.and_then(|t| spec.containers[t.index].security_context.as_ref());
    let pod_ctx = spec.security_context.as_ref();
    let non_zero = |v: Option<i64>| v.filter(|v| *v != 0);
    let uid = a
        .uid
        .or_else(|| non_zero(app_ctx.and_then(|c| c.run_as_user)))
        .or_else(|| non_zero(pod_ctx.and_then(|c| c.run_as_user)))
        .unwrap_or(names::DEFAULT_UID);
    let gid = a
        .gid
        .or_else(|| non_zero(app_ctx.and_then(|c| c.run_as_group)))
        .or_else(|| non_zero(pod_ctx.and_then(|c| c.run_as_group)))
        .unwrap_or(uid);

    let config_toml = if a.files.is_empty() {
        None
    } else {
        Some(agent_toml(&a)?)
    };
    let resources = Resources {
        cpu_request: a
            .cpu_request
            .unwrap_or_else(|| settings.agent_cpu_request.clone()),
        cpu_limit: a
            .cpu_limit
            .unwrap_or_else(|| settings.agent_cpu_limit.clone()),
        memory_request: a
            .memory_request
            .unwrap_or_else(|| settings.agent_memory_request.clone()),
        memory_limit: a
            .memory_limit
            .unwrap_or_else(|| settings.agent_memory_limit.clone()),
    };
    request_within_limit("cpu", &resources.cpu_request, &resources.cpu_limit)?;
    request_within_limit("memory", &resources.memory_request, &resources.memory_limit)?;

    Ok(Plan {
        shape,
        image: a
            .agent_image
            .unwrap_or_else(|| settings.agent_image.clone()),
        hushd_addr: settings.hushd_addr.clone(),
        agent_port: settings.agent_port,
        role: a.role,
        auth_path: a.auth_path.unwrap_or_else(|| settings.auth_path.clone()),
        token_audience: a
            .token_audience
            .unwrap_or_else(|| settings.token_audience.clone()),
        dest,
        volume_size: a
            .volume_size
            .unwrap_or_else(|| settings.volume_size.clone()),
        targets,
        uid,
        gid,
        refresh_interval: a.refresh_interval,
        revoke_on_exit: a.revoke_on_exit,
        notify: a.notify,
        resources,
        ca_configmap: settings.hushd_ca_configmap.clone(),
        config_map: a.agent_config,
        config_toml,
    })
}

/// A request above its limit is refused here, naming the request, rather than by the API
/// server after the patch.
fn request_within_limit(what: &str, request: &str, limit: &str) -> Result<(), Denial> {
    let key = format!("agent-{what}-request");
    let r = syntax::quantity(request).map_err(|e| Denial::new(&key, e))?;
    let l = syntax::quantity(limit).map_err(|e| Denial::new(&format!("agent-{what}-limit"), e))?;
    if r > l {
        return Err(Denial::new(
            &key,
            format!(
                "{request} is more than the {what} limit {limit} (hush.dev/agent-{what}-limit, \
                 or the injector's default): a request must not exceed its limit"
            ),
        ));
    }
    Ok(())
}

/// The agent's config (`[secrets]` and `[[file]]`) made from the file annotations.
fn agent_toml(a: &Annotations) -> Result<String, Denial> {
    let mut raw = RawConfig::default();
    let mut secrets = BTreeMap::new();
    for (name, file) in &a.files {
        let mode = file.mode.clone().map(RawMode::Text);
        let entry = match &file.source {
            FileSource::Secret { key, path, field } => {
                secrets.insert(key.clone(), RawSecret::Path(path.clone()));
                RawFile {
                    name: name.clone(),
                    secret: Some(key.clone()),
                    format: Some(if field.is_some() { "raw" } else { "json" }.into()),
                    field: field.clone(),
                    mode,
                    ..RawFile::default()
                }
            }
            FileSource::Template(text) => RawFile {
                name: name.clone(),
                format: Some("template".into()),
                template: Some(text.clone()),
                mode,
                ..RawFile::default()
            },
        };
        raw.files.push(entry);
    }
    raw.secrets = secrets;
    toml::to_string(&raw).map_err(|e| {
        Denial::new(
            "agent-inject",
            format!("the agent's config could not be written as TOML: {e}"),
        )
    })
}

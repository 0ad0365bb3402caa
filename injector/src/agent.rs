//! The agent's containers: its arguments, environment, probes, resources and the locked-down
//! securityContext.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;
use crate::plan::Plan;
use crate::volumes;

/// Which of the agent's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `hush-agent` in initContainers with `restartPolicy: Always`.
    NativeSidecar,
    /// `hush-agent-init`, `--once`, a plain init container.
    Once,
    /// `hush-agent` in containers (`legacy-sidecar`), adopting the `--once` run's leases.
    ClassicSidecar,
}

/// The agent's arguments.
pub fn args(plan: &Plan, role: Role) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--addr".into(),
        plan.hushd_addr.clone(),
        "--auth".into(),
        "kubernetes".into(),
    ];
    if let Some(r) = &plan.role {
        args.extend(["--role".into(), r.clone()]);
    }
    args.extend([
        "--auth-mount".into(),
        plan.auth_path.clone(),
        "--jwt-file".into(),
        names::TOKEN_FILE.into(),
        "--dest".into(),
        plan.dest.clone(),
        "--metrics-listen".into(),
        format!("0.0.0.0:{}", plan.agent_port),
    ]);
    if plan.ca_configmap.is_some() {
        args.extend(["--ca-cert".into(), names::CA_FILE.into()]);
    }
    if plan.config_map.is_some() {
        args.extend(["--config".into(), names::CONFIG_FILE.into()]);
    }
    // A --once run hands its token's leases on (or, in a Job, leaves them to the app): it
    // never revokes, and has nothing to notify.
    if role != Role::Once {
        if plan.revoke_on_exit {
            args.push("--revoke-on-exit".into());
        }
        if let Some(n) = &plan.notify {
            args.extend([
                "--notify-signal".into(),
                n.signal.into(),
                "--notify-process".into(),
                n.process.clone(),
            ]);
        }
    }
    if let Some(d) = &plan.refresh_interval {
        args.extend(["--refresh-interval".into(), d.clone()]);
    }
    if role == Role::Once {
        args.push("--once".into());
    }
    args
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// `HUSH_AGENT_CONFIG` (when the annotations declare files), the downward API, JSON logs.
pub fn env(plan: &Plan) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if let Some(toml) = &plan.config_toml {
        env.push(value_env("HUSH_AGENT_CONFIG", toml));
    }
    env.extend([
        field_env("HUSH_POD_NAME", "metadata.name"),
        field_env("HUSH_POD_NAMESPACE", "metadata.namespace"),
        field_env("HUSH_POD_UID", "metadata.uid"),
        field_env("HUSH_NODE_NAME", "spec.nodeName"),
        value_env(hush_api::LOG_FORMAT_ENV, "json"),
    ]);
    env
}

fn probe(plan: &Plan, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(plan.agent_port.into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn resources(plan: &Plan) -> ResourceRequirements {
    let r = &plan.resources;
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(&r.cpu_request, &r.memory_request)),
        limits: Some(pair(&r.cpu_limit, &r.memory_limit)),
        ..ResourceRequirements::default()
    }
}

/// Non-root as the plan's uid/gid, read-only root, no privilege escalation, no capabilities,
/// seccomp RuntimeDefault.
pub fn security_context(plan: &Plan) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(plan.uid),
        run_as_group: Some(plan.gid),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// One of the agent's containers.
pub fn container(plan: &Plan, role: Role) -> Container {
    let serving = role != Role::Once;
    let mut c = Container {
        name: match role {
            Role::Once => names::INIT,
            Role::NativeSidecar | Role::ClassicSidecar => names::SIDECAR,
        }
        .into(),
        image: Some(plan.image.clone()),
        args: Some(args(plan, role)),
        env: Some(env(plan)),
        resources: Some(resources(plan)),
        security_context: Some(security_context(plan)),
        volume_mounts: Some(volumes::agent_mounts(plan)),
        ..Container::default()
    };
    if serving {
        c.ports = Some(vec![ContainerPort {
            name: Some(names::PORT_NAME.into()),
            container_port: plan.agent_port.into(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]);
        c.liveness_probe = Some(probe(plan, "/healthz"));
    }
    match role {
        Role::NativeSidecar => {
            c.restart_policy = Some("Always".into());
            // The kubelet starts the next init container (and the app) only once the first
            // render is done.
            c.startup_probe = Some(Probe {
                period_seconds: Some(1),
                failure_threshold: Some(300),
                ..probe(plan, "/readyz")
            });
        }
        Role::ClassicSidecar => c.readiness_probe = Some(probe(plan, "/readyz")),
        Role::Once => {}
    }
    c
}

//! The volumes the patch adds and their mounts: in the agent and in the chosen containers.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, KeyToPath, ProjectedVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::names;
use crate::plan::Plan;

/// `hush-secrets`, `hush-token`, and `hush-ca` / `hush-config` when used.
pub fn volumes(plan: &Plan) -> Vec<Volume> {
    let mut out = vec![
        Volume {
            name: names::SECRETS_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity(plan.volume_size.clone())),
            }),
            ..Volume::default()
        },
        Volume {
            name: names::TOKEN_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(plan.token_audience.clone()),
                        expiration_seconds: Some(names::TOKEN_SECONDS),
                        path: "token".into(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let config_map = |volume: &str, name: &str, key: &str| Volume {
        name: volume.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.into(),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: key.into(),
                mode: None,
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    if let Some(ca) = &plan.ca_configmap {
        out.push(config_map(names::CA_VOLUME, ca, "ca.crt"));
    }
    if let Some(cm) = &plan.config_map {
        out.push(config_map(names::CONFIG_VOLUME, cm, names::CONFIG_KEY));
    }
    out
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The agent's mounts: the destination read-write, the rest read-only.
pub fn agent_mounts(plan: &Plan) -> Vec<VolumeMount> {
    let mut out = vec![
        mount(names::SECRETS_VOLUME, &plan.dest, false),
        mount(names::TOKEN_VOLUME, names::TOKEN_DIR, true),
    ];
    if plan.ca_configmap.is_some() {
        out.push(mount(names::CA_VOLUME, names::CA_DIR, true));
    }
    if plan.config_map.is_some() {
        out.push(mount(names::CONFIG_VOLUME, names::CONFIG_DIR, true));
    }
    out
}

/// The mount a chosen container gets: the destination, read-only.
pub fn app_mount(plan: &Plan) -> VolumeMount {
    mount(names::SECRETS_VOLUME, &plan.dest, true)
}

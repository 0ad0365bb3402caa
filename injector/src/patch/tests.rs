//! Pod shapes: each patch is applied to the pod's JSON with `json_patch::patch`, the result
//! read back into k8s-openapi's `Pod`, and the typed result checked; injecting the patched
//! pod again changes nothing.

use k8s_openapi::api::core::v1::{Container, Pod, ServiceAccountTokenProjection};
use serde_json::{json, Value};

use super::*;
use hush_api::agent_config::RawConfig;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A pod's JSON with `annotations` and `spec`.
fn pod_json(annotations: &[(&str, &str)], spec: Value) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "annotations": annotations},
        "spec": spec,
    })
}

const BASE: &[(&str, &str)] = &[
    ("hush.dev/agent-inject", "true"),
    ("hush.dev/role", "web"),
    ("hush.dev/secret-db.pw", "secret/data/app/db#password"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all = BASE.to_vec();
    all.extend_from_slice(extra);
    all
}

fn one_app() -> Value {
    json!({"containers": [{"name": "app", "image": "app:1"}]})
}

fn outcome(pod: &Value, settings: &Settings) -> Result<Outcome, Denial> {
    let typed: Pod = serde_json::from_value(pod.clone()).unwrap();
    inject(&typed, settings)
}

/// Inject, apply the patch, read the result as a Pod; inject again: Unchanged.
fn patched_with(pod: Value, settings: &Settings) -> Pod {
    let Outcome::Patch(patch) = outcome(&pod, settings).unwrap() else {
        panic!("no patch")
    };
    let mut doc = pod;
    json_patch::patch(&mut doc, &patch).unwrap();
    let result: Pod = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(
        outcome(&doc, settings).unwrap(),
        Outcome::Unchanged("already injected (hush.dev/agent-inject-status)")
    );
    result
}

fn patched(pod: Value) -> Pod {
    patched_with(pod, &Settings::default())
}

fn inits(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_deref()
        .unwrap()
}

fn apps(pod: &Pod) -> &[Container] {
    &pod.spec.as_ref().unwrap().containers
}

fn mount_of<'a>(
    c: &'a Container,
    volume: &str,
) -> Option<&'a k8s_openapi::api::core::v1::VolumeMount> {
    c.volume_mounts.iter().flatten().find(|m| m.name == volume)
}

fn token_projection(v: &k8s_openapi::api::core::v1::Volume) -> &ServiceAccountTokenProjection {
    let sources = v.projected.as_ref().unwrap().sources.as_ref().unwrap();
    sources[0].service_account_token.as_ref().unwrap()
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

fn args(c: &Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

#[test]
fn a_plain_pod_gets_the_native_sidecar() {
    let pod = patched(pod_json(BASE, one_app()));
    let annotations = pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["hush.dev/agent-inject-status"], "injected");

    let agent = &inits(&pod)[0];
    assert_eq!(inits(&pod).len(), 1);
    assert_eq!(agent.name, "hush-agent");
    assert_eq!(agent.restart_policy.as_deref(), Some("Always"));
    assert_eq!(agent.image.as_deref(), Some("hush-agent:latest"));
    assert_eq!(
        args(agent),
        [
            "--addr",
            "https://hushd.hush.svc:8200",
            "--auth",
            "kubernetes",
            "--role",
            "web",
            "--auth-mount",
            "kubernetes",
            "--jwt-file",
            "/var/run/secrets/hush.dev/serviceaccount/token",
            "--dest",
            "/secrets",
            "--metrics-listen",
            "0.0.0.0:8299",
        ]
    );
    let startup = agent.startup_probe.as_ref().unwrap();
    let get = startup.http_get.as_ref().unwrap();
    assert_eq!(get.path.as_deref(), Some("/readyz"));
    assert_eq!(get.port, IntOrString::Int(8299));
    assert_eq!(
        (startup.period_seconds, startup.failure_threshold),
        (Some(1), Some(300))
    );
    let live = agent
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    let port = &agent.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("hush-metrics"), 8299)
    );

    let sc = agent.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        (sc.run_as_user, sc.run_as_group),
        (Some(65532), Some(65532))
    );
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");

    let res = agent.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "25m");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "128Mi");

    assert_eq!(env_value(agent, "HUSH_LOG_FORMAT"), Some("json"));
    let field = |name: &str| {
        agent
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap()
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path
            .clone()
    };
    assert_eq!(field("HUSH_POD_NAME"), "metadata.name");
    assert_eq!(field("HUSH_POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("HUSH_POD_UID"), "metadata.uid");
    assert_eq!(field("HUSH_NODE_NAME"), "spec.nodeName");
    let config: RawConfig = toml::from_str(env_value(agent, "HUSH_AGENT_CONFIG").unwrap()).unwrap();
    assert_eq!(config.secrets["db_pw"].path(), "secret/data/app/db");
    assert_eq!(config.files.len(), 1);
    assert_eq!(config.files[0].name, "db.pw");
    assert_eq!(config.files[0].secret.as_deref(), Some("db_pw"));
    assert_eq!(config.files[0].field.as_deref(), Some("password"));
    assert_eq!(config.files[0].format.as_deref(), Some("raw"));

    let rw = mount_of(agent, "hush-secrets").unwrap();
    assert_eq!(
        (rw.mount_path.as_str(), rw.read_only),
        ("/secrets", Some(false))
    );
    let token = mount_of(agent, "hush-token").unwrap();
    assert_eq!(token.mount_path, "/var/run/secrets/hush.dev/serviceaccount");
    assert_eq!(token.read_only, Some(true));
    assert!(mount_of(agent, "hush-ca").is_none());

    let app = &apps(&pod)[0];
    let ro = mount_of(app, "hush-secrets").unwrap();
    assert_eq!(
        (ro.mount_path.as_str(), ro.read_only),
        ("/secrets", Some(true))
    );

    let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["hush-secrets", "hush-token"]);
    let empty = volumes[0].empty_dir.as_ref().unwrap();
    assert_eq!(empty.medium.as_deref(), Some("Memory"));
    assert_eq!(empty.size_limit.as_ref().unwrap().0, "16Mi");
    let sa = token_projection(&volumes[1]);
    assert_eq!(sa.audience.as_deref(), Some("hush"));
    assert_eq!(sa.expiration_seconds, Some(3600));
    assert_eq!(sa.path, "token");
    assert_eq!(pod.spec.as_ref().unwrap().share_process_namespace, None);
}

#[test]
fn the_marker_pointer_is_escaped_and_whole_arrays_are_added_when_absent() {
    let Outcome::Patch(patch) = outcome(&pod_json(BASE, one_app()), &Settings::default()).unwrap()
    else {
        panic!()
    };
    let paths: Vec<String> = patch
        .0
        .iter()
        .map(|op| match op {
            PatchOperation::Add(a) => a.path.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/hush.dev~1agent-inject-status",
            "/spec/volumes",
            "/spec/containers/0/volumeMounts",
            "/spec/initContainers",
        ]
    );
}

#[test]
fn existing_init_containers_volumes_and_mounts_are_kept_and_the_agent_goes_first() {
    let pod = patched(pod_json(
        BASE,
        json!({
            "initContainers": [
                {"name": "migrate", "image": "migrate:1"},
                {"name": "warm", "image": "warm:1", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}
            ],
            "containers": [{"name": "app", "image": "app:1",
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
            "volumes": [{"name": "cache", "emptyDir": {}}]
        }),
    ));
    let names: Vec<&str> = inits(&pod).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["hush-agent", "migrate", "warm"]);
    // By default every app and init container gets the read-only mount.
    for c in inits(&pod)[1..].iter().chain(apps(&pod)) {
        let m = mount_of(c, "hush-secrets").unwrap_or_else(|| panic!("{}", c.name));
        assert_eq!(m.read_only, Some(true));
    }
    assert_eq!(
        mount_of(&inits(&pod)[2], "cache").unwrap().mount_path,
        "/cache"
    );
    assert_eq!(
        mount_of(&apps(&pod)[0], "cache").unwrap().mount_path,
        "/cache"
    );
    let volumes: Vec<&str> = pod
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["cache", "hush-secrets", "hush-token"]);
}

#[test]
fn a_containers_subset_mounts_only_there_including_an_init_container() {
    let pod = patched(pod_json(
        &with(&[("hush.dev/containers", "worker,migrate")]),
        json!({
            "initContainers": [{"name": "migrate", "image": "m:1"}, {"name": "other", "image": "o:1"}],
            "containers": [
                {"name": "app", "image": "app:1"},
                {"name": "worker", "image": "w:1", "volumeMounts": [{"name": "x", "mountPath": "/x"}]},
                {"name": "proxy", "image": "p:1"}
            ],
            "volumes": [{"name": "x", "emptyDir": {}}]
        }),
    ));
    let mounted = |c: &Container| mount_of(c, "hush-secrets").is_some();
    let by_name = |name: &str| {
        inits(&pod)
            .iter()
            .chain(apps(&pod))
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    assert!(mounted(&by_name("worker")) && mounted(&by_name("migrate")));
    assert!(
        !mounted(&by_name("app")) && !mounted(&by_name("proxy")) && !mounted(&by_name("other"))
    );
    assert_eq!(by_name("worker").volume_mounts.as_ref().unwrap().len(), 2);
    assert_eq!(inits(&pod)[0].name, "hush-agent");
}

#[test]
fn a_job_with_pre_populate_only_gets_one_once_init_container() {
    let pod = patched(pod_json(
        &with(&[("hush.dev/agent-pre-populate-only", "true")]),
        json!({"restartPolicy": "Never", "containers": [{"name": "job", "image": "job:1"}]}),
    ));
    assert_eq!(inits(&pod).len(), 1);
    let init = &inits(&pod)[0];
    assert_eq!(init.name, "hush-agent-init");
    assert_eq!(init.restart_policy, None);
    assert_eq!(args(init).last(), Some(&"--once"));
    assert!(init.startup_probe.is_none() && init.liveness_probe.is_none() && init.ports.is_none());
    assert_eq!(apps(&pod).len(), 1);
    assert!(mount_of(&apps(&pod)[0], "hush-secrets").unwrap().read_only == Some(true));
}

fn check_legacy(pod: &Pod) {
    let init = &inits(pod)[0];
    assert_eq!(init.name, "hush-agent-init");
    assert_eq!(init.restart_policy, None);
    assert_eq!(args(init).last(), Some(&"--once"));
    assert!(!args(init).contains(&"--revoke-on-exit"));
    let sidecar = apps(pod).last().unwrap();
    assert_eq!(sidecar.name, "hush-agent");
    assert!(!args(sidecar).contains(&"--once"));
    assert!(args(sidecar).contains(&"--revoke-on-exit"));
    assert_eq!(
        sidecar
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        mount_of(sidecar, "hush-secrets").unwrap().read_only,
        Some(false)
    );
    assert_eq!(
        mount_of(&apps(pod)[0], "hush-secrets").unwrap().read_only,
        Some(true)
    );
    // Both agents are the same uid and config: the sidecar adopts the init's leases.
    assert_eq!(init.env, sidecar.env);
    assert_eq!(init.security_context, sidecar.security_context);
}

#[test]
fn legacy_sidecar_by_annotation() {
    let pod = patched(pod_json(
        &with(&[
            ("hush.dev/legacy-sidecar", "true"),
            ("hush.dev/revoke-on-exit", "true"),
        ]),
        one_app(),
    ));
    check_legacy(&pod);
}

#[test]
fn legacy_sidecar_by_settings_and_an_annotation_can_turn_it_off() {
    let settings = Settings {
        legacy_sidecar: true,
        ..Settings::default()
    };
    let pod = patched_with(
        pod_json(&with(&[("hush.dev/revoke-on-exit", "true")]), one_app()),
        &settings,
    );
    check_legacy(&pod);
    let pod = patched_with(
        pod_json(&with(&[("hush.dev/legacy-sidecar", "false")]), one_app()),
        &settings,
    );
    assert_eq!(inits(&pod)[0].restart_policy.as_deref(), Some("Always"));
    assert_eq!(apps(&pod).len(), 1);
}

#[test]
fn agent_config_mounts_the_configmap_and_sets_no_config_env() {
    let pod = patched(pod_json(
        &[
            ("hush.dev/agent-inject", "true"),
            ("hush.dev/agent-config", "web-agent"),
        ],
        one_app(),
    ));
    let agent = &inits(&pod)[0];
    let a = args(agent);
    assert!(!a.contains(&"--role"), "{a:?}");
    let i = a.iter().position(|x| *x == "--config").unwrap();
    assert_eq!(a[i + 1], "/etc/hush/config/agent.toml");
    assert_eq!(env_value(agent, "HUSH_AGENT_CONFIG"), None);
    assert_eq!(
        mount_of(agent, "hush-config").unwrap().mount_path,
        "/etc/hush/config"
    );
    let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let cm = volumes
        .iter()
        .find(|v| v.name == "hush-config")
        .unwrap()
        .config_map
        .as_ref()
        .unwrap();
    assert_eq!(cm.name, "web-agent");
    assert_eq!(cm.items.as_ref().unwrap()[0].key, "agent.toml");
}

#[test]
fn notify_shares_the_process_namespace_and_options_become_arguments() {
    let settings = Settings {
        hushd_ca_configmap: Some("hush-ca".into()),
        ..Settings::default()
    };
    let pod = patched_with(
        pod_json(
            &with(&[
                ("hush.dev/notify-signal", "usr1"),
                ("hush.dev/notify-process", "nginx"),
                ("hush.dev/refresh-interval", "30s"),
                ("hush.dev/auth-path", "k8s/prod"),
                ("hush.dev/token-audience", "hushd-prod"),
                ("hush.dev/dest", "/run/secrets/app"),
                ("hush.dev/volume-size", "4Mi"),
                ("hush.dev/agent-image", "reg.example.com/hush-agent:1"),
                ("hush.dev/agent-cpu-request", "50m"),
                ("hush.dev/agent-memory-limit", "64Mi"),
            ]),
            json!({"shareProcessNamespace": false, "containers": [{"name": "app", "image": "app:1"}]}),
        ),
        &settings,
    );
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.share_process_namespace, Some(true));
    let agent = &inits(&pod)[0];
    assert_eq!(agent.image.as_deref(), Some("reg.example.com/hush-agent:1"));
    let a = args(agent).join(" ");
    for part in [
        "--auth-mount k8s/prod",
        "--dest /run/secrets/app",
        "--ca-cert /etc/hush/ca/ca.crt",
        "--notify-signal SIGUSR1 --notify-process nginx",
        "--refresh-interval 30s",
    ] {
        assert!(a.contains(part), "{part}: {a}");
    }
    assert_eq!(
        mount_of(agent, "hush-ca").unwrap().mount_path,
        "/etc/hush/ca"
    );
    assert_eq!(
        mount_of(&apps(&pod)[0], "hush-secrets").unwrap().mount_path,
        "/run/secrets/app"
    );
    let volumes = spec.volumes.as_ref().unwrap();
    let ca = volumes.iter().find(|v| v.name == "hush-ca").unwrap();
    assert_eq!(ca.config_map.as_ref().unwrap().name, "hush-ca");
    assert_eq!(
        volumes[0]
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "4Mi"
    );
    let sa = token_projection(&volumes[1]);
    assert_eq!(sa.audience.as_deref(), Some("hushd-prod"));
    let res = agent.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "50m");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "64Mi");
    assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "250m");
}

#[test]
fn templates_and_file_modes_reach_the_agent_config() {
    let pod = patched(pod_json(
        &with(&[
            (
                "hush.dev/template-app.conf",
                "password={{ secrets.db_pw.password }}\n",
            ),
            ("hush.dev/file-mode-app.conf", "0440"),
            ("hush.dev/secret-api.json", "secret/data/app/api"),
        ]),
        one_app(),
    ));
    let text = env_value(&inits(&pod)[0], "HUSH_AGENT_CONFIG").unwrap();
    let config: RawConfig = toml::from_str(text).unwrap();
    let file = |name: &str| config.files.iter().find(|f| f.name == name).unwrap();
    assert_eq!(file("app.conf").format.as_deref(), Some("template"));
    assert_eq!(
        file("app.conf").template.as_deref(),
        Some("password={{ secrets.db_pw.password }}\n")
    );
    assert!(
        matches!(&file("app.conf").mode, Some(hush_api::agent_config::RawMode::Text(m)) if m == "0440")
    );
    assert_eq!(file("api.json").format.as_deref(), Some("json"));
    assert!(file("db.pw").mode.is_none());
    assert_eq!(config.secrets.len(), 2);
}

fn agent_ids(spec: Value, extra: &[(&'static str, &'static str)]) -> (Option<i64>, Option<i64>) {
    let pod = patched(pod_json(&with(extra), spec));
    let sc = inits(&pod)[0].security_context.clone().unwrap();
    (sc.run_as_user, sc.run_as_group)
}

#[test]
fn uid_and_gid_default_from_the_security_contexts() {
    // The first chosen app container's.
    let spec = json!({
        "securityContext": {"runAsUser": 2000, "runAsGroup": 2001},
        "containers": [
            {"name": "app", "image": "a", "securityContext": {"runAsUser": 1000, "runAsGroup": 1001}},
            {"name": "other", "image": "o", "securityContext": {"runAsUser": 3000}}
        ]
    });
    assert_eq!(agent_ids(spec.clone(), &[]), (Some(1000), Some(1001)));
    assert_eq!(
        agent_ids(spec.clone(), &[("hush.dev/containers", "other")]),
        (Some(3000), Some(2001))
    );
    // The annotations win; gid follows uid only when nothing else says.
    assert_eq!(
        agent_ids(spec, &[("hush.dev/uid", "42"), ("hush.dev/gid", "43")]),
        (Some(42), Some(43))
    );
    // A container running as 0 gives way to the pod's.
    let spec = json!({
        "securityContext": {"runAsUser": 2000},
        "containers": [{"name": "app", "image": "a", "securityContext": {"runAsUser": 0}}]
    });
    assert_eq!(agent_ids(spec, &[]), (Some(2000), Some(2000)));
    // Nothing said: 65532.
    assert_eq!(agent_ids(one_app(), &[]), (Some(65532), Some(65532)));
    assert_eq!(
        agent_ids(one_app(), &[("hush.dev/uid", "7")]),
        (Some(7), Some(7))
    );
}

#[test]
fn pods_without_the_annotation_or_with_false_are_unchanged() {
    let none = pod_json(&[("other.example/x", "y")], one_app());
    assert_eq!(
        outcome(&none, &Settings::default()).unwrap(),
        Outcome::Unchanged("no hush.dev/agent-inject annotation")
    );
    let off = pod_json(&[("hush.dev/agent-inject", "false")], one_app());
    assert_eq!(
        outcome(&off, &Settings::default()).unwrap(),
        Outcome::Unchanged("hush.dev/agent-inject is \"false\"")
    );
    let mut bare = one_app();
    bare["containers"][0]["name"] = "x".into();
    let no_metadata = json!({"spec": bare});
    assert!(matches!(
        outcome(&no_metadata, &Settings::default()).unwrap(),
        Outcome::Unchanged(_)
    ));
}

#[test]
fn a_pod_holding_the_agent_already_is_unchanged() {
    let pod = pod_json(
        BASE,
        json!({"containers": [{"name": "app", "image": "a"}, {"name": "hush-agent", "image": "h"}]}),
    );
    assert_eq!(
        outcome(&pod, &Settings::default()).unwrap(),
        Outcome::Unchanged("already injected (a container named hush-agent or hush-agent-init)")
    );
}

fn denial(extra: &[(&'static str, &'static str)], spec: Value) -> Denial {
    outcome(&pod_json(&with(extra), spec), &Settings::default()).unwrap_err()
}

#[test]
fn a_destination_a_chosen_container_mounts_is_denied() {
    let spec = json!({"containers": [{"name": "app", "image": "a",
        "volumeMounts": [{"name": "creds", "mountPath": "/secrets/"}]}],
        "volumes": [{"name": "creds", "emptyDir": {}}]});
    assert_eq!(
        denial(&[], spec.clone()).to_string(),
        "hush.dev/dest: container \"app\" already mounts volume \"creds\" at /secrets: choose \
         another directory with hush.dev/dest (or leave the container out with \
         hush.dev/containers)"
    );
    // Elsewhere it is fine.
    patched(pod_json(&with(&[("hush.dev/dest", "/hush")]), spec));
}

#[test]
fn a_destination_over_the_agents_own_mounts_is_denied() {
    assert_eq!(
        denial(&[("hush.dev/dest", "/etc/hush")], one_app()).to_string(),
        "hush.dev/dest: /etc/hush overlaps /etc/hush/ca, where the agent mounts hushd's CA: \
         choose a directory like /secrets"
    );
}

#[test]
fn a_request_above_its_limit_is_denied() {
    assert_eq!(
        denial(&[("hush.dev/agent-cpu-request", "500m")], one_app()).to_string(),
        "hush.dev/agent-cpu-request: 500m is more than the cpu limit 250m \
         (hush.dev/agent-cpu-limit, or the injector's default): a request must not exceed its \
         limit"
    );
    assert_eq!(
        denial(&[("hush.dev/agent-memory-request", "1Gi")], one_app()).annotation,
        "hush.dev/agent-memory-request"
    );
}

#[test]
fn a_volume_with_one_of_our_names_is_denied() {
    let spec = json!({"containers": [{"name": "app", "image": "a"}],
        "volumes": [{"name": "hush-token", "emptyDir": {}}]});
    assert_eq!(
        denial(&[], spec).to_string(),
        "hush.dev/agent-inject: the pod already has a volume named \"hush-token\", a name the \
         injector gives its own volumes (hush-secrets, hush-token, hush-ca, hush-config): \
         rename it"
    );
}

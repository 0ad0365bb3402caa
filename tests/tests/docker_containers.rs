//! Real containers: the three images built from `docker/` (on a base made from this host's
//! files: nothing can be pulled here), then a pod as the injector would make it, played by Docker.
//!
//! A hushd container (real TLS, a CA made in the test; Kubernetes auth in local mode with
//! `pem_keys`), an agent container started with exactly the image, arguments, environment, user
//! and security settings the injector's patch gives the `hush-agent` sidecar of an annotated pod
//! (downward-API values filled in; the pod's volumes given as Docker mounts: the in-memory
//! volume as a tmpfs Docker volume, the projected token and the CA as read-only binds), and the
//! app container of the patched pod, started once the agent's startup probe answers as the
//! kubelet would. The app reads its secret under /secrets, sees a rotation, and cannot write.
//!
//! Every container runs on the host network (hushd and the agent on loopback ports) or none
//! (the app), so no traffic leaves loopback. Containers and volumes are removed at the end; the
//! images stay under a fixed tag and are rebuilt every run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_tests::docker::{self, poll, unique_name, Container, Volume};
use hush_tests::{free_port, tls_client, write_ca_signed_cert, Hushd};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

const NAMESPACE: &str = "prod";
const SERVICE_ACCOUNT: &str = "web";

/// The annotated pod, as `kubectl apply` would send it to the webhook.
fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f",
            "namespace": NAMESPACE,
            "uid": "9a2b-pod-uid",
            "annotations": {
                "hush.dev/agent-inject": "true",
                "hush.dev/role": "web",
                "hush.dev/secret-password": "secret/data/app/db#password",
                "hush.dev/refresh-interval": "1s",
            },
        },
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "nodeName": "node-1",
            "containers": [{
                "name": "app",
                "image": docker::APP_IMAGE,
                "command": ["sleep", "600"],
                "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
            }],
        },
    })
}

/// The pod after the webhook: [`pod`] with the patch of `hush_injector::inject()` applied
/// (hushd at `hushd_addr`, its CA in ConfigMap `hush-ca`, the agent's probes on `agent_port`).
fn patched_pod(pod: &Value, hushd_addr: &str, agent_port: u16) -> Value {
    let settings = hush_injector::Settings {
        agent_image: format!("hush-agent:{}", docker::TAG),
        hushd_addr: hushd_addr.to_string(),
        hushd_ca_configmap: Some("hush-ca".into()),
        agent_port,
        ..Default::default()
    };
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
    let patch = match hush_injector::inject(&typed, &settings) {
        Ok(hush_injector::Outcome::Patch(patch)) => patch,
        other => panic!("the injector did not patch the pod: {other:?}"),
    };
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("applying {patch:?}: {e}"));
    patched
}

/// The ES256 key the "cluster" signs service-account tokens with.
struct ClusterKey {
    private_pem: String,
    public_pem: String,
}

impl ClusterKey {
    fn new() -> ClusterKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        ClusterKey {
            private_pem: kp.serialize_pem(),
            public_pem: kp.public_key_pem(),
        }
    }

    /// The projected token the kubelet would write for `pod`, for `audience`.
    fn projected_token(&self, pod: &Value, audience: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "aud": [audience],
            "sub": format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
            "exp": now + 3600, "iat": now - 5, "nbf": now - 5,
            "kubernetes.io": {
                "namespace": NAMESPACE,
                "serviceaccount": {"name": SERVICE_ACCOUNT, "uid": "3f1c-sa-uid"},
                "pod": {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
            },
        });
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key).unwrap()
    }
}

/// hushd as a cluster would have it: kv v2 at secret/, Kubernetes auth trusting `key`, role
/// `web` (service account prod/web, audience hush) reading secret/data/app/*.
async fn configure(h: &Hushd, key: &ClusterKey) {
    let calls = [
        ("sys/mounts/secret", json!({"type": "kv-v2"})),
        ("sys/auth/kubernetes", json!({"type": "kubernetes"})),
        (
            "auth/kubernetes/config",
            json!({"pem_keys": [key.public_pem]}),
        ),
        (
            "sys/policies/acl/app",
            json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
        ),
        (
            "auth/kubernetes/role/web",
            json!({
                "bound_service_account_names": [SERVICE_ACCOUNT],
                "bound_service_account_namespaces": [NAMESPACE],
                "audience": "hush",
                "token_policies": ["app"],
                "token_ttl": "15m",
            }),
        ),
    ];
    for (path, body) in calls {
        let (s, b) = h.call("POST", path, Some(body)).await;
        assert!(s == 200 || s == 204, "POST {path}: {s} {b}");
    }
}

/// What the pod's volumes are in Docker.
enum Source {
    /// A named volume (the in-memory `emptyDir`).
    Volume(String),
    /// A host directory (a projected token, a ConfigMap), bound read-only.
    Dir(PathBuf),
}

/// `docker run` options for `container` of `pod`: user, security settings, resources, the
/// environment (downward-API values read from the pod) and its volume mounts (each pod volume
/// by name from `sources`).
fn run_options(pod: &Value, container: &Value, sources: &HashMap<&str, Source>) -> Vec<String> {
    let mut opts: Vec<String> = Vec::new();
    let sc = &container["securityContext"];
    if let Some(uid) = sc["runAsUser"].as_u64() {
        let gid = sc["runAsGroup"].as_u64().unwrap_or(uid);
        if sc["runAsNonRoot"] == true {
            assert_ne!(uid, 0, "runAsNonRoot with runAsUser 0");
        }
        opts.extend(["--user".into(), format!("{uid}:{gid}")]);
    }
    if sc["readOnlyRootFilesystem"] == true {
        opts.push("--read-only".into());
    }
    if sc["allowPrivilegeEscalation"] == false {
        opts.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
        opts.extend(["--cap-drop".into(), cap.as_str().unwrap().into()]);
    }
    // seccompProfile RuntimeDefault: Docker's default profile applies unless told otherwise.
    if let Some(memory) = container["resources"]["limits"]["memory"].as_str() {
        opts.extend(["--memory".into(), docker_size(memory)]);
    }
    if let Some(cpu) = container["resources"]["limits"]["cpu"].as_str() {
        opts.extend(["--cpus".into(), docker_cpus(cpu)]);
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap();
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(field)) => {
                let pointer = format!("/{}", field.replace('.', "/"));
                pod.pointer(&pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("env {name}: the pod has no {field}"))
                    .to_string()
            }
            _ => panic!("env {name}: neither a value nor a fieldRef: {var}"),
        };
        opts.extend(["--env".into(), format!("{name}={value}")]);
    }
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap();
        let path = mount["mountPath"].as_str().unwrap();
        let read_only = mount["readOnly"] == true;
        let spec = match sources.get(name) {
            Some(Source::Volume(volume)) => format!("type=volume,src={volume},dst={path}"),
            Some(Source::Dir(dir)) => {
                assert!(read_only, "volume {name} is mounted writable");
                format!("type=bind,src={},dst={path}", dir.display())
            }
            None => panic!("the test has no Docker source for pod volume {name}"),
        };
        opts.extend([
            "--mount".into(),
            if read_only {
                format!("{spec},readonly")
            } else {
                spec
            },
        ]);
    }
    opts
}

/// A Kubernetes memory quantity (`128Mi`) as Docker writes it (`128m`).
fn docker_size(quantity: &str) -> String {
    for (suffix, unit) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g")] {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return format!("{n}{unit}");
        }
    }
    panic!("memory quantity {quantity:?}: the test knows Ki, Mi and Gi")
}

/// A Kubernetes CPU quantity (`250m`, `1`) as Docker's `--cpus` (`0.25`, `1`).
fn docker_cpus(quantity: &str) -> String {
    match quantity.strip_suffix('m') {
        Some(milli) => format!("{}", milli.parse::<f64>().unwrap() / 1000.0),
        None => quantity.to_string(),
    }
}

/// The Docker sources of the patched pod's volumes: the in-memory one as `volume`, the
/// projected token as `token_dir`, the CA ConfigMap as `ca_dir`; anything else fails.
fn sources<'a>(
    pod: &'a Value,
    volume: &Volume,
    token_dir: &Path,
    ca_dir: &Path,
) -> HashMap<&'a str, Source> {
    let mut out = HashMap::new();
    for v in pod["spec"]["volumes"]
        .as_array()
        .expect("the patch adds volumes")
    {
        let name = v["name"].as_str().unwrap();
        let source = if v["emptyDir"]["medium"] == "Memory" {
            Source::Volume(volume.name.clone())
        } else if let Some(projected) = v["projected"]["sources"].as_array() {
            let sat = &projected[0]["serviceAccountToken"];
            assert_eq!(sat["audience"], "hush", "{v}");
            assert_eq!(sat["path"], "token", "{v}");
            Source::Dir(token_dir.to_path_buf())
        } else if v["configMap"]["name"] == "hush-ca" {
            Source::Dir(ca_dir.to_path_buf())
        } else {
            panic!("unexpected volume in the patched pod: {v}");
        };
        out.insert(name, source);
    }
    out
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// `cat /secrets/password` in the app container.
fn app_reads(app: &Container) -> Result<String, String> {
    let out = app
        .exec(&["cat", "/secrets/password"])
        .map_err(|e| format!("{e:#}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Each image runs its binary (`--help`) as 65532 with nothing but its base; the agent's
/// fusermount3 too.
fn images_run_as_nonroot() {
    for image in ["hushd", "hush-agent", "hush-injector"] {
        let image = format!("{image}:{}", docker::TAG);
        let user = docker::docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
        assert_eq!(user.unwrap(), "65532:65532", "{image}");
        docker::docker(&["run", "--rm", "--network", "none", &image, "--help"])
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    let image = format!("hush-agent:{}", docker::TAG);
    let version = docker::docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "fusermount3",
        &image,
        "-V",
    ])
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(version.contains("fusermount3 version"), "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_container_with_the_injected_settings_feeds_a_read_only_app_container() {
    docker::require_engine().unwrap_or_else(|e| panic!("{e:#}"));
    let bin_dir = hush_tests::bin("hushd").parent().unwrap().to_path_buf();
    docker::build_images(&bin_dir).unwrap_or_else(|e| panic!("building the images: {e:#}"));
    images_run_as_nonroot();

    // hushd: real TLS (a CA made here), SQLite in the image's /var/lib/hush, as uid 65532.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_ca_signed_cert(dir.path(), "hushd");
    let hushd_name = unique_name("hushd");
    let hushd_guard = Container::named(hushd_name.clone());
    let hushd_args = [
        "run".to_string(),
        "--rm".into(),
        "--name".into(),
        hushd_name.clone(),
        "--network".into(),
        "host".into(),
        "--mount".into(),
        format!(
            "type=bind,src={},dst=/etc/hush/tls/tls.crt,readonly",
            cert.display()
        ),
        "--mount".into(),
        format!(
            "type=bind,src={},dst=/etc/hush/tls/tls.key,readonly",
            key.display()
        ),
        format!("hushd:{}", docker::TAG),
        "--storage".into(),
        "sqlite:///var/lib/hush/hush.db".into(),
        "--tls-cert".into(),
        "/etc/hush/tls/tls.crt".into(),
        "--tls-key".into(),
        "/etc/hush/tls/tls.key".into(),
    ];
    let hushd_args: Vec<&str> = hushd_args.iter().map(String::as_str).collect();
    let mut h = Hushd::start_bin(Path::new("docker"), &hushd_args, "https", tls_client(&ca)).await;
    h.init_unseal().await;
    let cluster = ClusterKey::new();
    configure(&h, &cluster).await;
    h.kv_put("app/db", json!({"password": "first-3f9a"})).await;

    // The pod, through the injector.
    let pod = pod();
    let agent_port = free_port();
    let patched = patched_pod(&pod, &h.addr, agent_port);
    let agent_spec = named(&patched["spec"]["initContainers"], "hush-agent");
    assert_eq!(
        agent_spec["restartPolicy"], "Always",
        "a native sidecar: {agent_spec}"
    );
    let app_spec = named(&patched["spec"]["containers"], "app");

    // What the kubelet would provide: the projected token, the CA ConfigMap, the memory volume.
    let token_dir = dir.path().join("token");
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir_all(&token_dir).unwrap();
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(
        token_dir.join("token"),
        cluster.projected_token(&patched, "hush"),
    )
    .unwrap();
    std::fs::copy(&ca, ca_dir.join("ca.crt")).unwrap();
    let size = named(&patched["spec"]["volumes"], "hush-secrets")["emptyDir"]["sizeLimit"]
        .as_str()
        .map(docker_size)
        .unwrap_or_else(|| "16m".into());
    let (uid, gid) = (
        agent_spec["securityContext"]["runAsUser"].as_u64().unwrap() as u32,
        agent_spec["securityContext"]["runAsGroup"]
            .as_u64()
            .unwrap() as u32,
    );
    let volume = Volume::tmpfs(unique_name("secrets"), &size, uid, gid).unwrap();
    let sources = sources(&patched, &volume, &token_dir, &ca_dir);

    // The agent: exactly the patch's image, args, env and security settings.
    let mut run: Vec<String> = vec!["--network".into(), "host".into()];
    run.extend(run_options(&patched, agent_spec, &sources));
    run.push(agent_spec["image"].as_str().unwrap().into());
    run.extend(
        agent_spec["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let agent_run = format!("docker run {}", run.join(" "));
    let agent = Container::run(unique_name("agent"), &run)
        .unwrap_or_else(|e| panic!("starting the agent ({agent_run}): {e:#}"));
    let logs = |what: &str| -> String {
        format!(
            "{what}\nthe agent: {agent_run}\n{}\n--- hushd (last 30 lines) ---\n{}",
            agent.logs_tail(40),
            h.stderr()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    };

    // The kubelet's startup probe: the app starts only once the agent is ready.
    let probe = &agent_spec["startupProbe"]["httpGet"];
    let port = match &probe["port"] {
        Value::String(name) => named(&agent_spec["ports"], name)["containerPort"].clone(),
        number => number.clone(),
    };
    let url = format!("http://127.0.0.1:{port}{}", probe["path"].as_str().unwrap());
    let client = hush_tests::http_client();
    let (agent_ref, client, url) = (&agent, &client, &url);
    let ready = poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "the agent's startup probe",
        move || async move {
            let agent = agent_ref;
            if !agent.running() {
                return Ok(false);
            }
            match client.get(url.as_str()).send().await {
                Ok(r) if r.status().is_success() => Ok(true),
                Ok(r) => Err(format!("{url}: {}", r.status())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        },
    )
    .await;
    match ready {
        Ok(true) => {}
        Ok(false) => panic!("{}", logs("the agent container exited")),
        Err(e) => panic!("{}", logs(&format!("{e:#}"))),
    }
    assert_eq!(
        agent.inspect("{{.Config.User}}").unwrap(),
        format!("{uid}:{gid}")
    );

    // The app: the patched pod's container, its volume read-only, no network.
    let mut run: Vec<String> = vec!["--network".into(), "none".into()];
    run.extend(run_options(&patched, app_spec, &sources));
    let command: Vec<String> = app_spec["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    run.extend(["--entrypoint".into(), command[0].clone()]);
    run.push(app_spec["image"].as_str().unwrap().into());
    run.extend(command[1..].iter().cloned());
    let app = Container::run(unique_name("app"), &run)
        .unwrap_or_else(|e| panic!("{}", logs(&format!("starting the app: {e:#}"))));

    let first = app_reads(&app).unwrap_or_else(|e| panic!("{}", logs(&e)));
    assert_eq!(first, "first-3f9a", "{}", logs("the first version"));

    // Rotation: a new KV version reaches the app within a few refresh intervals (1s).
    h.kv_put("app/db", json!({"password": "second-77c2"})).await;
    let app_ref = &app;
    poll(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "the app to see the second version",
        move || async move {
            match app_reads(app_ref) {
                Ok(s) if s == "second-77c2" => Ok(()),
                Ok(s) => Err(format!("still {s:?}")),
                Err(e) => Err(e),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", logs(&format!("{e:#}"))));

    // The app cannot write the volume: overwrite and create both fail with EROFS.
    for target in ["/secrets/password", "/secrets/new"] {
        let out = app
            .exec(&["sh", "-c", &format!("echo tampered > {target}")])
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("Read-only file system"),
            "writing {target} from the app: {} {stderr}",
            out.status
        );
    }
    assert_eq!(app_reads(&app).unwrap(), "second-77c2");
    assert!(agent.running(), "{}", logs("the agent stopped"));

    // Everything goes: containers, then the volume; nothing of this run is left.
    drop(app);
    drop(agent);
    drop(volume);
    drop(h);
    drop(hushd_guard);
    let prefix = unique_name("");
    let left = docker::docker(&["ps", "-a", "--format", "{{.Names}}"]).unwrap();
    let volumes = docker::docker(&["volume", "ls", "--format", "{{.Name}}"]).unwrap();
    for name in left.lines().chain(volumes.lines()) {
        assert!(!name.starts_with(&prefix), "left behind: {name}");
    }
}

/// `docker/compose.yaml` (the README's "try it in containers") is valid for the compose there
/// is, with its four services and the in-memory volume.
#[test]
fn the_compose_file_is_valid() {
    let compose = docker::compose_command().unwrap_or_else(|e| panic!("{e:#}"));
    let file = docker::workspace_root().join("docker/compose.yaml");
    let run = |what: &str| -> String {
        let out = std::process::Command::new(&compose[0])
            .args(&compose[1..])
            .arg("-f")
            .arg(&file)
            .args(["config", what])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{compose:?} config {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut services: Vec<String> = run("--services").lines().map(String::from).collect();
    services.sort();
    assert_eq!(services, ["agent", "app", "hushd", "seed"]);
    assert_eq!(run("--volumes").trim(), "secrets");
    let whole = run("--quiet");
    assert!(whole.is_empty(), "{whole}");
}

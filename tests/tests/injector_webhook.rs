//! hush-injector end to end: the real binary over real TLS (a CA made in the test), every
//! recorded AdmissionReview of `injector/tests/fixtures/reviews` posted to `/mutate`, every
//! patched pod applied, decoded into k8s-openapi's `Pod` and validated in strict mode against
//! the Kubernetes 1.33 schema by `kubernetes-validate` (PyPI); certificate reload, the error
//! answers, the metrics listener, bad flags and SIGTERM.
//!
//! Fixture names say what the injector must do: `allow-*` (patched), `skip-*` (allowed, no
//! patch), `deny-*` (refused; `deny-NAME.expect` holds the exact `status.message`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hush_tests::injector::{review_fixtures, Injector};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// The Kubernetes version the patched pods are validated against.
const KUBE_VERSION: &str = "1.33.0";

/// `kubernetes-validate --strict` on `files`: (passed, output).
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn", "-k", KUBE_VERSION])
        .args(files)
        .output()
        .expect("kubernetes-validate (pip install -r tests/compat/requirements.txt)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The number after `NAME{LABELS} ` in an OpenMetrics text (0 if absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn name_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The request's object with `patch` applied, as JSON with apiVersion and kind.
fn apply(review: &Value, patch: &[u8]) -> Value {
    let mut pod = review["request"]["object"].clone();
    let patch: json_patch::Patch = serde_json::from_slice(patch).expect("a JSON patch");
    json_patch::patch(&mut pod, &patch).expect("the patch applies to the request's object");
    for (key, value) in [("apiVersion", "v1"), ("kind", "Pod")] {
        if pod.get(key).is_none() {
            pod[key] = json!(value);
        }
    }
    pod
}

#[tokio::test]
async fn every_recorded_review_is_answered_and_every_patched_pod_validates() {
    let injector = Injector::start(&["--log-format", "json"]).await;
    let fixtures = review_fixtures();
    let kinds = |p: &str| {
        fixtures
            .iter()
            .filter(|f| name_of(f).starts_with(p))
            .count()
    };
    let (allows, skips, denies) = (kinds("allow-"), kinds("skip-"), kinds("deny-"));
    assert!(allows > 0 && denies > 0, "fixtures missing: {fixtures:?}");
    assert_eq!(
        allows + skips + denies,
        fixtures.len(),
        "a fixture with an unknown prefix"
    );

    let out = tempfile::tempdir().unwrap();
    let mut patched_files = Vec::new();
    for path in &fixtures {
        let name = name_of(path);
        let body = std::fs::read(path).unwrap();
        let review: Value = serde_json::from_slice(&body).unwrap();
        let uid = review["request"]["uid"].as_str().expect("request.uid");
        serde_json::from_value::<Pod>(review["request"]["object"].clone())
            .unwrap_or_else(|e| panic!("{name}: the recorded object is not a Pod: {e}"));

        let (status, answer) = injector.mutate(&body).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{name}");
        assert_eq!(answer["kind"], "AdmissionReview", "{name}");
        let resp = &answer["response"];
        assert_eq!(resp["uid"], uid, "{name}: the uid is echoed");

        if name.starts_with("allow-") {
            assert_eq!(resp["allowed"], true, "{name}: {resp}");
            assert_eq!(resp["patchType"], "JSONPatch", "{name}: {resp}");
            assert!(resp.get("status").is_none(), "{name}: {resp}");
            let patch = base64::engine::general_purpose::STANDARD
                .decode(resp["patch"].as_str().expect("patch"))
                .expect("standard base64");
            let pod = apply(&review, &patch);
            let typed: Pod = serde_json::from_value(pod.clone())
                .unwrap_or_else(|e| panic!("{name}: the patched pod is not a Pod: {e}"));
            let annotations = typed.metadata.annotations.unwrap_or_default();
            assert_eq!(
                annotations
                    .get("hush.dev/agent-inject-status")
                    .map(String::as_str),
                Some("injected"),
                "{name}: the marker"
            );
            // As the API server does for a `generateName`-only pod (kubernetes-validate
            // needs a name).
            let mut pod = pod;
            if pod["metadata"]["name"].as_str().unwrap_or("").is_empty() {
                let prefix = pod["metadata"]["generateName"].as_str().unwrap_or("pod-");
                pod["metadata"]["name"] = json!(format!("{prefix}x7k2q"));
            }
            let file = out.path().join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(&pod).unwrap()).unwrap();
            patched_files.push(file);
        } else if name.starts_with("skip-") {
            assert_eq!(
                resp,
                &json!({"uid": uid, "allowed": true}),
                "{name}: allowed, nothing else"
            );
        } else {
            let expect = path.with_extension("expect");
            let want = std::fs::read_to_string(&expect)
                .unwrap_or_else(|e| panic!("{}: {e}", expect.display()));
            assert_eq!(resp["allowed"], false, "{name}: {resp}");
            assert!(resp.get("patch").is_none(), "{name}: {resp}");
            assert_eq!(resp["status"]["code"], 400, "{name}: {resp}");
            assert_eq!(
                resp["status"]["message"].as_str().unwrap(),
                want.trim_end_matches('\n'),
                "{name}"
            );
        }
    }

    // Every patched pod is valid Kubernetes 1.33, strictly (no unknown fields).
    let (ok, report) = kubernetes_validate(&patched_files);
    assert!(ok, "kubernetes-validate refused a patched pod:\n{report}");
    assert_eq!(
        report.matches("passed").count(),
        patched_files.len(),
        "{report}"
    );

    // The negative control: the same validator refuses a pod with an unknown field.
    let mut broken: Value =
        serde_json::from_slice(&std::fs::read(&patched_files[0]).unwrap()).unwrap();
    broken["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    let broken_file = out.path().join("broken.json");
    std::fs::write(&broken_file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, report) = kubernetes_validate(&[broken_file]);
    assert!(
        !ok,
        "kubernetes-validate passed an unknown field:\n{report}"
    );
    assert!(report.contains("imagePullPolicyy"), "{report}");

    // The metrics count what happened.
    let (_, _, text) = injector.metrics_get("/metrics").await;
    let count = |outcome: &str| {
        metric(
            &text,
            &format!("hush_injector_reviews_total{{outcome=\"{outcome}\"}}"),
        ) as usize
    };
    assert_eq!(count("patched"), allows, "{text}");
    assert_eq!(count("unchanged"), skips, "{text}");
    assert_eq!(count("denied"), denies, "{text}");
    assert_eq!(count("bad_request"), 0, "{text}");
    let answered = metric(&text, "hush_injector_review_duration_seconds_count") as usize;
    assert_eq!(answered, fixtures.len(), "{text}");

    // One JSON log line per review with its uid and outcome; template text never logged.
    let log = injector.proc.stderr();
    for path in &fixtures {
        let review: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let uid = review["request"]["uid"].as_str().unwrap();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["uid"] == uid)
            .unwrap_or_else(|| panic!("no log line for {uid}:\n{log}"));
        assert!(line["fields"]["outcome"].is_string(), "{line}");
        assert!(line["fields"]["namespace"].is_string(), "{line}");
        let annotations = review["request"]["object"]["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in annotations {
            let value = value.as_str().unwrap_or("");
            if key.starts_with("hush.dev/template-") && value.len() > 3 {
                assert!(!log.contains(value), "template {key} logged:\n{log}");
            }
        }
    }
}

#[tokio::test]
async fn the_certificate_reloads_when_its_files_change() {
    let mut injector = Injector::start(&[]).await;
    assert_eq!(injector.served_cert().await, injector.cert_der);
    let old = injector.cert_der.clone();
    let new = injector.rotate_cert();
    assert_ne!(old, new);
    let deadline = Instant::now() + Duration::from_secs(15);
    while injector.served_cert().await != new {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new certificate serves requests too (the client trusts only the test CA).
    let (status, _, _) = injector.metrics_get("/healthz").await;
    assert_eq!(status, 200);
    let resp = injector
        .client
        .get(injector.url("/mutate"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    let (_, _, text) = injector.metrics_get("/metrics").await;
    assert!(
        metric(&text, "hush_injector_tls_reloads_total{result=\"ok\"}") >= 1.0,
        "{text}"
    );

    // A broken key is refused; the last good certificate stays in use.
    std::fs::write(&injector.key_path, "not a key\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, text) = injector.metrics_get("/metrics").await;
        if metric(&text, "hush_injector_tls_reloads_total{result=\"error\"}") >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken key was not noticed: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(injector.served_cert().await, new);
    assert!(
        injector.proc.stderr().contains("TLS reload failed"),
        "{}",
        injector.proc.stderr()
    );
}

#[tokio::test]
async fn wrong_requests_get_the_right_status_and_vaults_error_shape() {
    let injector = Injector::start(&[]).await;
    let pod_review = |api_version: &str, kind: &str| {
        json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": "CREATE", "namespace": "ns",
            "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}}})
    };
    let c = &injector.client;
    let send = |rb: hush_tests::reqwest::RequestBuilder| async move {
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    };
    let json_post = |path: &str, body: Vec<u8>| {
        c.post(injector.url(path))
            .header("content-type", "application/json")
            .body(body)
    };
    let oversize = vec![b' '; 4 * 1024 * 1024 + 1];
    let cases = vec![
        (
            send(c.get(injector.url("/mutate"))).await,
            405,
            "method not allowed",
        ),
        (
            send(c.put(injector.url("/mutate"))).await,
            405,
            "method not allowed",
        ),
        (send(json_post("/", b"{}".to_vec())).await, 404, "not found"),
        (
            send(json_post("/validate", b"{}".to_vec())).await,
            404,
            "not found",
        ),
        (
            send(c.post(injector.url("/mutate")).body("{}")).await,
            415,
            "Content-Type must be application/json",
        ),
        (
            send(json_post("/mutate", b"{\"apiVersion\":".to_vec())).await,
            400,
            "body is not a JSON AdmissionReview",
        ),
        (
            send(json_post("/mutate", oversize)).await,
            413,
            "request body over 4194304 bytes",
        ),
        (
            send(json_post(
                "/mutate",
                serde_json::to_vec(&pod_review("admission.k8s.io/v1beta1", "Pod")).unwrap(),
            ))
            .await,
            400,
            "apiVersion must be admission.k8s.io/v1, not \"admission.k8s.io/v1beta1\"",
        ),
    ];
    for ((status, body), want_status, want_text) in cases {
        assert_eq!(status, want_status, "{body}");
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(errors.len(), 1, "{body}");
        assert!(
            errors[0].as_str().unwrap().starts_with(want_text),
            "{body} does not start with {want_text}"
        );
    }

    // A kind other than Pod passes untouched.
    let (status, body) = injector
        .mutate(&serde_json::to_vec(&pod_review("admission.k8s.io/v1", "Service")).unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"], json!({"uid": "u-1", "allowed": true}));

    // The metrics listener: health, readiness, metrics, nothing else.
    let (status, _, body) = injector.metrics_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = injector.metrics_get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, ctype, text) = injector.metrics_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    for series in [
        "# TYPE hush_injector_reviews counter",
        "# TYPE hush_injector_review_duration_seconds histogram",
        "# TYPE hush_injector_tls_reloads counter",
        "# EOF",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    // Refused reviews: 415, 400, 413, 400 (the 404s and 405s never reach /mutate).
    assert_eq!(
        metric(
            &text,
            "hush_injector_reviews_total{outcome=\"bad_request\"}"
        ),
        4.0,
        "415, 400, 413, 400:\n{text}"
    );
    assert_eq!(
        metric(&text, "hush_injector_reviews_total{outcome=\"unchanged\"}"),
        1.0
    );
    let (status, _, body) = injector.metrics_get("/mutate").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"errors\""), "{body}");
}

#[tokio::test]
async fn sigterm_stops_it_with_exit_0() {
    let mut injector = Injector::start(&[]).await;
    injector.proc.signal("TERM");
    let status = injector
        .proc
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status}: {}", injector.proc.stderr());
    let log = injector.proc.stderr();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        hush_tests::try_raw_request(injector.port, "GET / HTTP/1.1\r\n\r\n")
            .await
            .is_err()
    );
}

#[test]
fn bad_flags_exit_64_with_one_message_naming_the_flag() {
    let run_with = |hushd_addr: &str, extra: &[&str]| {
        let out = Command::new(hush_tests::bin("hush-injector"))
            .args([
                "--tls-cert",
                "/nonexistent/tls.crt",
                "--tls-key",
                "/nonexistent/tls.key",
            ])
            .args(["--agent-image", "hush-agent:1", "--hushd-addr", hushd_addr])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = |extra: &[&str]| run_with("https://hushd:8200", extra);
    assert_eq!(
        run(&["--volume-size", "16MB"]),
        (
            Some(64),
            "hush-injector: invalid configuration: --volume-size: \"16MB\" has an unknown \
             suffix \"MB\"; want a Kubernetes quantity: a number with an optional suffix (m, k, \
             M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3), e.g. 250m, 0.5, \
             128Mi\n"
                .to_string()
        )
    );
    assert_eq!(
        run_with("hushd:8200", &[]).0,
        Some(64),
        "a URL without a scheme"
    );
    let (code, stderr) = run(&["--agent-image"]);
    assert_eq!(code, Some(64), "a flag without its value: {stderr}");
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "hush-injector: cannot read TLS certificate /nonexistent/tls.crt: I/O error: No such \
         file or directory (os error 2)\n"
    );
}

//! The recorded AdmissionReviews under `tests/fixtures/reviews/` (what an API server sends for
//! a pod CREATE, after its defaulting and the ServiceAccount admission plugin) keep their
//! naming promise under the default settings:
//!
//! - `allow-*.json`: a patch that applies to the pod, reads back as a `Pod` and holds the agent;
//! - `skip-*.json`: the pod is left unchanged;
//! - `deny-*.json`: a denial whose text is exactly the sibling `deny-*.expect` (one line).

use std::path::{Path, PathBuf};

use hush_injector::{inject, Outcome, Settings};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

fn reviews() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reviews");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The review's pod, after checking the request looks like an API server's.
fn pod_of(review: &Value, name: &str) -> Value {
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{name}");
    assert_eq!(review["kind"], "AdmissionReview", "{name}");
    let request = &review["request"];
    assert!(
        request["uid"].as_str().is_some_and(|u| u.len() == 36),
        "{name}: uid"
    );
    assert_eq!(request["operation"], "CREATE", "{name}");
    assert_eq!(request["kind"]["kind"], "Pod", "{name}");
    assert_eq!(request["resource"]["resource"], "pods", "{name}");
    assert!(
        request["userInfo"]["username"].is_string(),
        "{name}: userInfo"
    );
    assert_eq!(
        request["namespace"], request["object"]["metadata"]["namespace"],
        "{name}"
    );
    request["object"].clone()
}

#[test]
fn every_fixture_keeps_its_naming_promise() {
    let settings = Settings::default();
    let (mut allow, mut skip, mut deny) = (0, 0, 0);
    for path in reviews() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let review: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let object = pod_of(&review, &name);
        let pod: Pod =
            serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = inject(&pod, &settings);
        if name.starts_with("allow-") {
            let Ok(Outcome::Patch(patch)) = outcome else {
                panic!("{name}: want a patch, got {outcome:?}")
            };
            let mut doc = object;
            json_patch::patch(&mut doc, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            let patched: Pod =
                serde_json::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            let spec = patched.spec.as_ref().unwrap();
            let agent_first = spec.init_containers.as_ref().and_then(|v| v.first());
            assert!(
                agent_first.is_some_and(|c| c.name.starts_with("hush-agent")),
                "{name}: the agent is not the first init container"
            );
            assert_eq!(
                patched.metadata.annotations.as_ref().unwrap()["hush.dev/agent-inject-status"],
                "injected",
                "{name}"
            );
            assert!(
                matches!(inject(&patched, &settings), Ok(Outcome::Unchanged(_))),
                "{name}: injected twice"
            );
            allow += 1;
        } else if name.starts_with("skip-") {
            assert!(
                matches!(outcome, Ok(Outcome::Unchanged(_))),
                "{name}: {outcome:?}"
            );
            skip += 1;
        } else if name.starts_with("deny-") {
            let expect_path = path.with_extension("expect");
            let expect = std::fs::read_to_string(&expect_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()));
            let denial = outcome.expect_err(&name);
            assert_eq!(denial.to_string(), expect.trim_end_matches('\n'), "{name}");
            assert!(denial.annotation.starts_with("hush.dev/"), "{name}");
            deny += 1;
        } else {
            panic!("{name}: a fixture is named allow-, skip- or deny-");
        }
    }
    assert!(
        allow >= 10 && skip >= 3 && deny >= 10,
        "{allow} allow, {skip} skip, {deny} deny"
    );
}

#[test]
fn every_expect_file_has_its_review() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reviews");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expect") {
            assert!(path.with_extension("json").exists(), "{}", path.display());
        }
    }
}

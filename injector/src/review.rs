//! AdmissionReview `admission.k8s.io/v1` in and out, around the pure [`crate::inject`].
//!
//! k8s-openapi has no admission types, so the few fields the webhook reads and writes are
//! here. Unknown fields of a request are ignored (the API server sends more than we read);
//! what we answer carries only what `kubectl` and the API server use.
//!
//! [`review`] decodes a body, asks [`crate::inject`] about the pod and answers:
//! - a patch: `allowed`, `patchType: JSONPatch`, the patch in standard base64;
//! - unchanged (and anything not a pod CREATE: other kinds, UPDATE, DELETE, CONNECT,
//!   subresources): `allowed`, no patch;
//! - a denial: not allowed, `status.code` 400, `status.message` "hush.dev/NAME: why".
//!
//! A body that is not an `admission.k8s.io/v1` AdmissionReview with a request and a uid (or
//! whose pod does not decode) is a [`BadReview`]: the HTTP layer answers 400 with Vault's
//! `{"errors": [...]}`.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::patch::{inject, Denial, Outcome};
use crate::settings::Settings;

/// The only AdmissionReview version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The kind of both the request and the response document.
pub const KIND: &str = "AdmissionReview";
/// The one patch type Kubernetes knows.
pub const PATCH_TYPE: &str = "JSONPatch";

/// An AdmissionReview as the API server sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewRequest {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

/// `request` of an AdmissionReview: what is admitted, and how.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response; the API server matches answers by it.
    #[serde(default)]
    pub uid: String,
    /// The kind of the object (`{"group": "", "version": "v1", "kind": "Pod"}` for pods).
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// Set when a subresource (`status`, `ephemeralcontainers`, ...) is written.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Often empty at CREATE (the pod has only `generateName` then).
    #[serde(default)]
    pub name: Option<String>,
    /// The object as it would be stored.
    #[serde(default)]
    pub object: Option<serde_json::Value>,
}

/// Group, version and kind of the admitted object.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// The AdmissionReview the webhook answers with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// The JSON patch, base64 (standard alphabet, padded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
}

/// Why a request was not allowed (a `metav1.Status`; `kubectl` shows the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseStatus {
    pub code: u16,
    pub message: String,
}

/// Annotations whose denial reasons stay out of the log.
const TEMPLATE_PREFIX: &str = "hush.dev/template-";

/// What became of a review, for the metrics and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Patched,
    Unchanged,
    Denied,
}

impl Verdict {
    /// The metrics label (`outcome="..."`).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Patched => "patched",
            Verdict::Unchanged => "unchanged",
            Verdict::Denied => "denied",
        }
    }
}

/// A review answered, with what the log needs to say about it (never annotation values).
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub response: AdmissionReviewResponse,
    pub verdict: Verdict,
    /// Why the pod was left alone, or the denial's text (for `hush.dev/template-*` only the
    /// annotation's name).
    pub reason: String,
    pub namespace: String,
    /// The pod's name, else its `generateName` followed by `*`.
    pub pod: String,
}

/// A body that is not an AdmissionReview we can answer (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReview {
    #[error("body is not a JSON AdmissionReview: {0}")]
    Json(String),
    #[error("apiVersion must be {API_VERSION}, not {0:?}")]
    ApiVersion(String),
    #[error("kind must be {KIND}, not {0:?}")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request has no uid")]
    NoUid,
    #[error("AdmissionReview request for a pod CREATE has no object")]
    NoObject,
    #[error("request.object is not a Pod: {0}")]
    NotAPod(String),
}

/// Decode `body`, decide about its pod with [`crate::inject`], and answer.
pub fn review(body: &[u8], settings: &Settings) -> Result<Reviewed, BadReview> {
    let doc: AdmissionReviewRequest =
        serde_json::from_slice(body).map_err(|e| BadReview::Json(e.to_string()))?;
    if doc.api_version != API_VERSION {
        return Err(BadReview::ApiVersion(doc.api_version));
    }
    if doc.kind != KIND {
        return Err(BadReview::Kind(doc.kind));
    }
    let req = doc.request.ok_or(BadReview::NoRequest)?;
    if req.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    let namespace = req.namespace.clone().unwrap_or_default();
    let pod_kind = req.kind.group.is_empty() && req.kind.version == "v1" && req.kind.kind == "Pod";
    let skip = if !pod_kind {
        Some("not a pod")
    } else if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        Some("a pod subresource")
    } else if req.operation != "CREATE" {
        Some("not a CREATE")
    } else {
        None
    };
    if let Some(why) = skip {
        let pod = req.name.clone().unwrap_or_default();
        return Ok(answer(req.uid, namespace, pod, Ok(Outcome::Unchanged(why))));
    }
    let object = req.object.ok_or(BadReview::NoObject)?;
    let pod: Pod = serde_json::from_value(object).map_err(|e| BadReview::NotAPod(e.to_string()))?;
    let name = pod_name(&pod, req.name.as_deref());
    let decided = inject(&pod, settings);
    Ok(answer(req.uid, namespace, name, decided))
}

/// The pod's name for the log: `metadata.name`, the request's name, else `generateName*`.
fn pod_name(pod: &Pod, request_name: Option<&str>) -> String {
    fn given(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.is_empty())
    }
    let meta = &pod.metadata;
    match given(meta.name.as_deref()).or(given(request_name)) {
        Some(name) => name.to_string(),
        None => given(meta.generate_name.as_deref())
            .map(|g| format!("{g}*"))
            .unwrap_or_default(),
    }
}

/// The AdmissionReview answering `uid` with what [`crate::inject`] decided.
pub fn answer(
    uid: String,
    namespace: String,
    pod: String,
    decided: Result<Outcome, Denial>,
) -> Reviewed {
    let mut response = AdmissionResponse {
        uid,
        allowed: true,
        patch_type: None,
        patch: None,
        status: None,
    };
    let (verdict, reason) = match decided {
        Ok(Outcome::Patch(patch)) if !patch.0.is_empty() => {
            let json = serde_json::to_vec(&patch).expect("a JSON patch serialises");
            response.patch_type = Some(PATCH_TYPE);
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
            (Verdict::Patched, String::new())
        }
        Ok(Outcome::Patch(_)) => (Verdict::Unchanged, "empty patch".to_string()),
        Ok(Outcome::Unchanged(why)) => (Verdict::Unchanged, why.to_string()),
        Err(denial) => {
            let message = denial.to_string();
            // A template's text may hold anything; its denial is named in the log, not quoted.
            let logged = if denial.annotation.starts_with(TEMPLATE_PREFIX) {
                format!("{}: denied (reason not logged)", denial.annotation)
            } else {
                message.clone()
            };
            response.allowed = false;
            response.status = Some(ResponseStatus { code: 400, message });
            (Verdict::Denied, logged)
        }
    };
    Reviewed {
        response: AdmissionReviewResponse {
            api_version: API_VERSION,
            kind: KIND,
            response,
        },
        verdict,
        reason,
        namespace,
        pod,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn pod_review(operation: &str, object: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
            }
        })
    }

    fn plain_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-7d4b9c-", "namespace": "shop"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}
        })
    }

    fn as_json(r: &Reviewed) -> Value {
        serde_json::to_value(&r.response).unwrap()
    }

    #[test]
    fn a_pod_create_is_answered_with_the_same_uid_and_the_full_envelope() {
        let r = review(
            &body(pod_review("CREATE", plain_pod())),
            &Settings::default(),
        )
        .unwrap();
        let out = as_json(&r);
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(
            out["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(r.namespace, "shop");
        assert_eq!(r.pod, "web-7d4b9c-*");
    }

    #[test]
    fn a_patch_is_base64_json_patch() {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"hush.dev/agent-inject-status": "injected"}}
        ]))
        .unwrap();
        let r = answer(
            "u1".into(),
            "ns".into(),
            "p".into(),
            Ok(Outcome::Patch(patch.clone())),
        );
        assert_eq!(r.verdict, Verdict::Patched);
        let out = as_json(&r);
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        assert!(out["response"].get("status").is_none());
        let b64 = out["response"]["patch"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let back: json_patch::Patch = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(back, patch);
    }

    #[test]
    fn unchanged_and_an_empty_patch_are_allowed_without_a_patch() {
        for decided in [
            Ok(Outcome::Unchanged("no hush.dev/agent-inject")),
            Ok(Outcome::Patch(json_patch::Patch(vec![]))),
        ] {
            let r = answer("u1".into(), "ns".into(), "p".into(), decided);
            assert_eq!(r.verdict, Verdict::Unchanged);
            let out = as_json(&r);
            assert_eq!(
                out,
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": "u1", "allowed": true}})
            );
        }
    }

    #[test]
    fn a_denial_is_not_allowed_with_code_400_and_the_annotation_named() {
        let denial = Denial {
            annotation: "hush.dev/uid".into(),
            reason: "the agent must not run as root (0)".into(),
        };
        let r = answer("u1".into(), "ns".into(), "p".into(), Err(denial));
        assert_eq!(r.verdict, Verdict::Denied);
        assert_eq!(
            as_json(&r)["response"],
            json!({"uid": "u1", "allowed": false, "status": {
                "code": 400, "message": "hush.dev/uid: the agent must not run as root (0)"}})
        );
    }

    #[test]
    fn a_template_denial_is_answered_in_full_but_logged_by_name_only() {
        let denial = Denial {
            annotation: "hush.dev/template-db".into(),
            reason: "syntax error near 'password=hunter2'".into(),
        };
        let r = answer("u1".into(), "ns".into(), "p".into(), Err(denial));
        assert_eq!(
            as_json(&r)["response"]["status"]["message"],
            "hush.dev/template-db: syntax error near 'password=hunter2'"
        );
        assert_eq!(r.reason, "hush.dev/template-db: denied (reason not logged)");
    }

    #[test]
    fn other_operations_kinds_and_subresources_pass_unchanged() {
        let s = Settings::default();
        for op in ["UPDATE", "DELETE", "CONNECT"] {
            let r = review(&body(pod_review(op, plain_pod())), &s).unwrap();
            assert_eq!(r.verdict, Verdict::Unchanged, "{op}");
            assert_eq!(r.reason, "not a CREATE");
            assert!(as_json(&r)["response"].get("patch").is_none());
        }
        let mut deployment = pod_review("CREATE", json!({"kind": "Deployment"}));
        deployment["request"]["kind"] =
            json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        let r = review(&body(deployment), &s).unwrap();
        assert_eq!(
            (r.verdict, r.reason.as_str()),
            (Verdict::Unchanged, "not a pod")
        );
        assert_eq!(as_json(&r)["response"]["allowed"], true);
        let mut sub = pod_review("CREATE", json!({"kind": "Binding"}));
        sub["request"]["subResource"] = json!("binding");
        let r = review(&body(sub), &s).unwrap();
        assert_eq!(
            (r.verdict, r.reason.as_str()),
            (Verdict::Unchanged, "a pod subresource")
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let s = Settings::default();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"{not json".to_vec(),
                "body is not a JSON AdmissionReview: ",
            ),
            (b"[]".to_vec(), "body is not a JSON AdmissionReview: "),
            (
                body(
                    json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}),
                ),
                "apiVersion must be admission.k8s.io/v1, not \"admission.k8s.io/v1beta1\"",
            ),
            (
                body(json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"})),
                "kind must be AdmissionReview, not \"Pod\"",
            ),
            (
                body(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})),
                "AdmissionReview has no request",
            ),
            (
                body(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}),
                ),
                "AdmissionReview request has no uid",
            ),
        ];
        for (b, want) in cases {
            let err = review(&b, &s).unwrap_err().to_string();
            assert!(
                err.starts_with(want),
                "{err:?} does not start with {want:?}"
            );
        }
        let mut no_object = pod_review("CREATE", plain_pod());
        no_object["request"]
            .as_object_mut()
            .unwrap()
            .remove("object");
        assert_eq!(
            review(&body(no_object), &s).unwrap_err(),
            BadReview::NoObject
        );
        let not_a_pod = pod_review("CREATE", json!({"spec": {"containers": "web"}}));
        assert!(matches!(
            review(&body(not_a_pod), &s),
            Err(BadReview::NotAPod(_))
        ));
    }

    #[test]
    fn the_pod_name_prefers_the_name_then_generate_name() {
        let mut named = plain_pod();
        named["metadata"]["name"] = json!("web-0");
        let r = review(&body(pod_review("CREATE", named)), &Settings::default()).unwrap();
        assert_eq!(r.pod, "web-0");
        let mut bare = plain_pod();
        bare["metadata"] = json!({});
        let mut req = pod_review("CREATE", bare);
        req["request"]["name"] = json!("from-request");
        let r = review(&body(req), &Settings::default()).unwrap();
        assert_eq!(r.pod, "from-request");
    }
}

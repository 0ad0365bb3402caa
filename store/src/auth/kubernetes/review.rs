//! The TokenReview client: asks the Kubernetes API server whether a token is valid.
//!
//! `POST {kubernetes_host}/apis/authentication.k8s.io/v1/tokenreviews` over HTTPS (trusting
//! the CA [`super::local::pick`] chose), bearer = the reviewer JWT, else hushd's own pod token,
//! else the client's own JWT (Vault's order), no redirects, a timeout, a capped body.

use serde_json::{json, Value};

use crate::auth::jws::remote::MAX_BODY;
use crate::auth::jws::tls::{self, http_client};

/// What the API server said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub namespace: String,
    pub service_account: String,
    pub uid: String,
    pub audiences: Vec<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
}

/// Why a review failed. Messages never hold a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The API server answered: the token is not valid (400 to the client).
    #[error("lookup failed: {0}")]
    Denied(String),
    /// The API server could not be asked (500 to the client).
    #[error("token review failed: {0}")]
    Unavailable(String),
}

/// The `extra` value `key` of a TokenReview user, when it is a one-string list.
fn extra(user: &Value, key: &str) -> Option<String> {
    user.get("extra")?
        .get(key)?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_string)
}

/// Parse a TokenReview response body.
pub fn parse_response(body: &[u8]) -> Result<Reviewed, ReviewError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ReviewError::Unavailable("response is not JSON".into()))?;
    let status = v
        .get("status")
        .ok_or_else(|| ReviewError::Unavailable("response has no status".into()))?;
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Err(ReviewError::Denied(
            "service account unauthorized; this could mean it has been deleted or recreated \
             with a new token"
                .into(),
        ));
    }
    let user = status.get("user").cloned().unwrap_or(Value::Null);
    let username = user.get("username").and_then(Value::as_str).unwrap_or("");
    let parts: Vec<&str> = username.split(':').collect();
    let (namespace, service_account) = match parts.as_slice() {
        ["system", "serviceaccount", ns, name] if !ns.is_empty() && !name.is_empty() => {
            (ns.to_string(), name.to_string())
        }
        _ => {
            return Err(ReviewError::Denied(
                "token review did not return a service account".into(),
            ))
        }
    };
    let uid = user
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let audiences = status
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Reviewed {
        namespace,
        service_account,
        uid,
        audiences,
        pod_name: extra(&user, "authentication.kubernetes.io/pod-name"),
        pod_uid: extra(&user, "authentication.kubernetes.io/pod-uid"),
    })
}

/// Ask `host` to review `token`, authenticating with `bearer`.
pub async fn review(
    host: &str,
    ca_pem: Option<&str>,
    bearer: &str,
    token: &str,
    audience: Option<&str>,
) -> Result<Reviewed, ReviewError> {
    let http = http_client(ca_pem).map_err(|e| ReviewError::Unavailable(e.to_string()))?;
    let url = format!(
        "{}/apis/authentication.k8s.io/v1/tokenreviews",
        host.trim_end_matches('/')
    );
    let mut spec = json!({ "token": token });
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([a]);
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    });
    let unavailable = |what: &str| ReviewError::Unavailable(format!("{host}: {what}"));
    let mut resp = http
        .post(&url)
        .bearer_auth(bearer)
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| unavailable(&tls::describe(&e)))?;
    let status = resp.status().as_u16();
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| unavailable("body read failed"))?
    {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(unavailable("response too large"));
        }
        buf.extend_from_slice(&chunk);
    }
    match status {
        200 | 201 => parse_response(&buf),
        401 | 403 => Err(ReviewError::Denied(format!(
            "the API server refused the token review (HTTP {status})"
        ))),
        s => Err(unavailable(&format!("HTTP status {s}"))),
    }
}

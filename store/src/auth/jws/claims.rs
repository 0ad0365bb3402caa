//! Claim helpers for the auth methods: Kubernetes service-account identities, Vault's
//! `bound_claims` (`bound_claims_type` string or glob), `claim_mappings`, `user_claim`, and
//! the `*` glob used by `bound_service_account_names` / `_namespaces`.
//!
//! A claim name that starts with `/` is a JSON pointer into nested claims (as in Vault's
//! `bound_claims`, `claim_mappings` and `user_claim`); any other name is a top-level claim.
//! Error messages name the claim, never its value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Claims, JwtError};

/// Look a claim up by name, or by JSON pointer when the name starts with `/`.
pub fn get_claim<'a>(claims: &'a Claims, name: &str) -> Option<&'a Value> {
    if let Some(pointer) = name.strip_prefix('/') {
        let mut cur: Option<&Value> = None;
        for (i, raw) in pointer.split('/').enumerate() {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            cur = if i == 0 {
                claims.get(&seg)
            } else {
                match cur? {
                    Value::Object(m) => m.get(&seg),
                    Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
                    _ => None,
                }
            };
            cur?;
        }
        cur
    } else {
        claims.get(name)
    }
}

/// A scalar claim as text: strings as-is, numbers and booleans in their JSON form.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` glob: `*` matches any run of characters (none included); everything else is literal.
/// `"*"` matches anything; `"web-*"`, `"*-prod"`, `"a*b*c"` work as expected.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

/// True if any pattern matches (an empty list matches nothing).
pub fn glob_match_any<S: AsRef<str>>(patterns: &[S], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p.as_ref(), value))
}

/// How `bound_claims` values are compared (Vault's `bound_claims_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundClaimsType {
    #[default]
    String,
    Glob,
}

impl BoundClaimsType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "string" => Some(BoundClaimsType::String),
            "glob" => Some(BoundClaimsType::Glob),
            _ => None,
        }
    }
}

/// Check Vault-style `bound_claims`: every bound claim must be present, and one of its
/// values (a token claim may be a list) must equal (or glob-match) one of the bound values
/// (a bound value may be a string or a list of strings).
pub fn match_bound_claims(
    claims: &Claims,
    bound: &Map<String, Value>,
    kind: BoundClaimsType,
) -> Result<(), JwtError> {
    for (name, want) in bound {
        let want: Vec<String> = match want {
            Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            other => scalar_text(other).into_iter().collect(),
        };
        let have = get_claim(claims, name).ok_or_else(|| JwtError::MissingClaim(name.clone()))?;
        let have: Vec<String> = match have {
            Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            other => scalar_text(other).into_iter().collect(),
        };
        let hit = have.iter().any(|h| {
            want.iter().any(|w| match kind {
                BoundClaimsType::String => w == h,
                BoundClaimsType::Glob => glob_match(w, h),
            })
        });
        if !hit {
            return Err(JwtError::ClaimMismatch(name.clone()));
        }
    }
    Ok(())
}

/// Apply `claim_mappings` (claim name or pointer -> metadata key). Absent claims are skipped;
/// a list or object claim is an error, as in Vault.
pub fn claim_mappings(
    claims: &Claims,
    mappings: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, JwtError> {
    let mut out = BTreeMap::new();
    for (claim, key) in mappings {
        if let Some(v) = get_claim(claims, claim) {
            let text = scalar_text(v).ok_or_else(|| JwtError::ClaimType(claim.clone()))?;
            out.insert(key.clone(), text);
        }
    }
    Ok(out)
}

/// The `user_claim` value (a string, or a number given as its decimal form): the alias name.
pub fn user_claim(claims: &Claims, name: &str) -> Result<String, JwtError> {
    match get_claim(claims, name) {
        None | Some(Value::Null) => Err(JwtError::MissingClaim(name.to_string())),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(JwtError::ClaimType(name.to_string())),
    }
}

/// Who a Kubernetes service-account token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sIdentity {
    pub namespace: String,
    pub service_account: String,
    pub sa_uid: String,
    /// Projected tokens bound to a pod carry it; legacy secret tokens do not.
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    /// The legacy token's secret name (`kubernetes.io/serviceaccount/secret.name`).
    pub secret_name: Option<String>,
}

impl K8sIdentity {
    /// Read a projected token (`kubernetes.io` object claim) or a legacy secret token
    /// (`kubernetes.io/serviceaccount/*` claims). When `sub` is present it must be
    /// `system:serviceaccount:<namespace>:<name>` for the same account.
    pub fn from_claims(claims: &Claims) -> Result<Self, JwtError> {
        let id = if let Some(k8s) = claims.get("kubernetes.io") {
            let k8s = k8s
                .as_object()
                .ok_or_else(|| JwtError::ClaimType("kubernetes.io".into()))?;
            let str_at = |obj: &Map<String, Value>, key: &str, label: &str| match obj.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                None => Err(JwtError::MissingClaim(label.to_string())),
                Some(_) => Err(JwtError::ClaimType(label.to_string())),
            };
            let sa = k8s
                .get("serviceaccount")
                .and_then(Value::as_object)
                .ok_or_else(|| JwtError::MissingClaim("kubernetes.io.serviceaccount".into()))?;
            let pod = match k8s.get("pod") {
                None | Some(Value::Null) => None,
                Some(Value::Object(p)) => Some(p),
                Some(_) => return Err(JwtError::ClaimType("kubernetes.io.pod".into())),
            };
            K8sIdentity {
                namespace: str_at(k8s, "namespace", "kubernetes.io.namespace")?,
                service_account: str_at(sa, "name", "kubernetes.io.serviceaccount.name")?,
                sa_uid: str_at(sa, "uid", "kubernetes.io.serviceaccount.uid")?,
                pod_name: pod
                    .map(|p| str_at(p, "name", "kubernetes.io.pod.name"))
                    .transpose()?,
                pod_uid: pod
                    .map(|p| str_at(p, "uid", "kubernetes.io.pod.uid"))
                    .transpose()?,
                secret_name: None,
            }
        } else {
            let legacy = |suffix: &str| {
                let name = format!("kubernetes.io/serviceaccount/{suffix}");
                match claims.get(&name) {
                    Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                    None => Err(JwtError::MissingClaim(name)),
                    Some(_) => Err(JwtError::ClaimType(name)),
                }
            };
            K8sIdentity {
                namespace: legacy("namespace")?,
                service_account: legacy("service-account.name")?,
                sa_uid: legacy("service-account.uid")?,
                pod_name: None,
                pod_uid: None,
                secret_name: legacy("secret.name").ok(),
            }
        };
        if let Some(sub) = claims.get("sub") {
            let want = format!(
                "system:serviceaccount:{}:{}",
                id.namespace, id.service_account
            );
            if sub.as_str() != Some(want.as_str()) {
                return Err(JwtError::ClaimMismatch("sub".into()));
            }
        }
        Ok(id)
    }

    /// Token metadata as Vault's kubernetes method sets it.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(
            "service_account_name".to_string(),
            self.service_account.clone(),
        );
        m.insert(
            "service_account_namespace".to_string(),
            self.namespace.clone(),
        );
        m.insert("service_account_uid".to_string(), self.sa_uid.clone());
        if let Some(s) = &self.secret_name {
            m.insert("service_account_secret_name".to_string(), s.clone());
        }
        if let Some(p) = &self.pod_name {
            m.insert("service_account_pod_name".to_string(), p.clone());
        }
        if let Some(p) = &self.pod_uid {
            m.insert("service_account_pod_uid".to_string(), p.clone());
        }
        m
    }
}

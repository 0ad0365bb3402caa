//! Login checks: an `iam` JWT (signed by a service account's own key, as
//! `iam.serviceAccounts.signJwt` makes) or a `gce` instance identity token (signed by Google),
//! against a role.
//!
//! Order: the unverified claims pick the path and refuse a service account or project the role
//! does not bind *before* any key is fetched (refusing on unverified data is safe; it keeps a
//! stream of made-up accounts from making hushd fetch keys for each); then the signature, time,
//! issuer and audience; then the remaining bindings on verified claims. Messages name claims,
//! never the token; like Vault's they may name the service account.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config::Google;
use super::role::{GcpRole, RoleType};
use crate::auth::jws::{self, audiences, Algorithm, Claims, JwtError, Validation};
use crate::logical::LogicalError;

/// Issuers of Google's identity tokens.
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Tolerated clock difference, seconds.
const CLOCK_SKEW: u64 = 60;

/// What a good login proves: token metadata and the display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub metadata: BTreeMap<String, String>,
    pub display_name: String,
}

fn invalid(msg: impl Into<String>) -> LogicalError {
    LogicalError::invalid(msg.into())
}

/// A refused token is the caller's 400; a key source that cannot be read is hushd's 500,
/// except `caller_fault` ones (the caller named the service account whose keys failed).
fn jwt_error(e: JwtError, caller_fault: bool) -> LogicalError {
    if e.is_token_error() || caller_fault {
        invalid(format!("unable to verify JWT: {e}"))
    } else {
        LogicalError::Internal(format!("cannot get Google's keys: {e}"))
    }
}

fn validation() -> Validation {
    Validation {
        clock_skew_leeway: CLOCK_SKEW,
        expiration_leeway: 0,
        not_before_leeway: 0,
        require_exp: true,
        ..Validation::default()
    }
}

/// `aud` must be `vault/<role>` or end in `/vault/<role>` (`http://vault/<role>`, the
/// audience the agent and Vault's helpers use). Vault takes any suffix; hushd wants the `/`
/// before `vault` so that `evilvault/<role>` does not pass.
fn check_audience(claims: &Claims, role: &str) -> Result<(), LogicalError> {
    let want = format!("vault/{role}");
    let slashed = format!("/{want}");
    let auds = audiences(claims).map_err(|e| jwt_error(e, true))?;
    if auds.iter().any(|a| *a == want || a.ends_with(&slashed)) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid audience in JWT: expected one ending in {want:?}"
        )))
    }
}

/// A service account's project, read from its email: `<name>@<project>.iam.gserviceaccount.com`
/// or `<project>@appspot.gserviceaccount.com`.
pub fn project_of(email: &str) -> Option<&str> {
    let (local, domain) = email.split_once('@')?;
    if let Some(p) = domain.strip_suffix(".iam.gserviceaccount.com") {
        return Some(p).filter(|p| !p.is_empty());
    }
    (domain == "appspot.gserviceaccount.com" && !local.is_empty()).then_some(local)
}

/// A plausible service-account email, in characters safe in a URL path.
fn email_ok(s: &str) -> bool {
    let ok = |part: &str, extra: &[u8]| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b) || extra.contains(&b))
    };
    s.len() <= 254
        && s.split_once('@')
            .is_some_and(|(l, d)| ok(l, b"_+") && ok(d, b"") && !d.contains(".."))
}

fn account_bound(role: &GcpRole, email: &str, unique_id: Option<&str>) -> bool {
    role.bound_service_accounts
        .iter()
        .any(|b| b == "*" || b.eq_ignore_ascii_case(email) || unique_id.is_some_and(|id| b == id))
}

fn not_authorized(email: &str) -> LogicalError {
    invalid(format!(
        "service account {email:?} is not authorized for role"
    ))
}

fn check_project(role: &GcpRole, project: Option<&str>) -> Result<(), LogicalError> {
    if role.bound_projects.is_empty() {
        return Ok(());
    }
    match project {
        Some(p) if role.bound_projects.iter().any(|b| b == p) => Ok(()),
        Some(_) => Err(invalid("project is not in the role's bound_projects")),
        None => Err(invalid(
            "cannot tell the service account's project from its email: the role has \
             bound_projects",
        )),
    }
}

/// The GCE claims (`google.compute_engine`) of a token, when it has them.
fn compute_engine(claims: &Claims) -> Option<&Map<String, Value>> {
    claims.get("google")?.get("compute_engine")?.as_object()
}

/// Check `token` for role `name` and say who it proves.
pub async fn login(
    google: &Google,
    role: &GcpRole,
    name: &str,
    token: &str,
    now: u64,
) -> Result<Identity, LogicalError> {
    let unverified = jws::parse(token, &Algorithm::ALL).map_err(|e| jwt_error(e, true))?;
    let is_gce = compute_engine(&unverified.claims).is_some();
    match (role.role_type, is_gce) {
        (RoleType::Gce, false) => Err(invalid(
            "JWT has no google.compute_engine claims: a gce role takes an instance identity \
             token (format=full)",
        )),
        (RoleType::Iam, true) if !role.allow_gce_inference => Err(invalid(
            "GCE identity tokens cannot log in to this iam role (allow_gce_inference is false)",
        )),
        (RoleType::Iam, false) => {
            let sub = unverified.claims.get("sub").and_then(Value::as_str);
            iam(google, role, name, sub.unwrap_or_default(), token, now).await
        }
        (_, true) => gce(google, role, name, token, now).await,
    }
}

async fn iam(
    google: &Google,
    role: &GcpRole,
    name: &str,
    email: &str,
    token: &str,
    now: u64,
) -> Result<Identity, LogicalError> {
    if !email_ok(email) {
        return Err(invalid(
            "JWT sub claim must be the email of the service account that signed it",
        ));
    }
    if !account_bound(role, email, None) {
        return Err(not_authorized(email));
    }
    let project = project_of(email);
    check_project(role, project)?;
    let keys = google.iam_keys(email).map_err(|e| jwt_error(e, false))?;
    let claims = match keys.verify(token, &validation(), now).await {
        Ok(c) => c,
        Err(e @ JwtError::Fetch(_)) => {
            google.forget(email);
            return Err(jwt_error(e, true));
        }
        Err(e) => return Err(jwt_error(e, true)),
    };
    check_audience(&claims, name)?;
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let lifetime = exp.saturating_sub(now);
    if lifetime > role.max_jwt_exp + CLOCK_SKEW {
        return Err(invalid(format!(
            "JWT expires in {lifetime} seconds but must expire within {} seconds for this role: \
             sign a new JWT with a shorter exp",
            role.max_jwt_exp
        )));
    }
    let mut metadata = BTreeMap::new();
    // hushd makes no IAM API call, so the numeric unique ID is not known: the email stands in.
    metadata.insert("service_account_id".into(), email.to_string());
    metadata.insert("service_account_email".into(), email.to_string());
    metadata.insert("project_id".into(), project.unwrap_or_default().to_string());
    metadata.insert("role".into(), name.to_string());
    Ok(Identity {
        metadata,
        display_name: email.to_string(),
    })
}

/// A GCE claim as text (numbers in decimal), or the error naming it.
fn ce_text(ce: &Map<String, Value>, key: &str) -> Result<String, LogicalError> {
    match ce.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(invalid(format!(
            "JWT claim google.compute_engine.{key} is missing or not a string"
        ))),
    }
}

/// `us-central1-a` -> `us-central1`.
pub fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

async fn gce(
    google: &Google,
    role: &GcpRole,
    name: &str,
    token: &str,
    now: u64,
) -> Result<Identity, LogicalError> {
    let claims = google
        .gce_keys()
        .verify(token, &validation(), now)
        .await
        .map_err(|e| jwt_error(e, false))?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if !GOOGLE_ISSUERS.contains(&iss) {
        return Err(invalid("JWT issuer is not Google (accounts.google.com)"));
    }
    check_audience(&claims, name)?;
    let ce = compute_engine(&claims).ok_or_else(|| invalid("JWT has no GCE claims"))?;
    let email = claims.get("email").and_then(Value::as_str).unwrap_or("");
    let sa_id = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if email.is_empty() {
        return Err(invalid(
            "JWT has no email claim (the instance's service account)",
        ));
    }
    if !role.bound_service_accounts.is_empty() && !account_bound(role, email, Some(sa_id)) {
        return Err(not_authorized(email));
    }
    let project_id = ce_text(ce, "project_id")?;
    let zone = ce_text(ce, "zone")?;
    if !role.bound_projects.is_empty() && !role.bound_projects.contains(&project_id) {
        return Err(invalid("instance is not in the role's bound_projects"));
    }
    // As Vault: bound_regions is looked at only when bound_zones is empty.
    if !role.bound_zones.is_empty() {
        if !role.bound_zones.contains(&zone) {
            return Err(invalid("instance zone is not in the role's bound_zones"));
        }
    } else if !role.bound_regions.is_empty()
        && !role.bound_regions.iter().any(|r| r == region_of(&zone))
    {
        return Err(invalid(
            "instance region is not in the role's bound_regions",
        ));
    }
    let instance_name = ce_text(ce, "instance_name")?;
    let mut metadata = BTreeMap::new();
    if role.role_type == RoleType::Gce {
        metadata.insert("instance_id".into(), ce_text(ce, "instance_id")?);
        metadata.insert("instance_name".into(), instance_name.clone());
        metadata.insert("project_number".into(), ce_text(ce, "project_number")?);
        metadata.insert("zone".into(), zone);
        if let Ok(t) = ce_text(ce, "instance_creation_timestamp") {
            metadata.insert("instance_creation_timestamp".into(), t);
        }
    }
    metadata.insert("project_id".into(), project_id);
    metadata.insert("service_account_id".into(), sa_id.to_string());
    metadata.insert("service_account_email".into(), email.to_string());
    metadata.insert("role".into(), name.to_string());
    let display_name = match role.role_type {
        RoleType::Gce => instance_name,
        RoleType::Iam => email.to_string(),
    };
    Ok(Identity {
        metadata,
        display_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_regions_and_emails() {
        assert_eq!(
            project_of("web@my-proj.iam.gserviceaccount.com"),
            Some("my-proj")
        );
        assert_eq!(
            project_of("my-proj@appspot.gserviceaccount.com"),
            Some("my-proj")
        );
        assert_eq!(
            project_of("123-compute@developer.gserviceaccount.com"),
            None
        );
        assert_eq!(project_of("x@.iam.gserviceaccount.com"), None);
        assert_eq!(region_of("us-central1-a"), "us-central1");
        assert_eq!(region_of("nozone"), "nozone");
        assert!(email_ok("web@p.iam.gserviceaccount.com"));
        for bad in [
            "", "web", "a@b/../c", "a b@c", "@c", "a@", "a@b..c", "a@b?x",
        ] {
            assert!(!email_ok(bad), "{bad}");
        }
    }

    #[test]
    fn audiences_need_the_vault_role_suffix() {
        let c = |aud: Value| -> Claims {
            let mut m = Map::new();
            m.insert("aud".into(), aud);
            m
        };
        for good in ["vault/web", "http://vault/web", "https://vault/web"] {
            check_audience(&c(Value::from(good)), "web").unwrap();
        }
        check_audience(&c(serde_json::json!(["x", "http://vault/web"])), "web").unwrap();
        for bad in ["vault/webx", "evilvault/web", "vault/other", ""] {
            assert!(
                check_audience(&c(Value::from(bad)), "web").is_err(),
                "{bad}"
            );
        }
        assert!(check_audience(&Map::new(), "web").is_err());
    }
}

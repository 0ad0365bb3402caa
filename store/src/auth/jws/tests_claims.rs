//! Tests of the claim helpers: Kubernetes identities, bound claims, claim mappings, user
//! claim, globs.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

fn obj(v: Value) -> Claims {
    v.as_object().unwrap().clone()
}

fn projected() -> Claims {
    obj(json!({
        "aud": ["https://kubernetes.default.svc"],
        "exp": 1_700_000_600, "iat": 1_700_000_000, "nbf": 1_700_000_000,
        "iss": "https://kubernetes.default.svc",
        "kubernetes.io": {
            "namespace": "payments",
            "pod": {"name": "api-7d9f", "uid": "pod-uid-1"},
            "serviceaccount": {"name": "api", "uid": "sa-uid-1"}
        },
        "sub": "system:serviceaccount:payments:api"
    }))
}

#[test]
fn k8s_projected_token() {
    let id = K8sIdentity::from_claims(&projected()).unwrap();
    assert_eq!(
        id,
        K8sIdentity {
            namespace: "payments".into(),
            service_account: "api".into(),
            sa_uid: "sa-uid-1".into(),
            pod_name: Some("api-7d9f".into()),
            pod_uid: Some("pod-uid-1".into()),
            secret_name: None,
        }
    );
    let md = id.metadata();
    assert_eq!(md["service_account_namespace"], "payments");
    assert_eq!(md["service_account_pod_name"], "api-7d9f");
    assert!(!md.contains_key("service_account_secret_name"));

    // Without a pod (a token bound to a secret or not bound at all).
    let mut c = projected();
    c["kubernetes.io"].as_object_mut().unwrap().remove("pod");
    let id = K8sIdentity::from_claims(&c).unwrap();
    assert_eq!((id.pod_name, id.pod_uid), (None, None));
}

#[test]
fn k8s_projected_token_refusals() {
    let mut c = projected();
    c["sub"] = json!("system:serviceaccount:payments:admin");
    assert_eq!(
        K8sIdentity::from_claims(&c),
        Err(JwtError::ClaimMismatch("sub".into()))
    );
    let mut c = projected();
    c["kubernetes.io"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert_eq!(
        K8sIdentity::from_claims(&c),
        Err(JwtError::MissingClaim("kubernetes.io.namespace".into()))
    );
    let mut c = projected();
    c["kubernetes.io"]["serviceaccount"]["name"] = json!(42);
    assert!(matches!(
        K8sIdentity::from_claims(&c),
        Err(JwtError::ClaimType(_))
    ));
    let mut c = projected();
    c["kubernetes.io"] = json!("payments");
    assert!(K8sIdentity::from_claims(&c).is_err());
    assert!(K8sIdentity::from_claims(&obj(json!({"sub": "x"}))).is_err());
}

#[test]
fn k8s_legacy_token() {
    let c = obj(json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "vault-auth-token-abc",
        "kubernetes.io/serviceaccount/service-account.name": "vault-auth",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-9",
        "sub": "system:serviceaccount:default:vault-auth"
    }));
    let id = K8sIdentity::from_claims(&c).unwrap();
    assert_eq!(id.namespace, "default");
    assert_eq!(id.service_account, "vault-auth");
    assert_eq!(id.sa_uid, "uid-9");
    assert_eq!(id.secret_name.as_deref(), Some("vault-auth-token-abc"));
    assert_eq!(id.pod_name, None);
    let mut bad = c.clone();
    bad.remove("kubernetes.io/serviceaccount/service-account.uid");
    assert_eq!(
        K8sIdentity::from_claims(&bad),
        Err(JwtError::MissingClaim(
            "kubernetes.io/serviceaccount/service-account.uid".into()
        ))
    );
}

#[test]
fn globs() {
    for (p, v) in [
        ("*", "anything"),
        ("*", ""),
        ("web-*", "web-1"),
        ("web-*", "web-"),
        ("*-prod", "api-prod"),
        ("a*b*c", "axxbyyc"),
        ("a*b*c", "abc"),
        ("exact", "exact"),
        ("**", "x"),
    ] {
        assert!(glob_match(p, v), "{p} ~ {v}");
    }
    for (p, v) in [
        ("web-*", "api-1"),
        ("*-prod", "api-dev"),
        ("a*b*c", "acb"),
        ("a*a", "a"),
        ("exact", "exact2"),
        ("exact", "Exact"),
        ("", "x"),
    ] {
        assert!(!glob_match(p, v), "{p} !~ {v}");
    }
    assert!(glob_match_any(&["db", "web-*"], "web-2"));
    assert!(!glob_match_any::<&str>(&[], "web-2"));
}

fn bound(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn bound_claims_string_and_glob() {
    let c = obj(json!({
        "email": "alice@corp.test",
        "groups": ["dev", "ops"],
        "org": {"team": "payments"},
        "verified": true,
        "level": 3
    }));
    let s = BoundClaimsType::String;
    let g = BoundClaimsType::Glob;
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"email": "alice@corp.test"})), s),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"groups": ["admin", "ops"]})), s),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"/org/team": "payments"})), s),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"verified": true, "level": 3})), s),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"email": "*@corp.test"})), s),
        Err(JwtError::ClaimMismatch("email".into()))
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"email": "*@corp.test"})), g),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"email": "*@evil.test"})), g),
        Err(JwtError::ClaimMismatch("email".into()))
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"groups": "op*"})), g),
        Ok(())
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"groups": ["admin"]})), s),
        Err(JwtError::ClaimMismatch("groups".into()))
    );
    assert_eq!(
        match_bound_claims(&c, &bound(json!({"missing": "x"})), g),
        Err(JwtError::MissingClaim("missing".into()))
    );
    // Every bound claim must hold.
    assert!(match_bound_claims(
        &c,
        &bound(json!({"email": "alice@corp.test", "/org/team": "billing"})),
        s
    )
    .is_err());
    assert_eq!(BoundClaimsType::parse("glob"), Some(g));
    assert_eq!(BoundClaimsType::parse(""), Some(s));
    assert_eq!(BoundClaimsType::parse("regex"), None);
}

#[test]
fn claim_mappings_and_user_claim() {
    let c = obj(json!({
        "sub": "alice", "uid": 1001, "admin": false,
        "org": {"team": "payments"}, "groups": ["a"]
    }));
    let mut m = BTreeMap::new();
    m.insert("sub".to_string(), "user".to_string());
    m.insert("uid".to_string(), "uid".to_string());
    m.insert("/org/team".to_string(), "team".to_string());
    m.insert("admin".to_string(), "is_admin".to_string());
    m.insert("absent".to_string(), "nothing".to_string());
    let md = claim_mappings(&c, &m).unwrap();
    assert_eq!(md.len(), 4);
    assert_eq!(md["user"], "alice");
    assert_eq!(md["uid"], "1001");
    assert_eq!(md["team"], "payments");
    assert_eq!(md["is_admin"], "false");
    m.insert("groups".to_string(), "groups".to_string());
    assert_eq!(
        claim_mappings(&c, &m),
        Err(JwtError::ClaimType("groups".into()))
    );

    assert_eq!(user_claim(&c, "sub"), Ok("alice".into()));
    assert_eq!(user_claim(&c, "uid"), Ok("1001".into()));
    assert_eq!(user_claim(&c, "/org/team"), Ok("payments".into()));
    assert_eq!(
        user_claim(&c, "email"),
        Err(JwtError::MissingClaim("email".into()))
    );
    assert_eq!(
        user_claim(&c, "groups"),
        Err(JwtError::ClaimType("groups".into()))
    );
}

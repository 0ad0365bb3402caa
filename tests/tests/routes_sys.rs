//! Every `sys/` route of the issue with a good and a bad case, over real HTTP against a real
//! hushd: init, unseal (progress, reset), seal, seal-status, health (codes and query
//! parameters), rotate, key-status, mounts (list, enable, read, tune, disable), policies (ACL
//! and legacy, HCL and JSON), capabilities (self, of another token, sudo paths), audit devices
//! (and the audit log's hash chain checked by `hush audit verify` after edits, deletions and
//! reorders, and across a SIGHUP rotation); plus malformed bodies, wrong methods, traversal,
//! oversize bodies and the sealed store on these routes.

use std::path::Path;
use std::process::Command;

use hush_tests::{bin, http_client, Hushd};
use serde_json::json;

const LIMIT: usize = 32 * 1024 * 1024;

async fn fresh() -> Hushd {
    Hushd::start(
        &["--storage", "inmem", "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await
}

/// `hush audit verify PATH`: (exit code, stdout and stderr).
fn audit_verify(path: &Path) -> (i32, String) {
    let out = Command::new(bin("hush"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[tokio::test]
async fn init_unseal_seal_and_health_good_and_bad() {
    let mut h = fresh().await;

    // Not initialised: health 501 (or the uninitcode), unseal refused, init status false.
    let (s, b) = h.call("GET", "sys/health", None).await;
    assert_eq!(s, 501, "{b}");
    assert_eq!(b["initialized"], false);
    let (s, _) = h.call("GET", "sys/health?uninitcode=299", None).await;
    assert_eq!(s, 299);
    let (s, b) = h.call("GET", "sys/init", None).await;
    assert_eq!((s, b["initialized"].clone()), (200, json!(false)));
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"key": "abcd"})))
        .await;
    assert_eq!(s, 400, "unseal before init: {b}");
    let (s, b) = h.call("GET", "secret/data/x", None).await;
    assert_eq!(s, 503, "{b}");

    // Bad init: malformed JSON, wrong types, threshold above shares, PGP, wrong method.
    let (s, b) = h
        .call_body(
            None,
            "PUT",
            "sys/init",
            Some("application/json"),
            "{\"secret_shares\":",
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("JSON"), "{b}");
    for body in [
        json!({"secret_shares": "three", "secret_threshold": 2}),
        json!({"secret_shares": 3, "secret_threshold": [2]}),
        json!({"secret_shares": 2, "secret_threshold": 3}),
        json!({"secret_shares": 3}),
        json!({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["x", "y", "z"]}),
    ] {
        let (s, b) = h.call("PUT", "sys/init", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(b["errors"].is_array(), "{b}");
    }
    let (s, b) = h.call("DELETE", "sys/init", None).await;
    assert_eq!(s, 405, "{b}");
    let (_, b) = h.call("GET", "sys/init", None).await;
    assert_eq!(b["initialized"], false, "bad inits changed nothing");

    // Good init: 3 shares, threshold 2; the store stays sealed.
    let (s, init) = h
        .call(
            "POST",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(s, 200, "{init}");
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    let root = init["root_token"].as_str().unwrap().to_string();

    // Sealed: health 503 (or sealedcode; standbyok changes nothing), routes 503.
    let (s, b) = h.call("GET", "sys/health", None).await;
    assert_eq!((s, b["sealed"].clone()), (503, json!(true)), "{b}");
    let (s, _) = h.call("GET", "sys/health?sealedcode=298", None).await;
    assert_eq!(s, 298);
    let (s, _) = h.call("GET", "sys/health?standbyok=true", None).await;
    assert_eq!(s, 503);
    h.token = Some(root.clone());
    for (m, p) in [
        ("GET", "sys/mounts"),
        ("GET", "auth/token/lookup-self"),
        ("GET", "sys/policies/acl"),
        ("PUT", "sys/rotate"),
    ] {
        let (s, b) = h.call(m, p, None).await;
        assert_eq!(s, 503, "{m} {p}: {b}");
        assert!(b["errors"][0].as_str().unwrap().contains("sealed"), "{b}");
    }

    // seal-status: good GET, bad method.
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(
        (s, b["sealed"].clone(), b["t"].clone(), b["n"].clone()),
        (200, json!(true), json!(2), json!(3))
    );
    let (s, _) = h.call("PUT", "sys/seal-status", Some(json!({}))).await;
    assert_eq!(s, 405);

    // Unseal: progress, reset, bad key shapes, then the threshold.
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"key": keys[0]})))
        .await;
    assert_eq!((s, b["progress"].clone()), (200, json!(1)), "{b}");
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"reset": true})))
        .await;
    assert_eq!(
        (s, b["progress"].clone(), b["sealed"].clone()),
        (200, json!(0), json!(true)),
        "{b}"
    );
    for body in [
        json!({"key": 12345}),
        json!({"key": "zz-not-hex-or-base64!"}),
        json!({"reset": "maybe"}),
        json!({}),
    ] {
        let (s, b) = h.call("PUT", "sys/unseal", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h.call("GET", "sys/unseal", None).await;
    assert_eq!(s, 405);
    let (_, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["progress"], 0, "bad keys made no progress: {b}");
    for k in &keys[1..] {
        h.call("PUT", "sys/unseal", Some(json!({ "key": k }))).await;
    }
    let (_, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["sealed"], false, "{b}");

    // Active: 200, activecode, standbyok, HEAD, and a bad code.
    let (s, b) = h.call("GET", "sys/health", None).await;
    assert_eq!(
        (s, b["initialized"].clone(), b["sealed"].clone()),
        (200, json!(true), json!(false))
    );
    let (s, _) = h.call("GET", "sys/health?standbyok=true", None).await;
    assert_eq!(s, 200);
    let (s, _) = h.call("GET", "sys/health?activecode=204", None).await;
    assert_eq!(s, 204);
    let r = h
        .client
        .head(format!("{}/v1/sys/health", h.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, b) = h.call("GET", "sys/health?activecode=abc", None).await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = h.call("PUT", "sys/health", Some(json!({}))).await;
    assert_eq!(s, 405);

    // Seal: no token, forged, a token without sudo, wrong method; then root.
    let narrow = h
        .token_with_policy(
            "seal-update",
            "path \"sys/seal\" { capabilities = [\"update\"] }",
        )
        .await;
    for tok in [
        None,
        Some("hvs.forgedforgedforgedforged1"),
        Some(narrow.as_str()),
    ] {
        let (s, b) = h.call_as(tok, "PUT", "sys/seal", None).await;
        assert_eq!(s, 403, "{tok:?}: {b}");
    }
    let (s, b) = h.call("GET", "sys/seal", None).await;
    assert_eq!(s, 405, "{b}");
    let (s, _) = h.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!((s, b["sealed"].clone()), (200, json!(true)));
    let (s, _) = h.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn rotate_and_key_status_good_and_bad() {
    let h = Hushd::dev().await;
    let (s, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!((s, b["data"]["term"].clone()), (200, json!(1)), "{b}");
    let (s, _) = h.call("PUT", "sys/rotate", None).await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!((s, b["term"].clone()), (200, json!(2)), "{b}");

    // Without sudo (read/update only), without a token, and with the wrong method.
    let narrow = h
        .token_with_policy(
            "keys-no-sudo",
            "path \"sys/rotate\" { capabilities = [\"update\"] }\npath \"sys/key-status\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, _) = h.call_as(Some(&narrow), "PUT", "sys/rotate", None).await;
    assert_eq!(s, 403);
    let (s, _) = h
        .call_as(Some(&narrow), "GET", "sys/key-status", None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = h.call_as(None, "PUT", "sys/rotate", None).await;
    assert_eq!(s, 403);
    let (s, b) = h.call("GET", "sys/rotate", None).await;
    assert_eq!(s, 405, "{b}");
    let (s, b) = h.call("PUT", "sys/key-status", Some(json!({}))).await;
    assert_eq!(s, 405, "{b}");
    let (_, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!(b["term"], 2, "refused rotations changed nothing: {b}");

    // A sudo policy is enough without root.
    let sudo = h
        .token_with_policy(
            "keys-sudo",
            "path \"sys/rotate\" { capabilities = [\"update\", \"sudo\"] }\npath \"sys/key-status\" { capabilities = [\"read\", \"sudo\"] }",
        )
        .await;
    let (s, _) = h.call_as(Some(&sudo), "PUT", "sys/rotate", None).await;
    assert_eq!(s, 204);
    let (_, b) = h.call_as(Some(&sudo), "GET", "sys/key-status", None).await;
    assert_eq!(b["term"], 3, "{b}");
}

#[tokio::test]
async fn mounts_list_enable_tune_disable_good_and_bad() {
    let h = Hushd::dev().await;
    // Enable kv v2 (both spellings), read it back, use it.
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/apps",
            Some(
                json!({"type": "kv", "options": {"version": "2"}, "description": "apps",
                        "config": {"default_lease_ttl": "1h", "max_lease_ttl": "4h"}}),
            ),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/mounts", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["apps/"]["type"], "kv", "{b}");
    assert_eq!(b["apps/"]["description"], "apps", "top level copy: {b}");
    assert!(b["data"]["secret/"].is_object() && b["data"]["sys/"].is_object());
    let (s, b) = h.call("GET", "sys/mounts/apps", None).await;
    assert_eq!((s, b["data"]["type"].clone()), (200, json!("kv")), "{b}");
    let (s, b) = h.call("GET", "sys/mounts/apps/tune", None).await;
    assert_eq!(
        (s, b["data"]["default_lease_ttl"].clone()),
        (200, json!(3600)),
        "{b}"
    );
    let (s, _) = h
        .call("POST", "apps/data/k", Some(json!({"data": {"a": "b"}})))
        .await;
    assert_eq!(s, 200);

    // Bad enable: malformed JSON, wrong types, unknown type, kv v3, taken path, sys, nested.
    let (s, b) = h
        .call_body(
            Some("root"),
            "POST",
            "sys/mounts/bad",
            Some("application/json"),
            "{\"type\":\"kv\"",
        )
        .await;
    assert_eq!(s, 400, "{b}");
    for (path, body) in [
        ("bad", json!({"type": 5})),
        ("bad", json!({"type": "kv-v2", "config": "1h"})),
        (
            "bad",
            json!({"type": "kv-v2", "config": {"max_lease_ttl": "soon"}}),
        ),
        ("bad", json!({"type": "transit"})),
        ("bad", json!({"type": "kv", "options": {"version": "3"}})),
        ("bad", json!({})),
        ("apps", json!({"type": "kv-v2"})),
        ("secret", json!({"type": "kv-v2"})),
        ("sys", json!({"type": "kv-v2"})),
        ("apps/inner", json!({"type": "kv-v2"})),
    ] {
        let (s, b) = h
            .call("POST", &format!("sys/mounts/{path}"), Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{path} {body}: {b}");
        assert!(b["errors"][0].is_string(), "{b}");
    }
    let (s, b) = h.call("GET", "sys/mounts/bad", None).await;
    assert_eq!(s, 400, "no such mount: {b}");

    // Tune: good, then bad values, unknown mount, wrong types.
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/apps/tune",
            Some(json!({"max_lease_ttl": "8h", "description": "tuned"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (_, b) = h.call("GET", "sys/mounts/apps/tune", None).await;
    assert_eq!(
        (
            b["data"]["max_lease_ttl"].clone(),
            b["data"]["description"].clone()
        ),
        (json!(28800), json!("tuned"))
    );
    for (path, body) in [
        ("apps", json!({"default_lease_ttl": "abc"})),
        ("apps", json!({"default_lease_ttl": "9h"})),
        ("apps", json!({"options": {"version": "1"}})),
        ("nowhere", json!({"max_lease_ttl": "1h"})),
    ] {
        let (s, b) = h
            .call(
                "POST",
                &format!("sys/mounts/{path}/tune"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{path} {body}: {b}");
    }
    let (s, _) = h.call("GET", "sys/mounts/nowhere/tune", None).await;
    assert_eq!(s, 400);
    let (s, _) = h.call("DELETE", "sys/mounts/apps/tune", None).await;
    assert_eq!(s, 405);

    // Without permission: a token that can only read mounts.
    let reader = h
        .token_with_policy(
            "mount-reader",
            "path \"sys/mounts\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, _) = h.call_as(Some(&reader), "GET", "sys/mounts", None).await;
    assert_eq!(s, 200);
    for (m, p) in [
        ("POST", "sys/mounts/evil"),
        ("DELETE", "sys/mounts/apps"),
        ("POST", "sys/mounts/apps/tune"),
    ] {
        let (s, _) = h
            .call_as(Some(&reader), m, p, Some(json!({"type": "kv-v2"})))
            .await;
        assert_eq!(s, 403, "{m} {p}");
    }
    let (s, _) = h.call("DELETE", "sys/mounts", None).await;
    assert_eq!(s, 405);

    // Disable: good (data gone with it), then sys/ refused.
    let (s, _) = h.call("DELETE", "sys/mounts/apps", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "apps/data/k", None).await;
    assert_eq!(s, 404);
    let (_, b) = h.call("GET", "sys/mounts", None).await;
    assert!(b["data"]["apps/"].is_null(), "{b}");
    let (s, b) = h.call("DELETE", "sys/mounts/sys", None).await;
    assert_eq!(s, 400, "{b}");
    // Re-enabling the path gives an empty engine.
    h.call("POST", "sys/mounts/apps", Some(json!({"type": "kv-v2"})))
        .await;
    let (s, _) = h.call("GET", "apps/data/k", None).await;
    assert_eq!(s, 404, "old data must not come back");
}

#[tokio::test]
async fn policies_hcl_good_and_bad() {
    let h = Hushd::dev().await;
    let hcl = "path \"secret/data/a/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/reader",
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/policies/acl/reader", None).await;
    assert_eq!((s, b["data"]["policy"].as_str()), (200, Some(hcl)));
    let (s, b) = h
        .call("PUT", "sys/policy/legacy", Some(json!({ "rules": hcl })))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/policy/legacy", None).await;
    assert_eq!((s, b["rules"].as_str()), (200, Some(hcl)), "{b}");
    let (s, b) = h.call("GET", "sys/policy", None).await;
    assert_eq!(s, 200);
    for name in ["default", "legacy", "reader", "root"] {
        assert!(
            b["policies"].as_array().unwrap().contains(&json!(name)),
            "{b}"
        );
    }
    // Bad: syntax, unknown capability, unenforceable key, missing body, root and default rules.
    // (Listing, reading a missing policy and deleting are in `policies_json_good_and_bad`.)
    for (policy, want) in [
        ("path \"x\" { capabilities = [", "parse"),
        ("path \"x\" { capabilities = [\"fly\"] }", "fly"),
        (
            "path \"x\" {\n capabilities = [\"read\"]\n allowed_parameters = {}\n}",
            "allowed_parameters",
        ),
    ] {
        let (s, b) = h
            .call(
                "PUT",
                "sys/policies/acl/bad",
                Some(json!({ "policy": policy })),
            )
            .await;
        assert_eq!(s, 400, "{policy}: {b}");
        let msg = b["errors"][0].as_str().unwrap().to_lowercase();
        assert!(msg.contains(want), "{policy}: {msg}");
    }
    let (s, _) = h.call("PUT", "sys/policies/acl/bad", Some(json!({}))).await;
    assert_eq!(s, 400);
    let (s, _) = h
        .call(
            "PUT",
            "sys/policies/acl/root",
            Some(json!({ "policy": hcl })),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h.call("DELETE", "sys/policies/acl/default", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn policies_json_good_and_bad() {
    let h = Hushd::dev().await;
    let json_policy =
        json!({"path": {"secret/data/j/*": {"capabilities": ["read", "list"]}}}).to_string();
    for route in ["sys/policies/acl/jpol", "sys/policy/jlegacy"] {
        let (s, b) = h
            .call("PUT", route, Some(json!({ "policy": json_policy })))
            .await;
        assert_eq!(s, 204, "{route}: {b}");
    }
    let (s, b) = h.call("GET", "sys/policies/acl/jpol", None).await;
    assert_eq!(
        (s, b["data"]["policy"].as_str()),
        (200, Some(json_policy.as_str()))
    );
    let (s, b) = h.call("GET", "sys/policy/jlegacy", None).await;
    assert_eq!((s, b["rules"].as_str()), (200, Some(json_policy.as_str())));
    let (s, b) = h.call("LIST", "sys/policies/acl", None).await;
    assert_eq!(s, 200);
    let keys = b["data"]["keys"].as_array().unwrap();
    assert!(keys.contains(&json!("jpol")) && keys.contains(&json!("jlegacy")));
    let (s, b) = h.call("GET", "sys/policies/acl?list=true", None).await;
    assert_eq!(s, 200, "{b}");

    // The JSON policy is enforced.
    let (_, b) = h
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["jpol"]})),
        )
        .await;
    let tok = b["auth"]["client_token"].as_str().unwrap().to_string();
    h.call("POST", "secret/data/j/a", Some(json!({"data": {"k": "v"}})))
        .await;
    let (s, _) = h.call_as(Some(&tok), "GET", "secret/data/j/a", None).await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "secret/data/j/a",
            Some(json!({"data": {"k": "w"}})),
        )
        .await;
    assert_eq!(s, 403);

    // Bad: broken JSON policy, wrong type for the policy field, malformed body, no body.
    for body in [
        json!({"policy": "{\"path\": {\"x\": {\"capabilities\": [\"read\"]}"}),
        json!({"policy": "{\"path\": {\"x\": {\"capabilities\": \"read\"}}}"}),
        json!({"policy": 42}),
        json!({"policy": ""}),
    ] {
        let (s, b) = h
            .call("PUT", "sys/policies/acl/broken", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_body(
            Some("root"),
            "PUT",
            "sys/policies/acl/broken",
            Some("application/json"),
            "{\"policy\": ",
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h.call("GET", "sys/policies/acl/broken", None).await;
    assert_eq!(s, 404, "nothing was stored");
    let (s, _) = h.call("GET", "sys/policy/broken", None).await;
    assert_eq!(s, 404);
    let (s, _) = h
        .call("PATCH", "sys/policies/acl/jpol", Some(json!({})))
        .await;
    assert_eq!(s, 405);

    // Without permission: the token above cannot read, write or delete policies.
    for (m, p) in [
        ("GET", "sys/policies/acl/jpol"),
        ("PUT", "sys/policies/acl/jpol"),
        ("DELETE", "sys/policy/jlegacy"),
        ("LIST", "sys/policies/acl"),
    ] {
        let (s, _) = h
            .call_as(Some(&tok), m, p, Some(json!({"policy": "path \"*\" {}"})))
            .await;
        assert_eq!(s, 403, "{m} {p}");
    }

    // Delete through both routes; legacy delete of a built-in is refused.
    let (s, _) = h.call("DELETE", "sys/policy/jlegacy", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "sys/policy/jlegacy", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("DELETE", "sys/policies/acl/jpol", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("DELETE", "sys/policy/default", None).await;
    assert_eq!(s, 400);
    let (s, _) = h.call("DELETE", "sys/policies/acl/root", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn capabilities_self_good_and_bad() {
    let h = Hushd::dev().await;
    let tok = h
        .token_with_policy(
            "caps",
            "path \"secret/data/c/*\" { capabilities = [\"read\", \"update\"] }",
        )
        .await;
    let (s, b) = h
        .call_as(
            Some(&tok),
            "POST",
            "sys/capabilities-self",
            Some(json!({"path": "secret/data/c/x"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["capabilities"], json!(["read", "update"]));
    assert_eq!(b["data"]["capabilities"], json!(["read", "update"]));
    let (_, b) = h
        .call(
            "POST",
            "sys/capabilities-self",
            Some(json!({"paths": ["anything"]})),
        )
        .await;
    assert_eq!(b["capabilities"], json!(["root"]), "{b}");

    for body in [json!({}), json!({"paths": [1, 2]}), json!({"paths": 7})] {
        let (s, b) = h
            .call_as(
                Some(&tok),
                "POST",
                "sys/capabilities-self",
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_as(
            Some("hvs.forgedforgedforgedforged1"),
            "POST",
            "sys/capabilities-self",
            Some(json!({"path": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = h
        .call_as(
            None,
            "POST",
            "sys/capabilities-self",
            Some(json!({"path": "x"})),
        )
        .await;
    assert_eq!(s, 403);
    // The default policy grants only update here: a read is refused before routing.
    let (s, _) = h
        .call_as(Some(&tok), "GET", "sys/capabilities-self", None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = h.call("GET", "sys/capabilities-self", None).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn capabilities_and_sudo() {
    let h = Hushd::dev().await;
    let hcl = r#"
path "secret/data/app/*" { capabilities = ["read", "create"] }
path "secret/data/app/admin" { capabilities = ["deny"] }
path "sys/policies/acl/*" { capabilities = ["read", "update"] }
"#;
    h.call(
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": hcl })),
    )
    .await;
    let (s, b) = h
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["app"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let tok = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, b) = h
        .call_as(Some(&tok), "POST", "sys/capabilities-self", Some(json!({"paths": ["secret/data/app/x", "secret/data/app/admin", "secret/data/other"]})))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["secret/data/app/x"], json!(["create", "read"]));
    assert_eq!(b["data"]["secret/data/app/admin"], json!(["deny"]));
    assert_eq!(b["data"]["secret/data/other"], json!(["deny"]));
    let (s, b) = h
        .call(
            "POST",
            "sys/capabilities",
            Some(json!({"token": tok, "path": "secret/data/app/x"})),
        )
        .await;
    assert_eq!(
        (s, b["capabilities"].clone()),
        (200, json!(["create", "read"])),
        "{b}"
    );
    // create but not update: a new key is allowed, overwriting it is not (existence check).
    let (s, b) = h
        .call_as(
            Some(&tok),
            "POST",
            "secret/data/app/new",
            Some(json!({"data": {"a": "1"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "secret/data/app/new",
            Some(json!({"data": {"a": "2"}})),
        )
        .await;
    assert_eq!(s, 403);
    // sudo paths: the token has update on sys/policies but no sudo anywhere.
    for (m, p) in [
        ("PUT", "sys/rotate"),
        ("GET", "sys/key-status"),
        ("PUT", "sys/seal"),
        ("GET", "sys/audit"),
    ] {
        let (s, _) = h.call_as(Some(&tok), m, p, None).await;
        assert_eq!(s, 403, "{m} {p}");
    }
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "sys/mounts/x",
            Some(json!({"type": "kv-v2"})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn audit_enable_list_disable_good_and_bad() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/main",
            Some(json!({"type": "file", "description": "main log",
                        "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/audit", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["main/"]["description"], "main log", "{b}");
    assert_eq!(b["main/"]["type"], "file", "top level copy: {b}");
    h.call("GET", "sys/mounts", None).await;
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("sys/mounts"));

    // Bad: malformed JSON, unknown type, no file_path, unwritable path, no type, wrong option
    // types, the path of another device, wrong method, no sudo, no token.
    let (s, _) = h
        .call_body(
            Some("root"),
            "PUT",
            "sys/audit/x",
            Some("application/json"),
            "{\"type\": \"file\",",
        )
        .await;
    assert_eq!(s, 400);
    let other_log = dir.path().join("x.log");
    for body in [
        json!({"type": "syslog"}),
        json!({"type": "file"}),
        json!({"type": "file", "options": {"file_path": "/nonexistent-dir/x/audit.log"}}),
        json!({"options": {"file_path": other_log}}),
        json!({"type": "file", "options": "file_path=/tmp/x"}),
        json!({"type": "file", "options": {"file_path": ["/tmp/x"]}}),
        json!({"type": 7}),
    ] {
        let (s, b) = h.call("PUT", "sys/audit/x", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call(
            "PUT",
            "sys/audit/x",
            Some(json!({"type": "file", "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(s, 400, "path in use");
    let (s, _) = h.call("GET", "sys/audit/main", None).await;
    assert_eq!(s, 405);
    let narrow = h
        .token_with_policy(
            "audit-no-sudo",
            "path \"sys/audit*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }",
        )
        .await;
    for (m, p) in [
        ("GET", "sys/audit"),
        ("PUT", "sys/audit/other"),
        ("DELETE", "sys/audit/main"),
    ] {
        let other = dir.path().join("other.log");
        let body = json!({"type": "file", "options": {"file_path": other}});
        let (s, _) = h.call_as(Some(&narrow), m, p, Some(body.clone())).await;
        assert_eq!(s, 403, "{m} {p}");
        let (s, _) = h.call_as(None, m, p, Some(body)).await;
        assert_eq!(s, 403, "{m} {p} without a token");
    }
    assert!(!dir.path().join("other.log").exists());

    let (s, _) = h.call("DELETE", "sys/audit/main", None).await;
    assert_eq!(s, 204);
    let (_, b) = h.call("GET", "sys/audit", None).await;
    assert_eq!(b["data"], json!({}), "{b}");
    let before = std::fs::read_to_string(&log).unwrap();
    h.call("GET", "sys/mounts", None).await;
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        before,
        "a disabled device writes nothing"
    );
}

#[tokio::test]
async fn audit_log_hides_secrets_and_its_chain_verifies() {
    let (h, dir, log) = Hushd::dev_with_audit_file().await;

    let (_, b) = h
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    let tok = b["auth"]["client_token"].as_str().unwrap().to_string();
    for i in 0..5 {
        let (s, _) = h
            .call_as(
                Some(&tok),
                "POST",
                &format!("secret/data/a{i}"),
                Some(json!({"data": {"pw": format!("topsecret-{i}")}})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = h
        .call_as(
            Some("hvs.wrongwrongwrongwrongwrong"),
            "GET",
            "secret/data/a0",
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call(
            "POST",
            "sys/audit-hash/file",
            Some(json!({"input": "topsecret-3"})),
        )
        .await;
    assert_eq!(s, 200);
    let hash = b["data"]["hash"].as_str().unwrap().to_string();
    assert!(hash.starts_with("hmac-sha256:"));
    let (s, _) = h
        .call("POST", "sys/audit-hash/nope", Some(json!({"input": "x"})))
        .await;
    assert_eq!(s, 400);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("topsecret"), "plaintext in audit log");
    assert!(!text.contains(&tok), "token in audit log");
    assert!(
        !text.contains("\"client_token\":\"root\""),
        "root token in audit log"
    );
    assert!(text.contains(&hash));
    assert!(text.contains("permission denied"), "denied request audited");
    let (code, out) = audit_verify(&log);
    assert_eq!(code, 0, "{out}");

    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 12);
    let write = |name: &str, lines: &[String]| {
        let p = dir.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let owned: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let mut edited = owned.clone();
    let victim = (1..owned.len() - 1)
        .find(|&i| owned[i].contains("secret/data/a2"))
        .unwrap();
    edited[victim] = edited[victim].replacen("secret/data/a2", "secret/data/a9", 1);
    assert_ne!(edited[victim], owned[victim]);
    let mut deleted = owned.clone();
    deleted.remove(6);
    let mut reordered = owned.clone();
    reordered.swap(7, 8);
    for (name, lines, bad_line) in [
        ("edited", edited, victim + 2),
        ("deleted", deleted, 7),
        ("reordered", reordered, 8),
    ] {
        let (code, out) = audit_verify(&write(name, &lines));
        assert_ne!(code, 0, "{name}: {out}");
        assert!(out.contains(&format!("line {bad_line}")), "{name}: {out}");
    }
}

#[tokio::test]
async fn sighup_reopens_audit_files_for_log_rotation() {
    let (mut h, dir, log) = Hushd::dev_with_audit_file().await;
    h.call("GET", "sys/mounts", None).await;
    // logrotate: move the file away, then SIGHUP.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let kept = std::fs::read_to_string(&rotated).unwrap();
    assert!(kept.contains("sys/mounts"));
    let pid = h.child.id().to_string();
    let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(st.success());
    // The signal is handled asynchronously: poll with requests until the new file appears.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new audit file after SIGHUP: {}",
            h.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        h.call("GET", "sys/key-status", None).await;
    }
    let (s, _) = h.call("GET", "sys/policies/acl", None).await;
    assert_eq!(s, 200, "hushd still serves after SIGHUP");
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(fresh.contains("sys/policies/acl"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.starts_with(&kept),
        "the rotated file keeps its lines intact"
    );
    assert!(
        !old.contains("sys/policies/acl"),
        "new lines go to the new file"
    );
    // Each file verifies on its own.
    for f in [&rotated, &log] {
        let (code, out) = audit_verify(f);
        assert_eq!(code, 0, "{}: {out}", f.display());
    }
    assert!(
        h.child.try_wait().unwrap().is_none(),
        "SIGHUP did not stop hushd"
    );
}

#[tokio::test]
async fn sys_paths_refuse_traversal_oversize_and_odd_methods() {
    let h = Hushd::dev().await;
    for bad in [
        "/v1/sys/../secret/data/x",
        "/v1/sys/%2e%2e/secret/data/x",
        "/v1/sys/mounts/%2E%2E/sys",
        "/v1/sys//mounts",
        "/v1/sys/policies/acl/./root",
    ] {
        let (s, b) = h.raw_get(bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b.contains("\"errors\""), "{b}");
    }
    let (s, b) = h.oversize("PUT", "sys/policies/acl/big", LIMIT).await;
    assert_eq!(s, 413, "{b}");
    assert!(b.contains("\"errors\""), "{b}");
    let (s, _) = h.oversize("PUT", "sys/init", LIMIT).await;
    assert_eq!(s, 413);
    let (s, _) = h.call("GET", "sys/policies/acl/big", None).await;
    assert_eq!(s, 404);
    for m in ["OPTIONS", "TRACE", "BREW"] {
        let (s, _) = h.call(m, "sys/mounts", None).await;
        assert_eq!(s, 405, "{m}");
    }
    let (s, b) = h.call("GET", "sys/no-such-endpoint", None).await;
    assert_eq!(s, 404, "{b}");
}

/// Found by schemathesis: a second `sys/init` (no token needed) answered 400 but sealed the
/// running store on its way out (the failed init fell through to init's closing seal).
#[tokio::test]
async fn a_second_init_is_refused_and_leaves_the_store_unsealed() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call_as(
            None,
            "POST",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("already initialized"),
        "{b}"
    );
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!((s, &b["sealed"]), (200, &json!(false)), "{b}");
    let (s, b) = h
        .call(
            "POST",
            "secret/data/still",
            Some(json!({"data": {"up": 1}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

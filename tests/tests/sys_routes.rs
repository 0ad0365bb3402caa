//! sys/ policy, capability and audit routes over HTTP, each with good and bad input, and the
//! audit log's hash chain checked by `hush audit verify` after edits, deletions and reorders.

use std::process::Command;

use hush_tests::{bin, Hushd};
use serde_json::json;

#[tokio::test]
async fn policy_routes_good_and_bad() {
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
    let (s, b) = h.call("LIST", "sys/policies/acl", None).await;
    assert_eq!(s, 200);
    assert!(b["data"]["keys"]
        .as_array()
        .unwrap()
        .contains(&json!("reader")));

    // Bad: syntax, unknown capability, unenforceable key, missing body, root and default rules.
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
    let (s, _) = h.call("GET", "sys/policies/acl/missing", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("DELETE", "sys/policies/acl/reader", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "sys/policies/acl/reader", None).await;
    assert_eq!(s, 404);
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
    let (s, _) = h
        .call_as(Some(&tok), "POST", "sys/capabilities-self", Some(json!({})))
        .await;
    assert_eq!(s, 400);
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
async fn audit_routes_and_chain_verification() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    // Bad: unknown type, missing file_path, unwritable path, missing type.
    for body in [
        json!({"type": "syslog"}),
        json!({"type": "file"}),
        json!({"type": "file", "options": {"file_path": "/nonexistent-dir/x/audit.log"}}),
        json!({"options": {"file_path": log}}),
    ] {
        let (s, b) = h.call("PUT", "sys/audit/file", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(s, 400, "path in use");
    let (s, b) = h.call("GET", "sys/audit", None).await;
    assert_eq!(
        (s, b["data"]["file/"]["type"].clone()),
        (200, json!("file")),
        "{b}"
    );

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
    let verify = |path: &std::path::Path| {
        let out = Command::new(bin("hush"))
            .args(["audit", "verify"])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = verify(&log);
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
        let (code, out) = verify(&write(name, &lines));
        assert_ne!(code, 0, "{name}: {out}");
        assert!(out.contains(&format!("line {bad_line}")), "{name}: {out}");
    }

    let (s, _) = h.call("DELETE", "sys/audit/file", None).await;
    assert_eq!(s, 204);
    let (_, b) = h.call("GET", "sys/audit", None).await;
    assert_eq!(b["data"], json!({}), "{b}");
}

//! `sys/policies/password` over real HTTP against a real hushd: write, read, list, delete,
//! generate (a few hundred draws, each checked against the policy), every bad policy a 400
//! with Vault's message, the wrong methods, ACL, and the audit log holding each generated
//! password only as an HMAC.

use std::collections::BTreeSet;

use hush_store::logical::password::PasswordPolicy;
use hush_tests::Hushd;
use serde_json::{json, Value};

const POLICY: &str = r#"length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 2
}
rule "charset" {
  charset = "!@#$%^&*-_"
  min-chars = 1
}
"#;

/// Draws over HTTP; the 10,000-draw check runs on the generator itself
/// (`logical::password` unit tests), which is what each of these calls.
const HTTP_DRAWS: usize = 400;

fn errors(b: &Value) -> String {
    b["errors"][0].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn write_read_list_generate_and_delete() {
    let (h, _dir, log) = Hushd::dev_with_audit_file().await;

    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/password/app",
            Some(json!({"policy": POLICY})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/policies/password/app", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["policy"], POLICY);
    let (s, b) = h.call("LIST", "sys/policies/password", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["app"]));

    let policy = PasswordPolicy::parse(POLICY).unwrap();
    let mut drawn = BTreeSet::new();
    let mut chars = BTreeSet::new();
    for _ in 0..HTTP_DRAWS {
        let (s, b) = h
            .call("GET", "sys/policies/password/app/generate", None)
            .await;
        assert_eq!(s, 200, "{b}");
        let pw = b["data"]["password"].as_str().unwrap().to_string();
        assert!(policy.satisfied_by(&pw), "{pw} breaks the policy");
        chars.extend(pw.chars());
        drawn.insert(pw);
    }
    assert_eq!(drawn.len(), HTTP_DRAWS, "no password twice");
    assert_eq!(
        chars.into_iter().collect::<Vec<_>>(),
        policy.charset(),
        "every allowed character appears over the draws"
    );

    // The audit log has every generate answer, with the password as an HMAC only.
    let text = std::fs::read_to_string(&log).unwrap();
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["type"] == "response" && e["request"]["path"] == "sys/policies/password/app/generate"
        })
        .collect();
    assert_eq!(answers.len(), HTTP_DRAWS);
    for a in &answers {
        let hashed = a["response"]["data"]["password"].as_str().unwrap();
        assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    }
    for pw in &drawn {
        assert!(!text.contains(pw.as_str()), "a password in the audit log");
    }
    // ... and hushd's own log holds none.
    let stderr = h.stderr();
    assert!(drawn.iter().all(|pw| !stderr.contains(pw.as_str())));

    let (s, _) = h.call("DELETE", "sys/policies/password/app", None).await;
    assert_eq!(s, 204);
    for path in [
        "sys/policies/password/app",
        "sys/policies/password/app/generate",
    ] {
        let (s, b) = h.call("GET", path, None).await;
        assert_eq!(s, 404, "{path}: {b}");
        assert_eq!(errors(&b), "policy does not exist");
    }
    let (s, b) = h.call("LIST", "sys/policies/password", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!([]));
}

#[tokio::test]
async fn bad_policies_are_400s_and_wrong_methods_405() {
    let h = Hushd::dev().await;
    let rule =
        |min: usize| format!("rule \"charset\" {{\n  charset = \"abc\"\n  min-chars = {min}\n}}\n");
    let cases: Vec<(Value, String)> = vec![
        (json!({}), "missing policy".into()),
        (json!({"policy": ""}), "missing policy".into()),
        (json!({"policy": "length = = 3"}), "invalid password policy: unable to decode".into()),
        (json!({"policy": rule(0)}), "invalid password policy: length must be > 0".into()),
        (json!({"policy": "length = 8\n"}), "invalid password policy: no charset specified".into()),
        (
            json!({"policy": format!("length = 3\n{}", rule(0))}),
            "passwords must be between 4 and 100 characters".into(),
        ),
        (
            json!({"policy": format!("length = 101\n{}", rule(0))}),
            "passwords must be between 4 and 100 characters".into(),
        ),
        (
            json!({"policy": format!("length = 4\n{}", rule(5))}),
            "invalid password policy: specified rules require at least 5 characters but 4 is specified".into(),
        ),
        (
            json!({"policy": "length = 8\nrule \"charset\" {\n  charset = \"\"\n}\n"}),
            "invalid password policy: unable to parse rule charset: charset is missing or empty".into(),
        ),
        (
            json!({"policy": "length = 8\nrule \"charset\" {\n  charset = \"a\\nb\"\n}\n"}),
            "invalid password policy: non-printable character in charset".into(),
        ),
        (
            json!({"policy": "length = 8\nrule \"charset\" {\n  charset = \"ab\"\n  max-chars = 2\n}\n"}),
            "invalid password policy: unable to parse rule charset: unknown key \"max-chars\"".into(),
        ),
        (
            json!({"policy": "length = 8\nrule \"words\" {\n  list = \"ab\"\n}\n"}),
            "invalid password policy: unable to parse rules: unrecognized rule type \"words\"".into(),
        ),
        (
            json!({"policy": "length = 8\nsize = 3\n"}),
            "invalid password policy: unknown key \"size\"".into(),
        ),
    ];
    for (body, want) in cases {
        let (s, b) = h
            .call("PUT", "sys/policies/password/bad", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(errors(&b).starts_with(&want), "{body}: {b}");
    }
    let (s, _) = h.call("GET", "sys/policies/password/bad", None).await;
    assert_eq!(s, 404, "nothing was stored");
    let (s, _) = h
        .call("PUT", "sys/policies/password/p/generate", Some(json!({})))
        .await;
    assert_eq!(s, 405);
    let (s, _) = h.call("DELETE", "sys/policies/password", None).await;
    assert_eq!(s, 405);

    // A token without a policy for these paths is denied; one with read on generate draws.
    let (s, _) = h
        .call(
            "PUT",
            "sys/policies/password/ok",
            Some(json!({"policy": format!("length = 8\n{}", rule(1))})),
        )
        .await;
    assert_eq!(s, 204);
    let plain = h.create_token(json!({"policies": ["default"]})).await;
    let (s, _) = h
        .call_as(
            Some(&plain),
            "GET",
            "sys/policies/password/ok/generate",
            None,
        )
        .await;
    assert_eq!(s, 403);
    let drawer = h
        .token_with_policy(
            "pw-drawer",
            "path \"sys/policies/password/ok/generate\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, b) = h
        .call_as(
            Some(&drawer),
            "GET",
            "sys/policies/password/ok/generate",
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = h
        .call_as(Some(&drawer), "GET", "sys/policies/password/ok", None)
        .await;
    assert_eq!(s, 403, "reading the policy is another path");
}

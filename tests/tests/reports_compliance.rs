//! Compliance reports (`sys/reports/compliance`, `hush report compliance`) on real hushd
//! processes (SQLite, TLS, 2-of-3 unseal, a 30-minute lockout): a deliberately weak store (a
//! root token that never expires, an audit device off for a while) fails exactly the controls
//! those touch in each of the five standards; a good one (root token revoked after an admin
//! token with a TTL was made, audit on from the start) fails none. The HTML report opens in
//! headless Chromium without errors, and a screenshot is taken.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hush_tests::webhook::Receiver;
use hush_tests::{run_hush, tls_client, write_ca_signed_cert, Hushd};
use serde_json::{json, Value};

const STANDARDS: [&str; 5] = ["soc2", "pci-dss", "hipaa", "gdpr", "iso27001"];

/// Only what a report needs: `read` on the path, no sudo.
const REPORTER: &str = r#"path "sys/reports/compliance" { capabilities = ["read"] }"#;

/// An administrator's policy without a wildcard over everything and without sudo.
const ADMIN: &str = r#"
path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/token/create" { capabilities = ["create", "update"] }
path "sys/reports/compliance" { capabilities = ["read"] }
"#;

/// A hushd as an operator would run it: SQLite, TLS, lockout of 30 minutes; initialised
/// 2-of-3 and unsealed. Returns it (root token set), the CA file and the key shares.
async fn start(dir: &Path) -> (Hushd, PathBuf, Vec<String>) {
    let (ca, cert, key) = write_ca_signed_cert(dir, "server");
    let config = dir.join("hushd.toml");
    std::fs::write(&config, "login_lockout_duration_secs = 1800\n").unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.display());
    let s = |p: &Path| p.display().to_string();
    let mut h = Hushd::start(
        &[
            "--config",
            &s(&config),
            "--storage",
            &storage,
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&key),
        ],
        "https",
        tls_client(&ca),
    )
    .await;
    let (status, body) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(status, 200, "init: {body}");
    h.token = Some(body["root_token"].as_str().unwrap().to_string());
    let keys: Vec<String> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    unseal(&h, &keys).await;
    let (status, body) = h
        .call(
            "POST",
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(status, 204, "mount: {body}");
    (h, ca, keys)
}

async fn unseal(h: &Hushd, keys: &[String]) {
    for key in &keys[..2] {
        h.call("PUT", "sys/unseal", Some(json!({ "key": key })))
            .await;
    }
    let (_, status) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(status["sealed"], false, "{status}");
}

async fn enable_audit(h: &Hushd, dir: &Path) {
    let file = dir.join("audit.log").display().to_string();
    let (status, body) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": file}})),
        )
        .await;
    assert_eq!(status, 204, "audit enable: {body}");
}

/// A token (made by the current token) with `policy` only and a TTL.
async fn token_with(h: &Hushd, name: &str, policy: &str) -> String {
    let (status, body) = h
        .call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(status, 204, "policy {name}: {body}");
    h.create_token(json!({"policies": [name], "ttl": "1h"}))
        .await
}

async fn report(h: &Hushd, token: &str, standard: &str) -> Value {
    let (status, body) = h
        .call_as(
            Some(token),
            "GET",
            &format!("sys/reports/compliance?standard={standard}&since=90d"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{standard}: {body}");
    body["data"].clone()
}

fn ids_with(report: &Value, status: &str) -> BTreeSet<String> {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn control<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}: {report}"))
}

fn lines(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// A daily rotation of `secret/app/db` through a webhook whose receiver answers every step
/// with `status`, run now; returns once the receiver got `outcome` (`rotation.succeeded` or
/// `rotation.failed`).
async fn rotate_app_db(h: &Hushd, status: u16, outcome: &'static str) -> Receiver {
    let receiver = Receiver::start().await;
    receiver.answer_status(status);
    let hook =
        json!({"url": receiver.url(), "events": [outcome], "secret": "reports-test-hmac-key"});
    let (code, body) = h.call("POST", "sys/webhooks/rotator", Some(hook)).await;
    assert_eq!(code, 204, "{body}");
    let rotation = json!({"schedule": "daily", "generate": {"password": {"length": 20}}, "webhook": "rotator"});
    let (code, body) = h
        .call("POST", "sys/rotation/config/secret/app/db", Some(rotation))
        .await;
    assert_eq!(code, 204, "{body}");
    let (code, _) = h
        .call("POST", "sys/rotation/rotate/secret/app/db", None)
        .await;
    assert_eq!(code, 202);
    receiver
        .wait_until(Duration::from_secs(30), outcome, |seen| {
            seen.iter().any(|r| r.json()["type"] == outcome)
        })
        .await;
    receiver
}

/// A weak store: the root token kept (it never expires), audit enabled, disabled, enabled
/// again, a secret written and never rotated (its scheduled rotation fails: the receiver
/// refuses every step).
async fn weak_store(dir: &Path) -> (Hushd, PathBuf, String, String, Receiver) {
    let (h, ca, _keys) = start(dir).await;
    enable_audit(&h, dir).await;
    h.kv_put("app/db", json!({"password": "never-rotated"}))
        .await;
    let (status, _) = h.call("DELETE", "sys/audit/file", None).await;
    assert_eq!(status, 204);
    // Requests while no device is enabled.
    h.kv_put("app/db", json!({"password": "still-never-rotated"}))
        .await;
    enable_audit(&h, dir).await;
    let reporter = token_with(&h, "reporter", REPORTER).await;
    let root_accessor = {
        let (_, b) = h.call("GET", "auth/token/lookup-self", None).await;
        b["data"]["accessor"].as_str().unwrap().to_string()
    };
    let receiver = rotate_app_db(&h, 500, "rotation.failed").await;
    (h, ca, reporter, root_accessor, receiver)
}

#[tokio::test]
async fn a_weak_store_fails_exactly_the_controls_its_weaknesses_touch() {
    let dir = tempfile::tempdir().unwrap();
    let (h, ca, reporter, root_accessor, _receiver) = weak_store(dir.path()).await;

    let expected: [(&str, &[&str]); 5] = [
        ("soc2", &["CC6.1", "CC6.2", "CC7.2"]),
        ("pci-dss", &["10.5", "3.7", "8.2", "8.3"]),
        ("hipaa", &["164.312(a)", "164.312(b)"]),
        ("gdpr", &["Art. 32(1)(b)", "Art. 32(1)(d)"]),
        ("iso27001", &["A.5.15", "A.8.15", "A.8.24"]),
    ];
    for (standard, failing) in expected {
        let r = report(&h, &reporter, standard).await;
        let want: BTreeSet<String> = failing.iter().map(|s| s.to_string()).collect();
        assert_eq!(ids_with(&r, "fail"), want, "{standard}: {r:#}");
        assert_eq!(r["standard"], standard);
        assert_eq!(r["since"], "90d");
        assert_eq!(r["summary"]["fail"], failing.len());
        let total = r["controls"].as_array().unwrap().len();
        assert_eq!(r["summary"]["total"], total);
        for c in r["controls"].as_array().unwrap() {
            assert!(!lines(&c["evidence"]).is_empty(), "{c}");
            if c["status"] == "fail" {
                assert!(!lines(&c["remediation"]).is_empty(), "{c}");
            }
        }
    }

    // The evidence names the root token by accessor, and the gap with its times.
    let r = report(&h, &reporter, "pci-dss").await;
    let tokens = lines(&control(&r, "8.2")["evidence"]).join("\n");
    assert!(tokens.contains(&root_accessor), "{tokens}");
    assert!(tokens.contains("root"), "{tokens}");
    let fix = lines(&control(&r, "8.2")["remediation"]).join("\n");
    assert!(
        fix.contains(&format!("hush token revoke -accessor {root_accessor}")),
        "{fix}"
    );
    let gap = lines(&control(&r, "10.5")["evidence"]).join("\n");
    assert!(gap.contains("no audit device was enabled from"), "{gap}");
    assert!(gap.contains("audit device file/ disabled"), "{gap}");
    // Never a token or a secret value.
    let text = r.to_string();
    assert!(!text.contains(h.token.as_deref().unwrap()));
    assert!(!text.contains(&reporter));
    assert!(!text.contains("never-rotated"));
    // The chain was verified up to hushd's head, and the failed rotation is named.
    let chain = lines(&control(&r, "10.3")["evidence"]).join("\n");
    assert!(chain.contains("hash chain verified over"), "{chain}");
    let rotation = lines(&control(&r, "3.7")["evidence"]).join("\n");
    assert!(rotation.contains("secret/app/db"), "{rotation}");
    assert_eq!(control(&r, "3.7")["status"], "fail");

    // The CLI: JSON is the API's answer; HTML is one page Chromium opens without errors.
    let ca_s = ca.display().to_string();
    let env = [
        ("HUSH_ADDR", h.addr.as_str()),
        ("HUSH_TOKEN", reporter.as_str()),
        ("HUSH_CACERT", ca_s.as_str()),
    ];
    let out = run_hush(
        &[
            "report",
            "compliance",
            "-standard",
            "hipaa",
            "-format",
            "json",
        ],
        &env,
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ids_with(&cli, "fail"),
        ["164.312(a)", "164.312(b)"].map(String::from).into()
    );
    let out = run_hush(
        &["report", "compliance", "-standard", "pci-dss"],
        &env,
        None,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(table.contains("4 fail"), "{table}");
    assert!(table.contains("10.5 "), "{table}");

    let html = dir.path().join("pci-dss.html");
    let html_s = html.display().to_string();
    let out = run_hush(
        &[
            "report",
            "compliance",
            "-standard",
            "pci-dss",
            "-format",
            "html",
            "-output",
            &html_s,
        ],
        &env,
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"));
    assert!(
        !page.contains("http://") && !page.contains("src="),
        "external fetch"
    );
    assert!(page.contains(&h.addr), "the store's address in the header");
    assert!(page.contains(&root_accessor));
    chromium_opens(&html, &dir.path().join("pci-dss.png"), 9);

    // Bad queries: 400 with the valid values; no policy for the path: 403.
    for (query, needle) in [
        ("standard=sox", "soc2, pci-dss, hipaa, gdpr, iso27001"),
        ("standard=", "standard is required"),
        ("standard=soc2&since=forever", "invalid since"),
        ("standard=soc2&since=-5d", "invalid since"),
    ] {
        let (status, body) = h
            .call_as(
                Some(&reporter),
                "GET",
                &format!("sys/reports/compliance?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["errors"][0].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
    let nobody = h
        .create_token(json!({"policies": ["default"], "ttl": "1h"}))
        .await;
    let (status, _) = h
        .call_as(
            Some(&nobody),
            "GET",
            "sys/reports/compliance?standard=soc2",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let out = run_hush(&["report", "compliance", "-standard", "sox"], &env, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pci-dss"));
}

#[tokio::test]
async fn a_good_store_fails_no_control() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _ca, keys) = start(dir.path()).await;
    enable_audit(&h, dir.path()).await;
    h.kv_put("app/db", json!({"password": "s3cret"})).await;
    // Its scheduled rotation ran and succeeded.
    let _receiver = rotate_app_db(&h, 200, "rotation.succeeded").await;
    let (status, body) = h
        .call(
            "PUT",
            "sys/policies/acl/admin",
            Some(json!({ "policy": ADMIN })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // An orphan: revoking the root token must not take it along.
    let (status, body) = h
        .call(
            "PUT",
            "sys/policies/acl/reporter",
            Some(json!({ "policy": REPORTER })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // Orphans: revoking the root token must not take them along.
    let orphan = |policy: &str| json!({"policies": [policy], "ttl": "1h", "no_parent": true});
    let admin = h.create_token(orphan("admin")).await;
    let reporter = h.create_token(orphan("reporter")).await;
    // No standing root token.
    let (status, body) = h.call("POST", "auth/token/revoke-self", None).await;
    assert_eq!(status, 204, "{body}");
    h.token = Some(admin.clone());
    h.kv_put("app/api", json!({"key": "k"})).await;

    for standard in STANDARDS {
        let r = report(&h, &reporter, standard).await;
        assert!(ids_with(&r, "fail").is_empty(), "{standard}: {r:#}");
        for c in r["controls"].as_array().unwrap() {
            assert!(!lines(&c["evidence"]).is_empty(), "{c}");
            assert!(lines(&c["remediation"]).is_empty(), "{c}");
        }
        assert_eq!(r["summary"]["fail"], 0);
    }
    let r = report(&h, &reporter, "soc2").await;
    let audit = lines(&control(&r, "CC7.2")["evidence"]).join("\n");
    assert!(audit.contains("enabled at all times"), "{audit}");
    assert!(audit.contains("store setup not counted"), "{audit}");
    let access = lines(&control(&r, "CC6.1")["evidence"]).join("\n");
    assert!(access.contains("2 of 3 Shamir key shares"), "{access}");
    assert!(access.contains("AES-256-GCM"), "{access}");
    let tokens = lines(&control(&r, "CC6.2")["evidence"]).join("\n");
    assert!(
        tokens.contains("expire (none without a TTL, no root token)"),
        "{tokens}"
    );
    let tls = lines(&control(&r, "CC6.6")["evidence"]).join("\n");
    assert!(tls.contains("over TLS"), "{tls}");
    assert!(access.contains("rotated on time"), "{access}");

    // The history survives kill -9: after a restart the report still sees no gap, and the
    // audit file's chain goes on.
    h.kill9();
    let args: Vec<String> = h.args[..h.args.len() - 2].to_vec();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut again = Hushd::spawn(
        &hush_tests::bin("hushd"),
        h.port,
        &args,
        "https",
        h.client.clone(),
    );
    again.wait_ready().await;
    again.token = Some(admin);
    unseal(&again, &keys).await;
    for standard in STANDARDS {
        let r = report(&again, &reporter, standard).await;
        assert!(
            ids_with(&r, "fail").is_empty(),
            "{standard} after restart: {r:#}"
        );
    }
}

/// Open `html` in headless Chromium: a screenshot at `png` (non-trivial), no console errors,
/// and a DOM with `rows` control rows.
fn chromium_opens(html: &Path, png: &Path, rows: usize) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.display());
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut shot = Command::new("chromium");
    common(&mut shot);
    let out = shot
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .expect("run chromium (apt-get install chromium)");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium: {log}");
    for bad in ["CONSOLE", "Uncaught", "net::ERR_"] {
        assert!(!log.contains(bad), "chromium reported {bad}: {log}");
    }
    let bytes = std::fs::read(png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot too small: {} bytes",
        bytes.len()
    );

    let mut dump = Command::new("chromium");
    common(&mut dump);
    let out = dump.arg("--dump-dom").arg(&url).output().unwrap();
    assert!(out.status.success());
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dom.matches("<tr class=\"").count(), rows, "{dom}");
    assert!(dom.contains("badge fail"));
    if let Ok(keep) = std::env::var("HUSH_TEST_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(png, keep);
    }
}

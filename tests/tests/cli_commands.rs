//! The `hush` binary against real hushd processes: operator lifecycle on a SQLite hushd, KV,
//! policies, tokens, audit devices and `audit verify` on a real log, TLS, exit codes and
//! messages for mistakes, and `hush dev --no-wait` (the README's first command).

use std::process::Output;

use hush_tests::{bin, free_port, http_client, run_hush, tls_client, write_ca_signed_cert, Hushd};
use serde_json::{json, Value};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run hush against `h` with `token`; stdin from `input`.
fn hush_at(h: &Hushd, token: Option<&str>, args: &[&str], input: Option<&str>) -> Output {
    let mut env = vec![("HUSH_ADDR", h.addr.as_str())];
    if let Some(t) = token {
        env.push(("HUSH_TOKEN", t));
    }
    run_hush(args, &env, input)
}

/// Run as root on `h` and insist on success; returns stdout.
fn ok(h: &Hushd, args: &[&str]) -> String {
    let out = hush_at(h, h.token.as_deref(), args, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "hush {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Run as root on `h` and insist on exit 1; returns stderr.
fn fails(h: &Hushd, args: &[&str]) -> String {
    let out = hush_at(h, h.token.as_deref(), args, None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hush {args:?}: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// Run as root on `h` and insist on a usage error (exit 2); returns stderr.
fn misused(h: &Hushd, args: &[&str]) -> String {
    let out = hush_at(h, h.token.as_deref(), args, None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "hush {args:?}: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// The value of `key` in a `Key    Value` table.
fn row(table: &str, key: &str) -> Option<String> {
    table.lines().find_map(|l| {
        let (k, v) = l.split_once("    ")?;
        (k == key).then(|| v.trim().to_string())
    })
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn operator_init_unseal_seal_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let mut h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;

    let status = ok(&h, &["operator", "seal-status"]);
    assert_eq!(
        row(&status, "Initialized").as_deref(),
        Some("false"),
        "{status}"
    );
    assert_eq!(
        row(&status, "Storage Type").as_deref(),
        Some("sqlite"),
        "{status}"
    );

    let err = misused(
        &h,
        &["operator", "init", "-key-shares=2", "-key-threshold=3"],
    );
    assert!(err.contains("want 1 <= threshold <= shares"), "{err}");

    let init = json_of(&ok(
        &h,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
    ));
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    let root = init["root_token"].as_str().unwrap().to_string();
    let err = fails(&h, &["operator", "init"]);
    assert!(err.contains("400"), "a second init is refused: {err}");

    // Sealed: commands say so.
    h.token = Some(root.clone());
    let err = fails(&h, &["operator", "key-status"]);
    assert!(err.contains("503") && err.contains("sealed"), "{err}");

    // One key as an argument, progress shown; reset; then two keys, one from stdin.
    let out = ok(&h, &["operator", "unseal", &keys[0]]);
    assert_eq!(
        row(&out, "Unseal Progress").as_deref(),
        Some("1/2"),
        "{out}"
    );
    let out = ok(&h, &["operator", "unseal", "-reset"]);
    assert_eq!(
        row(&out, "Unseal Progress").as_deref(),
        Some("0/2"),
        "{out}"
    );
    let err = fails(&h, &["operator", "unseal", "not-a-key!"]);
    assert!(err.contains("400"), "{err}");
    ok(&h, &["operator", "unseal", &keys[1]]);
    let out = hush_at(
        &h,
        None,
        &["operator", "unseal"],
        Some(&format!("{}\n", keys[2])),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row(&stdout(&out), "Sealed").as_deref(), Some("false"));
    assert!(!stdout(&out).contains(&keys[2]), "the key is not echoed");

    let status = json_of(&ok(&h, &["operator", "seal-status", "-format=json"]));
    assert_eq!(
        (status["initialized"].clone(), status["sealed"].clone()),
        (json!(true), json!(false))
    );
    let out = ok(&h, &["operator", "key-status"]);
    assert_eq!(row(&out, "Key Term").as_deref(), Some("1"), "{out}");
    let out = ok(&h, &["operator", "rotate"]);
    assert!(out.starts_with("Success! Rotated key"), "{out}");
    assert_eq!(row(&out, "Key Term").as_deref(), Some("2"), "{out}");
    // The rewrap moves every entry to term 2 in the background; then term 1 is retired.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let out = loop {
        let out = ok(&h, &["operator", "key-status"]);
        if row(&out, "Oldest Term In Use").as_deref() == Some("2") {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let rewrap = row(&out, "Rewrap").unwrap_or_default();
    assert!(rewrap.starts_with("complete (to term 2: "), "{out}");
    assert!(rewrap.ends_with(", 0 unreadable)"), "{out}");

    // Seal needs the root token.
    let out = hush_at(&h, None, &["operator", "seal"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    ok(&h, &["operator", "seal"]);
    let status = ok(&h, &["operator", "seal-status"]);
    assert_eq!(row(&status, "Sealed").as_deref(), Some("true"), "{status}");
}

#[tokio::test]
async fn kv_commands() {
    let h = Hushd::dev().await;
    let out = ok(&h, &["kv", "put", "secret/app/db", "user=bob", "pw=one"]);
    assert!(out.contains("secret/data/app/db"), "{out}");
    assert_eq!(row(&out, "version").as_deref(), Some("1"), "{out}");

    let out = ok(&h, &["kv", "get", "secret/app/db"]);
    assert!(out.contains("====== Data ======"), "{out}");
    assert_eq!(row(&out, "pw").as_deref(), Some("one"), "{out}");
    assert_eq!(row(&out, "user").as_deref(), Some("bob"), "{out}");
    assert_eq!(ok(&h, &["kv", "get", "-field=pw", "secret/app/db"]), "one");
    assert_eq!(
        ok(&h, &["kv", "get", "-mount=secret", "-field=user", "app/db"]),
        "bob"
    );

    // Second version from stdin and a file; cas; patch keeps other fields.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw.txt");
    std::fs::write(&file, "from-file").unwrap();
    let at_file = format!("pw=@{}", file.display());
    let out = hush_at(
        &h,
        Some("root"),
        &["kv", "put", "-cas=1", "secret/app/db", "user=-", &at_file],
        Some("carol"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json_of(&ok(&h, &["kv", "get", "-format=json", "secret/app/db"]));
    assert_eq!(
        v["data"]["data"],
        json!({"user": "carol", "pw": "from-file"})
    );
    assert_eq!(v["data"]["metadata"]["version"], 2);
    let err = fails(&h, &["kv", "put", "-cas=1", "secret/app/db", "pw=x"]);
    assert!(err.contains("check-and-set"), "{err}");
    ok(&h, &["kv", "patch", "secret/app/db", "pw=three"]);
    let v = json_of(&ok(&h, &["kv", "get", "-format=json", "secret/app/db"]));
    assert_eq!(v["data"]["data"], json!({"user": "carol", "pw": "three"}));
    assert_eq!(
        ok(
            &h,
            &["kv", "get", "-version=1", "-field=pw", "secret/app/db"]
        ),
        "one"
    );

    ok(&h, &["kv", "put", "secret/app/web/tls", "k=v"]);
    let out = ok(&h, &["kv", "list", "secret/app"]);
    assert_eq!(out, "Keys\n----\ndb\nweb/\n");
    let err = fails(&h, &["kv", "list", "secret/none"]);
    assert!(
        err.contains("No value found at secret/metadata/none"),
        "{err}"
    );

    // Delete, undelete, destroy.
    let out = ok(&h, &["kv", "delete", "secret/app/db"]);
    assert!(out.contains("Success! Data deleted"), "{out}");
    let err = fails(&h, &["kv", "get", "secret/app/db"]);
    assert!(
        err.contains("version 3") && err.contains("is deleted"),
        "{err}"
    );
    assert!(
        err.contains("hush kv undelete -versions=3 secret/app/db"),
        "{err}"
    );
    ok(&h, &["kv", "undelete", "-versions=3", "secret/app/db"]);
    assert_eq!(
        ok(&h, &["kv", "get", "-field=pw", "secret/app/db"]),
        "three"
    );
    ok(&h, &["kv", "delete", "-versions=2", "secret/app/db"]);
    ok(&h, &["kv", "destroy", "-versions=1", "secret/app/db"]);
    let err = fails(&h, &["kv", "get", "-version=1", "secret/app/db"]);
    assert!(err.contains("is destroyed"), "{err}");

    // Metadata.
    ok(
        &h,
        &[
            "kv",
            "metadata",
            "put",
            "-max-versions=7",
            "-custom-metadata=owner=ops",
            "secret/app/db",
        ],
    );
    let out = ok(&h, &["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(row(&out, "max_versions").as_deref(), Some("7"), "{out}");
    assert_eq!(row(&out, "current_version").as_deref(), Some("3"), "{out}");
    assert_eq!(
        row(&out, "custom_metadata").as_deref(),
        Some(r#"{"owner":"ops"}"#)
    );
    assert!(out.contains("====== Version 1 ======"), "{out}");
    let err = misused(&h, &["kv", "metadata", "put", "secret/app/db"]);
    assert!(err.contains("nothing to change"), "{err}");
    ok(&h, &["kv", "metadata", "delete", "secret/app/db"]);
    let err = fails(&h, &["kv", "get", "secret/app/db"]);
    assert!(
        err.contains("No value found at secret/data/app/db"),
        "{err}"
    );
}

/// On a KV version 1 mount (`type=kv`, as `vault secrets enable kv`) the commands use the
/// plain paths, as the vault CLI does, and the version 2 only ones say why they cannot.
#[tokio::test]
async fn kv_commands_on_a_version_1_mount() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call("POST", "sys/mounts/old", Some(json!({"type": "kv"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let out = ok(&h, &["kv", "put", "old/app/db", "user=bob", "pw=one"]);
    assert!(out.contains("Data written to: old/app/db"), "{out}");
    let (_, b) = h.call("GET", "old/app/db", None).await;
    assert_eq!(b["data"], json!({"user": "bob", "pw": "one"}), "{b}");
    let out = ok(&h, &["kv", "get", "old/app/db"]);
    assert_eq!(row(&out, "pw").as_deref(), Some("one"), "{out}");
    assert_eq!(
        row(&out, "refresh_interval").as_deref(),
        Some("768h"),
        "{out}"
    );
    assert_eq!(ok(&h, &["kv", "get", "-field=user", "old/app/db"]), "bob");
    let v = json_of(&ok(&h, &["kv", "get", "-format=json", "old/app/db"]));
    assert_eq!(v["data"]["pw"], "one", "{v}");
    // A put replaces the whole secret.
    ok(&h, &["kv", "put", "old/app/db", "pw=two"]);
    let v = json_of(&ok(&h, &["kv", "get", "-format=json", "old/app/db"]));
    assert_eq!(v["data"], json!({"pw": "two"}), "{v}");
    let out = ok(&h, &["kv", "list", "old/app"]);
    assert!(out.contains("db"), "{out}");
    ok(&h, &["kv", "delete", "old/app/db"]);
    let err = fails(&h, &["kv", "get", "old/app/db"]);
    assert!(err.contains("No value found at old/app/db"), "{err}");
    for args in [
        &["kv", "patch", "old/app/db", "pw=x"][..],
        &["kv", "put", "-cas=0", "old/app/db", "pw=x"],
        &["kv", "get", "-version=1", "old/app/db"],
        &["kv", "undelete", "-versions=1", "old/app/db"],
        &["kv", "metadata", "get", "old/app/db"],
    ] {
        let err = misused(&h, args);
        assert!(
            err.contains("old/ is a KV version 1 mount"),
            "{args:?}: {err}"
        );
    }
    // The dev mount stays version 2.
    let out = ok(&h, &["kv", "put", "secret/app/db", "pw=one"]);
    assert!(out.contains("secret/data/app/db"), "{out}");
}

#[tokio::test]
async fn policy_commands() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.hcl");
    let text = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n";
    std::fs::write(&file, text).unwrap();
    let out = ok(&h, &["policy", "write", "app", &file.display().to_string()]);
    assert_eq!(out, "Success! Uploaded policy: app\n");
    let out = hush_at(
        &h,
        Some("root"),
        &["policy", "write", "stdin-one", "-"],
        Some(text),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ok(&h, &["policy", "read", "app"]), text);
    let list = ok(&h, &["policy", "list"]);
    assert!(list.lines().any(|l| l == "app"), "{list}");
    assert!(list.lines().any(|l| l == "stdin-one"), "{list}");
    let err = fails(&h, &["policy", "read", "missing"]);
    assert!(err.contains("No policy named: missing"), "{err}");

    let bad = dir.path().join("bad.hcl");
    std::fs::write(&bad, "garbage {").unwrap();
    let err = fails(&h, &["policy", "write", "bad", &bad.display().to_string()]);
    assert!(err.contains("400") && err.contains("parse"), "{err}");
    let err = fails(&h, &["policy", "write", "x", "/nonexistent/p.hcl"]);
    assert!(err.contains("could not read policy file"), "{err}");

    ok(&h, &["policy", "delete", "app"]);
    assert!(!ok(&h, &["policy", "list"]).lines().any(|l| l == "app"));
}

#[tokio::test]
async fn token_commands_and_permission_errors() {
    let h = Hushd::dev().await;
    ok(&h, &["kv", "put", "secret/app/x", "k=v"]);
    let policy = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n";
    let out = hush_at(
        &h,
        Some("root"),
        &["policy", "write", "app", "-"],
        Some(policy),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let created = json_of(&ok(
        &h,
        &[
            "token",
            "create",
            "-policy=app",
            "-ttl=1h",
            "-metadata=team=ops",
            "-format=json",
        ],
    ));
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    let table = ok(&h, &["token", "create", "-policy=app", "-display-name=ci"]);
    assert_eq!(
        row(&table, "token_policies").as_deref(),
        Some(r#"["app","default"]"#)
    );
    assert!(
        row(&table, "token").is_some_and(|t| t.starts_with("hvs.")),
        "{table}"
    );

    // The scoped token reads app secrets and nothing else.
    let out = hush_at(
        &h,
        Some(&token),
        &["kv", "get", "-field=k", "secret/app/x"],
        None,
    );
    assert_eq!(stdout(&out), "v", "{}", stderr(&out));
    let out = hush_at(&h, Some(&token), &["kv", "get", "secret/other"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("permission denied: check HUSH_TOKEN"), "{err}");
    assert!(!err.contains(&token), "{err}");
    let out = hush_at(
        &h,
        Some(&token),
        &["kv", "put", "secret/app/x", "k=w"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "read-only policy");

    // Lookup: self, another token from stdin, by accessor.
    let out = hush_at(&h, Some(&token), &["token", "lookup"], None);
    let text = stdout(&out);
    assert!(text.contains("policies") && text.contains("app"), "{text}");
    assert!(text.contains("meta") && text.contains("ops"), "{text}");
    let out = hush_at(
        &h,
        Some("root"),
        &["token", "lookup", "-field=accessor", "-"],
        Some(&format!("{token}\n")),
    );
    assert_eq!(stdout(&out), accessor, "{}", stderr(&out));
    let out = ok(&h, &["token", "lookup", "-accessor", &accessor]);
    assert!(out.contains(&accessor) && !out.contains(&token), "{out}");

    // Renew self with an increment.
    let out = hush_at(
        &h,
        Some(&token),
        &["token", "renew", "-increment=30m"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("30m"), "{}", stdout(&out));

    // Revoke by accessor; the token is then refused.
    ok(&h, &["token", "revoke", "-accessor", &accessor]);
    let out = hush_at(&h, Some(&token), &["token", "lookup"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("permission denied"));

    // Revoke a token given as an argument, and -self.
    let t2 = ok(&h, &["token", "create", "-field=token"]);
    ok(&h, &["token", "revoke", &t2]);
    assert_eq!(
        hush_at(&h, Some(&t2), &["token", "lookup"], None)
            .status
            .code(),
        Some(1)
    );
    let t3 = ok(&h, &["token", "create", "-field=token"]);
    let out = hush_at(&h, Some(&t3), &["token", "revoke", "-self"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        hush_at(&h, Some(&t3), &["token", "lookup"], None)
            .status
            .code(),
        Some(1)
    );

    // Usage mistakes are exit 2.
    let out = hush_at(&h, Some("root"), &["token", "revoke"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-self"));
    let out = hush_at(
        &h,
        Some("root"),
        &["token", "create", "-metadata=bad"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn audit_devices_and_verify_on_a_real_log() {
    let h = Hushd::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let log_s = log.display().to_string();
    assert_eq!(
        ok(&h, &["audit", "list"]),
        "No audit devices are enabled.\n"
    );
    let out = ok(
        &h,
        &[
            "audit",
            "enable",
            "-description=tests",
            "file",
            &format!("file_path={log_s}"),
        ],
    );
    assert_eq!(out, "Success! Enabled the file audit device at: file/\n");
    let err = misused(&h, &["audit", "enable", "file", "nonsense"]);
    assert!(err.contains("want key=value"), "{err}");
    for i in 0..3 {
        ok(&h, &["kv", "put", &format!("secret/a{i}"), "pw=hunter2"]);
    }
    let listing = ok(&h, &["audit", "list", "-detailed"]);
    assert!(
        listing.starts_with("Path     Type    Description"),
        "{listing}"
    );
    assert!(listing.contains("file/    file    tests"), "{listing}");
    let devices = json_of(&ok(&h, &["audit", "list", "-format=json"]));
    let last_hash = devices["file/"]["hash_chain"]["last_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last_hash.starts_with("sha256:"), "{devices}");
    // Each listing is itself audited, so the head moves on.
    assert!(
        listing.contains("sha256:") && !listing.contains(&last_hash),
        "{listing}"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"), "values are HMAC'd");
    let lines = text.lines().count();
    let out = ok(
        &h,
        &[
            "audit",
            "verify",
            &log_s,
            &format!("-last-hash={last_hash}"),
        ],
    );
    assert_eq!(out, format!("ok: {lines} lines verified\n"));

    // Tampered copies: an edited line, and a removed last line that only -last-hash sees.
    let edited = dir.path().join("edited.log");
    let mut all: Vec<&str> = text.lines().collect();
    let changed = all[1].replacen("\"request\"", "\"requesT\"", 1);
    assert_ne!(changed, all[1]);
    all[1] = &changed;
    std::fs::write(&edited, all.join("\n") + "\n").unwrap();
    let err = fails(&h, &["audit", "verify", &edited.display().to_string()]);
    assert!(err.contains("line 2:") || err.contains("line 3:"), "{err}");

    // A removed tail: the file no longer reaches the head hushd reported.
    let cut = dir.path().join("cut.log");
    let head_line = text
        .lines()
        .position(|l| hush_api::audit::line_hash(l.as_bytes()) == last_hash)
        .expect("the reported head is in the file");
    let kept: Vec<&str> = text.lines().take(head_line).collect();
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    let cut_s = cut.display().to_string();
    ok(&h, &["audit", "verify", &cut_s]);
    let err = fails(&h, &["audit", "verify", &cut_s, "-last-hash", &last_hash]);
    assert!(err.contains("removed from or edited at the end"), "{err}");

    let out = ok(&h, &["audit", "disable", "file"]);
    assert!(out.contains("Disabled audit device"), "{out}");
    assert_eq!(
        ok(&h, &["audit", "list"]),
        "No audit devices are enabled.\n"
    );
}

#[tokio::test]
async fn tls_with_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_ca_signed_cert(dir.path(), "server");
    let (other, _, _) = write_ca_signed_cert(dir.path(), "other");
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let h = Hushd::start(
        &[
            "--storage",
            "inmem",
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
        ],
        "https",
        tls_client(&ca),
    )
    .await;
    let ca_s = ca.display().to_string();
    let addr = h.addr.as_str();
    let out = run_hush(
        &["operator", "seal-status"],
        &[("HUSH_ADDR", addr), ("HUSH_CACERT", &ca_s)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row(&stdout(&out), "Initialized").as_deref(), Some("false"));
    let out = run_hush(
        &["operator", "seal-status", "-ca-cert", &ca_s],
        &[("VAULT_ADDR", addr)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let other_s = other.display().to_string();
    let out = run_hush(
        &["operator", "seal-status", "-ca-cert", &other_s],
        &[("HUSH_ADDR", addr)],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("could not reach"), "{}", stderr(&out));
    let out = run_hush(
        &["operator", "seal-status", "-ca-cert=/nonexistent.pem"],
        &[("HUSH_ADDR", addr)],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("check -ca-cert or HUSH_CACERT"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn mistakes_get_clear_messages_and_exit_codes() {
    // Nothing listening.
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let out = run_hush(
        &["kv", "get", "secret/a"],
        &[("HUSH_ADDR", &addr), ("HUSH_TOKEN", "hvs.x")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("could not reach {addr}")), "{err}");
    assert!(err.contains("is hushd running"), "{err}");
    assert!(!err.contains("hvs.x"), "{err}");

    // No address, a bad address.
    let out = run_hush(&["policy", "list"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("set HUSH_ADDR"), "{}", stderr(&out));
    let out = run_hush(&["policy", "list", "-address=127.0.0.1:8200"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid server address"),
        "{}",
        stderr(&out)
    );

    let h = Hushd::dev().await;
    // No token, a wrong token.
    let out = hush_at(&h, None, &["kv", "get", "secret/a"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("permission denied: check HUSH_TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = hush_at(&h, Some("hvs.wrong-token"), &["policy", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("hvs.wrong-token"));
    // VAULT_* works when HUSH_* is unset.
    let out = run_hush(
        &["kv", "list", "secret/"],
        &[("VAULT_ADDR", &h.addr), ("VAULT_TOKEN", "root")],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "nothing stored yet");
    assert!(stderr(&out).contains("No value found"), "{}", stderr(&out));

    // Bad arguments: exit 2, before any request.
    for (args, says) in [
        (&["kv", "put", "secret/a", "novalue"][..], "want key=value"),
        (&["kv", "get", "secret"], "missing secret path"),
        (&["kv", "get", "-bogus", "secret/a"], "unexpected argument"),
        (&["kv", "undelete", "secret/a"], "--versions"),
        (&["policy", "read", "a/b"], "invalid policy name"),
        (&["frobnicate"], "unrecognized subcommand"),
    ] {
        let out = hush_at(&h, Some("root"), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // Unknown mount: the server's message.
    let err = fails(&h, &["kv", "get", "nomount/a"]);
    assert!(err.contains("404") && err.contains("no handler"), "{err}");
}

/// hushd processes (not zombies) whose command line mentions `needle`.
fn hushd_processes(needle: &str) -> Vec<String> {
    processes("hushd", needle)
}

/// `program`'s processes (not zombies) whose command line mentions `needle`.
fn processes(program: &str, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let Ok(cmdline) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if cmdline.contains(program) && cmdline.contains(needle) && !zombie {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn hush_dev_tours_and_cleans_up() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = run_hush(&["dev", "--no-wait", "--listen", &listen], &[], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for expected in [
        &format!("address     http://{listen}")[..],
        "root token  hvs.",
        "==> 1/15  Write a secret",
        "$ hush kv put secret/demo/app username=demo password=demo-pass-1",
        "$ hush kv get -version=1 -field=password secret/demo/app\n    demo-pass-1\n",
        "====== Version 2 ======",
        "$ hush policy write demo-read ",
        "DEMO_TOKEN=$(hush token create -policy demo-read -ttl=1h -field=token)",
        "$ HUSH_TOKEN=$DEMO_TOKEN hush kv get -field=password secret/demo/app\n    demo-pass-2\n",
        "Error: permission denied",
        "$ hush audit enable file file_path=",
        "==> 12/15",
        "lines verified",
        "==> 13/15  hush-agent renders the secret as files",
        "--refresh-interval 1s &",
        "r--------    11  password",
        "==> 14/15",
        "password\n    demo-pass-3\n    (changed ",
        "==> 15/15  hush-agent --fuse: the same files from memory, and who opened them",
        "--fuse --access-log ",
        "\"file\":\"password\",\"version\":3,",
        "\"exe\":\"/usr/bin/cat\"",
        "\"result\":\"allowed\"}",
        "SIGTERM unmounted ",
        "hushd stopped.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The scoped token and hushd's own banner (unseal key) are not shown.
    assert!(!text.contains("Unseal key"), "{text}");
    assert_eq!(
        text.matches("hvs.").count(),
        1,
        "only the root token: {text}"
    );
    // Nothing left behind: no hushd for that port, and the port is free again.
    assert!(
        hushd_processes(&listen).is_empty(),
        "{:?}",
        hushd_processes(&listen)
    );
    assert!(std::net::TcpStream::connect(&listen).is_err());
    let agents = processes("hush-agent", &format!("http://{listen}"));
    assert!(agents.is_empty(), "{agents:?}");
    // The FUSE agent's mount is gone, and the value never reached its access log.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("hush-dev-"), "{mounts}");
    let log_line = text
        .lines()
        .find(|l| l.contains("\"event\":\"open\""))
        .expect("the access-log line");
    assert!(!log_line.contains("demo-pass"), "{log_line}");
    // The agent's tmpfs directory went with it.
    let dest = text
        .lines()
        .find_map(|l| l.strip_prefix("$ ls -l "))
        .expect("the listing step names the directory");
    assert!(!std::path::Path::new(dest).exists(), "{dest} left behind");
}

#[test]
fn hush_dev_picks_another_port_when_8200_is_taken() {
    // Hold 8200 if it is free; if something else holds it the fallback is taken all the same.
    let _hold = std::net::TcpListener::bind("127.0.0.1:8200");
    let hushd = bin("hushd").display().to_string();
    let out = run_hush(&["dev", "-no-wait", "-hushd", &hushd], &[], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("127.0.0.1:8200 is in use: using 127.0.0.1:"),
        "{text}"
    );
    assert!(
        !text.contains("address     http://127.0.0.1:8200\n"),
        "{text}"
    );
    assert!(text.contains("hushd stopped."), "{text}");
}

#[test]
fn hush_dev_failures_exit_1_without_leftovers() {
    // A "hushd" that exits at once.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = run_hush(
        &[
            "dev",
            "-no-wait",
            "-listen",
            &listen,
            "-hushd",
            "/bin/false",
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("hushd exited unexpectedly"),
        "{}",
        stderr(&out)
    );
    // No hushd to be found, bad flags.
    let out = run_hush(&["dev", "-hushd", "/nonexistent/hushd"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such executable"),
        "{}",
        stderr(&out)
    );
    let out = run_hush(&["dev", "-listen", "0.0.0.0:8200"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
    // A port already in use, chosen explicitly.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_hush(&["dev", "-no-wait", "-listen", &addr], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot listen"), "{}", stderr(&out));
    assert!(hushd_processes(&listen).is_empty());
}

#[test]
fn hush_dev_waits_then_stops_hushd_on_sigterm_or_sighup() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    for signal in ["TERM", "HUP"] {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(bin("hush"))
            .args(["dev", "-listen", &listen])
            .env_remove("HUSH_ADDR")
            .env_remove("HUSH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            seen.push_str(&line);
            if line.contains("Press Ctrl-C to stop") {
                break;
            }
            line.clear();
        }
        assert!(seen.contains("Press Ctrl-C to stop"), "{seen}");
        assert!(
            seen.contains(&format!("export HUSH_ADDR='http://{listen}'")),
            "{seen}"
        );
        assert!(seen.contains("export VAULT_TOKEN='hvs."), "{seen}");
        // Still serving while it waits.
        assert_eq!(hushd_processes(&listen).len(), 1, "{seen}");
        assert!(std::net::TcpStream::connect(&listen).is_ok());

        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        out.read_to_string(&mut seen).unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {seen}{err}");
        assert!(seen.contains("hushd stopped."), "SIG{signal}: {seen}");
        assert!(hushd_processes(&listen).is_empty(), "SIG{signal}");
        assert!(
            std::net::TcpStream::connect(&listen).is_err(),
            "SIG{signal}"
        );
    }
}

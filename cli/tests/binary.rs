//! Tests that run the `hush` binary: `audit verify` on generated files, usage errors, help,
//! and a few commands against a tiny scripted HTTP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use hush_api::audit::{line_hash, GENESIS};

fn hush(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hush"));
    cmd.args(args).stdin(Stdio::null());
    for var in [
        "HUSH_ADDR",
        "VAULT_ADDR",
        "HUSH_TOKEN",
        "VAULT_TOKEN",
        "HUSH_CACERT",
        "VAULT_CACERT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Audit lines chained like the file device writes them.
fn chain(n: u64) -> Vec<String> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let line = format!(
                r#"{{"time":"2025-01-01T00:00:0{seq}Z","type":"request","request":{{"path":"secret/data/{seq}"}},"hash_chain":{{"seq":{seq},"prev":"{prev}"}}}}"#
            );
            prev = line_hash(line.as_bytes());
            line
        })
        .collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn audit_verify_accepts_an_intact_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_lines(dir.path(), "ok.log", &chain(4));
    let out = hush(&["audit", "verify", &file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ok: 4 lines verified");

    let out = hush(&["audit", "verify", "-format=json", &file], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["lines"], 4);
}

#[test]
fn audit_verify_names_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut edited = chain(5);
    edited[2] = edited[2].replace("secret/data/3", "secret/data/X");
    let mut deleted = chain(5);
    deleted.remove(1);
    let mut reordered = chain(5);
    reordered.swap(2, 3);
    let mut garbage = chain(3);
    garbage.insert(1, "not json".into());
    for (name, lines, bad_line) in [
        ("edited", edited, 4),
        ("deleted", deleted, 2),
        ("reordered", reordered, 3),
        ("garbage", garbage, 2),
    ] {
        let file = write_lines(dir.path(), name, &lines);
        let out = hush(&["audit", "verify", &file], &[]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("line {bad_line}:")), "{name}: {err}");
        assert!(stdout(&out).is_empty(), "{name}");
    }
}

#[test]
fn audit_verify_last_hash_catches_a_removed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let lines = chain(4);
    let full_hash = line_hash(lines[3].as_bytes());
    let cut = write_lines(dir.path(), "cut", &lines[..3]);
    assert_eq!(hush(&["audit", "verify", &cut], &[]).status.code(), Some(0));
    let out = hush(&["audit", "verify", &cut, "-last-hash", &full_hash], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("removed from or edited at the end"),
        "{}",
        stderr(&out)
    );
    let full = write_lines(dir.path(), "full", &lines);
    let out = hush(
        &["audit", "verify", &full, &format!("-last-hash={full_hash}")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn audit_verify_missing_file_is_an_error() {
    let out = hush(&["audit", "verify", "/nonexistent/audit.log"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/audit.log"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hush(&["frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(hush(&["kv", "get"], &[]).status.code(), Some(2));
    let out = hush(
        &["kv", "put", "secret/app", "novalue"],
        &[("HUSH_ADDR", "http://127.0.0.1:1")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("want key=value"));
}

#[test]
fn missing_address_says_what_to_do() {
    let out = hush(&["kv", "get", "secret/app"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("set HUSH_ADDR"), "{}", stderr(&out));
}

#[test]
fn help_is_there_for_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["operator"],
        &["operator", "init"],
        &["operator", "unseal"],
        &["operator", "seal"],
        &["operator", "seal-status"],
        &["operator", "rotate"],
        &["operator", "key-status"],
        &["kv"],
        &["kv", "put"],
        &["kv", "get"],
        &["kv", "patch"],
        &["kv", "list"],
        &["kv", "delete"],
        &["kv", "undelete"],
        &["kv", "destroy"],
        &["kv", "metadata"],
        &["kv", "metadata", "get"],
        &["kv", "metadata", "put"],
        &["kv", "metadata", "delete"],
        &["policy"],
        &["policy", "write"],
        &["policy", "read"],
        &["policy", "list"],
        &["policy", "delete"],
        &["token"],
        &["token", "create"],
        &["token", "lookup"],
        &["token", "renew"],
        &["token", "revoke"],
        &["audit"],
        &["audit", "verify"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = hush(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{c:?}");
        assert!(stdout(&out).contains("Usage:"), "{c:?}");
        let mut args = c.to_vec();
        args.push("-help");
        assert_eq!(hush(&args, &[]).status.code(), Some(0), "{c:?} -help");
    }
}

/// A request the scripted server saw.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    token: Option<String>,
    body: String,
}

/// Serve `replies` (status, body) in order, one per connection; returns the address.
fn script(replies: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in replies {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut token, mut len) = (None, 0usize);
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "x-vault-token" => token = Some(value.trim().to_string()),
                    "content-length" => len = value.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut buf = vec![0u8; len];
            reader.read_exact(&mut buf).unwrap();
            log.lock().unwrap().push(Seen {
                request_line: request_line.trim_end().to_string(),
                token,
                body: String::from_utf8_lossy(&buf).into_owned(),
            });
            let mut stream = stream;
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
        }
    });
    (addr, seen)
}

#[test]
fn kv_get_maps_the_path_and_prints_a_field() {
    let body = r#"{"data":{"data":{"password":"hunter2"},"metadata":{"version":1,"created_time":"t","deletion_time":"","destroyed":false}}}"#;
    let (addr, seen) = script(vec![(200, body), (200, body)]);
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("HUSH_TOKEN", "hvs.cli-test"),
    ];
    let out = hush(&["kv", "get", "-field=password", "secret/app/db"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hunter2");
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.request_line, "GET /v1/secret/data/app/db HTTP/1.1");
    assert_eq!(s.token.as_deref(), Some("hvs.cli-test"));

    let out = hush(&["kv", "get", "secret/app/db"], &env);
    let text = stdout(&out);
    assert!(
        text.contains("password") && text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn kv_put_sends_the_data_envelope() {
    let body = r#"{"data":{"version":2,"created_time":"t","deletion_time":"","destroyed":false}}"#;
    let (addr, seen) = script(vec![(200, body)]);
    let out = hush(
        &[
            "kv",
            "put",
            "-format=json",
            "-cas=1",
            "secret/app",
            "user=bob",
            "pw=s3",
        ],
        &[("HUSH_ADDR", addr.as_str())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["version"], 2);
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.request_line, "PUT /v1/secret/data/app HTTP/1.1");
    let sent: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"data": {"user": "bob", "pw": "s3"}, "options": {"cas": 1}})
    );
}

#[test]
fn forbidden_says_to_check_the_token() {
    let (addr, _) = script(vec![(403, r#"{"errors":["permission denied"]}"#)]);
    let out = hush(
        &["policy", "list"],
        &[("HUSH_ADDR", addr.as_str()), ("HUSH_TOKEN", "hvs.nope")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("permission denied: check HUSH_TOKEN"), "{err}");
    assert!(!err.contains("hvs.nope"), "{err}");
}

#[test]
fn unseal_reads_the_key_from_stdin() {
    let (addr, seen) = script(vec![(
        200,
        r#"{"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,"progress":1}"#,
    )]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["operator", "unseal"])
        .env("HUSH_ADDR", &addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"share-one\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("1/3"), "{}", stdout(&out));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.request_line, "PUT /v1/sys/unseal HTTP/1.1");
    assert_eq!(s.body, r#"{"key":"share-one"}"#);
}

//! `hush agents ...` (the real hush binary) against a real hushd, fed with reports posted
//! over HTTP by hush-api's typed client (as an agent would, with a `default`-policy token):
//! list, show, who-read with and without -since, stale, JSON output, and the errors.

use std::process::Output;

use hush_api::client::Client;
use hush_api::wire::agents::{Access, AgentIdentity, AgentState, FileState, Report, SourceState};
use hush_tests::{run_hush, Hushd};
use secrecy::SecretString;
use serde_json::{json, Value};

fn hush(h: &Hushd, token: &str, args: &[&str]) -> Output {
    run_hush(
        args,
        &[("HUSH_ADDR", h.addr.as_str()), ("HUSH_TOKEN", token)],
        None,
    )
}

/// Run and insist on exit `code`; returns (stdout, stderr).
fn expect(h: &Hushd, token: &str, args: &[&str], code: i32) -> (String, String) {
    let out = hush(h, token, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "hush {args:?}: {o}{e}");
    (o, e)
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn open(time: String, pid: u32, exe: &str) -> Access {
    Access {
        time,
        event: "open".into(),
        file: "db.password".into(),
        paths: vec!["secret/data/app/db".into()].into(),
        version: 1,
        generation: 1,
        pid,
        uid: 1000 + pid,
        gid: 1000,
        exe: Some(exe.into()),
        container: None,
        result: "allowed".into(),
        reason: None,
    }
}

fn report(batch: &str, id: &str, accesses: Vec<Access>, held: u64) -> Report {
    Report {
        batch_id: batch.into(),
        agent: AgentIdentity {
            id: id.into(),
            host: "node-1".into(),
            pod: Some(id.into()),
            destination: "/secrets".into(),
            version: "0.1.0".into(),
            instance: format!("{id}-instance"),
        },
        accesses,
        dropped_total: 0,
        state: Some(AgentState {
            files: vec![FileState {
                file: "db.password".into(),
                paths: vec!["secret/data/app/db".into()],
                generation: 1,
            }],
            sources: vec![SourceState {
                path: "secret/data/app/db".into(),
                version: Some(held),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_commands_show_what_agents_reported() {
    let h = Hushd::dev().await;
    let root = h.token.clone().unwrap();
    assert_eq!(h.kv_put("app/db", json!({"pw": "one"})).await, 1);
    let agent_token = h.create_token(json!({"policies": ["default"]})).await;
    let agent = Client::new(&h.addr, None, Some(SecretString::from(agent_token.clone()))).unwrap();

    let ack = agent
        .agents_report(&report(
            "b1",
            "ns/web-0",
            vec![
                open(ago(3 * 3600), 11, "/usr/bin/old"),
                open(ago(60), 12, "/usr/bin/cat"),
            ],
            1,
        ))
        .await
        .unwrap();
    assert!(ack.stored);
    agent
        .agents_report(&report(
            "b2",
            "ns/web-1",
            vec![open(ago(30), 13, "/bin/sh")],
            1,
        ))
        .await
        .unwrap();

    // who-read: default 24h, then -since 1h (single-dash, Vault style).
    let (out, _) = expect(&h, &root, &["agents", "who-read", "secret/data/app/db"], 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Time") && lines[0].contains("PID"),
        "{out}"
    );
    assert_eq!(lines.len(), 5, "header, rule, three accesses: {out}");
    assert!(
        lines[2].contains("/usr/bin/old") && lines[2].contains("ns/web-0"),
        "{out}"
    );
    assert!(
        lines[4].contains("/bin/sh") && lines[4].contains("1013"),
        "{out}"
    );
    let (out, _) = expect(
        &h,
        &root,
        &["agents", "who-read", "secret/data/app/db", "-since", "1h"],
        0,
    );
    assert!(!out.contains("/usr/bin/old"), "{out}");
    assert!(
        out.contains("/usr/bin/cat") && out.contains("/bin/sh"),
        "{out}"
    );
    let (out, _) = expect(
        &h,
        &root,
        &[
            "agents",
            "who-read",
            "secret/data/app/db",
            "-since=2h",
            "-format=json",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let pids: Vec<u64> = v["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, vec![12, 13], "{out}");
    let (out, _) = expect(&h, &root, &["agents", "who-read", "secret/data/other"], 0);
    assert_eq!(out, "No access to secret/data/other reported since 24h.\n");

    // list and show.
    let (out, _) = expect(&h, &root, &["agents", "list"], 0);
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains("ns/web-0") && out.contains("ns/web-1"),
        "{out}"
    );
    assert!(!out.contains("yes"), "nobody is stale yet: {out}");
    let (out, _) = expect(&h, &root, &["agents", "show", "ns/web-0"], 0);
    assert!(out.contains("token_accessor"), "{out}");
    assert!(out.contains("====== Sources ======"), "{out}");
    assert!(out.contains("secret/data/app/db"), "{out}");
    assert!(
        !out.contains(&agent_token),
        "the token itself is never shown"
    );

    // A new version: web-1 keeps reporting version 1, web-0 catches up.
    assert_eq!(h.kv_put("app/db", json!({"pw": "two"})).await, 2);
    agent
        .agents_report(&report("b3", "ns/web-0", vec![], 2))
        .await
        .unwrap();
    let (out, _) = expect(&h, &root, &["agents", "stale", "secret/data/app/db"], 0);
    assert!(
        out.starts_with("Current version of secret/data/app/db: 2"),
        "{out}"
    );
    assert!(out.contains("ns/web-1"), "{out}");
    assert!(!out.contains("ns/web-0"), "{out}");
    let (out, _) = expect(
        &h,
        &root,
        &["agents", "stale", "secret/data/app/db", "-format=json"],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["agents"][0]["id"], "ns/web-1");
    assert_eq!(v["agents"][0]["held_version"], 1);
    let (out, _) = expect(&h, &root, &["agents", "list", "-format", "json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["key_info"]["ns/web-1"]["stale"], true, "{out}");
    let (out, _) = expect(&h, &root, &["agents", "list"], 0);
    assert!(out.contains("yes (secret/data/app/db)"), "{out}");

    // Errors: unknown agent, bad since, a token without the fleet policy, no path.
    let (_, err) = expect(&h, &root, &["agents", "show", "ns/nobody"], 1);
    assert!(err.contains("No agent with id \"ns/nobody\""), "{err}");
    let (_, err) = expect(
        &h,
        &root,
        &[
            "agents",
            "who-read",
            "secret/data/app/db",
            "-since",
            "last week",
        ],
        1,
    );
    assert!(err.contains("since"), "{err}");
    let (_, err) = expect(&h, &agent_token, &["agents", "list"], 1);
    assert!(err.contains("permission denied"), "{err}");
    let (_, err) = expect(&h, &root, &["agents", "who-read"], 2);
    assert!(err.contains("PATH"), "{err}");
}

//! `hush audit stats` on the log a real hushd's file audit device wrote for a known sequence
//! of requests: N successful reads, M denied reads (403, a token without access), K reads of a
//! missing path (404), by several identities; the JSON must equal the expected counts exactly.
//! Also the filters, the table, and bad input (missing file, not an audit log, bad -since).

use std::process::Output;

use hush_tests::{run_hush, Hushd};
use serde_json::{json, Value};

const N: usize = 5;
const M: usize = 3;
const K: usize = 4;
const ROOT_READS: usize = 2;

fn stats(args: &[&str]) -> Output {
    let mut all = vec!["audit", "stats"];
    all.extend_from_slice(args);
    run_hush(&all, &[], None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_stats(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("-format=json");
    let out = stats(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn counts(total: usize, successful: usize, failed: usize) -> Value {
    json!({"total": total, "successful": successful, "failed": failed})
}

#[tokio::test]
async fn counts_match_a_known_sequence_of_requests() {
    let (h, _dir, log) = Hushd::dev_with_audit_file().await;

    h.kv_put("app/db", json!({"password": "s3cret"})).await;
    for (name, hcl) in [
        (
            "app-reader",
            "path \"secret/data/app/*\" { capabilities = [\"read\"] }",
        ),
        (
            "other-reader",
            "path \"secret/data/other/*\" { capabilities = [\"read\"] }",
        ),
    ] {
        let (s, b) = h
            .call(
                "PUT",
                &format!("sys/policies/acl/{name}"),
                Some(json!({"policy": hcl})),
            )
            .await;
        assert_eq!(s, 204, "{b}");
    }
    let alice = h
        .create_token(json!({"display_name": "alice", "policies": ["app-reader"]}))
        .await;
    let bob = h
        .create_token(json!({"display_name": "bob", "policies": ["other-reader"]}))
        .await;
    for _ in 0..N {
        let (s, b) = h
            .call_as(Some(&alice), "GET", "secret/data/app/db", None)
            .await;
        assert_eq!(s, 200, "{b}");
    }
    for _ in 0..M {
        let (s, _) = h
            .call_as(Some(&bob), "GET", "secret/data/app/db", None)
            .await;
        assert_eq!(s, 403);
    }
    for _ in 0..K {
        let (s, _) = h
            .call_as(Some(&alice), "GET", "secret/data/app/missing", None)
            .await;
        assert_eq!(s, 404);
    }
    for _ in 0..ROOT_READS {
        let (s, _) = h.call("GET", "secret/data/app/db", None).await;
        assert_eq!(s, 200);
    }
    let log_s = log.display().to_string();

    let expected = json!({
        "secret/data/app/db": {
            "total": 1 + N + M + ROOT_READS,
            "successful": 1 + N + ROOT_READS,
            "failed": M,
            "by_identity": {
                "root": counts(1 + ROOT_READS, 1 + ROOT_READS, 0),
                "token-alice": counts(N, N, 0),
                "token-bob": counts(M, 0, M),
            },
        },
        "secret/data/app/missing": {
            "total": K, "successful": 0, "failed": K,
            "by_identity": {"token-alice": counts(K, 0, K)},
        },
    });
    assert_eq!(json_stats(&[&log_s, "-path", "secret/data/app/"]), expected);
    // A glob, and a since that includes everything.
    assert_eq!(
        json_stats(&[&log_s, "-path=secret/*/missing", "-since", "1h"]),
        json!({"secret/data/app/missing": expected["secret/data/app/missing"]})
    );
    // Without a filter the sys/ and auth/ requests of the setup are counted too.
    let all = json_stats(&[&log_s]);
    assert_eq!(all["secret/data/app/db"], expected["secret/data/app/db"]);
    assert_eq!(all["auth/token/create"]["total"], 2);
    assert_eq!(all["sys/policies/acl/app-reader"]["successful"], 1);
    // A since in the future: nothing.
    assert_eq!(
        json_stats(&[&log_s, "-since", "2999-01-01T00:00:00Z"]),
        json!({})
    );

    // The table: aligned columns, a row per path then per identity.
    let out = stats(&[&log_s, "-path", "secret/data/app/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("Path") && lines[0].contains("Successful"),
        "{table}"
    );
    let db_all: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        db_all,
        ["secret/data/app/db", "all", "11", "8", "3"],
        "{table}"
    );
    let bob_row: Vec<&str> = lines
        .iter()
        .find(|l| l.contains("token-bob"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(bob_row, ["secret/data/app/db", "token-bob", "3", "0", "3"]);
    let col = lines[0].find("Total").unwrap();
    assert!(
        lines[2..]
            .iter()
            .all(|l| l[col..].starts_with(|c: char| c.is_ascii_digit())),
        "{table}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.log");
    let out = stats(&[&missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("could not open audit file"),
        "{}",
        stderr(&out)
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes\n").unwrap();
    let out = stats(&[&text.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 1: not an audit log entry"),
        "{}",
        stderr(&out)
    );

    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let out = stats(&[&empty.display().to_string(), "-since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("-since"), "{}", stderr(&out));
    let out = stats(&[&empty.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("No requests"), "{}", stdout(&out));
}

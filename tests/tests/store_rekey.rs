//! `sys/rekey` on a real hushd over SQLite: new unseal keys (count and threshold) from a
//! quorum of the old ones, as Vault's rekey. The old keys no longer unseal, the new ones do,
//! across a restart; the data and the root token are unchanged. Error paths: sealed (503),
//! no attempt, a second start, unsupported options, a wrong nonce, a duplicate or malformed
//! share, a wrong combination (progress reset), cancel. Audited without the keys in clear.
//! With `require_verification` the new keys take effect only once given back.

use base64::Engine as _;
use hush_tests::{http_client, run_hush, Hushd};
use serde_json::{json, Value};

async fn start(storage: &str) -> Hushd {
    Hushd::start(
        &["--storage", storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await
}

/// `PUT sys/rekey/update` without a token (the endpoint is unauthenticated, as Vault's).
async fn update(h: &Hushd, key: &Value, nonce: &Value) -> (u16, Value) {
    h.call_as(
        None,
        "PUT",
        "sys/rekey/update",
        Some(json!({ "key": key, "nonce": nonce })),
    )
    .await
}

fn from_hex(s: &str) -> Result<Vec<u8>, std::num::ParseIntError> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn rekey_status(h: &Hushd) -> Value {
    let (s, b) = h.call_as(None, "GET", "sys/rekey/init", None).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Unseal with `keys` in order; `Ok(true)` once unsealed, `Err` on the first refusal.
async fn try_unseal(h: &Hushd, keys: &[&Value]) -> Result<bool, (u16, Value)> {
    for key in keys {
        let (s, b) = h
            .call_as(None, "PUT", "sys/unseal", Some(json!({ "key": key })))
            .await;
        if s != 200 {
            return Err((s, b));
        }
        if b["sealed"] == false {
            return Ok(true);
        }
    }
    Ok(false)
}

#[tokio::test]
async fn rekey_5_of_3_to_3_of_2_retires_the_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let audit_log = dir.path().join("audit.log");
    let mut h = start(&storage).await;
    let (s, init) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 5, "secret_threshold": 3})),
        )
        .await;
    assert_eq!(s, 200, "{init}");
    let old: Vec<Value> = init["keys"].as_array().unwrap().clone();

    // Sealed: every rekey endpoint answers 503.
    for (method, path) in [
        ("GET", "sys/rekey/init"),
        ("PUT", "sys/rekey/init"),
        ("DELETE", "sys/rekey/init"),
        ("PUT", "sys/rekey/update"),
    ] {
        let body = (method == "PUT").then(|| json!({"secret_shares": 3, "secret_threshold": 2}));
        let (s, b) = h.call_as(None, method, path, body).await;
        assert_eq!(s, 503, "{method} {path} while sealed: {b}");
    }

    assert_eq!(try_unseal(&h, &[&old[0], &old[1], &old[2]]).await, Ok(true));
    h.token = Some(init["root_token"].as_str().unwrap().to_string());
    let (s, b) = h
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": audit_log}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call("POST", "secret/data/app", Some(json!({"data": {"k": "v"}})))
        .await;
    assert_eq!(s, 200, "{b}");

    // No attempt yet: Vault's idle status; an update is refused.
    assert_eq!(
        rekey_status(&h).await,
        json!({
            "started": false, "nonce": "", "t": 0, "n": 0, "progress": 0, "required": 3,
            "pgp_fingerprints": null, "backup": false, "verification_required": false,
        })
    );
    let (s, b) = update(&h, &old[0], &json!("no-such-nonce")).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("no rekey in progress"),
        "{b}"
    );

    // Unsupported options and bad parameters.
    for body in [
        json!({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["a", "b", "c"]}),
        json!({"secret_shares": 3, "secret_threshold": 2, "backup": true}),
        json!({"secret_shares": 2, "secret_threshold": 3}),
        json!({"secret_shares": 3, "secret_threshold": 1}),
        json!({"secret_shares": 300, "secret_threshold": 2}),
        json!({"secret_threshold": 2}),
    ] {
        let (s, b) = h
            .call_as(None, "PUT", "sys/rekey/init", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    assert_eq!(rekey_status(&h).await["started"], false);

    // Start (no token needed), then a second start is refused.
    let (s, started) = h
        .call_as(
            None,
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(s, 200, "{started}");
    let nonce = started["nonce"].clone();
    assert_eq!(nonce.as_str().unwrap().len(), 36, "a UUID: {started}");
    assert_eq!(
        started,
        json!({
            "started": true, "nonce": nonce, "t": 2, "n": 3, "progress": 0, "required": 3,
            "pgp_fingerprints": null, "backup": false, "verification_required": false,
        })
    );
    assert_eq!(rekey_status(&h).await, started);
    let (s, b) = h
        .call_as(
            None,
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("already in progress"),
        "{b}"
    );

    // Wrong nonce, a share, the same share again, a malformed share, cancel.
    let (s, b) = update(&h, &old[0], &json!("not-the-nonce")).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("nonce"), "{b}");
    let (s, b) = update(&h, &old[0], &nonce).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["progress"].clone(), b["started"].clone()),
        (json!(1), json!(true)),
        "{b}"
    );
    assert!(b.get("keys").is_none(), "{b}");
    let (s, b) = update(&h, &old[0], &nonce).await;
    assert_eq!(s, 400, "duplicate: {b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("already been provided"),
        "{b}"
    );
    for bad in [json!("zz-not-a-key"), json!("abcd"), json!("")] {
        let (s, b) = update(&h, &bad, &nonce).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    assert_eq!(rekey_status(&h).await["progress"], 1);
    let (s, _) = h.call_as(None, "DELETE", "sys/rekey/init", None).await;
    assert_eq!(s, 204);
    assert_eq!(rekey_status(&h).await["started"], false);
    let (s, b) = update(&h, &old[1], &nonce).await;
    assert_eq!(s, 400, "cancelled: {b}");

    // A wrong combination (a share with its y bytes changed): refused at the threshold,
    // progress reset, the attempt and its nonce kept.
    let (_, started) = h
        .call_as(
            None,
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    let nonce = started["nonce"].clone();
    let mut forged = from_hex(old[2].as_str().unwrap()).unwrap();
    forged[5] ^= 0xff;
    update(&h, &old[0], &nonce).await;
    update(&h, &old[1], &nonce).await;
    let (s, b) = update(&h, &json!(to_hex(&forged)), &nonce).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("progress was reset"),
        "{b}"
    );
    let st = rekey_status(&h).await;
    assert_eq!(
        (
            st["started"].clone(),
            st["progress"].clone(),
            st["nonce"].clone()
        ),
        (json!(true), json!(0), nonce.clone()),
        "{st}"
    );

    // Three old shares (one as base64): complete, with the new keys.
    let b64 = base64::engine::general_purpose::STANDARD;
    let old3_b64 = json!(b64.encode(from_hex(old[3].as_str().unwrap()).unwrap()));
    assert_eq!(update(&h, &old[4], &nonce).await.1["progress"], 1);
    assert_eq!(update(&h, &old3_b64, &nonce).await.1["progress"], 2);
    let (s, done) = update(&h, &old[1], &nonce).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["complete"], true, "{done}");
    assert_eq!(done["nonce"], nonce);
    assert_eq!(
        (
            done["backup"].clone(),
            done["verification_required"].clone(),
            done["pgp_fingerprints"].clone()
        ),
        (json!(false), json!(false), Value::Null)
    );
    let new: Vec<Value> = done["keys"].as_array().unwrap().clone();
    let new_b64 = done["keys_base64"].as_array().unwrap();
    assert_eq!((new.len(), new_b64.len()), (3, 3), "{done}");
    for (hex_key, b64_key) in new.iter().zip(new_b64) {
        let raw = from_hex(hex_key.as_str().unwrap()).unwrap();
        assert_eq!(raw.len(), 33);
        assert_eq!(b64.encode(&raw), b64_key.as_str().unwrap());
        assert!(!old.contains(hex_key));
    }
    assert_eq!(rekey_status(&h).await["started"], false);
    assert_eq!(rekey_status(&h).await["required"], 2);
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!(
        (ss["t"].clone(), ss["n"].clone(), ss["sealed"].clone()),
        (json!(2), json!(3), json!(false))
    );
    let (s, _) = h.call("GET", "secret/data/app", None).await;
    assert_eq!(s, 200, "still unsealed, same data");

    // The audit log saw the rekey, never a key in clear.
    let log = std::fs::read_to_string(&audit_log).unwrap();
    assert!(log.contains("sys/rekey/update"), "audited");
    for k in old.iter().chain(&new).chain(new_b64) {
        assert!(!log.contains(k.as_str().unwrap()), "a key in the audit log");
    }

    // Sealed: old shares are refused, new ones unseal; and so after a restart.
    let (s, _) = h.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call_as(None, "GET", "sys/rekey/init", None).await;
    assert_eq!(s, 503);
    let refused = try_unseal(&h, &[&old[0], &old[1], &old[2]]).await;
    assert!(matches!(refused, Err((400, _))), "old shares: {refused:?}");
    assert_eq!(try_unseal(&h, &[&new[0], &new[2]]).await, Ok(true));
    drop(h);
    let mut h = start(&storage).await;
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!(
        (ss["t"].clone(), ss["n"].clone(), ss["sealed"].clone()),
        (json!(2), json!(3), json!(true))
    );
    let refused = try_unseal(&h, &[&old[3], &old[4], &old[0]]).await;
    assert!(
        matches!(refused, Err((400, _))),
        "old shares after restart: {refused:?}"
    );
    assert_eq!(try_unseal(&h, &[&new[1], &new_b64[2]]).await, Ok(true));
    h.token = Some(init["root_token"].as_str().unwrap().to_string());
    let (s, b) = h.call("GET", "secret/data/app", None).await;
    assert_eq!(
        (s, b["data"]["data"]["k"].clone()),
        (200, json!("v")),
        "{b}"
    );
}

/// `hush -format=json ARGS` against `h` (no token: rekey needs none); (exit code, stdout JSON
/// or Null, stderr).
fn hush_json(h: &Hushd, args: &[&str], input: Option<&str>) -> (Option<i32>, Value, String) {
    let mut all = vec!["-format=json"];
    all.extend_from_slice(args);
    let out = run_hush(&all, &[("HUSH_ADDR", h.addr.as_str())], input);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn hush_operator_rekey_init_status_key_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let h = start(&storage).await;
    let (_, init) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    let old = init["keys_base64"].as_array().unwrap().clone();
    assert_eq!(try_unseal(&h, &[&old[0], &old[1]]).await, Ok(true));

    let (code, _, err) = hush_json(&h, &["operator", "rekey", "-key"], None);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = hush_json(&h, &["operator", "rekey", "KEY"], None);
    assert_eq!(code, Some(2), "no rekey in progress: {err}");
    assert!(err.contains("-init"), "{err}");
    let (code, st, err) = hush_json(
        &h,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=1",
            "-key-threshold=1",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (st["started"].clone(), st["n"].clone()),
        (json!(true), json!(1))
    );
    let (code, again, _) = hush_json(&h, &["operator", "rekey", "-status"], None);
    assert_eq!(
        (code, again["nonce"].clone()),
        (Some(0), st["nonce"].clone())
    );
    let (code, _, _) = hush_json(&h, &["operator", "rekey", "-cancel"], None);
    assert_eq!(code, Some(0));
    assert_eq!(rekey_status(&h).await["started"], false);

    hush_json(
        &h,
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=1",
            "-key-threshold=1",
        ],
        None,
    );
    // A key as an argument, the next on stdin ("-"); the nonce is read from the server.
    let (code, st, err) = hush_json(&h, &["operator", "rekey", old[2].as_str().unwrap()], None);
    assert_eq!((code, st["progress"].clone()), (Some(0), json!(1)), "{err}");
    let (code, done, err) = hush_json(
        &h,
        &["operator", "rekey", "-"],
        Some(old[0].as_str().unwrap()),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done["complete"], true, "{done}");
    let new = done["keys_base64"].as_array().unwrap().clone();
    assert_eq!(new.len(), 1);
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!((ss["t"].clone(), ss["n"].clone()), (json!(1), json!(1)));

    // -verify: 1/1 -> 2/2, in force only once both new keys are entered back.
    let (code, st, err) = hush_json(
        &h,
        &[
            "operator",
            "rekey",
            "-init",
            "-verify",
            "-key-shares=2",
            "-key-threshold=2",
        ],
        None,
    );
    assert_eq!(
        (code, st["verification_required"].clone()),
        (Some(0), json!(true)),
        "{err}"
    );
    let (code, pending, err) =
        hush_json(&h, &["operator", "rekey", new[0].as_str().unwrap()], None);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !pending["verification_nonce"].as_str().unwrap().is_empty(),
        "{pending}"
    );
    let two = pending["keys"].as_array().unwrap().clone();
    let (code, st, _) = hush_json(&h, &["operator", "rekey", "-verify", "-status"], None);
    assert_eq!(
        (code, st["nonce"].clone()),
        (Some(0), pending["verification_nonce"].clone())
    );
    let (code, st, err) = hush_json(
        &h,
        &["operator", "rekey", "-verify", two[1].as_str().unwrap()],
        None,
    );
    assert_eq!((code, st["progress"].clone()), (Some(0), json!(1)), "{err}");
    let (code, st, err) = hush_json(
        &h,
        &["operator", "rekey", "-verify", "-"],
        Some(two[0].as_str().unwrap()),
    );
    assert_eq!(
        (code, st["complete"].clone()),
        (Some(0), json!(true)),
        "{err}"
    );
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!((ss["t"].clone(), ss["n"].clone()), (json!(2), json!(2)));
    let new = two;
    let (s, _) = h
        .call_as(
            Some(init["root_token"].as_str().unwrap()),
            "PUT",
            "sys/seal",
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert!(
        try_unseal(&h, &[&old[0], &old[1]]).await.is_err(),
        "the first keys are refused"
    );
    let one_of_one = [done["keys_base64"][0].clone()];
    assert!(
        try_unseal(&h, &[&one_of_one[0]]).await.is_err(),
        "the 1/1 key is refused"
    );
    assert_eq!(try_unseal(&h, &[&new[0], &new[1]]).await, Ok(true));
}

#[tokio::test]
async fn a_verified_rekey_takes_effect_once_the_new_keys_are_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let h = start(&storage).await;
    let (_, init) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    let old = init["keys"].as_array().unwrap().clone();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(try_unseal(&h, &[&old[0], &old[1]]).await, Ok(true));
    let (s, b) = h.call_as(None, "GET", "sys/rekey/verify", None).await;
    assert_eq!(s, 400, "no rekey: {b}");

    let (s, started) = h
        .call_as(
            None,
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 5, "secret_threshold": 3, "require_verification": true})),
        )
        .await;
    assert_eq!(s, 200, "{started}");
    assert_eq!(started["verification_required"], true);
    assert!(started.get("verification_nonce").is_none(), "{started}");
    let nonce = started["nonce"].clone();
    let (s, b) = h.call_as(None, "GET", "sys/rekey/verify", None).await;
    assert_eq!(s, 400, "no verification yet: {b}");
    update(&h, &old[2], &nonce).await;
    let (s, done) = update(&h, &old[0], &nonce).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        (
            done["complete"].clone(),
            done["verification_required"].clone()
        ),
        (json!(true), json!(true)),
        "{done}"
    );
    let vnonce = done["verification_nonce"].clone();
    assert!(vnonce.as_str().is_some_and(|v| v.len() == 36 && v != nonce));
    let new = done["keys"].as_array().unwrap().clone();
    assert_eq!(new.len(), 5);

    // Not in force yet.
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!((ss["t"].clone(), ss["n"].clone()), (json!(2), json!(3)));
    let st = rekey_status(&h).await;
    assert_eq!(st["verification_nonce"], vnonce, "{st}");
    let (s, b) = update(&h, &old[1], &nonce).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("verification must be performed"),
        "{b}"
    );

    let verify = |key: Value, nonce: Value| {
        let h = &h;
        async move {
            h.call_as(
                None,
                "PUT",
                "sys/rekey/verify",
                Some(json!({ "key": key, "nonce": nonce })),
            )
            .await
        }
    };
    let (s, b) = verify(new[0].clone(), nonce.clone()).await;
    assert_eq!(s, 400, "the rekey nonce is not the verification's: {b}");
    let (s, b) = verify(new[0].clone(), vnonce.clone()).await;
    assert_eq!((s, b["progress"].clone()), (200, json!(1)), "{b}");
    let (s, b) = verify(new[0].clone(), vnonce.clone()).await;
    assert_eq!(s, 400, "duplicate: {b}");
    let (s, b) = h.call_as(None, "GET", "sys/rekey/verify", None).await;
    assert_eq!(
        (s, b),
        (
            200,
            json!({"started": true, "nonce": vnonce, "t": 3, "n": 5, "progress": 1})
        )
    );
    // DELETE restarts the verification with a new nonce; the new keys stay pending.
    let (s, b) = h.call_as(None, "DELETE", "sys/rekey/verify", None).await;
    assert_eq!((s, b["progress"].clone()), (200, json!(0)), "{b}");
    let vnonce2 = b["nonce"].clone();
    assert_ne!(vnonce2, vnonce);
    // Old shares given as new ones: refused at the threshold, progress reset.
    verify(old[0].clone(), vnonce2.clone()).await;
    verify(old[1].clone(), vnonce2.clone()).await;
    let (s, b) = verify(old[2].clone(), vnonce2.clone()).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("progress was reset"),
        "{b}"
    );
    for key in &new[2..4] {
        let (s, b) = verify(key.clone(), vnonce2.clone()).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = verify(new[4].clone(), vnonce2.clone()).await;
    assert_eq!((s, b), (200, json!({"nonce": vnonce2, "complete": true})));
    assert_eq!(rekey_status(&h).await["started"], false);
    let (_, ss) = h.call_as(None, "GET", "sys/seal-status", None).await;
    assert_eq!((ss["t"].clone(), ss["n"].clone()), (json!(3), json!(5)));

    let (s, _) = h.call_as(Some(&root), "PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    assert!(try_unseal(&h, &[&old[0], &old[1], &old[2]]).await.is_err());
    assert_eq!(try_unseal(&h, &[&new[4], &new[1], &new[3]]).await, Ok(true));
}

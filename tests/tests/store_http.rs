//! The HTTP surface of a real hushd: init/unseal lifecycle, Vault error shapes and status
//! codes, path normalisation, body limits, tokens, TLS and certificate reload, config errors.

use std::process::Command;
use std::time::Duration;

use hush_tests::{bin, free_port, http_client, raw_request, tls_client, write_cert, Hushd};
use serde_json::json;

#[tokio::test]
async fn lifecycle_init_unseal_seal_and_health_codes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let mut h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;

    let (s, _) = h.call("GET", "sys/health", None).await;
    assert_eq!(s, 501, "not initialised");
    let (s, b) = h.call("GET", "sys/init", None).await;
    assert_eq!((s, b["initialized"].clone()), (200, json!(false)));
    let (s, b) = h.call("GET", "secret/data/x", None).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("sealed"), "{b}");

    // Bad init parameters.
    let (s, b) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 5})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = h
        .call("PUT", "sys/init", Some(json!({"secret_shares": "x"})))
        .await;
    assert_eq!(s, 400);

    let (s, init) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 5, "secret_threshold": 3})),
        )
        .await;
    assert_eq!(s, 200, "{init}");
    assert_eq!(init["keys"].as_array().unwrap().len(), 5);
    assert_eq!(init["keys_base64"].as_array().unwrap().len(), 5);
    let (s, _) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(s, 400, "second init refused");
    let (s, _) = h.call("GET", "sys/health", None).await;
    assert_eq!(s, 503, "sealed after init");

    // Unseal with 3 of 5 (base64 and hex both accepted), checking progress.
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"key": init["keys"][4]})))
        .await;
    assert_eq!(
        (s, b["progress"].clone(), b["sealed"].clone()),
        (200, json!(1), json!(true))
    );
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"reset": true})))
        .await;
    assert_eq!((s, b["progress"].clone()), (200, json!(0)));
    let (s, _) = h
        .call("PUT", "sys/unseal", Some(json!({"key": "not-a-key!"})))
        .await;
    assert_eq!(s, 400);
    let (s, _) = h.call("PUT", "sys/unseal", Some(json!({}))).await;
    assert_eq!(s, 400);
    for k in [&init["keys"][0], &init["keys_base64"][2], &init["keys"][3]] {
        let (s, _) = h.call("PUT", "sys/unseal", Some(json!({ "key": k }))).await;
        assert_eq!(s, 200);
    }
    let (s, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(
        (s, b["sealed"].clone(), b["t"].clone(), b["n"].clone()),
        (200, json!(false), json!(3), json!(5))
    );
    assert_eq!(b["storage_type"], "sqlite");
    let (s, _) = h.call("GET", "sys/health", None).await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call("GET", "sys/health?sealedcode=299&activecode=204", None)
        .await;
    assert_eq!(s, 204);

    h.token = Some(init["root_token"].as_str().unwrap().to_string());
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

    // Seal needs a token with sudo; then everything is 503 again.
    let (s, _) = h.call_as(None, "PUT", "sys/seal", None).await;
    assert_eq!(s, 403);
    let (s, _) = h.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "secret/data/app", None).await;
    assert_eq!(s, 503);
    // Restart: still initialised, sealed; unseal and the data is there.
    drop(h);
    let mut h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    let (_, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(
        (b["initialized"].clone(), b["sealed"].clone()),
        (json!(true), json!(true))
    );
    for k in [&init["keys"][1], &init["keys"][2], &init["keys"][3]] {
        h.call("PUT", "sys/unseal", Some(json!({ "key": k }))).await;
    }
    h.token = Some(init["root_token"].as_str().unwrap().to_string());
    let (s, b) = h.call("GET", "secret/data/app", None).await;
    assert_eq!(
        (s, b["data"]["data"]["k"].clone()),
        (200, json!("v")),
        "{b}"
    );
}

#[tokio::test]
async fn wrong_unseal_keys_keep_it_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    let (_, init) = h
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    let mut key = hex_decode(init["keys"][0].as_str().unwrap());
    key[3] ^= 0xff;
    let (s, b) = h
        .call("PUT", "sys/unseal", Some(json!({"key": hex_encode(&key)})))
        .await;
    assert_eq!(s, 400, "{b}");
    let (_, b) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(b["sealed"], true);
}

/// A GET over a raw TCP socket, so the path reaches the server exactly as written.
async fn raw_get(port: u16, path: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nConnection: close\r\n\r\n"
    );
    raw_request(port, &req).await
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn vault_error_shapes_and_codes() {
    let h = Hushd::dev().await;
    // Path traversal and empty segments, sent over a raw socket: HTTP client libraries
    // would clean these paths themselves.
    for bad in [
        "secret/../sys/seal",
        "secret/%2e%2e/sys",
        "secret/%2E%2e/x",
        "secret//data/x",
        "secret/./data",
    ] {
        let (s, b) = raw_get(h.port, &format!("/v1/{bad}")).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b.contains("\"errors\""), "{b}");
    }
    // Bad JSON, wrong JSON type.
    let url = format!("{}/v1/secret/data/x", h.addr);
    let r = h
        .client
        .post(&url)
        .header("X-Vault-Token", "root")
        .body("{\"data\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(b["errors"][0].as_str().unwrap().contains("JSON"), "{b}");
    let r = h
        .client
        .post(&url)
        .header("X-Vault-Token", "root")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over the body limit: 413 without reading it all.
    // A declared length over 32 MiB is refused before the body is read.
    let (s, b) = raw_request(
        h.port,
        "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nContent-Length: 40000000\r\nConnection: close\r\n\r\n{",
    )
    .await;
    assert_eq!(s, 413, "{b}");
    assert!(b.contains("too large"), "{b}");
    // A chunked body that grows past the limit is cut off too.
    let mut chunked = String::from(
        "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let chunk = " ".repeat(1 << 20);
    for _ in 0..33 {
        chunked.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let (s, _) = raw_request(h.port, &chunked).await;
    assert_eq!(s, 413);
    // Missing, forged and Bearer tokens.
    let (s, b) = h.call_as(None, "GET", "secret/data/x", None).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["errors"][0], "permission denied");
    let (s, _) = h
        .call_as(
            Some("hvs.forgedforgedforgedforged12"),
            "GET",
            "secret/data/x",
            None,
        )
        .await;
    assert_eq!(s, 403);
    let r = h
        .client
        .get(format!("{}/v1/auth/token/lookup-self", h.addr))
        .bearer_auth("root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Unknown route, unsupported method.
    let (s, _) = h.call("GET", "nope/x", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("OPTIONS", "secret/data/x", None).await;
    assert_eq!(s, 405);
    let r = h
        .client
        .get(format!("{}/v2/secret", h.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Mounts: good and bad.
    let (s, b) = h
        .call("POST", "sys/mounts/team", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "sys/mounts", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["team/"]["options"]["version"], "2", "{b}");
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/team/sub",
            Some(json!({"type": "kv-v2"})),
        )
        .await;
    assert_eq!(s, 400, "overlapping mount: {b}");
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/v3",
            Some(json!({"type": "kv", "options": {"version": "3"}})),
        )
        .await;
    assert_eq!(s, 400, "no kv version 3: {b}");
    let (s, _) = h
        .call("POST", "sys/mounts/x", Some(json!({"type": "transit"})))
        .await;
    assert_eq!(s, 400);
    let (s, b) = h
        .call(
            "POST",
            "sys/mounts/team/tune",
            Some(json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (_, b) = h.call("GET", "sys/mounts/team/tune", None).await;
    assert_eq!(b["data"]["max_lease_ttl"], 7200, "{b}");
    let (s, _) = h
        .call(
            "POST",
            "sys/mounts/team/tune",
            Some(json!({"default_lease_ttl": "3h"})),
        )
        .await;
    assert_eq!(s, 400, "default above max");
    let (s, b) = h.call("GET", "sys/internal/ui/mounts/team/app", None).await;
    assert_eq!((s, b["data"]["path"].clone()), (200, json!("team/")), "{b}");
    let (s, _) = h.call("DELETE", "sys/mounts/team", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "team/data/x", None).await;
    assert_eq!(s, 404);
    // Key status and rotation need sudo (root has it).
    let (_, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!(b["term"], 1, "{b}");
    let (s, _) = h.call("PUT", "sys/rotate", None).await;
    assert_eq!(s, 204);
    let (_, b) = h.call("GET", "sys/key-status", None).await;
    assert_eq!(b["data"]["term"], 2, "{b}");
}

#[tokio::test]
async fn tls_serves_and_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path(), "a");
    let (cert_b, key_b) = write_cert(dir.path(), "b");
    let cert_s = cert.to_string_lossy().to_string();
    let key_s = key.to_string_lossy().to_string();
    let mut h = Hushd::start(
        &[
            "--storage",
            "inmem",
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
        ],
        "https",
        tls_client(&cert),
    )
    .await;
    let (s, _) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(s, 200);
    // A client that trusts another CA is refused.
    let other = tls_client(&cert_b);
    assert!(other
        .get(format!("{}/v1/sys/seal-status", h.addr))
        .send()
        .await
        .is_err());
    // Plain HTTP to the TLS port fails.
    let plain = http_client();
    let plain_ok = plain
        .get(format!("http://127.0.0.1:{}/v1/sys/seal-status", h.port))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(!plain_ok, "plain HTTP must not be served on the TLS port");
    // Swap in certificate b: new connections get it without a restart.
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let fresh = tls_client(&cert_b);
        if fresh
            .get(format!("{}/v1/sys/seal-status", h.addr))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    h.client = tls_client(&cert_b);
    let (s, _) = h.call("GET", "sys/seal-status", None).await;
    assert_eq!(s, 200);
}

fn hushd_fails(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("hushd")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configuration_exits_64_with_one_exact_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--listen", &listen, "--insecure-no-tls"],
            "missing storage",
        ),
        (
            vec!["--storage", "inmem", "--listen", &listen],
            "TLS is required",
        ),
        (
            vec![
                "--storage",
                "inmem",
                "--insecure-no-tls",
                "--listen",
                "0.0.0.0:0",
            ],
            "refusing plain HTTP",
        ),
        (
            vec!["--storage", "mysql://x", "--insecure-no-tls"],
            "unsupported storage",
        ),
        (
            vec![
                "--storage",
                "inmem",
                "--insecure-no-tls",
                "--listen",
                "localhost",
            ],
            "invalid listen address",
        ),
        (vec!["--dev", "--storage", "inmem"], "do not combine"),
        (
            vec![
                "--storage",
                "inmem",
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "does not exist",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = hushd_fails(&args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.starts_with("hushd: invalid configuration: "), "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let cfg = dir.path().join("hushd.toml");
    std::fs::write(&cfg, "storage = \"inmem\"\nlisten_addr = \"x\"\n").unwrap();
    let (code, err) = hushd_fails(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("unknown field"), "{err}");
    let (code, _) = hushd_fails(&["--help"]);
    assert_eq!(code, 0);
}

#[tokio::test]
async fn config_file_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("hushd.toml");
    std::fs::write(
        &cfg,
        format!("storage = \"sqlite://{}/h.db\"\nlisten = \"127.0.0.1:{port}\"\ninsecure_no_tls = true\nlog_format = \"json\"\n", dir.path().display()),
    )
    .unwrap();
    let child = Command::new(bin("hushd"))
        .args(["--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _k = Kill(child);
    let c = http_client();
    let url = format!("http://127.0.0.1:{port}/v1/sys/seal-status");
    let mut ok = false;
    for _ in 0..300 {
        if let Ok(r) = c.get(&url).send().await {
            let b: serde_json::Value = r.json().await.unwrap();
            assert_eq!(b["storage_type"], "sqlite");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "hushd did not come up from its config file");
    assert!(dir.path().join("h.db").exists());
}

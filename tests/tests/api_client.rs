//! `hush_api::Client` against real hushd processes over real HTTP(S): KV v2, `sys/`, tokens,
//! audit devices, how server errors map to `ClientError`, TLS trust, and the token staying out
//! of `Debug` and error text.

use std::collections::BTreeMap;

use hush_api::wire::kv::KvMetadataUpdate;
use hush_api::wire::sys::InitRequest;
use hush_api::wire::token::TokenCreateRequest;
use hush_api::wire::Data;
use hush_api::{Client, ClientError};
use hush_tests::{free_port, http_client, tls_client, write_ca_signed_cert, Hushd};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

fn client(h: &Hushd, token: Option<&str>) -> Client {
    Client::new(
        &h.addr,
        None,
        token.map(|t| SecretString::from(t.to_string())),
    )
    .unwrap()
}

fn data(pairs: &[(&str, &str)]) -> Data {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

#[tokio::test]
async fn kv_write_read_versions_and_metadata() {
    let h = Hushd::dev().await;
    let c = client(&h, Some("root"));

    assert!(c.kv_get("secret", "app/db", None).await.unwrap().is_none());
    let m = c
        .kv_put(
            "secret",
            "app/db",
            data(&[("user", "a"), ("pw", "1")]),
            Some(0),
        )
        .await
        .unwrap();
    assert_eq!(m.version, 1);
    let m = c
        .kv_put(
            "secret",
            "app/db",
            data(&[("user", "a"), ("pw", "2")]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(m.version, 2);
    let m = c
        .kv_patch("secret", "app/db", data(&[("pw", "3")]), Some(2))
        .await
        .unwrap();
    assert_eq!(m.version, 3);

    let s = c.kv_get("secret", "app/db", None).await.unwrap().unwrap();
    let d = s.data.clone().unwrap();
    assert_eq!(
        (d["user"].clone(), d["pw"].clone()),
        (json!("a"), json!("3"))
    );
    assert_eq!(s.metadata.version, 3);
    let dbg = format!("{s:?}");
    assert!(dbg.contains("pw") && !dbg.contains("\"3\""), "{dbg}");
    let v1 = c
        .kv_get("secret", "app/db", Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.data.unwrap()["pw"], "1");

    // Check-and-set mismatch: 400 with the server's message.
    let err = c
        .kv_put("secret", "app/db", data(&[("pw", "x")]), Some(1))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.errors()[0].contains("check-and-set"), "{err}");

    // Lists: folders end in /, an empty folder is None.
    c.kv_put("secret", "app/web", data(&[("k", "v")]), None)
        .await
        .unwrap();
    assert_eq!(
        c.kv_list("secret", "app").await.unwrap().unwrap(),
        ["db", "web"]
    );
    assert_eq!(c.kv_list("secret", "").await.unwrap().unwrap(), ["app/"]);
    assert!(c.kv_list("secret", "nothing").await.unwrap().is_none());

    // Soft delete: the read answers with metadata and no data; undelete restores.
    c.kv_delete("secret", "app/db").await.unwrap();
    let s = c.kv_get("secret", "app/db", None).await.unwrap().unwrap();
    assert!(s.data.is_none());
    assert!(!s.metadata.deletion_time.is_empty());
    c.kv_undelete("secret", "app/db", &[3]).await.unwrap();
    assert!(c
        .kv_get("secret", "app/db", None)
        .await
        .unwrap()
        .unwrap()
        .data
        .is_some());
    c.kv_delete_versions("secret", "app/db", &[2])
        .await
        .unwrap();
    let v2 = c
        .kv_get("secret", "app/db", Some(2))
        .await
        .unwrap()
        .unwrap();
    assert!(v2.data.is_none() && !v2.metadata.destroyed);
    c.kv_destroy("secret", "app/db", &[1]).await.unwrap();
    let v1 = c
        .kv_get("secret", "app/db", Some(1))
        .await
        .unwrap()
        .unwrap();
    assert!(v1.data.is_none() && v1.metadata.destroyed);

    // Metadata.
    let update = KvMetadataUpdate {
        max_versions: Some(5),
        custom_metadata: Some(BTreeMap::from([("owner".into(), "ops".into())])),
        ..Default::default()
    };
    c.kv_metadata_put("secret", "app/db", &update)
        .await
        .unwrap();
    let meta = c
        .kv_metadata_get("secret", "app/db")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((meta.current_version, meta.max_versions), (3, 5));
    assert_eq!(meta.custom_metadata.unwrap()["owner"], "ops");
    assert!(meta.versions["1"].destroyed);
    assert!(!meta.versions["2"].deletion_time.is_empty());
    c.kv_metadata_delete("secret", "app/db").await.unwrap();
    assert!(c
        .kv_metadata_get("secret", "app/db")
        .await
        .unwrap()
        .is_none());
    assert!(c.kv_get("secret", "app/db", None).await.unwrap().is_none());
}

#[tokio::test]
async fn paths_are_escaped_end_to_end() {
    let h = Hushd::dev().await;
    let c = client(&h, Some("root"));
    c.kv_put("secret", "dir/a b", data(&[("k", "v")]), None)
        .await
        .unwrap();
    let s = c.kv_get("secret", "dir/a b", None).await.unwrap().unwrap();
    assert_eq!(s.data.unwrap()["k"], "v");
    assert_eq!(c.kv_list("secret", "dir").await.unwrap().unwrap(), ["a b"]);
    // The generic calls reach the same place.
    let r = c.read("secret/data/dir/a b").await.unwrap().unwrap();
    assert_eq!(r.data.unwrap()["data"]["k"], "v");
}

#[tokio::test]
async fn sys_init_unseal_seal_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let h = Hushd::start(
        &["--storage", &storage, "--insecure-no-tls"],
        "http",
        http_client(),
    )
    .await;
    let anon = client(&h, None);
    assert!(!anon.init_status().await.unwrap());
    let s = anon.seal_status().await.unwrap();
    assert!(!s.initialized && s.sealed);
    assert_eq!(s.storage_type, "sqlite");

    // Bad parameters: 400 with the reason.
    let err = anon
        .init(&InitRequest {
            secret_shares: 2,
            secret_threshold: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(!err.errors().is_empty());

    let init = anon
        .init(&InitRequest {
            secret_shares: 3,
            secret_threshold: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((init.keys.len(), init.keys_base64.len()), (3, 3));
    let root = init.root_token.expose_secret().to_string();
    assert!(anon.init_status().await.unwrap());

    // Sealed: requests are 503.
    let rc = client(&h, Some(&root));
    let err = rc.key_status().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    let s = anon.unseal(init.keys[0].clone()).await.unwrap();
    assert_eq!((s.sealed, s.progress, s.t, s.n), (true, 1, 2, 3));
    let s = anon.unseal_reset().await.unwrap();
    assert_eq!(s.progress, 0);
    let err = anon
        .unseal(SecretString::from("not-a-key!".to_string()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    anon.unseal(init.keys_base64[1].clone()).await.unwrap();
    let s = anon.unseal(init.keys[2].clone()).await.unwrap();
    assert!(!s.sealed);

    let before = rc.key_status().await.unwrap();
    rc.rotate().await.unwrap();
    assert_eq!(rc.key_status().await.unwrap().term, before.term + 1);

    // Seal needs a privileged token.
    let err = anon.seal().await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    rc.seal().await.unwrap();
    assert!(anon.seal_status().await.unwrap().sealed);
}

#[tokio::test]
async fn policies_and_audit_devices() {
    let h = Hushd::dev().await;
    let c = client(&h, Some("root"));
    let text = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n";
    c.policy_write("app-read", text).await.unwrap();
    assert_eq!(c.policy_read("app-read").await.unwrap().unwrap(), text);
    assert!(c.policy_read("missing").await.unwrap().is_none());
    let names = c.policy_list().await.unwrap();
    assert!(names.contains(&"app-read".to_string()), "{names:?}");
    let err = c.policy_write("bad", "garbage {").await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.errors()[0].contains("parse"), "{err}");
    c.policy_delete("app-read").await.unwrap();
    assert!(c.policy_read("app-read").await.unwrap().is_none());

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    assert!(c.audit_list().await.unwrap().is_empty());
    let options = BTreeMap::from([("file_path".to_string(), log.display().to_string())]);
    c.audit_enable("file", "file", "test log", &options)
        .await
        .unwrap();
    c.kv_put("secret", "a", data(&[("k", "v")]), None)
        .await
        .unwrap();
    let devices = c.audit_list().await.unwrap();
    let d = &devices["file/"];
    assert_eq!(
        (d.kind.as_str(), d.description.as_str()),
        ("file", "test log")
    );
    assert_eq!(d.options, options);
    let head = d.hash_chain.clone().unwrap();
    assert!(
        head.seq >= 2 && head.last_hash.starts_with("sha256:"),
        "{head:?}"
    );
    let summary =
        hush_api::audit::verify(std::io::BufReader::new(std::fs::File::open(&log).unwrap()))
            .unwrap();
    assert!(summary.lines >= 2);
    let err = c
        .audit_enable("other", "syslog", "", &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    c.audit_disable("file").await.unwrap();
    assert!(c.audit_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn token_helpers() {
    let h = Hushd::dev().await;
    let root = client(&h, Some("root"));
    let req = TokenCreateRequest {
        policies: vec!["default".into()],
        ttl: Some("1h".into()),
        display_name: Some("ci".into()),
        meta: Some(BTreeMap::from([("team".into(), "ops".into())])),
        ..Default::default()
    };
    let auth = root.token_create(&req).await.unwrap();
    assert!(auth.client_token.expose_secret().starts_with("hvs."));
    assert!(!format!("{auth:?}").contains(auth.client_token.expose_secret()));
    assert_eq!(auth.lease_duration, 3600);
    let child = root.with_token(Some(auth.client_token.clone()));

    let me = child.token_lookup_self().await.unwrap();
    assert_eq!(me.accessor, auth.accessor);
    assert_eq!(me.meta.clone().unwrap()["team"], "ops");
    assert!(me.display_name.contains("ci"), "{}", me.display_name);
    let other = root.token_lookup(&auth.client_token).await.unwrap();
    assert_eq!(other.accessor, auth.accessor);
    let by_acc = root.token_lookup_accessor(&auth.accessor).await.unwrap();
    assert!(by_acc.id.expose_secret().is_empty(), "no token by accessor");

    let renewed = child.token_renew_self(Some("30m")).await.unwrap();
    assert_eq!(renewed.lease_duration, 1800);
    root.token_renew(&auth.client_token, Some("20m"))
        .await
        .unwrap();
    let by_acc = root
        .token_renew_accessor(&auth.accessor, Some("25m"))
        .await
        .unwrap();
    assert_eq!(by_acc.lease_duration, 1500);
    assert!(
        by_acc.client_token.expose_secret().is_empty(),
        "no token by accessor"
    );
    let err = root
        .token_renew_accessor("no-such-accessor", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid accessor"), "{err}");

    // Revocation, three ways; a revoked token is refused.
    root.token_revoke_accessor(&auth.accessor).await.unwrap();
    let err = child.token_lookup_self().await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");

    let a2 = root.token_create(&req).await.unwrap();
    root.token_revoke(&a2.client_token).await.unwrap();
    assert!(root.token_lookup(&a2.client_token).await.is_err());

    let a3 = root.token_create(&req).await.unwrap();
    let c3 = root.with_token(Some(a3.client_token.clone()));
    c3.token_revoke_self().await.unwrap();
    assert!(c3
        .token_lookup_self()
        .await
        .unwrap_err()
        .is_permission_denied());

    // A default-policy token may not read secrets.
    let a4 = root.token_create(&req).await.unwrap();
    let c4 = root.with_token(Some(a4.client_token.clone()));
    let err = c4.kv_get("secret", "x", None).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
}

#[tokio::test]
async fn errors_keep_status_and_server_messages_but_never_the_token() {
    let h = Hushd::dev().await;
    let secret_token = "hvs.never-show-this-token";
    let wrong = client(&h, Some(secret_token));
    let err = wrong.kv_get("secret", "x", None).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert_eq!(err.errors(), ["permission denied"]);
    let text = format!("{err} {err:?} {wrong:?}");
    assert!(!text.contains(secret_token), "{text}");
    assert!(text.contains("403"), "{text}");

    let none = client(&h, None);
    let err = none.policy_list().await.unwrap_err();
    assert_eq!(err.status(), Some(403));

    let root = client(&h, Some("root"));
    let err = root.read("nope/x").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.errors()[0].contains("no handler"), "{err}");
    assert_eq!(
        err.to_string(),
        format!("server answered 404 Not Found: {}", err.errors()[0])
    );
    // A 404 without errors is "nothing there", not an error.
    assert!(root.read("secret/data/missing").await.unwrap().is_none());
    // Bad request bodies: 400 with the reason.
    let err = root
        .write("secret/data/x", &json!({"data": "not an object"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(!err.errors().is_empty());
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let port = free_port();
    let c = Client::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Some(SecretString::from("hvs.t".to_string())),
    )
    .unwrap();
    let err = c.seal_status().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.to_string().contains("hvs.t"), "{err}");
}

#[tokio::test]
async fn tls_trusts_the_given_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_ca_signed_cert(dir.path(), "server");
    let (other_ca, _, _) = write_ca_signed_cert(dir.path(), "other");
    let cert_s = cert.display().to_string();
    let key_s = key.display().to_string();
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

    // Init and unseal through the client, over TLS.
    let anon = Client::new(&h.addr, Some(&ca), None).unwrap();
    let init = anon
        .init(&InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!anon.unseal(init.keys[0].clone()).await.unwrap().sealed);
    let root = Some(init.root_token.clone());
    for host in ["127.0.0.1", "localhost"] {
        let addr = format!("https://{host}:{}", h.port);
        let c = Client::new(&addr, Some(&ca), root.clone()).unwrap();
        let me = c.token_lookup_self().await.unwrap();
        assert_eq!(me.policies, ["root"], "{host}");
    }

    let c = Client::new(&h.addr, Some(&other_ca), root.clone()).unwrap();
    let err = c.seal_status().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(!err.to_string().contains(init.root_token.expose_secret()));
    // Platform roots do not know the test CA either.
    let c = Client::new(&h.addr, None, root.clone()).unwrap();
    assert!(matches!(
        c.seal_status().await.unwrap_err(),
        ClientError::Transport { .. }
    ));
    // Plain HTTP to the TLS port is not an answer.
    let c = Client::new(&format!("http://127.0.0.1:{}", h.port), None, root).unwrap();
    assert!(c.seal_status().await.is_err());
}

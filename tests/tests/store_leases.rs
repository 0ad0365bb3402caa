//! `sys/leases/*` against a real hushd, with tokens as the leased things (a token created at
//! `auth/token/create` has the lease `auth/token/create/<hash>`), and lease expiry across a
//! `kill -9`.

use std::time::{Duration, Instant};

use hush_tests::{http_client, Hushd};
use serde_json::{json, Value};

const TOKENS: &str = "auth/token/create/";

async fn create_token(h: &Hushd, body: Value) -> String {
    let (s, b) = h.call("POST", "auth/token/create", Some(body)).await;
    assert_eq!(s, 200, "{b}");
    b["auth"]["client_token"].as_str().unwrap().to_string()
}

/// The lease ids under `prefix` (LIST sys/leases/lookup/...); empty on 404.
async fn lease_ids(h: &Hushd, prefix: &str) -> Vec<String> {
    let keys = h.lease_keys(prefix).await;
    keys.iter().map(|k| format!("{prefix}{k}")).collect()
}

async fn lookup(h: &Hushd, lease_id: &str) -> (u16, Value) {
    h.call(
        "PUT",
        "sys/leases/lookup",
        Some(json!({ "lease_id": lease_id })),
    )
    .await
}

#[tokio::test]
async fn a_token_lease_is_looked_up_renewed_and_revoked() {
    let h = Hushd::dev().await;
    let token = create_token(&h, json!({"ttl": "1h", "policies": ["default"]})).await;
    let ids = lease_ids(&h, TOKENS).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    let (s, b) = lookup(&h, id).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["id"], json!(id));
    assert_eq!(b["data"]["renewable"], json!(true));
    let ttl = b["data"]["ttl"].as_u64().unwrap();
    assert!((3590..=3600).contains(&ttl), "{b}");
    assert!(b["data"]["issue_time"].as_str().unwrap().ends_with('Z'));
    assert!(b["data"]["last_renewal"].is_null());

    // Renew: the increment counts from now.
    let (s, b) = h
        .call(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": id, "increment": "2h"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["lease_id"], json!(id));
    assert_eq!(b["lease_duration"], json!(7200));
    let (_, b) = lookup(&h, id).await;
    assert!(b["data"]["ttl"].as_u64().unwrap() > 3600, "{b}");
    assert!(b["data"]["last_renewal"].is_string(), "{b}");
    let (_, me) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert!(me["data"]["ttl"].as_u64().unwrap() > 3600, "{me}");
    // The legacy path, with the id in the URL.
    let (s, b) = h.call("PUT", &format!("sys/renew/{id}"), None).await;
    assert_eq!(s, 200, "{b}");

    // Bad cases: unknown lease, missing id, LIST without sudo.
    let (s, b) = lookup(&h, "auth/token/create/nope").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["errors"][0], json!("invalid lease"));
    let (s, _) = h.call("PUT", "sys/leases/renew", Some(json!({}))).await;
    assert_eq!(s, 400);
    let (s, _) = h
        .call_as(Some(&token), "LIST", "sys/leases/lookup/auth/", None)
        .await;
    assert_eq!(s, 403);

    let (s, b) = h
        .call("PUT", "sys/leases/revoke", Some(json!({ "lease_id": id })))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 403, "a revoked lease is a revoked token");
    assert_eq!(lookup(&h, id).await.0, 400);
    let (s, _) = h
        .call("PUT", "sys/leases/renew", Some(json!({"lease_id": id})))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn prefixes_are_revoked_with_sudo_and_counted() {
    let h = Hushd::dev().await;
    let a = create_token(&h, json!({"ttl": "1h", "policies": ["default"]})).await;
    let b = create_token(&h, json!({"ttl": "1h"})).await;
    let (s, body) = h.call("GET", "sys/leases/count?type=all", None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["lease_count"], json!(2));
    let (s, body) = h
        .call("GET", "sys/leases/count?type=irrevocable", None)
        .await;
    assert_eq!((s, body["data"]["lease_count"].clone()), (200, json!(0)));
    let (s, _) = h.call("GET", "sys/leases/count", None).await;
    assert_eq!(s, 400);
    // Without sudo: refused.
    let (s, _) = h
        .call_as(Some(&a), "PUT", "sys/leases/revoke-prefix/auth/token", None)
        .await;
    assert_eq!(s, 403);
    // Not a whole segment: nothing.
    let (s, _) = h
        .call("PUT", "sys/leases/revoke-prefix/auth/tok", None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(lease_ids(&h, TOKENS).await.len(), 2);
    let (s, body) = h
        .call("PUT", "sys/leases/revoke-prefix/auth/token/create", None)
        .await;
    assert_eq!(s, 204, "{body}");
    for t in [&a, &b] {
        let (s, _) = h
            .call_as(Some(t), "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(s, 403);
    }
    assert!(lease_ids(&h, TOKENS).await.is_empty());
    // revoke-force and the asynchronous revoke.
    let c = create_token(&h, json!({"ttl": "1h"})).await;
    let (s, _) = h
        .call("PUT", "sys/leases/revoke-force/auth/token", None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = h
        .call_as(Some(&c), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 403);
    let d = create_token(&h, json!({"ttl": "1h"})).await;
    let id = lease_ids(&h, TOKENS).await.remove(0);
    let (s, _) = h
        .call(
            "PUT",
            "sys/revoke",
            Some(json!({"lease_id": id, "sync": false})),
        )
        .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while h
        .call_as(Some(&d), "GET", "auth/token/lookup-self", None)
        .await
        .0
        != 403
    {
        assert!(Instant::now() < deadline, "the async revoke did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _) = h.call("PUT", "sys/leases/tidy", None).await;
    assert_eq!(s, 204);
}

/// Short-TTL token leases outstanding at a `kill -9` are still revoked on time after a
/// restart and unseal: the expiry index is in storage, not in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_on_time_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/hush.db", dir.path().display());
    let args = ["--storage", storage.as_str(), "--insecure-no-tls"];
    let mut h = Hushd::start(&args, "http", http_client()).await;
    let key = h.init_unseal().await;
    let root = h.token.clone().unwrap();
    let long = create_token(&h, json!({"ttl": "1h"})).await;
    let created = Instant::now();
    for _ in 0..20 {
        create_token(&h, json!({"ttl": "4s"})).await;
    }
    assert_eq!(lease_ids(&h, TOKENS).await.len(), 21);
    h.kill9();

    let mut h2 = Hushd::start(&args, "http", http_client()).await;
    h2.unseal(&key).await;
    h2.token = Some(root);
    assert!(
        created.elapsed() < Duration::from_secs(4),
        "restarted too slowly to tell; the test proves nothing"
    );
    assert!(lease_ids(&h2, TOKENS).await.len() > 1, "expired early");
    // Due 4 s after creation; allowed 2 s of slack.
    let deadline = created + Duration::from_secs(6);
    loop {
        let left = lease_ids(&h2, TOKENS).await;
        if left.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} short leases still there 2 s after their expiry",
            left.len() - 1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _) = h2
        .call_as(Some(&long), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "the 1h token survives");
}

/// Disabling an auth method revokes the leases of the tokens its logins made.
#[tokio::test]
async fn disabling_an_auth_method_revokes_its_logins() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let role = json!({"token_policies": ["default"], "token_ttl": "20m"});
    let (s, b) = h.call("POST", "auth/approle/role/web", Some(role)).await;
    assert_eq!(s, 204, "{b}");
    let (role_id, secret_id) = h.approle_credentials("approle", "web").await;
    let login = json!({"role_id": role_id, "secret_id": secret_id});
    let (s, b) = h
        .call_as(None, "POST", "auth/approle/login", Some(login))
        .await;
    assert_eq!(s, 200, "{b}");
    let token = b["auth"]["client_token"].as_str().unwrap().to_string();
    let ids = lease_ids(&h, "auth/approle/login/").await;
    assert_eq!(ids.len(), 1, "a login is a lease");
    let (s, b) = lookup(&h, &ids[0]).await;
    assert_eq!(
        (s, b["data"]["ttl"].as_u64().unwrap() > 1100),
        (200, true),
        "{b}"
    );
    let (s, _) = h.call("DELETE", "sys/auth/approle", None).await;
    assert_eq!(s, 204);
    let (s, _) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 403);
    assert!(lease_ids(&h, "auth/approle/login/").await.is_empty());
}

//! AppRole end to end against a real `hushd --dev` over HTTP: enable it through `sys/auth`,
//! make a role and a policy, log in, use the token (allowed and refused), check its TTL and
//! policies, the lockout after failed logins, and that the audit log holds neither the
//! secret ID nor the token in clear.

use hush_tests::Hushd;
use serde_json::{json, Value};

async fn setup(h: &Hushd) {
    let (s, b) = h
        .call("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/app",
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\", \"create\", \"update\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "auth/approle/role/web",
            Some(
                json!({"token_policies": ["app"], "token_ttl": "20m", "token_max_ttl": "1h",
                        "secret_id_num_uses": 3}),
            ),
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

#[tokio::test]
async fn login_and_use_the_token() {
    let (h, _dir, log) = Hushd::dev_with_audit_file().await;
    setup(&h).await;

    let (s, b) = h.call("GET", "sys/auth", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["approle/"]["type"], "approle");
    assert_eq!(b["data"]["token/"]["type"], "token");

    let (s, b) = h
        .call(
            "PUT",
            "secret/data/app/db",
            Some(json!({"data": {"password": "p"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let (role_id, secret_id) = h.approle_credentials("approle", "web").await;
    let (s, b) = h
        .call_as(
            None,
            "POST",
            "auth/approle/login",
            Some(json!({"role_id": role_id, "secret_id": secret_id})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let auth = &b["auth"];
    let token = auth["client_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("hvs."));
    assert_eq!(auth["policies"], json!(["app", "default"]));
    assert_eq!(auth["token_policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 1200);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], true);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["metadata"]["role_name"], "web");

    let (s, b) = h
        .call_as(Some(&token), "GET", "secret/data/app/db", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["data"]["password"], "p");
    let (s, _) = h
        .call_as(Some(&token), "GET", "secret/data/other", None)
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call_as(Some(&token), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["display_name"], "approle");
    assert_eq!(b["data"]["path"], "auth/approle/login");
    // The token cannot manage roles.
    let (s, _) = h
        .call_as(
            Some(&token),
            "POST",
            "auth/approle/role/evil",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);

    // Bad logins: wrong secret ID, unknown role ID, missing fields.
    for body in [
        json!({"role_id": role_id, "secret_id": "wrong"}),
        json!({"role_id": "nope", "secret_id": secret_id}),
        json!({"role_id": role_id}),
    ] {
        let (s, b) = h
            .call_as(None, "POST", "auth/approle/login", Some(body))
            .await;
        assert_eq!(s, 400, "{b}");
        assert!(b["errors"][0].is_string(), "{b}");
    }

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("auth/approle/login"));
    assert!(
        !text.contains(&secret_id),
        "secret_id in clear in the audit log"
    );
    assert!(!text.contains(&token), "token in clear in the audit log");
}

#[tokio::test]
async fn secret_id_uses_and_the_failed_login_limit() {
    let h = Hushd::dev().await;
    setup(&h).await;
    let (role_id, secret_id) = h.approle_credentials("approle", "web").await;
    let login = |sid: String| {
        let body = json!({"role_id": role_id, "secret_id": sid});
        let h = &h;
        async move {
            h.call_as(None, "POST", "auth/approle/login", Some(body))
                .await
        }
    };
    for _ in 0..3 {
        assert_eq!(login(secret_id.clone()).await.0, 200);
    }
    let (s, b) = login(secret_id.clone()).await;
    assert_eq!(s, 400, "a secret ID past its uses: {b}");

    // Four more failures (one done above) and this role ID is locked out, even with good
    // credentials.
    let (_, fresh) = h.approle_credentials("approle", "web").await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(login("wrong".into()).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let (s, b) = login(fresh).await;
    assert_eq!(s, 429, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("too many failed login attempts"),
        "{b}"
    );
    // Other routes are not limited.
    let (s, _) = h.call("GET", "sys/auth", None).await;
    assert_eq!(s, 200);
}

/// A login answered by `h`: status, `Retry-After` (seconds) and body.
async fn login_with_retry_after(
    h: &Hushd,
    role_id: &str,
    secret_id: &str,
) -> (u16, Option<u64>, Value) {
    let resp = h
        .client
        .post(format!("{}/v1/auth/approle/login", h.addr))
        .json(&json!({"role_id": role_id, "secret_id": secret_id}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let wait = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, wait, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_thousand_failures_for_one_role_leave_another_unaffected() {
    let h = Hushd::dev().await;
    setup(&h).await;
    let (s, b) = h
        .call(
            "POST",
            "auth/approle/role/db",
            Some(json!({"token_policies": ["app"]})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (role_a, secret_a) = h.approle_credentials("approle", "web").await;
    let (role_b, secret_b) = h.approle_credentials("approle", "db").await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..1000 {
        let (s, _, _) = login_with_retry_after(&h, &role_a, "wrong").await;
        *statuses.entry(s).or_insert(0) += 1;
    }
    // Five answered as they are, then role A is locked: 429 with Retry-After.
    assert_eq!(statuses, [(400, 5), (429, 995)].into(), "{statuses:?}");
    let (s, wait, b) = login_with_retry_after(&h, &role_a, &secret_a).await;
    assert_eq!(s, 429, "{b}");
    assert!(wait.is_some_and(|w| (1..=900).contains(&w)), "{wait:?}");
    // Role B logs in from the same address at once.
    let (s, _, b) = login_with_retry_after(&h, &role_b, &secret_b).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["auth"]["client_token"].is_string(), "{b}");
    // 94 more failures over made-up role IDs (refusals of a locked identity cost nothing
    // and are not counted) bring 127.0.0.1 to 99 of its ceiling (100 a minute by default).
    for i in 0..94 {
        let (s, _, b) = login_with_retry_after(&h, &format!("made-up-{i}"), "x").await;
        assert_eq!(s, 400, "{b}");
    }
    // The 100th failure, role B's own, is answered 429 (back off) instead of 400 ...
    let (s, wait, b) = login_with_retry_after(&h, &role_b, "wrong").await;
    assert_eq!(s, 429, "{b}");
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("from this address"),
        "{b}"
    );
    assert!(wait.is_some_and(|w| (1..=60).contains(&w)), "{wait:?}");
    // ... and its valid credentials still work.
    let (s, _, b) = login_with_retry_after(&h, &role_b, &secret_b).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn sys_auth_refuses_unknown_types_and_needs_sudo() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call("POST", "sys/auth/ldap", Some(json!({"type": "ldap"})))
        .await;
    assert_eq!(s, 400);
    assert!(b["errors"][0].as_str().unwrap().contains("approle"), "{b}");
    let (s, b) = h
        .call(
            "PUT",
            "sys/policies/acl/mounter",
            Some(json!({"policy": "path \"sys/auth/*\" { capabilities = [\"create\", \"update\", \"read\"] }"})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["mounter"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let narrow = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _) = h
        .call_as(
            Some(&narrow),
            "POST",
            "sys/auth/approle",
            Some(json!({"type": "approle"})),
        )
        .await;
    assert_eq!(s, 403, "sys/auth/* needs sudo");
    let (s, _) = h
        .call(
            "POST",
            "sys/auth/ar",
            Some(json!({"type": "approle", "config": {"default_lease_ttl": "10m"}})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "sys/auth/ar/tune", None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["default_lease_ttl"], 600);
    let (s, _) = h.call("DELETE", "sys/auth/ar", None).await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "sys/auth", None).await;
    assert_eq!(s, 200);
    assert!(b["data"].get("ar/").is_none(), "{b}");
}

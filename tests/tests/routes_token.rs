//! Every `auth/token/` route of the issue with a good and a bad case, over real HTTP against a
//! real hushd: create (ttl, explicit_max_ttl, renewable, num_uses, period, policies, meta),
//! create-orphan, lookup, lookup-self, lookup-accessor, renew, renew-self, revoke, revoke-self,
//! revoke-accessor; children revoked with their parent; expired, forged and used-up tokens.

use std::time::Duration;

use hush_tests::Hushd;
use serde_json::{json, Value};

/// Create a token as root; returns (token, accessor, whole body).
async fn create(h: &Hushd, body: Value) -> (String, String, Value) {
    let (s, b) = h.call("POST", "auth/token/create", Some(body)).await;
    assert_eq!(s, 200, "{b}");
    (
        b["auth"]["client_token"].as_str().unwrap().to_string(),
        b["auth"]["accessor"].as_str().unwrap().to_string(),
        b,
    )
}

const FORGED: &str = "hvs.forgedforgedforgedforged1";

#[tokio::test]
async fn create_with_every_option_and_bad_input() {
    let h = Hushd::dev().await;
    h.call(
        "PUT",
        "sys/policies/acl/app",
        Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
    )
    .await;
    let (tok, accessor, b) = create(
        &h,
        json!({"policies": ["app"], "ttl": "1h", "explicit_max_ttl": "2h", "renewable": false,
               "num_uses": 5, "meta": {"team": "a"}, "display_name": "ci"}),
    )
    .await;
    let auth = &b["auth"];
    assert!(tok.starts_with("hvs."));
    assert_eq!(auth["policies"], json!(["app", "default"]), "{b}");
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], false);
    assert_eq!(auth["metadata"], json!({"team": "a"}));
    assert_eq!(auth["orphan"], false);
    let (s, l) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": tok})))
        .await;
    assert_eq!(s, 200, "{l}");
    let d = &l["data"];
    assert_eq!(
        (
            d["accessor"].as_str(),
            d["num_uses"].clone(),
            d["explicit_max_ttl"].clone(),
            d["display_name"].clone(),
            d["meta"].clone(),
        ),
        (
            Some(accessor.as_str()),
            json!(5),
            json!(7200),
            json!("token-ci"),
            json!({"team": "a"})
        ),
        "{l}"
    );
    // A periodic token (root may make one).
    let (ptok, _, b) = create(&h, json!({"policies": ["app"], "period": "30m"})).await;
    assert_eq!(b["auth"]["lease_duration"], 1800, "{b}");
    let (_, l) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": ptok})))
        .await;
    assert_eq!(l["data"]["period"], 1800, "{l}");

    // Bad input: malformed JSON and wrong types are 400 with Vault's error shape.
    let (s, b) = h
        .call_body(
            Some("root"),
            "POST",
            "auth/token/create",
            Some("application/json"),
            "{\"ttl\": ",
        )
        .await;
    assert_eq!(s, 400, "{b}");
    for body in [
        json!({"ttl": "soon"}),
        json!({"ttl": [1]}),
        json!({"explicit_max_ttl": "x"}),
        json!({"period": {}}),
        json!({"policies": 5}),
        json!({"policies": [1, 2]}),
        json!({"meta": "team=a"}),
        json!({"meta": {"a": {"b": "c"}}}),
        json!({"num_uses": -1}),
        json!({"num_uses": "many"}),
        json!({"renewable": "perhaps"}),
        json!({"type": "batch"}),
    ] {
        let (s, b) = h
            .call("POST", "auth/token/create", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(b["errors"][0].is_string(), "{b}");
    }
    // A non-root parent: policies must be a subset, no root, no period, no no_parent.
    let parent = h
        .token_with_policy(
            "tokener",
            "path \"auth/token/create\" { capabilities = [\"update\"] }\npath \"auth/token/create-orphan\" { capabilities = [\"update\"] }",
        )
        .await;
    let (s, b) = h
        .call_as(
            Some(&parent),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for body in [
        json!({"policies": ["app"]}),
        json!({"policies": ["root"]}),
        json!({"period": "1h"}),
        json!({"no_parent": true}),
    ] {
        let (s, b) = h
            .call_as(
                Some(&parent),
                "POST",
                "auth/token/create",
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    // Without the capability, with a forged token, without a token; wrong method.
    let (s, _) = h
        .call_as(Some(&tok), "POST", "auth/token/create", Some(json!({})))
        .await;
    assert_eq!(s, 403);
    for t in [Some(FORGED), None] {
        let (s, _) = h
            .call_as(t, "POST", "auth/token/create", Some(json!({})))
            .await;
        assert_eq!(s, 403, "{t:?}");
    }
    let (s, _) = h.call("GET", "auth/token/create", None).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn create_orphan_good_and_bad() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call(
            "POST",
            "auth/token/create-orphan",
            Some(json!({"policies": ["default"], "ttl": "10m"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["auth"]["orphan"], true);
    let orphan = b["auth"]["client_token"].as_str().unwrap().to_string();
    // An orphan of root survives root's other children being revoked: it has no parent.
    let (s, l) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": orphan})))
        .await;
    assert_eq!((s, l["data"]["orphan"].clone()), (200, json!(true)));

    // A token whose policy grants update on create-orphan needs no sudo (as in Vault), but
    // may still only hand out its own policies.
    let orphaner = h
        .token_with_policy(
            "orphaner",
            "path \"auth/token/create-orphan\" { capabilities = [\"update\"] }",
        )
        .await;
    let (s, b) = h
        .call_as(
            Some(&orphaner),
            "POST",
            "auth/token/create-orphan",
            Some(json!({"policies": ["orphaner"]})),
        )
        .await;
    assert_eq!((s, b["auth"]["orphan"].clone()), (200, json!(true)), "{b}");
    for body in [
        json!({"policies": ["root"]}),
        json!({"policies": ["other"]}),
    ] {
        let (s, b) = h
            .call_as(
                Some(&orphaner),
                "POST",
                "auth/token/create-orphan",
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }

    // Bad: a token without the capability, wrong types, wrong method.
    let plain = h
        .token_with_policy(
            "nothing",
            "path \"secret/data/none\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, _) = h
        .call_as(
            Some(&plain),
            "POST",
            "auth/token/create-orphan",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, b) = h
        .call(
            "POST",
            "auth/token/create-orphan",
            Some(json!({"ttl": "forever"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = h.call("DELETE", "auth/token/create-orphan", None).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn lookups_good_and_bad() {
    let h = Hushd::dev().await;
    let (tok, accessor, _) = create(&h, json!({"policies": ["default"], "ttl": "1h"})).await;

    // lookup: good; missing, wrong type, unknown.
    let (s, b) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": tok})))
        .await;
    assert_eq!((s, b["data"]["id"].as_str()), (200, Some(tok.as_str())));
    assert!(b["data"]["ttl"].as_u64().unwrap() > 3000, "{b}");
    let (s, _) = h.call("POST", "auth/token/lookup", Some(json!({}))).await;
    assert_eq!(s, 400);
    let (s, _) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": 17})))
        .await;
    assert_eq!(s, 400);
    let (s, b) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": FORGED})))
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["errors"], json!(["bad token"]));

    // lookup-self: good as the token itself; forged and missing tokens. The default policy
    // grants only read here (as Vault's), so a POST by the token is refused, root's works.
    let (s, b) = h
        .call_as(Some(&tok), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(
        (s, b["data"]["accessor"].as_str()),
        (200, Some(accessor.as_str()))
    );
    let (s, _) = h
        .call_as(Some(&tok), "POST", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 403);
    {
        let (s, b) = h.call("POST", "auth/token/lookup-self", None).await;
        assert_eq!((s, b["data"]["policies"].clone()), (200, json!(["root"])));
    }
    let r = h
        .client
        .get(format!("{}/v1/auth/token/lookup-self", h.addr))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Authorization: Bearer works");
    for t in [Some(FORGED), None, Some("")] {
        let (s, b) = h.call_as(t, "GET", "auth/token/lookup-self", None).await;
        assert_eq!(s, 403, "{t:?}: {b}");
        assert_eq!(b["errors"], json!(["permission denied"]));
    }
    let (s, _) = h.call("DELETE", "auth/token/lookup-self", None).await;
    assert_eq!(s, 405);

    // lookup-accessor: good (no token id revealed); unknown, missing, wrong type.
    let (s, b) = h
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["id"], "", "the token itself is never shown");
    assert_eq!(b["data"]["policies"], json!(["default"]));
    for body in [
        json!({"accessor": "AAAAAAAAAAAAAAAAAAAAAAAA"}),
        json!({"accessor": "../../sys/token/salt"}),
        json!({}),
        json!({"accessor": ["x"]}),
    ] {
        let (s, b) = h
            .call("POST", "auth/token/lookup-accessor", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    // The default policy does not allow lookup by accessor.
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn renew_and_renew_self_good_and_bad() {
    let h = Hushd::dev().await;
    let (tok, _, _) = create(
        &h,
        json!({"policies": ["default"], "ttl": "10m", "explicit_max_ttl": "1h"}),
    )
    .await;
    let (s, b) = h
        .call(
            "POST",
            "auth/token/renew",
            Some(json!({"token": tok, "increment": "30m"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["auth"]["lease_duration"], 1800, "{b}");
    // Past the explicit max TTL: capped, with a warning.
    let (s, b) = h
        .call(
            "POST",
            "auth/token/renew",
            Some(json!({"token": tok, "increment": "5h"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let capped = b["auth"]["lease_duration"].as_u64().unwrap();
    assert!(capped <= 3600 && capped > 3000, "{b}");
    assert!(b["warnings"].is_array(), "{b}");
    let (s, b) = h
        .call_as(
            Some(&tok),
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "20m"})),
        )
        .await;
    assert_eq!(
        (s, b["auth"]["lease_duration"].clone()),
        (200, json!(1200)),
        "{b}"
    );
    // A periodic token renews to its period.
    let (ptok, _, _) = create(&h, json!({"policies": ["default"], "period": "15m"})).await;
    let (_, b) = h
        .call_as(
            Some(&ptok),
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "5h"})),
        )
        .await;
    assert_eq!(b["auth"]["lease_duration"], 900, "{b}");

    // Bad: not renewable, unknown, missing, wrong increment type, root (no TTL).
    let (fixed, _, _) = create(
        &h,
        json!({"policies": ["default"], "ttl": "10m", "renewable": false}),
    )
    .await;
    for body in [
        json!({"token": fixed}),
        json!({"token": FORGED}),
        json!({}),
        json!({"token": tok, "increment": "later"}),
        json!({"token": "root"}),
    ] {
        let (s, b) = h.call("POST", "auth/token/renew", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_as(
            Some(&fixed),
            "POST",
            "auth/token/renew-self",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400, "not renewable");
    let (s, _) = h
        .call_as(
            Some(FORGED),
            "POST",
            "auth/token/renew-self",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "auth/token/renew",
            Some(json!({"token": ptok})),
        )
        .await;
    assert_eq!(s, 403, "the default policy allows renew-self only");
    let (s, _) = h.call("GET", "auth/token/renew", None).await;
    assert_eq!(s, 405);

    // renew-accessor: found by accessor; the reply never names the token.
    let (s, b) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": tok})))
        .await;
    assert_eq!(s, 200, "{b}");
    let accessor = b["data"]["accessor"].as_str().unwrap().to_string();
    let (s, b) = h
        .call(
            "POST",
            "auth/token/renew-accessor",
            Some(json!({"accessor": accessor, "increment": "25m"})),
        )
        .await;
    assert_eq!(
        (s, b["auth"]["lease_duration"].clone()),
        (200, json!(1500)),
        "{b}"
    );
    assert_eq!(b["auth"]["client_token"], "", "{b}");
    for body in [json!({"accessor": "nope"}), json!({})] {
        let (s, b) = h
            .call("POST", "auth/token/renew-accessor", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_as(
            Some(&tok),
            "POST",
            "auth/token/renew-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    assert_eq!(s, 403, "the default policy does not cover renew-accessor");
}

#[tokio::test]
async fn revoke_routes_and_children_go_with_their_parent() {
    let h = Hushd::dev().await;
    h.call(
        "PUT",
        "sys/policies/acl/tokener",
        Some(json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"})),
    )
    .await;
    // parent -> child -> grandchild, and an orphan made by the parent's sibling.
    let (parent, _, _) = create(&h, json!({"policies": ["tokener"]})).await;
    let (s, b) = h
        .call_as(
            Some(&parent),
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["tokener"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let child = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, b) = h
        .call_as(Some(&child), "POST", "auth/token/create", Some(json!({})))
        .await;
    let grandchild = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, b) = h
        .call(
            "POST",
            "auth/token/create-orphan",
            Some(json!({"policies": ["default"]})),
        )
        .await;
    let orphan = b["auth"]["client_token"].as_str().unwrap().to_string();

    // revoke: good (the whole tree), then bad input; revoking again is fine.
    let (s, _) = h
        .call("POST", "auth/token/revoke", Some(json!({"token": parent})))
        .await;
    assert_eq!(s, 204);
    for t in [&parent, &child, &grandchild] {
        let (s, _) = h
            .call_as(Some(t), "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(s, 403, "revoked with the parent");
    }
    let (s, _) = h
        .call_as(Some(&orphan), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200, "an orphan is not in the tree");
    let (s, _) = h
        .call("POST", "auth/token/revoke", Some(json!({"token": parent})))
        .await;
    assert_eq!(s, 204);
    for body in [json!({}), json!({"token": 5})] {
        let (s, _) = h
            .call("POST", "auth/token/revoke", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}");
    }
    let (s, _) = h
        .call_as(
            Some(&orphan),
            "POST",
            "auth/token/revoke",
            Some(json!({"token": "root"})),
        )
        .await;
    assert_eq!(s, 403, "default policy cannot revoke others");
    let (s, _) = h
        .call_as(Some("root"), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 200);

    // revoke-self: good; then the token is gone; without a token it is refused.
    let (s, _) = h
        .call_as(Some(&orphan), "POST", "auth/token/revoke-self", None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = h
        .call_as(Some(&orphan), "GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(s, 403);
    for t in [None, Some(FORGED), Some(orphan.as_str())] {
        let (s, _) = h.call_as(t, "POST", "auth/token/revoke-self", None).await;
        assert_eq!(s, 403, "{t:?}");
    }
    let (s, _) = h.call("GET", "auth/token/revoke-self", None).await;
    assert_eq!(s, 405);

    // revoke-accessor: good (with children); bad input.
    let (p2, acc2, _) = create(&h, json!({"policies": ["tokener"]})).await;
    let (_, b) = h
        .call_as(Some(&p2), "POST", "auth/token/create", Some(json!({})))
        .await;
    let c2 = b["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _) = h
        .call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({"accessor": acc2})),
        )
        .await;
    assert!(s == 204 || s == 200, "{s}");
    for t in [&p2, &c2] {
        let (s, _) = h
            .call_as(Some(t), "GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(s, 403);
    }
    for body in [json!({}), json!({"accessor": false})] {
        let (s, b) = h
            .call("POST", "auth/token/revoke-accessor", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": acc2})),
        )
        .await;
    assert_eq!(s, 400, "a revoked accessor is unknown");
}

#[tokio::test]
async fn expired_and_used_up_tokens_are_refused() {
    let h = Hushd::dev().await;
    h.call("POST", "secret/data/x", Some(json!({"data": {"a": "b"}})))
        .await;
    let reader = "path \"secret/data/x\" { capabilities = [\"read\"] }";
    h.call(
        "PUT",
        "sys/policies/acl/reader",
        Some(json!({ "policy": reader })),
    )
    .await;

    // num_uses: 2 uses work, the third is refused and the token is gone.
    let (once, _, _) = create(&h, json!({"policies": ["reader"], "num_uses": 2})).await;
    for _ in 0..2 {
        let (s, _) = h.call_as(Some(&once), "GET", "secret/data/x", None).await;
        assert_eq!(s, 200);
    }
    let (s, b) = h.call_as(Some(&once), "GET", "secret/data/x", None).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = h
        .call("POST", "auth/token/lookup", Some(json!({"token": once})))
        .await;
    assert_eq!(s, 403, "used up tokens are revoked: {b}");
    // A use-limited token cannot make children.
    let (limited, _, _) = create(&h, json!({"policies": ["root"], "num_uses": 3})).await;
    let (s, _) = h
        .call_as(Some(&limited), "POST", "auth/token/create", Some(json!({})))
        .await;
    assert_eq!(s, 400);

    // A short TTL: good before expiry, refused after, and its renewal too.
    let (short, _, _) = create(&h, json!({"policies": ["reader"], "ttl": "2s"})).await;
    let (s, _) = h.call_as(Some(&short), "GET", "secret/data/x", None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, b) = h.call_as(Some(&short), "GET", "secret/data/x", None).await;
    assert_eq!(s, 403, "expired: {b}");
    let (s, _) = h
        .call_as(
            Some(&short),
            "POST",
            "auth/token/renew-self",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = h
        .call("POST", "auth/token/renew", Some(json!({"token": short})))
        .await;
    assert_eq!(s, 400, "an expired token cannot be renewed");
}

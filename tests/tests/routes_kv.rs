//! Every KV v2 route of the issue at `secret/` with a good and a bad case, over real HTTP
//! against a real hushd: data (read `?version=`, write with `options.cas`, JSON merge patch,
//! delete), metadata (settings, custom metadata, patch, delete), delete/undelete/destroy of
//! versions, config, LIST; plus unknown mounts, narrow policies, forged tokens, traversal,
//! oversize bodies, wrong methods and content types, and the sealed store.

use hush_tests::Hushd;
use serde_json::{json, Value};

const LIMIT: usize = 32 * 1024 * 1024;
const MERGE: &str = "application/merge-patch+json";

async fn write(h: &Hushd, path: &str, body: Value) -> (u16, Value) {
    h.call("POST", &format!("secret/data/{path}"), Some(body))
        .await
}

#[tokio::test]
async fn data_read_write_versions_and_cas() {
    let h = Hushd::dev().await;
    let (s, b) = write(&h, "app/db", json!({"data": {"pw": "one"}})).await;
    assert_eq!((s, b["data"]["version"].clone()), (200, json!(1)), "{b}");
    let (s, b) = write(
        &h,
        "app/db",
        json!({"data": {"pw": "two"}, "options": {"cas": 1}}),
    )
    .await;
    assert_eq!((s, b["data"]["version"].clone()), (200, json!(2)), "{b}");
    let (s, b) = h.call("GET", "secret/data/app/db", None).await;
    assert_eq!((s, b["data"]["data"]["pw"].clone()), (200, json!("two")));
    assert_eq!(b["data"]["metadata"]["version"], 2);
    let (s, b) = h.call("GET", "secret/data/app/db?version=1", None).await;
    assert_eq!((s, b["data"]["data"]["pw"].clone()), (200, json!("one")));

    // cas mismatch: 400 with Vault's message; nothing written. cas 0 on a new key is fine.
    let (s, b) = write(
        &h,
        "app/db",
        json!({"data": {"pw": "x"}, "options": {"cas": 1}}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"][0].as_str().unwrap().contains("check-and-set"),
        "{b}"
    );
    let (s, _) = write(
        &h,
        "app/db",
        json!({"data": {"pw": "x"}, "options": {"cas": 0}}),
    )
    .await;
    assert_eq!(s, 400, "cas 0 on an existing key");
    let (s, _) = write(
        &h,
        "app/new",
        json!({"data": {"a": "b"}, "options": {"cas": 0}}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, b) = h.call("GET", "secret/data/app/db", None).await;
    assert_eq!(
        b["data"]["metadata"]["version"], 2,
        "refused writes wrote nothing"
    );

    // Bad reads: unknown key, unknown version, wrong type for version.
    let (s, b) = h.call("GET", "secret/data/app/missing", None).await;
    assert_eq!((s, b["errors"].clone()), (404, json!([])), "{b}");
    let (s, _) = h.call("GET", "secret/data/app/db?version=99", None).await;
    assert_eq!(s, 404);
    let (s, b) = h
        .call("GET", "secret/data/app/db?version=latest", None)
        .await;
    assert_eq!(s, 400, "{b}");

    // Bad writes: malformed JSON, no data, wrong types, non-object body, bad cas.
    let (s, b) = h
        .call_body(
            Some("root"),
            "POST",
            "secret/data/app/db",
            Some("application/json"),
            "{\"data\": {\"pw\": }",
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("JSON"), "{b}");
    for body in [
        json!({}),
        json!({"data": "pw=x"}),
        json!({"data": ["x"]}),
        json!({"data": {"a": "b"}, "options": "cas=1"}),
        json!({"data": {"a": "b"}, "options": {"cas": "two"}}),
    ] {
        let (s, b) = write(&h, "app/db", body.clone()).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_body(
            Some("root"),
            "POST",
            "secret/data/app/db",
            Some("application/json"),
            "[{\"data\": {}}]",
        )
        .await;
    assert_eq!(s, 400);
    // Key paths that cannot name a secret.
    let (s, _) = write(&h, "app/dir/", json!({"data": {"a": "b"}})).await;
    assert_eq!(s, 400);
    let (s, _) = h.call("LIST", "secret/data/app", None).await;
    assert!(s == 404 || s == 405, "no list on data/: {s}");
}

#[tokio::test]
async fn patch_merges_and_checks_the_content_type() {
    let h = Hushd::dev().await;
    write(
        &h,
        "p",
        json!({"data": {"a": "1", "b": "2", "n": {"x": "1"}}}),
    )
    .await;
    let (s, b) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/data/p",
            Some(MERGE),
            json!({"data": {"a": null, "c": "3", "n": {"y": "2"}}}).to_string(),
        )
        .await;
    assert_eq!((s, b["data"]["version"].clone()), (200, json!(2)), "{b}");
    let (_, b) = h.call("GET", "secret/data/p", None).await;
    assert_eq!(
        b["data"]["data"],
        json!({"b": "2", "c": "3", "n": {"x": "1", "y": "2"}})
    );
    // cas on patch: good and bad.
    let (s, _) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/data/p",
            Some(MERGE),
            json!({"data": {"d": "4"}, "options": {"cas": 2}}).to_string(),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/data/p",
            Some(MERGE),
            json!({"data": {"d": "5"}, "options": {"cas": 2}}).to_string(),
        )
        .await;
    assert_eq!(s, 400);

    // Wrong content type 415, none 400, unknown key 404, malformed JSON 400, no data 400.
    let body = json!({"data": {"x": "y"}}).to_string();
    let (s, b) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/data/p",
            Some("application/json"),
            body.clone(),
        )
        .await;
    assert_eq!(s, 415, "{b}");
    assert!(b["errors"][0].is_string(), "{b}");
    let (s, _) = h
        .call_body(Some("root"), "PATCH", "secret/data/p", None, body.clone())
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .call_body(Some("root"), "PATCH", "secret/data/none", Some(MERGE), body)
        .await;
    assert_eq!(s, 404);
    for bad in ["{\"data\":", "{}", "{\"data\": 7}"] {
        let (s, b) = h
            .call_body(Some("root"), "PATCH", "secret/data/p", Some(MERGE), bad)
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    let (_, b) = h.call("GET", "secret/data/p", None).await;
    assert_eq!(
        b["data"]["metadata"]["version"], 3,
        "refused patches wrote nothing"
    );
    // Over the body limit.
    let (s, _) = h.oversize("PATCH", "secret/data/p", LIMIT).await;
    assert_eq!(s, 413);
}

#[tokio::test]
async fn metadata_settings_custom_metadata_and_delete() {
    let h = Hushd::dev().await;
    write(&h, "m", json!({"data": {"v": "1"}})).await;
    let (s, b) = h
        .call(
            "POST",
            "secret/metadata/m",
            Some(json!({"max_versions": 2, "cas_required": true,
                        "delete_version_after": "1h", "custom_metadata": {"owner": "ops"}})),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.call("GET", "secret/metadata/m", None).await;
    assert_eq!(s, 200);
    let d = &b["data"];
    assert_eq!(
        (
            d["max_versions"].clone(),
            d["cas_required"].clone(),
            d["delete_version_after"].clone(),
            d["custom_metadata"].clone()
        ),
        (
            json!(2),
            json!(true),
            json!("1h0m0s"),
            json!({"owner": "ops"})
        ),
        "{b}"
    );
    // cas_required is enforced; max_versions prunes.
    let (s, _) = write(&h, "m", json!({"data": {"v": "2"}})).await;
    assert_eq!(s, 400, "cas required");
    for cas in 1..=2 {
        let (s, b) = write(
            &h,
            "m",
            json!({"data": {"v": "x"}, "options": {"cas": cas}}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let (_, b) = h.call("GET", "secret/metadata/m", None).await;
    let mut versions: Vec<&String> = b["data"]["versions"].as_object().unwrap().keys().collect();
    versions.sort();
    assert_eq!(versions, ["2", "3"], "{b}");
    let (s, _) = h.call("GET", "secret/data/m?version=1", None).await;
    assert_eq!(s, 404, "pruned");

    // PATCH metadata: merge custom metadata.
    let (s, b) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/metadata/m",
            Some(MERGE),
            json!({"custom_metadata": {"owner": null, "tier": "1"}}).to_string(),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (_, b) = h.call("GET", "secret/metadata/m", None).await;
    assert_eq!(b["data"]["custom_metadata"], json!({"tier": "1"}));

    // Bad: wrong types, out-of-range values, malformed JSON, unknown key, wrong content type.
    for body in [
        json!({"max_versions": "many"}),
        json!({"max_versions": -1}),
        json!({"cas_required": "sometimes"}),
        json!({"delete_version_after": "later"}),
        json!({"delete_version_after": "-1h"}),
        json!({"custom_metadata": ["a"]}),
        json!({"custom_metadata": {"k": {"nested": "v"}}}),
        json!({"custom_metadata": {"k": ""}}),
    ] {
        let (s, b) = h
            .call("POST", "secret/metadata/m", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h
        .call_body(
            Some("root"),
            "POST",
            "secret/metadata/m",
            Some("application/json"),
            "{\"max_versions\": ",
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h.call("GET", "secret/metadata/none", None).await;
    assert_eq!(s, 404);
    let (s, _) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/metadata/m",
            Some("text/plain"),
            "{}",
        )
        .await;
    assert_eq!(s, 415);
    let (s, _) = h
        .call_body(
            Some("root"),
            "PATCH",
            "secret/metadata/none",
            Some(MERGE),
            "{\"max_versions\": 3}",
        )
        .await;
    assert_eq!(s, 404);

    // DELETE metadata: every version goes; deleting again is fine.
    let (s, _) = h.call("DELETE", "secret/metadata/m", None).await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "secret/data/m", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("GET", "secret/metadata/m", None).await;
    assert_eq!(s, 404);
    let (s, _) = h.call("DELETE", "secret/metadata/m", None).await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn delete_undelete_destroy_good_and_bad() {
    let h = Hushd::dev().await;
    for v in 1..=3 {
        write(&h, "life", json!({"data": {"v": v.to_string()}})).await;
    }
    // DELETE data/: the latest version reads 404 with its metadata.
    let (s, _) = h.call("DELETE", "secret/data/life", None).await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "secret/data/life", None).await;
    assert_eq!(s, 404, "{b}");
    assert!(b["data"]["metadata"]["deletion_time"].as_str().unwrap() != "");
    assert_eq!(b["data"]["data"], Value::Null);
    // undelete it; delete/ chosen versions; destroy one for good.
    let (s, _) = h
        .call(
            "POST",
            "secret/undelete/life",
            Some(json!({"versions": [3]})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "secret/data/life", None).await;
    assert_eq!((s, b["data"]["data"]["v"].clone()), (200, json!("3")));
    let (s, _) = h
        .call(
            "POST",
            "secret/delete/life",
            Some(json!({"versions": [1, 2]})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "secret/data/life?version=2", None).await;
    assert_eq!(s, 404);
    let (s, _) = h
        .call("PUT", "secret/destroy/life", Some(json!({"versions": "1"})))
        .await;
    assert_eq!(s, 204);
    let (_, b) = h.call("GET", "secret/metadata/life", None).await;
    assert_eq!(b["data"]["versions"]["1"]["destroyed"], true, "{b}");
    let (s, _) = h
        .call(
            "POST",
            "secret/undelete/life",
            Some(json!({"versions": [1, 2]})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = h.call("GET", "secret/data/life?version=1", None).await;
    assert_eq!(s, 404, "destroyed stays destroyed");
    let (s, b) = h.call("GET", "secret/data/life?version=2", None).await;
    assert_eq!((s, b["data"]["data"]["v"].clone()), (200, json!("2")));

    // Bad: no versions, wrong types, malformed JSON, wrong method, key paths.
    for route in ["delete", "undelete", "destroy"] {
        for body in [
            json!({}),
            json!({"versions": "one"}),
            json!({"versions": {"1": true}}),
        ] {
            let (s, b) = h
                .call("POST", &format!("secret/{route}/life"), Some(body.clone()))
                .await;
            assert_eq!(s, 400, "{route} {body}: {b}");
        }
        let (s, _) = h
            .call_body(
                Some("root"),
                "POST",
                &format!("secret/{route}/life"),
                Some("application/json"),
                "{\"versions\": [1,",
            )
            .await;
        assert_eq!(s, 400, "{route}");
        let (s, _) = h.call("GET", &format!("secret/{route}/life"), None).await;
        assert_eq!(s, 405, "{route}");
        let (s, _) = h
            .call(
                "POST",
                &format!("secret/{route}/"),
                Some(json!({"versions": [1]})),
            )
            .await;
        assert!(s == 400 || s == 404, "{route} without a key: {s}");
    }
    let (_, b) = h.call("GET", "secret/metadata/life", None).await;
    assert_eq!(b["data"]["versions"]["3"]["deletion_time"], "", "{b}");
}

#[tokio::test]
async fn config_and_list_good_and_bad() {
    let h = Hushd::dev().await;
    let (s, _) = h
        .call(
            "POST",
            "secret/config",
            Some(json!({"max_versions": 4, "cas_required": false, "delete_version_after": "2h"})),
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = h.call("GET", "secret/config", None).await;
    assert_eq!(
        (
            s,
            b["data"]["max_versions"].clone(),
            b["data"]["delete_version_after"].clone()
        ),
        (200, json!(4), json!("2h0m0s")),
        "{b}"
    );
    for body in [
        json!({"max_versions": "four"}),
        json!({"cas_required": [true]}),
        json!({"delete_version_after": {}}),
    ] {
        let (s, b) = h.call("POST", "secret/config", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
    }
    let (s, _) = h.call("DELETE", "secret/config", None).await;
    assert_eq!(s, 405);
    let (_, b) = h.call("GET", "secret/config", None).await;
    assert_eq!(
        b["data"]["max_versions"], 4,
        "refused writes changed nothing"
    );

    // LIST: the LIST method and ?list=true; folders end in '/'.
    for p in ["a/one", "a/two", "a/sub/three", "b"] {
        write(&h, p, json!({"data": {"k": "v"}})).await;
    }
    let (s, b) = h.call("LIST", "secret/metadata/a", None).await;
    assert_eq!(
        (s, b["data"]["keys"].clone()),
        (200, json!(["one", "sub/", "two"])),
        "{b}"
    );
    let (s, b) = h.call("GET", "secret/metadata/?list=true", None).await;
    assert_eq!(
        (s, b["data"]["keys"].clone()),
        (200, json!(["a/", "b"])),
        "{b}"
    );
    let (s, b) = h.call("LIST", "secret/metadata/nothing/", None).await;
    assert_eq!((s, b["errors"].clone()), (404, json!([])), "{b}");
}

#[tokio::test]
async fn permissions_tokens_mounts_and_transport_errors() {
    let h = Hushd::dev().await;
    write(&h, "team/a", json!({"data": {"k": "v"}})).await;
    write(&h, "other/b", json!({"data": {"k": "v"}})).await;
    let tok = h
        .token_with_policy(
            "team-read",
            "path \"secret/data/team/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/team/*\" { capabilities = [\"list\"] }",
        )
        .await;
    let (s, _) = h
        .call_as(Some(&tok), "GET", "secret/data/team/a", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call_as(Some(&tok), "LIST", "secret/metadata/team/", None)
        .await;
    assert_eq!(s, 200);
    // Missing permission on every kind of route.
    for (m, p, body) in [
        ("GET", "secret/data/other/b", None),
        (
            "POST",
            "secret/data/team/a",
            Some(json!({"data": {"k": "w"}})),
        ),
        ("DELETE", "secret/data/team/a", None),
        ("GET", "secret/metadata/team/a", None),
        (
            "POST",
            "secret/metadata/team/a",
            Some(json!({"max_versions": 1})),
        ),
        (
            "POST",
            "secret/delete/team/a",
            Some(json!({"versions": [1]})),
        ),
        (
            "POST",
            "secret/undelete/team/a",
            Some(json!({"versions": [1]})),
        ),
        (
            "POST",
            "secret/destroy/team/a",
            Some(json!({"versions": [1]})),
        ),
        ("GET", "secret/config", None),
        ("POST", "secret/config", Some(json!({"max_versions": 1}))),
        ("LIST", "secret/metadata/other/", None),
    ] {
        let (s, b) = h.call_as(Some(&tok), m, p, body).await;
        assert_eq!(s, 403, "{m} {p}: {b}");
        assert_eq!(b["errors"], json!(["permission denied"]));
    }
    let (s, _) = h
        .call_body(
            Some(&tok),
            "PATCH",
            "secret/data/team/a",
            Some(MERGE),
            "{\"data\": {\"k\": \"x\"}}",
        )
        .await;
    assert_eq!(s, 403, "read does not grant patch");
    let (_, b) = h.call("GET", "secret/data/team/a", None).await;
    assert_eq!(b["data"]["metadata"]["version"], 1, "nothing changed");

    // Forged, missing and empty tokens.
    for t in [
        Some("hvs.forgedforgedforgedforged1"),
        None,
        Some("Root"),
        Some("roo"),
    ] {
        let (s, _) = h.call_as(t, "GET", "secret/data/team/a", None).await;
        assert_eq!(s, 403, "{t:?}");
    }

    // Unknown mount: 404 for root, 403 for a token that may not go there.
    let (s, b) = h.call("GET", "nomount/data/x", None).await;
    assert_eq!(s, 404, "{b}");
    // Vault answers 403 here for a token (or no token) the ACL denies; hushd routes first
    // and answers 404 (see docs/TEST_COVERAGE.md, known differences).
    let (s, _) = h.call_as(Some(&tok), "GET", "nomount/data/x", None).await;
    assert!(s == 403 || s == 404, "{s}");
    let (s, _) = h.call("GET", "secret/nosuchroute/x", None).await;
    assert_eq!(s, 404);

    // Traversal, encoded traversal and empty segments never reach the engine.
    for bad in [
        "/v1/secret/data/team/../other/b",
        "/v1/secret/data/%2e%2e/other/b",
        "/v1/secret/data/team/%2E%2E/%2e%2e/other/b",
        "/v1/secret//data/other/b",
        "/v1/secret/data/team//a",
        "/v1/secret/metadata/./team/a",
    ] {
        let (s, b) = h.raw_get(bad).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b.contains("\"errors\""), "{b}");
    }
    // Oversize write, odd methods.
    let (s, b) = h.oversize("POST", "secret/data/team/a", LIMIT).await;
    assert_eq!(s, 413, "{b}");
    for m in ["OPTIONS", "TRACE", "FOO"] {
        let (s, _) = h.call(m, "secret/data/team/a", None).await;
        assert_eq!(s, 405, "{m}");
    }
    let (s, _) = h
        .call("POST", "secret/subkeys/team/a", Some(json!({})))
        .await;
    assert_eq!(s, 405);

    // Sealed: every KV route answers 503.
    let (s, _) = h.call("PUT", "sys/seal", None).await;
    assert_eq!(s, 204);
    for (m, p) in [
        ("GET", "secret/data/team/a"),
        ("POST", "secret/data/team/a"),
        ("GET", "secret/metadata/team/a"),
        ("LIST", "secret/metadata/"),
        ("GET", "secret/config"),
        ("POST", "secret/destroy/team/a"),
    ] {
        let (s, b) = h.call(m, p, Some(json!({"data": {"a": "b"}}))).await;
        assert_eq!(s, 503, "{m} {p}: {b}");
        assert!(b["errors"][0].as_str().unwrap().contains("sealed"), "{b}");
    }
}

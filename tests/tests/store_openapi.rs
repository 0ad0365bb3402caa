//! `GET sys/internal/specs/openapi` from a real hushd: an OpenAPI 3 document in Vault's shape,
//! made from the route tables the dispatcher reads, so what it lists is what hushd serves and
//! what it does not list answers 404/405. Reading it needs `read` on the path (Vault's rule:
//! the `default` policy does not grant it).

use hush_tests::Hushd;
use serde_json::{json, Value};

const SPEC: &str = "sys/internal/specs/openapi";

async fn spec(h: &Hushd) -> Value {
    let (s, doc) = h.call("GET", SPEC, None).await;
    assert_eq!(s, 200, "{doc}");
    doc
}

#[tokio::test]
async fn the_document_is_openapi_3_and_names_every_route_group() {
    let h = Hushd::dev().await;
    let (s, b) = h
        .call("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
        .await;
    assert_eq!(s, 204, "{b}");
    let doc = spec(&h).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"), "{doc}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");

    for path in [
        // kv v2 at secret/
        "/secret/data/{path}",
        "/secret/metadata/{path}",
        "/secret/delete/{path}",
        "/secret/undelete/{path}",
        "/secret/destroy/{path}",
        "/secret/subkeys/{path}",
        "/secret/config",
        // sys
        "/sys/mounts",
        "/sys/mounts/{path}",
        "/sys/mounts/{path}/tune",
        "/sys/policies/acl/{name}",
        "/sys/seal-status",
        "/sys/leases/lookup",
        "/sys/wrapping/unwrap",
        "/sys/internal/specs/openapi",
        // the token store
        "/auth/token/create",
        "/auth/token/lookup-self",
        "/auth/token/revoke-self",
        "/auth/token/roles/{name}",
        // the cubbyhole
        "/cubbyhole/{path}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the spec");
    }
    // The mounted auth method appears under its mount path.
    assert!(
        paths.keys().any(|p| p.starts_with("/auth/approle/")),
        "no auth/approle/ path in {:?}",
        paths.keys().collect::<Vec<_>>()
    );

    // Vault's shape of an operation: operationId, templated parameters, JSON bodies, errors.
    let data = &paths["/secret/data/{path}"];
    assert_eq!(data["parameters"][0]["name"], "path");
    assert_eq!(data["parameters"][0]["in"], "path");
    for verb in ["get", "post", "patch", "delete"] {
        assert!(data[verb]["operationId"].is_string(), "{verb}: {data}");
        for code in ["200", "400", "403", "404", "500", "503"] {
            assert!(data[verb]["responses"][code].is_object(), "{verb} {code}");
        }
    }
    let body = &data["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["data"]["type"], "object", "{body}");
    assert_eq!(body["required"], json!(["data"]));
    assert_eq!(
        paths["/sys/seal-status"]["x-vault-unauthenticated"],
        json!(true)
    );
    assert_eq!(paths["/sys/seal"]["x-vault-sudo"], json!(true));

    // Every operationId is unique, and every path parameter is declared.
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (verb, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            } else {
                assert!(
                    ["description", "parameters"].contains(&verb.as_str())
                        || verb.starts_with("x-"),
                    "{path} {verb}"
                );
            }
        }
        let declared: Vec<&str> = item["parameters"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(declared.contains(&name), "{path}: {name} not declared");
            }
        }
    }
}

#[tokio::test]
async fn requests_outside_the_spec_are_404_or_405() {
    let h = Hushd::dev().await;
    let doc = spec(&h).await;
    let paths = doc["paths"].as_object().unwrap();
    // A path the spec lacks: 404 in Vault's error shape.
    assert!(!paths.contains_key("/secret/nothing/{path}"));
    for path in [
        "secret/nothing/x",
        "sys/no-such-thing",
        "auth/token/no-such",
    ] {
        let (s, b) = h.call("GET", path, None).await;
        assert_eq!(s, 404, "{path}: {b}");
        assert!(b["errors"].is_array(), "{path}: {b}");
    }
    // A path the spec has, with a method it does not list: 405.
    assert!(paths["/secret/config"].get("delete").is_none());
    assert!(paths["/sys/mounts"].get("delete").is_none());
    assert!(paths["/auth/token/create"].get("get").is_none());
    for (method, path) in [
        ("DELETE", "secret/config"),
        ("DELETE", "sys/mounts"),
        ("GET", "auth/token/create"),
        ("DELETE", "secret/delete/x"),
    ] {
        let (s, b) = h.call(method, path, None).await;
        assert_eq!(s, 405, "{method} {path}: {b}");
        assert!(b["errors"].is_array(), "{method} {path}: {b}");
    }
}

#[tokio::test]
async fn reading_the_spec_needs_a_token_with_read_on_it() {
    let h = Hushd::dev().await;
    for token in [None, Some("hvs.not-a-token-at-all")] {
        let (s, b) = h.call_as(token, "GET", SPEC, None).await;
        assert_eq!(s, 403, "{token:?}: {b}");
        assert!(b["errors"].is_array(), "{b}");
    }
    // The default policy does not grant it (as in Vault) ...
    let plain = h
        .token_with_policy(
            "nothing",
            "path \"secret/data/x\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, _) = h.call_as(Some(&plain), "GET", SPEC, None).await;
    assert_eq!(s, 403);
    // ... a policy with `read` on the path does.
    let reader = h
        .token_with_policy(
            "openapi",
            "path \"sys/internal/specs/openapi\" { capabilities = [\"read\"] }",
        )
        .await;
    let (s, doc) = h.call_as(Some(&reader), "GET", SPEC, None).await;
    assert_eq!(s, 200, "{doc}");
    assert!(doc["paths"]["/secret/data/{path}"].is_object());
}

//! `sys/internal/specs/openapi`: the OpenAPI 3 document of every route, made from the route
//! tables the dispatch gate reads ([`super::PATHS`] and each mounted backend's
//! [`crate::logical::LogicalBackend::paths`]), under the live mount paths, in Vault's shape.
//! A backend without a table is described by one catch-all path (`/<mount>/{path}`).
//!
//! As in Vault, reading it needs a token with `read` on the path (the `default` policy does
//! not grant it). Unlike Vault, the document is not filtered by the token's policies.

use serde_json::{json, Map, Value};

use crate::core::state::Unsealed;
use crate::logical::path_matches_any;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};

/// Error statuses every operation may answer, with Vault's meaning.
const ERRORS: &[(&str, &str)] = &[
    ("400", "Invalid request: a missing or malformed field."),
    (
        "403",
        "Permission denied: missing or bad token, or the policy does not allow it.",
    ),
    ("404", "Nothing at this path."),
    ("405", "The path does not take this operation."),
    (
        "429",
        "Too many requests: failed logins from one identity, or a standby (sys/health).",
    ),
    ("500", "Internal error (storage failure)."),
    ("503", "Sealed, or a standby with no active node."),
];

/// Operations that may answer 202 (Vault's asynchronous revoke-prefix).
const ACCEPTED: &[&str] = &["leases-revoke-prefix", "revoke-prefix"];

/// A catch-all for a backend that has no route table yet.
const UNDESCRIBED: &[PathSpec] = &[PathSpec::new(
    "{path+}",
    "any",
    Ops::RWD.with(Ops::LIST),
    "Routes of this backend (not described in detail).",
)];

/// The document for the current mount table.
pub fn document(st: &Unsealed) -> Value {
    let mut paths = Map::new();
    add(
        &mut paths,
        "sys/",
        super::PATHS,
        super::ROOT_PATHS,
        super::UNAUTHENTICATED_PATHS,
    );
    for m in st.router.described() {
        let table = if m.paths.is_empty() {
            UNDESCRIBED
        } else {
            m.paths
        };
        add(
            &mut paths,
            &m.entry.path,
            table,
            m.root_paths,
            m.unauthenticated_paths,
        );
    }
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": "Hush API",
            "description": "The HTTP API of hushd (Vault's API). All routes are prefixed with `/v1/`.",
            "version": env!("CARGO_PKG_VERSION"),
            "license": {"name": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": {
                "ErrorResponse": {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {"errors": {"type": "array", "items": {"type": "string"}}},
                },
            },
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Vault-Token"},
            },
        },
        "security": [{"token": []}],
    })
}

fn add(
    out: &mut Map<String, Value>,
    mount: &str,
    table: &[PathSpec],
    sudo: &[&str],
    unauthenticated: &[&str],
) {
    let slug = mount.trim_end_matches('/').replace('/', "-");
    for spec in table {
        let template = spec.pattern.replace("+}", "}");
        let mut item = Map::new();
        item.insert("description".into(), json!(spec.summary));
        let params: Vec<Value> = spec
            .params()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            item.insert("parameters".into(), json!(params));
        }
        if path_matches_any(spec.pattern, sudo) {
            item.insert("x-vault-sudo".into(), json!(true));
        }
        let open = path_matches_any(spec.pattern, unauthenticated)
            || (mount == "sys/" && is_unauthenticated_sys(spec.pattern));
        if open {
            item.insert("x-vault-unauthenticated".into(), json!(true));
        }
        let op_id = |verb: &str| format!("{slug}-{}-{verb}", spec.id);
        let mut op = |verb: &str, value: Value| {
            let mut value = value;
            value["operationId"] = json!(op_id(verb));
            value["summary"] = json!(spec.summary);
            value["responses"] = responses(spec);
            if open {
                value["security"] = json!([]);
            }
            item.insert(verb.into(), value);
        };
        let read = spec.ops.has(Ops::READ);
        let list = spec.ops.has(Ops::LIST);
        if read || list {
            let mut query: Vec<Value> = if read {
                spec.query.iter().map(query_param).collect()
            } else {
                Vec::new()
            };
            if list {
                query.push(json!({
                    "name": "list",
                    "in": "query",
                    "description": "Return a list of keys.",
                    "required": !read,
                    "schema": {"type": "string", "enum": ["true"]},
                }));
            }
            op("get", json!({"parameters": query}));
        }
        if spec.ops.has(Ops::WRITE) {
            op("post", with_body(spec, "application/json"));
        }
        if spec.ops.has(Ops::PATCH) {
            op("patch", with_body(spec, "application/merge-patch+json"));
        }
        if spec.ops.has(Ops::DELETE) {
            op("delete", json!({}));
        }
        out.insert(format!("/{mount}{template}"), Value::Object(item));
    }
}

/// `sys/` paths served without a token ([`super::handle_unauthenticated`]).
fn is_unauthenticated_sys(pattern: &str) -> bool {
    matches!(
        pattern,
        "init"
            | "seal-status"
            | "unseal"
            | "health"
            | "leader"
            | "generate-root/attempt"
            | "generate-root/update"
            | "rekey/init"
            | "rekey/update"
            | "rekey/verify"
    )
}

fn responses(spec: &PathSpec) -> Value {
    let mut r = Map::new();
    let ok_type = if spec.id == "metrics" {
        "text/plain"
    } else {
        "application/json"
    };
    r.insert(
        "200".into(),
        json!({"description": "OK", "content": {ok_type: {"schema": {}}}}),
    );
    r.insert("204".into(), json!({"description": "OK, empty body"}));
    if ACCEPTED.contains(&spec.id) {
        r.insert(
            "202".into(),
            json!({"description": "Accepted: the work goes on in the background (`sync: false`)."}),
        );
    }
    for (code, what) in ERRORS {
        r.insert(
            (*code).into(),
            json!({
                "description": what,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            }),
        );
    }
    Value::Object(r)
}

fn schema(kind: Kind) -> Value {
    match kind {
        Kind::String => json!({"type": "string"}),
        Kind::Integer => json!({"type": "integer"}),
        Kind::Boolean => json!({"type": "boolean"}),
        Kind::Object => json!({"type": "object"}),
        Kind::Strings => json!({"type": "array", "items": {"type": "string"}}),
        Kind::Integers => json!({"type": "array", "items": {"type": "integer"}}),
        Kind::Duration => json!({"type": "string", "format": "duration"}),
    }
}

fn query_param(f: &Field) -> Value {
    json!({
        "name": f.name,
        "in": "query",
        "description": f.description,
        "required": f.required,
        "schema": schema(f.kind),
    })
}

fn with_body(spec: &PathSpec, content_type: &str) -> Value {
    let mut props = Map::new();
    for f in spec.body_fields() {
        let mut s = schema(f.kind);
        s["description"] = json!(f.description);
        props.insert(f.name.into(), s);
    }
    if props.is_empty() {
        return json!({});
    }
    let required: Vec<&str> = spec
        .body_fields()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut body = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        body["required"] = json!(required);
    }
    json!({"requestBody": {
        "required": !required.is_empty(),
        "content": {content_type: {"schema": body}},
    }})
}

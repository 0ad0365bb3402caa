//! The `sys/` system backend: init and seal, mounts, policies, password policies, audit, keys,
//! leases, raw storage, the fleet of agents (`sys/agents`), webhooks (`sys/webhooks`),
//! compliance reports (`sys/reports/compliance`), scheduled rotation (`sys/rotation`).
//!
//! Submodules hold one API area each; [`PATHS`] (`paths.rs`) is the route table the core's
//! dispatch gate and `sys/internal/specs/openapi` (`openapi.rs`) read. Unauthenticated endpoints (init, unseal, seal-status,
//! health, leader, generate-root, rekey) are answered by [`handle_unauthenticated`] even while sealed.

use serde_json::{json, Value};

use crate::core::state::{Core, Unsealed};
use crate::logical::{Data, LogicalError, Operation, Request, Response};

mod agents;
mod agents_stats;
mod audit;
mod auth;
mod generate_root;
mod leases;
mod mounts;
mod openapi;
mod password_policy;
mod paths;
mod policy;
mod raw;
mod rekey;
mod remount;
mod reports;
mod rotation;
mod seal;
mod webhooks;

pub use paths::PATHS;

/// Sys paths (relative to `sys/`) served without a token; routed before the seal check.
pub const UNAUTHENTICATED_PATHS: &[&str] = &[];

/// Sys paths that need `sudo` on top of the operation's capability.
pub const ROOT_PATHS: &[&str] = &[
    "auth/*",
    "audit",
    "audit/*",
    "rotate",
    "seal",
    "step-down",
    "key-status",
    "raw",
    "raw/*",
    "leases/lookup/*",
    "leases/revoke-prefix/*",
    "leases/revoke-force/*",
    "revoke-prefix/*",
    "revoke-force/*",
    "leases",
    "leases/count",
    "remount",
    "storage/snapshot",
    "storage/snapshot-force",
    "storage/snapshot/verify",
    "internal/test/clock",
];

/// Sys paths any valid token may read (they reveal only mount types).
pub const ANY_TOKEN_PATHS: &[&str] = &["internal/ui/mounts", "internal/ui/mounts/*"];

/// Endpoints that work without a token and while sealed. `None`: not one of them.
pub async fn handle_unauthenticated(
    core: &Core,
    req: &Request,
) -> Option<Result<Response, LogicalError>> {
    let rel = req.path.strip_prefix("sys/")?;
    let op = req.operation;
    Some(match (rel, op) {
        (
            "init" | "seal-status" | "unseal" | "health" | "leader" | "rekey/init" | "rekey/update",
            _,
        ) if req.wrap_ttl.is_some() => Err(LogicalError::invalid(format!(
            "hushd cannot wrap the answer of sys/{rel}: send it without X-Vault-Wrap-TTL"
        ))),
        ("init", Operation::Read) => seal::init_status(core).await,
        ("init", Operation::Update | Operation::Create) => seal::init(core, req).await,
        ("seal-status", Operation::Read) => seal::seal_status(core).await,
        ("unseal", Operation::Update | Operation::Create) => seal::unseal(core, req).await,
        ("health", Operation::Read) => seal::health(core, req).await,
        ("leader", Operation::Read) => Ok(seal::leader(core)),
        ("generate-root/attempt", Operation::Read) => generate_root::status(core).await,
        ("generate-root/attempt", Operation::Update | Operation::Create) => {
            generate_root::start(core, req).await
        }
        ("generate-root/attempt", Operation::Delete) => generate_root::cancel(core).await,
        ("generate-root/update", Operation::Update | Operation::Create) => {
            generate_root::update(core, req).await
        }
        ("rekey/init" | "rekey/update" | "rekey/verify", _) => rekey::handle(core, req, rel).await,
        (
            "init"
            | "seal-status"
            | "unseal"
            | "health"
            | "leader"
            | "generate-root/attempt"
            | "generate-root/update",
            _,
        ) => Err(LogicalError::UnsupportedOperation),
        _ => return None,
    })
}

/// `sys/` paths whose answers Vault also copies from `data` to the top level (its
/// `injectDataIntoTopRoutes`); clients such as node-vault read them there. A trailing `/`
/// covers the paths below.
const DATA_ON_TOP: &[&str] = &[
    "audit",
    "audit/",
    "audit-hash/",
    "auth",
    "auth/",
    "capabilities",
    "capabilities-accessor",
    "capabilities-self",
    "key-status",
    "mounts",
    "mounts/",
    "policy",
    "policy/",
    "remount",
    "rotate",
    "wrapping/wrap",
];

/// Authenticated `sys/` endpoints; the core has checked the token and the ACL.
pub async fn handle(core: &Core, st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let rel = req.path.strip_prefix("sys/").unwrap_or("");
    let resp = route(core, st, req, rel).await?;
    let on_top = DATA_ON_TOP.iter().any(|p| match p.strip_suffix('/') {
        Some(_) => rel.starts_with(p),
        None => rel == *p,
    });
    // Only a plain data answer is lifted; anything else keeps its own shape.
    if on_top && resp.raw.is_none() && resp.warnings.is_empty() && resp.status.is_none() {
        if let Some(data) = resp.data {
            return Ok(both(req, Value::Object(data)));
        }
    }
    Ok(resp)
}

/// `sys/storage/snapshot/verify`: `manifest` (base64 of the manifest as in the file) and
/// `mac` (hex): does this store's root key authenticate them?
fn snapshot_verify(core: &Core, req: &Request) -> Result<Response, LogicalError> {
    use base64::Engine as _;
    let field = |name: &str| {
        req.data
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| LogicalError::invalid(format!("missing {name}")))
    };
    let manifest = base64::engine::general_purpose::STANDARD
        .decode(field("manifest")?)
        .map_err(|_| LogicalError::invalid("manifest: invalid base64"))?;
    let mac = hex::decode(field("mac")?).map_err(|_| LogicalError::invalid("mac: invalid hex"))?;
    let data = crate::core::snapshot::verify_manifest(core, &manifest, &mac)?;
    Ok(Response::data(data))
}

async fn route(
    core: &Core,
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Result<Response, LogicalError> {
    let op = req.operation;
    let write = matches!(op, Operation::Update | Operation::Create);
    let read = op == Operation::Read;
    let list = matches!(op, Operation::List | Operation::Read);
    match rel {
        "seal" if write => {
            core.seal().await;
            return Ok(Response::empty());
        }
        "step-down" if write => return seal::step_down(core).await,
        "rotate" if write => return seal::rotate(core).await,
        "key-status" if read => return seal::key_status(core, req).await,
        "mounts" if read => return Ok(mounts::list(st, req)),
        "auth" if read => return Ok(mounts::list_auth(st, req)),
        "policy" if list => return policy::list_legacy(st, req).await,
        "policies/acl" | "policies/acl/" if list => return policy::list(st).await,
        "capabilities-self" if write => return policy::capabilities_self(st, req).await,
        "capabilities" if write => return policy::capabilities(st, req).await,
        "audit" if read => return Ok(both(req, st.audit.list())),
        "metrics" if read => return metrics(req),
        "reports/compliance" if read => return reports::compliance(core, st, req).await,
        "remount" if write => return remount::remount(core, st, req).await,
        // Reached through the HTTP layer's streamed routes (api/snapshot.rs), which ask the
        // core first: the token, the ACL (sudo) and the audit log have seen the request.
        "storage/snapshot" if read || write => return Ok(Response::empty()),
        "storage/snapshot-force" if write => return Ok(Response::empty()),
        "storage/snapshot/verify" if write => return snapshot_verify(core, req),
        "internal/specs/openapi" if read => return Ok(Response::raw(openapi::document(st))),
        _ => {}
    }
    if let Some(key) = rel
        .strip_prefix("raw")
        .filter(|k| k.is_empty() || k.starts_with('/'))
    {
        return raw::handle(core, req, key.trim_start_matches('/')).await;
    }
    if let Some(resp) = agents::handle(core, st, req, rel).await {
        return resp;
    }
    if let Some(resp) = rotation::handle(core, st, req, rel).await {
        return resp;
    }
    if let Some(resp) = leases::handle(st, req, rel).await {
        return resp;
    }
    if let Some(resp) = webhooks::handle(st, req, rel).await {
        return resp;
    }
    if let Some(resp) = password_policy::handle(st, req, rel).await {
        return resp;
    }
    if let Some(rest) = rel.strip_prefix("mounts/") {
        if let Some(path) = rest.strip_suffix("/tune") {
            return match op {
                Operation::Read => mounts::read_tune(st, path),
                _ if write => mounts::tune(st, req, path).await,
                _ => Err(LogicalError::UnsupportedOperation),
            };
        }
        return match op {
            Operation::Read => mounts::read(st, rest),
            Operation::Delete => mounts::disable(st, rest).await,
            _ if write => mounts::enable(st, req, rest).await,
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(rest) = rel.strip_prefix("wrapping/") {
        return super::wrapping::handle(st, req, rest).await;
    }
    if let Some(id) = rel.strip_prefix("remount/status/") {
        return match op {
            Operation::Read => remount::status(core, id).await,
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(pattern) = rel.strip_prefix("events/subscribe/") {
        // Reached through the HTTP layer's WebSocket upgrade, which asks the core first:
        // the ACL (`read` here) and the audit log have seen the request by now.
        return match op {
            Operation::Read if !pattern.trim().is_empty() => Ok(Response::empty()),
            Operation::Read => Err(LogicalError::invalid(
                "did not specify eventType to subscribe to",
            )),
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(path) = rel.strip_prefix("internal/ui/mounts/") {
        return mounts::ui_mount(st, path);
    }
    if let Some(path) = rel.strip_prefix("auth/") {
        return auth::handle(st, req, path).await;
    }
    for (prefix, legacy) in [("policies/acl/", false), ("policy/", true)] {
        if let Some(name) = rel.strip_prefix(prefix) {
            return match op {
                Operation::Read => policy::read(st, name, legacy).await,
                Operation::Delete => policy::delete(st, name).await,
                _ if write => policy::write(st, req, name).await,
                _ => Err(LogicalError::UnsupportedOperation),
            };
        }
    }
    if let Some(path) = rel.strip_prefix("audit/") {
        return match op {
            Operation::Delete => audit::disable(st, path).await,
            _ if write => audit::enable(st, req, path).await,
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    if let Some(path) = rel.strip_prefix("audit-hash/") {
        return match op {
            _ if write => audit::hash(st, req, path).await,
            _ => Err(LogicalError::UnsupportedOperation),
        };
    }
    Err(LogicalError::UnsupportedPath)
}

/// Vault answers many `sys/` reads with the data both at the top level and under `data`.
pub(crate) fn both(req: &Request, data: Value) -> Response {
    let mut body = match &data {
        Value::Object(m) => m.clone(),
        _ => Data::new(),
    };
    body.insert("request_id".into(), json!(req.id));
    body.insert("lease_id".into(), json!(""));
    body.insert("renewable".into(), json!(false));
    body.insert("lease_duration".into(), json!(0));
    body.insert("data".into(), data);
    body.insert("wrap_info".into(), Value::Null);
    body.insert("warnings".into(), Value::Null);
    body.insert("auth".into(), Value::Null);
    Response::raw(Value::Object(body))
}

/// `sys/metrics`: the token may read it (the ACL said so). The HTTP layer, which owns the wire
/// format, answers the Prometheus text on this empty success.
fn metrics(req: &Request) -> Result<Response, LogicalError> {
    metrics_format(req).map(|()| Response::empty())
}

/// hushd has no JSON form of `sys/metrics` (Vault's default): without `format=prometheus`
/// the answer is a 400 that says what to ask for.
pub fn metrics_format(req: &Request) -> Result<(), LogicalError> {
    match req.data.get("format").and_then(Value::as_str) {
        Some("prometheus") => Ok(()),
        _ => Err(LogicalError::invalid(
            "hushd serves sys/metrics only as Prometheus text: add ?format=prometheus",
        )),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use crate::logical::{Operation, Request};

    #[tokio::test]
    async fn known_paths_with_the_wrong_operation_are_405_unknown_paths_404() {
        let core = crate::core::test_support::dev_core().await;
        let call = |op, path: &str| {
            let mut req = Request::new(op, path);
            req.client_token = Some(SecretString::from("root"));
            core.handle(req)
        };
        for (op, path) in [
            (Operation::Read, "sys/seal"),
            (Operation::Read, "sys/rotate"),
            (Operation::Update, "sys/key-status"),
            (Operation::Delete, "sys/mounts"),
            (Operation::Delete, "sys/policies/acl"),
            (Operation::Read, "sys/capabilities-self"),
            (Operation::Delete, "sys/audit"),
        ] {
            let err = call(op, path).await.unwrap_err();
            assert_eq!(err.status(), 405, "{op:?} {path}");
        }
        assert_eq!(
            call(Operation::Read, "sys/no-such-thing")
                .await
                .unwrap_err()
                .status(),
            404
        );
        assert!(call(Operation::Read, "sys/key-status").await.is_ok());
    }

    #[tokio::test]
    async fn protected_mounts_cannot_be_disabled() {
        let core = crate::core::test_support::dev_core().await;
        let call = |op, path: &str| {
            let mut req = Request::new(op, path);
            req.client_token = Some(SecretString::from("root"));
            core.handle(req)
        };
        for path in ["sys/mounts/sys", "sys/mounts/sys/", "sys/mounts/identity/x"] {
            let err = call(Operation::Delete, path).await.unwrap_err();
            assert_eq!(err.status(), 400, "{path}");
        }
        // An unmounted path is still a no-op 204, and a real mount goes away.
        assert!(call(Operation::Delete, "sys/mounts/nothing-here")
            .await
            .is_ok());
        assert!(call(Operation::Delete, "sys/mounts/secret").await.is_ok());
        let err = call(Operation::Read, "secret/data/x").await.unwrap_err();
        assert_eq!(err.status(), 404);
    }

    #[tokio::test]
    async fn an_empty_policy_is_refused() {
        let core = crate::core::test_support::dev_core().await;
        for body in [
            serde_json::json!({"policy": ""}),
            serde_json::json!({"rules": "  \n"}),
        ] {
            let mut req = Request::new(Operation::Update, "sys/policies/acl/empty").with_data(body);
            req.client_token = Some(SecretString::from("root"));
            assert_eq!(core.handle(req).await.unwrap_err().status(), 400);
        }
        let mut req = Request::new(Operation::Read, "sys/policies/acl/empty");
        req.client_token = Some(SecretString::from("root"));
        assert_eq!(core.handle(req).await.unwrap_err().status(), 404);
    }
}

//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke*`: Vault's lease API over the
//! expiration manager.

use serde_json::{json, Value};

use crate::core::expiration::PrefixMode;
use crate::core::state::Unsealed;
use crate::logical::fields::field_bool;
use crate::logical::fields::field_secs;
use crate::logical::{Data, LogicalError, Operation, Request, Response};

/// Serve `rel` (below `sys/`) when it is a lease endpoint; `None` otherwise.
pub async fn handle(
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Option<Result<Response, LogicalError>> {
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    let list = req.operation == Operation::List;
    let rel = rel.strip_prefix("leases/").map_or_else(
        // The legacy paths are the same endpoints without `leases/`.
        || match rel.split('/').next() {
            Some("renew" | "revoke" | "revoke-prefix" | "revoke-force") => Some(rel),
            _ => None,
        },
        Some,
    );
    let (rel, bare) = match rel {
        Some(r) => (r, false),
        None if req.path == "sys/leases" || req.path == "sys/leases/" => ("", true),
        None => return None,
    };
    let (head, arg) = rel.split_once('/').unwrap_or((rel, ""));
    Some(match (head, bare) {
        ("", true) if req.operation == Operation::Read => irrevocable_list(st, req).await,
        ("lookup", _) if list || (req.operation == Operation::Read && !arg.is_empty()) => {
            list_prefix(st, arg).await
        }
        ("lookup", _) if write && arg.is_empty() => lookup(st, req).await,
        ("renew", _) if write => renew(st, req, arg).await,
        ("revoke", _) if write => revoke(st, req, arg).await,
        ("revoke-prefix", _) if write && !arg.is_empty() => {
            let sync = field_bool(&req.data, "sync").map(|s| s.unwrap_or(true));
            match sync {
                Ok(true) => revoke_prefix(st, arg, PrefixMode::Sync).await,
                Ok(false) => revoke_prefix(st, arg, PrefixMode::Async).await,
                Err(e) => Err(e),
            }
        }
        ("revoke-force", _) if write && !arg.is_empty() => {
            revoke_prefix(st, arg, PrefixMode::Force).await
        }
        ("tidy", _) if write => Ok(Response::empty()),
        ("count", _) if req.operation == Operation::Read => count(st, req).await,
        _ => Err(LogicalError::UnsupportedOperation),
    })
}

/// Before a mount at `path` (normalised) is disabled: revoke the leases it issued (an auth
/// method's: the tokens its logins made), as Vault does; once unmounted, nothing could.
pub(super) async fn revoke_mount(st: &Unsealed, path: &str) -> Result<(), LogicalError> {
    if st.router.get(path).is_some() {
        st.expiration.revoke_prefix(path, PrefixMode::Sync).await?;
    }
    Ok(())
}

/// The lease id from the body, else from the path (`renew/:lease_id`).
fn lease_id<'a>(req: &'a Request, from_path: &'a str) -> Result<&'a str, LogicalError> {
    match req.data.get("lease_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) if !from_path.is_empty() => Ok(from_path),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(LogicalError::invalid("missing lease ID"))
        }
        Some(_) => Err(LogicalError::invalid("lease_id must be a string")),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

async fn lookup(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let id = lease_id(req, "")?;
    let entry = st.expiration.lookup(id).await?;
    let now = chrono::Utc::now();
    let mut data = json!({
        "id": entry.lease_id,
        "issue_time": rfc3339(entry.issue_time),
        "expire_time": rfc3339(entry.expire_time),
        "last_renewal": entry.last_renewal.map(rfc3339),
        "renewable": entry.renewable && entry.irrevocable.is_none() && entry.expire_time > now,
        "ttl": entry.ttl(now),
    });
    if let Some(reason) = &entry.irrevocable {
        data["irrevocable"] = json!(true);
        data["revoke_error"] = json!(reason);
        data["revoke_attempts"] = json!(entry.revoke_attempts);
    }
    Ok(Response::data(data))
}

async fn list_prefix(st: &Unsealed, prefix: &str) -> Result<Response, LogicalError> {
    // A prefix names a folder whether or not the client kept its trailing slash.
    let prefix = match prefix.trim_end_matches('/') {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let keys = st.expiration.list(&prefix).await?;
    if keys.is_empty() {
        return Err(LogicalError::NotFound(String::new()));
    }
    Ok(Response::list(keys))
}

async fn renew(st: &Unsealed, req: &Request, from_path: &str) -> Result<Response, LogicalError> {
    let id = lease_id(req, from_path)?;
    let increment = field_secs(&req.data, "increment")?.unwrap_or(0);
    let renewal = st.expiration.renew(id, increment).await?;
    // Vault's envelope with the lease at the top level and no data.
    Ok(Response::raw(json!({
        "request_id": req.id,
        "lease_id": renewal.lease_id,
        "renewable": renewal.renewable,
        "lease_duration": renewal.ttl,
        "data": null,
        "wrap_info": null,
        "warnings": if renewal.warnings.is_empty() { Value::Null } else { json!(renewal.warnings) },
        "auth": null,
    })))
}

async fn revoke(st: &Unsealed, req: &Request, from_path: &str) -> Result<Response, LogicalError> {
    let id = lease_id(req, from_path)?;
    let sync = field_bool(&req.data, "sync")?.unwrap_or(true);
    st.expiration.revoke(id, sync).await?;
    Ok(accepted(sync))
}

async fn revoke_prefix(
    st: &Unsealed,
    prefix: &str,
    mode: PrefixMode,
) -> Result<Response, LogicalError> {
    if !crate::core::lease::index::valid_prefix(prefix) {
        return Err(LogicalError::invalid("invalid prefix"));
    }
    st.expiration.revoke_prefix(prefix, mode).await?;
    Ok(accepted(mode != PrefixMode::Async))
}

/// 204 when done, 202 when the expiry task finishes it (Vault's `sync=false`).
fn accepted(done: bool) -> Response {
    match done {
        true => Response::empty(),
        false => Response::empty().with_status(202),
    }
}

/// The `type` query parameter of the count and list endpoints.
fn lease_type(req: &Request) -> Result<bool, LogicalError> {
    match req.get_str("type") {
        Some("irrevocable") => Ok(true),
        Some("all") => Ok(false),
        _ => Err(LogicalError::invalid(
            "invalid type: expected \"irrevocable\" or \"all\"",
        )),
    }
}

/// `GET sys/leases/count?type=irrevocable|all`.
async fn count(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let n = if lease_type(req)? {
        st.expiration.irrevocable().await?.len()
    } else {
        st.expiration.count().await?
    };
    Ok(Response::data(
        json!({ "lease_count": n, "counts": { "root": n } }),
    ))
}

/// `GET sys/leases?type=irrevocable`: the leases whose revocation gave up, with why.
async fn irrevocable_list(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    if !lease_type(req)? {
        return Err(LogicalError::invalid(
            "listing every lease is not supported: use type=irrevocable",
        ));
    }
    let leases: Vec<Value> = st
        .expiration
        .irrevocable()
        .await?
        .into_iter()
        .map(|(id, error)| json!({"lease_id": id, "namespace": "root", "error": error}))
        .collect();
    let mut data = Data::new();
    data.insert("lease_count".into(), json!(leases.len()));
    data.insert("leases".into(), Value::Array(leases));
    Ok(Response {
        data: Some(data),
        ..Default::default()
    })
}

//! `sys/policy`, `sys/policies/acl`, `sys/capabilities-self`, `sys/capabilities`.

use secrecy::SecretString;
use serde_json::{json, Map, Value};

use super::both;
use crate::core::state::Unsealed;
use crate::logical::{LogicalError, Request, Response};

pub async fn list_legacy(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let names = st.policies.list().await?;
    Ok(both(req, json!({ "policies": names, "keys": names })))
}

pub async fn list(st: &Unsealed) -> Result<Response, LogicalError> {
    Ok(Response::list(st.policies.list().await?))
}

pub async fn read(st: &Unsealed, name: &str, legacy: bool) -> Result<Response, LogicalError> {
    let name = name.to_lowercase();
    let policy = if name == "root" {
        None
    } else {
        st.policies.get(&name).await?
    };
    // The root policy has no text: Vault reads it back empty.
    let text = match policy {
        Some(p) => p.raw.clone(),
        None if name == "root" => String::new(),
        None => return Err(LogicalError::NotFound(String::new())),
    };
    Ok(if legacy {
        Response::data(json!({ "name": name, "rules": text }))
    } else {
        Response::data(json!({ "name": name, "policy": text }))
    })
}

pub async fn write(st: &Unsealed, req: &Request, name: &str) -> Result<Response, LogicalError> {
    // An empty policy is refused as a missing one, as in Vault.
    let text = req
        .get_str("policy")
        .or_else(|| req.get_str("rules"))
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| LogicalError::invalid("'policy' parameter not supplied or empty"))?;
    st.policies.set(name, text).await?;
    Ok(Response::empty())
}

pub async fn delete(st: &Unsealed, name: &str) -> Result<Response, LogicalError> {
    st.policies.delete(name).await?;
    Ok(Response::empty())
}

fn requested_paths(req: &Request) -> Result<Vec<String>, LogicalError> {
    let mut out = Vec::new();
    match req.data.get("paths") {
        Some(Value::Array(a)) => {
            for p in a {
                out.push(
                    p.as_str()
                        .ok_or_else(|| LogicalError::invalid("paths must be a list of strings"))?
                        .to_string(),
                );
            }
        }
        Some(Value::String(s)) => out.extend(s.split(',').map(|p| p.trim().to_string())),
        Some(_) => return Err(LogicalError::invalid("paths must be a list of strings")),
        None => {}
    }
    if let Some(p) = req.get_str("path") {
        out.push(p.to_string());
    }
    if out.is_empty() {
        return Err(LogicalError::invalid("missing paths"));
    }
    Ok(out)
}

async fn answer(
    st: &Unsealed,
    req: &Request,
    policies: &[String],
) -> Result<Response, LogicalError> {
    let paths = requested_paths(req)?;
    let acl = st.policies.acl(policies).await?;
    let mut map = Map::new();
    for p in &paths {
        map.insert(
            p.trim_start_matches('/').to_string(),
            json!(acl.capabilities(p.trim_start_matches('/'))),
        );
    }
    if paths.len() == 1 {
        let only = map.values().next().cloned().unwrap_or(json!([]));
        map.insert("capabilities".into(), only);
    }
    Ok(both(req, Value::Object(map)))
}

pub async fn capabilities_self(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let entry = req
        .token_entry
        .as_ref()
        .ok_or(LogicalError::PermissionDenied)?;
    answer(st, req, &entry.policies).await
}

pub async fn capabilities(st: &Unsealed, req: &Request) -> Result<Response, LogicalError> {
    let token = req
        .get_str("token")
        .ok_or_else(|| LogicalError::invalid("missing token"))?;
    // Vault: an unknown token is a bad request here, not a denial of the caller.
    let entry = st
        .tokens
        .authenticate(&SecretString::from(token.to_string()))
        .await
        .map_err(|e| match e {
            LogicalError::PermissionDenied => LogicalError::invalid("invalid token"),
            other => other,
        })?;
    answer(st, req, &entry.policies).await
}

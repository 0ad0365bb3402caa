//! `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::core::state::Unsealed;
use crate::logical::{LogicalError, Request, Response};

pub async fn enable(st: &Unsealed, req: &Request, path: &str) -> Result<Response, LogicalError> {
    let kind = req
        .get_str("type")
        .ok_or_else(|| LogicalError::invalid("audit device type is required (\"file\")"))?;
    let description = req.get_str("description").unwrap_or_default();
    let mut options = BTreeMap::new();
    match req.data.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(_) | Value::Number(_) => v.to_string(),
                    _ => {
                        return Err(LogicalError::invalid(format!(
                            "audit option {k} must be a string"
                        )))
                    }
                };
                options.insert(k.clone(), v);
            }
        }
        Some(_) => return Err(LogicalError::invalid("options must be an object")),
    }
    st.audit.enable(path, kind, description, options).await?;
    Ok(Response::empty())
}

pub async fn disable(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    st.audit.disable(path).await?;
    Ok(Response::empty())
}

pub async fn hash(st: &Unsealed, req: &Request, path: &str) -> Result<Response, LogicalError> {
    let input = req
        .get_str("input")
        .ok_or_else(|| LogicalError::invalid("input is required"))?;
    let hash = st.audit.hash(path, input).await?;
    Ok(Response::data(json!({ "hash": hash })))
}

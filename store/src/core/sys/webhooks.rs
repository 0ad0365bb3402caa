//! `sys/webhooks` (hush's own API; Vault has none): `LIST sys/webhooks`, read, write and
//! delete `sys/webhooks/:name`, `LIST`/read `sys/webhooks/:name/deliveries`. An ACL grant on
//! these paths is needed like on any `sys/` path; `sudo` is not. The secret is never read back.

use crate::core::state::Unsealed;
use crate::core::webhooks::{DEFAULT_LIST, MAX_LIST};
use crate::logical::fields::field_u64;
use crate::logical::{LogicalError, Operation, Request, Response};

/// Serve `rel` (below `sys/`) when it is under `webhooks`; `None` otherwise.
pub async fn handle(
    st: &Unsealed,
    req: &Request,
    rel: &str,
) -> Option<Result<Response, LogicalError>> {
    let op = req.operation;
    if rel == "webhooks" || rel == "webhooks/" {
        return Some(match op {
            Operation::List => match st.webhooks.names() {
                // Vault's empty list: 404 without errors.
                names if names.is_empty() => Err(LogicalError::NotFound(String::new())),
                names => Ok(Response::list(names)),
            },
            _ => Err(LogicalError::UnsupportedOperation),
        });
    }
    let sub = rel.strip_prefix("webhooks/")?;
    Some(match sub.split_once('/') {
        Some((name, "deliveries" | "deliveries/")) => deliveries(st, req, name).await,
        Some(_) => Err(LogicalError::UnsupportedPath),
        None => config(st, req, sub).await,
    })
}

async fn config(st: &Unsealed, req: &Request, name: &str) -> Result<Response, LogicalError> {
    match req.operation {
        Operation::Read => match st.webhooks.read(name) {
            Some(data) => Ok(Response::data(data)),
            None => Err(LogicalError::NotFound(String::new())),
        },
        Operation::Create | Operation::Update => {
            st.webhooks.write(name, &req.data).await?;
            Ok(Response::empty())
        }
        Operation::Delete => {
            st.webhooks.delete(name).await?;
            Ok(Response::empty())
        }
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

async fn deliveries(st: &Unsealed, req: &Request, name: &str) -> Result<Response, LogicalError> {
    let limit = match field_u64(&req.data, "limit")? {
        None => DEFAULT_LIST,
        Some(n) if (1..=MAX_LIST as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(LogicalError::invalid(format!(
                "limit: {n} is out of range (1 to {MAX_LIST})"
            )))
        }
    };
    match req.operation {
        Operation::List => match st.webhooks.delivery_ids(name, limit).await? {
            ids if ids.is_empty() => Err(LogicalError::NotFound(String::new())),
            ids => Ok(Response::list(ids)),
        },
        Operation::Read => Ok(Response::data(st.webhooks.deliveries(name, limit).await?)),
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

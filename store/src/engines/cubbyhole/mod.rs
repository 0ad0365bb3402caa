//! The cubbyhole engine: private storage per token, mounted once at `cubbyhole/` (as in Vault).
//!
//! Each token sees only its own entries: they are stored under the HMAC of the token
//! ([`crate::logical::TokenEntry::id_hash`], carried by the request once the core has
//! authenticated it), so no other token — not even root — can name them. When a token is
//! revoked the expiration manager sends an internal [`Operation::Revoke`] with no lease and
//! `token_hash` set, and the token's entries go with it. Response wrapping stores the wrapped
//! answer here, in the wrapping token's cubbyhole.

use serde_json::Value;

use crate::barrier::BarrierView;
use crate::logical::paths::{Ops, PathSpec};
use crate::logical::{
    Data, LogicalBackend, LogicalError, Operation, Request, Response, REVOKED_TOKEN_HASH,
};

pub struct CubbyholeBackend {
    view: BarrierView,
}

impl std::fmt::Debug for CubbyholeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CubbyholeBackend").finish_non_exhaustive()
    }
}

impl CubbyholeBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Ok(CubbyholeBackend { view })
    }

    /// The storage prefix of the request's token.
    fn token_prefix(req: &Request) -> Result<String, LogicalError> {
        let entry = req
            .token_entry
            .as_ref()
            .ok_or(LogicalError::PermissionDenied)?;
        Ok(format!("{}/", entry.id_hash))
    }

    /// Drop every entry of the revoked token `hash`.
    async fn destroy(&self, hash: &str) -> Result<Response, LogicalError> {
        if hash.is_empty() || hash.contains('/') {
            return Err(LogicalError::invalid("invalid token hash"));
        }
        let keys = self.view.scan_prefix(&format!("{hash}/")).await?;
        if !keys.is_empty() {
            let ops = keys
                .iter()
                .map(|k| self.view.delete_op(k))
                .collect::<Result<Vec<_>, _>>()?;
            self.view.write(ops).await?;
        }
        Ok(Response::empty())
    }
}

#[async_trait::async_trait]
impl LogicalBackend for CubbyholeBackend {
    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        if req.operation == Operation::Revoke && req.lease.is_none() {
            let hash = req.get_str(REVOKED_TOKEN_HASH).unwrap_or_default();
            return self.destroy(hash).await;
        }
        let prefix = Self::token_prefix(req)?;
        let rel = req.rel_path();
        match req.operation {
            Operation::List => {
                let dir = rel.trim_end_matches('/');
                let dir = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                };
                let keys = self.view.list(&format!("{prefix}{dir}")).await?;
                if keys.is_empty() {
                    return Err(LogicalError::NotFound(String::new()));
                }
                Ok(Response::list(keys))
            }
            _ if rel.is_empty() || rel.ends_with('/') => {
                Err(LogicalError::invalid("missing secret path"))
            }
            Operation::Read => match self
                .view
                .get_json::<Data>(&format!("{prefix}{rel}"))
                .await?
            {
                Some(data) => Ok(Response::data(Value::Object(data))),
                None => Err(LogicalError::NotFound(String::new())),
            },
            Operation::Create | Operation::Update => {
                if req.data.is_empty() {
                    return Err(LogicalError::invalid("missing data fields"));
                }
                self.view
                    .put_json(&format!("{prefix}{rel}"), &req.data)
                    .await?;
                Ok(Response::empty())
            }
            Operation::Delete => {
                self.view.delete(&format!("{prefix}{rel}")).await?;
                Ok(Response::empty())
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let Ok(prefix) = Self::token_prefix(req) else {
            return Ok(None);
        };
        let rel = req.rel_path();
        if rel.is_empty() || rel.ends_with('/') {
            return Ok(None);
        }
        Ok(Some(
            self.view.get(&format!("{prefix}{rel}")).await?.is_some(),
        ))
    }
}

/// The routes of the mount: its root lists, any other path is one secret in the token's own store.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("", "root", Ops::LIST, "List the keys at the root."),
    PathSpec::new(
        "{path+}",
        "secret",
        Ops::RWD.with(Ops::LIST),
        "Read, write or delete a secret in the token's own store; LIST lists the keys below it.",
    ), // The body is the secret itself: any JSON object, so no fields are named.
];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::logical::TokenEntry;

    async fn backend() -> CubbyholeBackend {
        let barrier = Arc::new(crate::barrier::Barrier::new(Arc::new(
            crate::storage::MemoryBackend::new(),
        )));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        CubbyholeBackend::new(BarrierView::new(barrier, "logical/cubbyhole/"))
            .await
            .unwrap()
    }

    fn req(op: Operation, path: &str, hash: Option<&str>) -> Request {
        let mut r = Request::new(op, path);
        r.mount_point = "cubbyhole/".into();
        r.token_entry = hash.map(|h| {
            Arc::new(TokenEntry {
                id_hash: h.into(),
                accessor: String::new(),
                parent_hash: None,
                policies: vec![],
                meta: Default::default(),
                display_name: String::new(),
                num_uses: 0,
                creation_time: chrono::Utc::now(),
                ttl: 0,
                explicit_max_ttl: 0,
                period: 0,
                renewable: false,
                expire_time: None,
                path: String::new(),
                token_type: "service".into(),
                entity_id: String::new(),
                bound_cidrs: vec![],
                last_renewal: None,
            })
        });
        r
    }

    #[tokio::test]
    async fn each_token_sees_only_its_own_and_revocation_destroys_it() {
        let b = backend().await;
        let w = req(Operation::Create, "cubbyhole/app/pw", Some("aaa"))
            .with_data(serde_json::json!({"pw": "s3cret"}));
        b.handle(&w).await.unwrap();
        let got = b
            .handle(&req(Operation::Read, "cubbyhole/app/pw", Some("aaa")))
            .await
            .unwrap();
        assert_eq!(got.data.unwrap()["pw"], "s3cret");
        // Another token: nothing there.
        let other = b
            .handle(&req(Operation::Read, "cubbyhole/app/pw", Some("bbb")))
            .await
            .unwrap_err();
        assert_eq!(other.status(), 404);
        let list = b
            .handle(&req(Operation::List, "cubbyhole/", Some("aaa")))
            .await
            .unwrap();
        assert_eq!(list.data.unwrap()["keys"], serde_json::json!(["app/"]));
        // No token entry: refused.
        assert_eq!(
            b.handle(&req(Operation::Read, "cubbyhole/app/pw", None))
                .await
                .unwrap_err()
                .status(),
            403
        );
        // An empty write and a path without a name are 400.
        for r in [
            req(Operation::Update, "cubbyhole/x", Some("aaa")),
            req(Operation::Update, "cubbyhole/", Some("aaa")),
        ] {
            assert_eq!(b.handle(&r).await.unwrap_err().status(), 400);
        }
        let revoke = Request::new(Operation::Revoke, "cubbyhole/")
            .with_data(serde_json::json!({ REVOKED_TOKEN_HASH: "aaa" }));
        b.handle(&revoke).await.unwrap();
        let gone = b
            .handle(&req(Operation::Read, "cubbyhole/app/pw", Some("aaa")))
            .await
            .unwrap_err();
        assert_eq!(gone.status(), 404);
    }
}

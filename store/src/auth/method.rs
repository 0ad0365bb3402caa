//! The paths every auth method with a login, one config object and stored roles serves, in
//! one place: `login` (write), the config (read, write, and delete where the method allows
//! it), and the role paths ([`RoleStore::route`]: list, `role/NAME`). A method implements
//! [`AuthMethod`] with its own pieces (how it logs in, what its config is) and gets
//! [`LogicalBackend`] from the implementation below.

use serde_json::Value;

use super::role_store::{RoleFields, RoleStore};
use crate::logical::paths::PathSpec;
use crate::logical::{LogicalBackend, LogicalError, Operation, Request, Response};

/// What an auth method supplies; the dispatch of its paths is shared.
#[async_trait::async_trait]
pub trait AuthMethod: Send + Sync {
    type Role: RoleFields;

    /// The config object's path below the mount.
    const CONFIG_PATH: &'static str = "config";
    /// Whether a write to the config path is a create while none is stored (for the ACL).
    const CONFIG_EXISTENCE: bool = false;
    /// Whether `roles` lists the roles as `role` does.
    const ROLES_ALIAS: bool = false;
    /// The method's route table ([`crate::logical::paths`]): login, config, the role paths
    /// and its own; the core's gate and the OpenAPI document read it.
    const PATHS: &'static [PathSpec];

    /// The method's stored roles.
    fn roles(&self) -> &RoleStore<Self::Role>;

    /// `login` (a write; served without a token): a [`Response::login`] on good credentials.
    async fn login(&self, req: &Request) -> Result<Response, LogicalError>;

    /// A write to the config path.
    async fn write_config(&self, req: &Request) -> Result<Response, LogicalError>;

    /// The stored config as a read shows it; `None` when the method is not configured.
    async fn read_config(&self) -> Result<Option<Value>, LogicalError>;

    /// A delete of the config path; refused unless the method allows it.
    async fn delete_config(&self) -> Result<Response, LogicalError> {
        Err(LogicalError::UnsupportedOperation)
    }

    /// Paths of the method's own besides login, config and roles, tried before the role
    /// paths; `None` when `rel` is not one of them.
    async fn other_path(
        &self,
        _req: &Request,
        _rel: &str,
    ) -> Option<Result<Response, LogicalError>> {
        None
    }
}

#[async_trait::async_trait]
impl<M: AuthMethod> LogicalBackend for M {
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let rel = req.rel_path().trim_end_matches('/');
        let op = req.operation;
        let write = matches!(op, Operation::Update | Operation::Create);
        if rel == "login" {
            return if write {
                self.login(req).await
            } else {
                Err(LogicalError::UnsupportedOperation)
            };
        }
        if rel == M::CONFIG_PATH {
            return match op {
                _ if write => self.write_config(req).await,
                Operation::Read => match self.read_config().await? {
                    Some(config) => Ok(Response::data(config)),
                    None => Err(LogicalError::NotFound(String::new())),
                },
                Operation::Delete => self.delete_config().await,
                _ => Err(LogicalError::UnsupportedOperation),
            };
        }
        if let Some(result) = self.other_path(req, rel).await {
            return result;
        }
        let rel = if M::ROLES_ALIAS && rel == "roles" {
            "role"
        } else {
            rel
        };
        match self.roles().route(req, rel).await {
            Some(result) => result,
            None => Err(LogicalError::UnsupportedPath),
        }
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        let rel = req.rel_path().trim_end_matches('/');
        if M::CONFIG_EXISTENCE && rel == M::CONFIG_PATH {
            return Ok(Some(self.read_config().await?.is_some()));
        }
        self.roles().exists(rel).await
    }

    fn paths(&self) -> &'static [PathSpec] {
        M::PATHS
    }

    fn unauthenticated_paths(&self) -> &'static [&'static str] {
        &["login"]
    }
}

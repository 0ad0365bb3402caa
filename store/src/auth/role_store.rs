//! The roles of one auth mount, kept as JSON under `role/NAME` in the mount's view, and the
//! `role/NAME` endpoint every method shares: read, create or update from a write's fields
//! (merged into what is stored), delete; and the `role` list.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::barrier::BarrierView;
use crate::logical::fields::valid_name;
use crate::logical::{Data, LogicalError, Operation, Request, Response};

/// A role type that a write's fields build or update.
pub trait RoleFields: Serialize + DeserializeOwned + Send + Sync {
    /// A new role (`existing` = `None`) or the stored one updated from `data`, checked.
    fn apply(existing: Option<Self>, data: &Data) -> Result<Self, LogicalError>;
    /// What a read of `role/NAME` returns.
    fn to_json(&self) -> Value;
    /// Warnings a write of this role answers with (it is stored all the same).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Implements [`RoleFields`] for a role type with `Default`, `update(&mut self, &Data)` and
/// `to_json(&self)`: a new role is the default one updated. `role_fields_from_update!(R,
/// warnings)` also takes the write's warnings from `R::warnings(&self) -> Vec<String>`.
macro_rules! role_fields_from_update {
    ($role:ty, warnings) => {
        $crate::auth::role_store::role_fields_from_update!($role, {
            fn warnings(&self) -> Vec<String> {
                <$role>::warnings(self)
            }
        });
    };
    ($role:ty) => {
        $crate::auth::role_store::role_fields_from_update!($role, {});
    };
    ($role:ty, { $($extra:item)* }) => {
        impl $crate::auth::role_store::RoleFields for $role {
            fn apply(
                existing: Option<Self>,
                data: &$crate::logical::Data,
            ) -> Result<Self, $crate::logical::LogicalError> {
                let mut role = existing.unwrap_or_default();
                role.update(data)?;
                Ok(role)
            }

            fn to_json(&self) -> serde_json::Value {
                <$role>::to_json(self)
            }

            $($extra)*
        }
    };
}

pub(crate) use role_fields_from_update;

/// The roles of one mount.
#[derive(Clone)]
pub struct RoleStore<R> {
    view: BarrierView,
    /// Names are case-insensitive (stored lower-case), as AWS's are in Vault.
    fold_case: bool,
    _role: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for RoleStore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleStore")
            .field("fold_case", &self.fold_case)
            .finish_non_exhaustive()
    }
}

impl<R: RoleFields> RoleStore<R> {
    pub fn new(view: BarrierView) -> RoleStore<R> {
        RoleStore {
            view,
            fold_case: false,
            _role: PhantomData,
        }
    }

    /// Role names compared without case.
    pub fn case_insensitive(view: BarrierView) -> RoleStore<R> {
        RoleStore {
            fold_case: true,
            ..RoleStore::new(view)
        }
    }

    fn key(&self, name: &str) -> String {
        if self.fold_case {
            format!("role/{}", name.to_lowercase())
        } else {
            format!("role/{name}")
        }
    }

    /// The role named `name`; `None` for an unknown or invalid name.
    pub async fn get(&self, name: &str) -> Result<Option<R>, LogicalError> {
        if !valid_name(name) {
            return Ok(None);
        }
        Ok(self.view.get_json(&self.key(name)).await?)
    }

    /// Stores `role` as `name` (already checked by [`RoleStore::get`] or a write).
    pub async fn put(&self, name: &str, role: &R) -> Result<(), LogicalError> {
        Ok(self.view.put_json(&self.key(name), role).await?)
    }

    /// Creates or updates `name` from a write's fields; the role as stored.
    pub async fn write(&self, name: &str, data: &Data) -> Result<R, LogicalError> {
        if !valid_name(name) {
            return Err(LogicalError::invalid(format!(
                "invalid role name {name:?}: use letters, digits, '-', '_', '.' and '@'"
            )));
        }
        let role = R::apply(self.get(name).await?, data)?;
        self.put(name, &role).await?;
        Ok(role)
    }

    /// The names stored; `NotFound` when there are none (Vault's 404 for an empty list).
    pub async fn list(&self) -> Result<Response, LogicalError> {
        let keys = self.view.list("role/").await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound(String::new()));
        }
        Ok(Response::list(keys))
    }

    /// The role paths of a mount, `rel` relative to it: LIST or READ of `role` (the names), and
    /// `role/NAME`. `None` when `rel` is neither.
    pub async fn route(&self, req: &Request, rel: &str) -> Option<Result<Response, LogicalError>> {
        if rel == "role" {
            return Some(match req.operation {
                Operation::List | Operation::Read => self.list().await,
                _ => Err(LogicalError::UnsupportedOperation),
            });
        }
        let name = rel.strip_prefix("role/").filter(|n| !n.contains('/'))?;
        Some(self.handle(req, name).await)
    }

    /// For `exists`: whether `role/NAME` is stored; `None` when `rel` is not a role path.
    pub async fn exists(&self, rel: &str) -> Result<Option<bool>, LogicalError> {
        match rel.strip_prefix("role/").filter(|n| !n.contains('/')) {
            Some(name) => Ok(Some(self.get(name).await?.is_some())),
            None => Ok(None),
        }
    }

    /// `role/NAME`: read, create or update, delete (deleting a missing role is fine).
    pub async fn handle(&self, req: &Request, name: &str) -> Result<Response, LogicalError> {
        match req.operation {
            Operation::Read => match self.get(name).await? {
                Some(role) => Ok(Response::data(role.to_json())),
                None => Err(LogicalError::NotFound(String::new())),
            },
            Operation::Delete => {
                if valid_name(name) {
                    self.view.delete(&self.key(name)).await?;
                }
                Ok(Response::empty())
            }
            Operation::Update | Operation::Create => {
                let role = self.write(name, &req.data).await?;
                Ok(role
                    .warnings()
                    .into_iter()
                    .fold(Response::empty(), Response::with_warning))
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }
}

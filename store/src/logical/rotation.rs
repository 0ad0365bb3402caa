//! What a secrets engine offers the core's scheduled rotation (`sys/rotation`): versions
//! written as *pending* beside the *current* one, then promoted or marked failed, as AWS
//! Secrets Manager's `AWSPENDING`/`AWSCURRENT`/`AWSPREVIOUS` labels.
//!
//! Only the core calls these (no HTTP route reaches them); an engine that keeps versions
//! (KV v2) implements [`Rotatable`] and returns it from
//! [`super::LogicalBackend::rotatable`].

use async_trait::async_trait;
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::error::LogicalError;

/// A version's fields; wiped when dropped (they are secret values).
pub struct SecretFields(pub Map<String, Value>);

impl Drop for SecretFields {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(m) => m.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
    }
}

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFields")
            .field("fields", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// A key's rotation labels: version numbers, never values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Labels {
    /// 0: the key has no readable version.
    pub current: u64,
    pub previous: Option<u64>,
    pub pending: Option<u64>,
}

/// Versioned keys that can hold a pending version (paths are relative to the mount's data,
/// e.g. `app/db` for `secret/data/app/db`).
#[async_trait]
pub trait Rotatable: Send + Sync {
    /// The key's labels; `None`: no such key.
    async fn labels(&self, key: &str) -> Result<Option<Labels>, LogicalError>;

    /// One version's fields; `None`: gone (deleted, destroyed, pruned) or never written.
    async fn read_version(
        &self,
        key: &str,
        version: u64,
    ) -> Result<Option<SecretFields>, LogicalError>;

    /// Write `fields` as a new *pending* version on top of `base` (which must still be the
    /// current version; 0 for a key without one): readers keep getting `base`. A pending
    /// version left by an earlier attempt is marked failed. Returns the new version.
    async fn create_pending(
        &self,
        key: &str,
        base: u64,
        fields: &SecretFields,
    ) -> Result<u64, LogicalError>;

    /// Make `version` (the pending one) current and `base` previous, if `base` is still
    /// current; publishes the write's event.
    async fn promote(&self, key: &str, version: u64, base: u64) -> Result<(), LogicalError>;

    /// Mark `version` failed (it stays readable by number, never current).
    async fn fail(&self, key: &str, version: u64) -> Result<(), LogicalError>;
}

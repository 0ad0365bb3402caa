//! The KV v2 engine's side of scheduled rotation ([`Rotatable`]): pending versions beside the
//! current one, promoted or marked failed under the key's write lock.
//!
//! A pending version is an ordinary numbered version that `current_version` does not point
//! at: plain reads, `subkeys`, agents and events keep seeing the current one until
//! [`Rotatable::promote`], which publishes `kv-v2/data-write` like any write.

use async_trait::async_trait;

use super::config::Config;
use super::data::{load_version_data, write_version};
use super::metadata::VersionMeta;
use super::{KeyRef, KvBackend};
use crate::logical::rotation::{Labels, Rotatable, SecretFields};
use crate::logical::LogicalError;

fn conflict(key: &str, what: &str) -> LogicalError {
    LogicalError::invalid(format!("rotation of {key:?}: {what}"))
}

#[async_trait]
impl Rotatable for KvBackend {
    async fn labels(&self, key: &str) -> Result<Option<Labels>, LogicalError> {
        let key = KeyRef::new(key)?;
        let _guard = self.stripe(&key).read().await;
        let now = self.now();
        Ok(self.load_meta(&key).await?.map(|m| {
            let live = m
                .versions
                .get(&m.current_version)
                .is_some_and(|v| !v.is_gone(now));
            Labels {
                current: if live { m.current_version } else { 0 },
                previous: m.previous_version,
                pending: m.pending_version,
            }
        }))
    }

    async fn read_version(
        &self,
        key: &str,
        version: u64,
    ) -> Result<Option<SecretFields>, LogicalError> {
        let key = KeyRef::new(key)?;
        let _guard = self.stripe(&key).read().await;
        let Some(meta) = self.load_meta(&key).await? else {
            return Ok(None);
        };
        match meta.versions.get(&version) {
            Some(vm) if !vm.is_gone(self.now()) => Ok(Some(SecretFields(
                load_version_data(self, &key, version).await?,
            ))),
            _ => Ok(None),
        }
    }

    async fn create_pending(
        &self,
        key: &str,
        base: u64,
        fields: &SecretFields,
    ) -> Result<u64, LogicalError> {
        let key = KeyRef::new(key)?;
        let config: Config = self.load_config().await?;
        let _guard = self.stripe(&key).write().await;
        let now = self.now();
        let mut meta = self
            .load_meta(&key)
            .await?
            .unwrap_or_else(|| super::metadata::KeyMetadata::new(key.path, now));
        if meta.current_version != base {
            return Err(conflict(
                key.path,
                "the current version changed since the rotation started",
            ));
        }
        let vm = VersionMeta {
            created_time: now,
            deletion_time: None,
            destroyed: false,
            rotation_failed: false,
        };
        let (version, pruned) = meta.add_pending(vm, &config);
        write_version(self, &key, &meta, version, &pruned, &fields.0, Vec::new()).await?;
        Ok(version)
    }

    async fn promote(&self, key: &str, version: u64, base: u64) -> Result<(), LogicalError> {
        let key = KeyRef::new(key)?;
        let config: Config = self.load_config().await?;
        let _guard = self.stripe(&key).write().await;
        let Some(mut meta) = self.load_meta(&key).await? else {
            return Err(conflict(key.path, "the key was deleted"));
        };
        if meta.pending_version != Some(version) {
            return Err(conflict(key.path, "the version is no longer pending"));
        }
        if meta.current_version != base {
            return Err(conflict(
                key.path,
                "the current version changed since the rotation started",
            ));
        }
        let now = self.now();
        meta.pending_version = None;
        meta.previous_version = (base > 0).then_some(base);
        meta.current_version = version;
        meta.updated_time = now;
        // The promoted version's own delete-after clock starts now, as a write's would.
        let deletion_time = config.deletion_time(now, &meta);
        if let Some(vm) = meta.versions.get_mut(&version) {
            vm.deletion_time = deletion_time;
        }
        self.view.put_json(&key.meta_key(), &meta).await?;
        self.publish("data-write", "data", &key, Some(&meta));
        Ok(())
    }

    async fn fail(&self, key: &str, version: u64) -> Result<(), LogicalError> {
        let key = KeyRef::new(key)?;
        let _guard = self.stripe(&key).write().await;
        let Some(mut meta) = self.load_meta(&key).await? else {
            return Ok(());
        };
        if meta.pending_version == Some(version) {
            meta.pending_version = None;
        }
        match meta.versions.get_mut(&version) {
            Some(vm) if !vm.rotation_failed && meta.current_version != version => {
                vm.rotation_failed = true;
            }
            _ => return Ok(()),
        }
        self.view.put_json(&key.meta_key(), &meta).await?;
        Ok(())
    }
}

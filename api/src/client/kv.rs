//! KV version 2 helpers. `mount` is the engine's mount (`secret`), `path` the secret below it.

use super::{data_of, Client};
use crate::error::ClientError;
use crate::wire::kv::{
    kv_path, KvMetadata, KvMetadataUpdate, KvSecret, KvVersionMetadata, KvVersions, KvWriteOptions,
    KvWriteRequest,
};
use crate::wire::{Data, ListData};

impl Client {
    /// `GET MOUNT/data/PATH[?version=N]`. `None` if the secret does not exist; a deleted or
    /// destroyed version comes back with `data: None` and its metadata.
    pub async fn kv_get(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<KvSecret>, ClientError> {
        let p = kv_path(mount, "data", path);
        let version = version.map(|v| v.to_string());
        let query: Vec<(&str, &str)> = version.iter().map(|v| ("version", v.as_str())).collect();
        match self.read_with_query(&p, &query).await? {
            None => Ok(None),
            some => data_of(&p, some).map(Some),
        }
    }

    /// Write a new version. `cas`: only if the current version is this one (0: must not exist).
    pub async fn kv_put(
        &self,
        mount: &str,
        path: &str,
        data: Data,
        cas: Option<u64>,
    ) -> Result<KvVersionMetadata, ClientError> {
        let p = kv_path(mount, "data", path);
        let body = KvWriteRequest {
            data,
            options: cas.map(|c| KvWriteOptions { cas: Some(c) }),
        };
        data_of(&p, self.write(&p, &body).await?)
    }

    /// Merge `data` into the latest version (JSON merge patch: `null` removes a key).
    pub async fn kv_patch(
        &self,
        mount: &str,
        path: &str,
        data: Data,
        cas: Option<u64>,
    ) -> Result<KvVersionMetadata, ClientError> {
        let p = kv_path(mount, "data", path);
        let body = KvWriteRequest {
            data,
            options: cas.map(|c| KvWriteOptions { cas: Some(c) }),
        };
        data_of(&p, self.patch(&p, &body).await?)
    }

    /// `LIST MOUNT/metadata/PATH`: keys below `path` (folders end in `/`). `None` if empty.
    pub async fn kv_list(
        &self,
        mount: &str,
        path: &str,
    ) -> Result<Option<Vec<String>>, ClientError> {
        let p = kv_path(mount, "metadata", path);
        match self.list(&p).await? {
            None => Ok(None),
            some => Ok(Some(data_of::<ListData>(&p, some)?.keys)),
        }
    }

    /// Soft-delete the latest version.
    pub async fn kv_delete(&self, mount: &str, path: &str) -> Result<(), ClientError> {
        self.delete(&kv_path(mount, "data", path)).await.map(drop)
    }

    /// Soft-delete the given versions.
    pub async fn kv_delete_versions(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), ClientError> {
        let body = KvVersions {
            versions: versions.to_vec(),
        };
        self.write(&kv_path(mount, "delete", path), &body)
            .await
            .map(drop)
    }

    /// Restore soft-deleted versions.
    pub async fn kv_undelete(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), ClientError> {
        let body = KvVersions {
            versions: versions.to_vec(),
        };
        self.write(&kv_path(mount, "undelete", path), &body)
            .await
            .map(drop)
    }

    /// Destroy versions for good.
    pub async fn kv_destroy(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<(), ClientError> {
        let body = KvVersions {
            versions: versions.to_vec(),
        };
        self.write(&kv_path(mount, "destroy", path), &body)
            .await
            .map(drop)
    }

    /// `GET MOUNT/metadata/PATH`. `None` if the secret does not exist.
    pub async fn kv_metadata_get(
        &self,
        mount: &str,
        path: &str,
    ) -> Result<Option<KvMetadata>, ClientError> {
        let p = kv_path(mount, "metadata", path);
        match self.read(&p).await? {
            None => Ok(None),
            some => data_of(&p, some).map(Some),
        }
    }

    /// `POST MOUNT/metadata/PATH`.
    pub async fn kv_metadata_put(
        &self,
        mount: &str,
        path: &str,
        update: &KvMetadataUpdate,
    ) -> Result<(), ClientError> {
        self.write(&kv_path(mount, "metadata", path), update)
            .await
            .map(drop)
    }

    /// Delete the metadata and every version.
    pub async fn kv_metadata_delete(&self, mount: &str, path: &str) -> Result<(), ClientError> {
        self.delete(&kv_path(mount, "metadata", path))
            .await
            .map(drop)
    }
}

//! `delete/:path`, `undelete/:path` and `destroy/:path`: act on chosen versions of a key.
//!
//! Soft delete only stamps `deletion_time`; undelete clears it (restarting the
//! `delete_version_after` clock); destroy removes the data for good and marks the version
//! destroyed, which undelete cannot revert. Versions that do not exist are skipped, and a
//! key that does not exist is a no-op, as in Vault: all answer 204.

use super::config::with_optional_warning;
use super::params::{ignored_params_warning, versions_field};
use super::{KeyRef, KvBackend};
use crate::logical::{LogicalError, Operation, Request, Response};

/// Parse the request: a write with a non-empty `versions` list.
fn parse<'a>(
    req: &Request,
    path: &'a str,
    empty_msg: &str,
) -> Result<(KeyRef<'a>, Vec<u64>), LogicalError> {
    if !matches!(req.operation, Operation::Update | Operation::Create) {
        return Err(LogicalError::UnsupportedOperation);
    }
    let key = KeyRef::new(path)?;
    let versions = versions_field(&req.data)?;
    if versions.is_empty() {
        return Err(LogicalError::invalid(empty_msg));
    }
    Ok((key, versions))
}

fn done(req: &Request) -> Response {
    with_optional_warning(
        Response::empty(),
        ignored_params_warning(req, &["versions"]),
    )
}

pub(super) async fn delete(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    let (key, versions) = parse(req, path, "No version number provided")?;
    let _guard = kv.stripe(&key).write().await;
    let Some(mut meta) = kv.load_meta(&key).await? else {
        return Ok(done(req));
    };
    let now = kv.now();
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.is_gone(now) {
                vm.deletion_time = Some(now);
            }
        }
    }
    kv.view.put_json(&key.meta_key(), &meta).await?;
    kv.publish("delete", "delete", &key, Some(&meta));
    Ok(done(req))
}

pub(super) async fn undelete(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    let (key, versions) = parse(req, path, "No version number provided")?;
    let config = kv.load_config().await?;
    let _guard = kv.stripe(&key).write().await;
    let Some(mut meta) = kv.load_meta(&key).await? else {
        return Ok(done(req));
    };
    let now = kv.now();
    let deletion_time = config.deletion_time(now, &meta);
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.destroyed {
                vm.deletion_time = deletion_time;
            }
        }
    }
    kv.view.put_json(&key.meta_key(), &meta).await?;
    kv.publish("undelete", "undelete", &key, Some(&meta));
    Ok(done(req))
}

pub(super) async fn destroy(
    kv: &KvBackend,
    req: &Request,
    path: &str,
) -> Result<Response, LogicalError> {
    let (key, versions) = parse(req, path, "no version number provided")?;
    let _guard = kv.stripe(&key).write().await;
    let Some(mut meta) = kv.load_meta(&key).await? else {
        return Ok(done(req));
    };
    let mut ops = Vec::new();
    for v in versions {
        if let Some(vm) = meta.versions.get_mut(&v) {
            if !vm.destroyed {
                vm.destroyed = true;
                ops.push(kv.view.delete_op(&key.version_key(v))?);
            }
        }
    }
    ops.push(kv.view.put_json_op(&key.meta_key(), &meta)?);
    kv.view.write(ops).await?;
    kv.publish("destroy", "destroy", &key, Some(&meta));
    Ok(done(req))
}

//! `sys/mounts`, `sys/mounts/:path`, `sys/mounts/:path/tune`, `sys/internal/ui/mounts/:path`,
//! `sys/auth`.

use serde_json::{json, Map, Value};

use super::both;
use crate::core::mount::{normalize_mount_path, MountConfig};
use crate::core::state::Unsealed;
use crate::logical::fields::field_secs;
use crate::logical::{LogicalError, Request, Response};

pub fn list(st: &Unsealed, req: &Request) -> Response {
    let mut map = Map::new();
    for m in st.router.secret_mounts() {
        map.insert(m.path.clone(), m.to_json());
    }
    // sys/ is always there, as in Vault.
    map.insert(
        "sys/".into(),
        json!({"type": "system", "description": "system endpoints used for control, policy and debugging",
               "accessor": "system_builtin", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0},
               "options": null, "local": false, "seal_wrap": false}),
    );
    both(req, Value::Object(map))
}

pub fn list_auth(st: &Unsealed, req: &Request) -> Response {
    let mut map = Map::new();
    for m in st.router.auth_mounts() {
        let key = m.path.trim_start_matches("auth/").to_string();
        map.insert(key, m.to_json());
    }
    both(req, Value::Object(map))
}

pub fn read(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let entry = st
        .router
        .get(path)
        .ok_or_else(|| LogicalError::invalid(format!("no secrets engine mounted at {path}")))?;
    Ok(Response::data(entry.to_json()))
}

pub async fn enable(st: &Unsealed, req: &Request, path: &str) -> Result<Response, LogicalError> {
    let kind = req.get_str("type").unwrap_or_default();
    let description = req.get_str("description").unwrap_or_default();
    let options = req.data.get("options").cloned().unwrap_or(Value::Null);
    let config = parse_config(req.data.get("config"))?;
    let entry = st.router.mount(path, kind, description, options).await?;
    if config != MountConfig::default() {
        st.router.tune(&entry.path, Some(config), None).await?;
    }
    Ok(Response::empty())
}

/// Mount paths Vault never unmounts (hushd has nothing mounted at most of them, but a
/// 204 would claim something was done).
const PROTECTED: &[&str] = &["audit/", "auth/", "sys/", "cubbyhole/", "identity/"];

pub async fn disable(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let normalized = normalize_mount_path(path);
    if PROTECTED.iter().any(|p| normalized.starts_with(p)) {
        return Err(LogicalError::invalid(format!(
            "cannot unmount {normalized:?}"
        )));
    }
    super::leases::revoke_mount(st, &normalized).await?;
    st.router.unmount(path).await?;
    Ok(Response::empty())
}

pub fn read_tune(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let e = st.router.get(path).ok_or_else(|| {
        LogicalError::invalid(format!("no mount at {}", normalize_mount_path(path)))
    })?;
    Ok(Response::data(json!({
        "default_lease_ttl": e.config.default_lease_ttl,
        "max_lease_ttl": e.config.max_lease_ttl,
        "force_no_cache": false,
        "description": e.description,
        "options": e.options,
    })))
}

pub async fn tune(st: &Unsealed, req: &Request, path: &str) -> Result<Response, LogicalError> {
    let current = st.router.get(path).ok_or_else(|| {
        LogicalError::invalid(format!("no mount at {}", normalize_mount_path(path)))
    })?;
    if let Some(Value::Object(opts)) = req.data.get("options") {
        if let Some(v) = opts.get("version") {
            if v != &json!("2") && v != &json!(2) {
                return Err(LogicalError::invalid(
                    "kv version cannot be changed: only version 2 is supported",
                ));
            }
        }
    }
    let mut config = current.config.clone();
    if let Some(v) = field_secs(&req.data, "default_lease_ttl")? {
        config.default_lease_ttl = v;
    }
    if let Some(v) = field_secs(&req.data, "max_lease_ttl")? {
        config.max_lease_ttl = v;
    }
    let description = req.get_str("description").map(str::to_string);
    st.router.tune(path, Some(config), description).await?;
    Ok(Response::empty())
}

fn parse_config(v: Option<&Value>) -> Result<MountConfig, LogicalError> {
    let mut c = MountConfig::default();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if let Some(x) = field_secs(m, "default_lease_ttl")? {
                c.default_lease_ttl = x;
            }
            if let Some(x) = field_secs(m, "max_lease_ttl")? {
                c.max_lease_ttl = x;
            }
        }
        Some(_) => return Err(LogicalError::invalid("config must be an object")),
    }
    if c.max_lease_ttl != 0 && c.default_lease_ttl > c.max_lease_ttl {
        return Err(LogicalError::invalid(
            "default_lease_ttl cannot be greater than max_lease_ttl",
        ));
    }
    Ok(c)
}

/// The vault CLI asks this to learn a mount's path and KV version.
pub fn ui_mount(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let (mount, _) = st
        .router
        .route(path)
        .map_err(|_| LogicalError::PermissionDenied)?;
    let mount_point = mount.path.clone();
    let entry = st
        .router
        .get(&mount_point)
        .ok_or(LogicalError::PermissionDenied)?;
    Ok(Response::data(json!({
        "path": entry.path,
        "type": entry.kind,
        "description": entry.description,
        "options": entry.options,
        "accessor": entry.accessor,
        "config": {"default_lease_ttl": entry.config.default_lease_ttl, "max_lease_ttl": entry.config.max_lease_ttl},
        "local": false,
        "seal_wrap": false,
    })))
}

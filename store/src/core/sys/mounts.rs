//! `sys/mounts`, `sys/mounts/:path`, `sys/mounts/:path/tune`, `sys/internal/ui/mounts/:path`,
//! `sys/auth`.

use serde_json::{json, Map, Value};

use super::both;
use crate::core::mount::{normalize_mount_path, MountConfig, MountEntry};
use crate::core::state::Unsealed;
use crate::logical::fields::field_secs;
use crate::logical::ttl::{DEFAULT_TTL, MAX_TTL};
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

/// Vault's answer to `GET sys/mounts/:path/tune` and `sys/auth/:path/tune`: the effective
/// TTLs (the mount's own, else the system's 768h), `token_type` for auth mounts (hushd issues
/// service tokens only, so `default-service`), and `options` only when there are some.
pub fn read_tune(st: &Unsealed, path: &str) -> Result<Response, LogicalError> {
    let e = st.router.get(path).ok_or_else(|| {
        LogicalError::invalid(format!("no mount at {}", normalize_mount_path(path)))
    })?;
    Ok(Response::data(tune_json(&e)))
}

fn tune_json(e: &MountEntry) -> Value {
    let effective = |own: u64, system: u64| if own == 0 { system } else { own };
    let mut data = json!({
        "description": e.description,
        "default_lease_ttl": effective(e.config.default_lease_ttl, DEFAULT_TTL),
        "max_lease_ttl": effective(e.config.max_lease_ttl, MAX_TTL),
        "force_no_cache": false,
    });
    if e.path.starts_with("auth/") {
        data["token_type"] = json!("default-service");
    }
    if !e.options.is_empty() {
        data["options"] = Value::Object(e.options.clone());
    }
    data
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, config: MountConfig) -> MountEntry {
        MountEntry {
            path: path.into(),
            kind: "kv".into(),
            description: "d".into(),
            uuid: "u".into(),
            accessor: "a".into(),
            options: Map::new(),
            config,
            created: chrono::Utc::now(),
        }
    }

    #[test]
    fn untuned_mounts_report_the_system_ttls_and_auth_mounts_their_token_type() {
        let j = tune_json(&entry("apps/", MountConfig::default()));
        assert_eq!(j["default_lease_ttl"], 2_764_800);
        assert_eq!(j["max_lease_ttl"], 2_764_800);
        assert!(
            j.get("token_type").is_none() && j.get("options").is_none(),
            "{j}"
        );
        let tuned = MountConfig {
            default_lease_ttl: 600,
            max_lease_ttl: 0,
        };
        let j = tune_json(&entry("auth/approle/", tuned));
        assert_eq!(j["default_lease_ttl"], 600);
        assert_eq!(j["max_lease_ttl"], 2_764_800);
        assert_eq!(j["token_type"], "default-service");
    }
}

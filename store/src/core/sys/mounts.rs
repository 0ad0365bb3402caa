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
    let options = match req.data.get("options") {
        None | Some(Value::Null) => None,
        Some(Value::Object(given)) if given.is_empty() => None,
        Some(Value::Object(given)) => Some(tune_options(&current, given)?),
        Some(_) => return Err(LogicalError::invalid("options must be an object")),
    };
    let mut config = current.config.clone();
    if let Some(v) = field_secs(&req.data, "default_lease_ttl")? {
        config.default_lease_ttl = v;
    }
    if let Some(v) = field_secs(&req.data, "max_lease_ttl")? {
        config.max_lease_ttl = v;
    }
    let description = req.get_str("description").map(str::to_string);
    st.router.tune(path, Some(config), description).await?;
    let Some(options) = options else {
        return Ok(Response::empty());
    };
    st.router
        .set_options(path, options.options, options.upgrade.is_some())
        .await?;
    Ok(match options.upgrade {
        Some((from, to)) => Response::empty().with_warning(format!(
            "Upgrading mount from version {from} to version {to}. This mount will be \
             unavailable for a brief period and will resume service shortly."
        )),
        None => Response::empty(),
    })
}

/// A mount's options after a tune.
#[derive(Debug)]
struct TunedOptions {
    options: Map<String, Value>,
    /// `(from, to)` when `version` goes up: the backend restarts (a kv upgrade).
    upgrade: Option<(u64, u64)>,
}

/// Vault's rules for `options` in a tune: `version` may only be 1 or 2 and never go down
/// (a kv mount is upgraded, never downgraded); other keys are set, and an empty value
/// removes one.
fn tune_options(
    current: &crate::core::mount::MountEntry,
    given: &Map<String, Value>,
) -> Result<TunedOptions, LogicalError> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    };
    let mut options = current.options.clone();
    let mut upgrade = None;
    if let Some(v) = given.get("version") {
        let wanted = text(v).ok_or_else(|| {
            LogicalError::invalid("unable to parse options: version must be 1 or 2")
        })?;
        let wanted: u64 = match wanted.parse() {
            Ok(n @ (1 | 2)) => n,
            Ok(n) => {
                return Err(LogicalError::invalid(format!(
                    "invalid version provided: {n}"
                )))
            }
            Err(_) if wanted.is_empty() => {
                return Err(LogicalError::invalid("cannot unset the version of a mount"))
            }
            Err(_) => {
                return Err(LogicalError::invalid(format!(
                    "unable to parse options: version {wanted:?} is not a number"
                )))
            }
        };
        let now: u64 = match current.options.get("version").and_then(text) {
            None => 0,
            Some(s) if s.is_empty() => 0,
            Some(s) => s.parse().map_err(|_| {
                LogicalError::Internal("the mount's stored version does not parse".into())
            })?,
        };
        if now > wanted {
            return Err(LogicalError::invalid(format!(
                "cannot downgrade mount from version {now}"
            )));
        }
        if now < wanted {
            upgrade = Some((now, wanted));
        }
        options.insert("version".into(), Value::String(wanted.to_string()));
    }
    for (k, v) in given {
        if k == "version" {
            continue;
        }
        match text(v) {
            Some(s) if s.is_empty() => {
                options.remove(k);
            }
            Some(s) => {
                options.insert(k.clone(), Value::String(s));
            }
            None => {
                return Err(LogicalError::invalid(format!(
                    "unable to parse options: {k:?} must be a string"
                )))
            }
        }
    }
    Ok(TunedOptions { options, upgrade })
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

    fn mount(options: Value) -> crate::core::mount::MountEntry {
        crate::core::mount::MountEntry {
            path: "kv/".into(),
            kind: "kv".into(),
            description: String::new(),
            uuid: "u".into(),
            accessor: "kv_u".into(),
            options: match options {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            config: MountConfig::default(),
            created: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn tuned(current: Value, given: Value) -> Result<TunedOptions, LogicalError> {
        let Value::Object(given) = given else {
            panic!("given must be an object")
        };
        tune_options(&mount(current), &given)
    }

    #[test]
    fn versions_go_up_never_down_as_in_vault() {
        let t = tuned(json!({}), json!({"version": "2"})).unwrap();
        assert_eq!(
            (t.upgrade, &t.options["version"]),
            (Some((0, 2)), &json!("2"))
        );
        let t = tuned(json!({"version": "1"}), json!({"version": 2})).unwrap();
        assert_eq!(t.upgrade, Some((1, 2)));
        let t = tuned(json!({"version": "2"}), json!({"version": "2"})).unwrap();
        assert_eq!(t.upgrade, None, "same version: nothing to do");
        let err = tuned(json!({"version": "2"}), json!({"version": "1"})).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (400, "cannot downgrade mount from version 2")
        );
        let err = tuned(json!({}), json!({"version": "3"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid version provided: 3");
        for bad in [json!("two"), json!(""), json!([2]), json!(true)] {
            let err = tuned(json!({}), json!({ "version": bad })).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }

    #[test]
    fn other_options_are_set_and_an_empty_value_removes_one() {
        let t = tuned(json!({"version": "2", "a": "1"}), json!({"a": "", "b": 3})).unwrap();
        assert_eq!(Value::Object(t.options), json!({"version": "2", "b": "3"}));
        assert!(tuned(json!({}), json!({"a": {"x": 1}})).is_err());
    }
}

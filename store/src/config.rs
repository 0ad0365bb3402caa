//! hushd configuration: flags and an optional TOML file are merged into a raw config, then
//! validated into a typed [`Config`] before anything binds a port. Every problem gets one
//! exact message; `main` exits with code 64 on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Settings as written in the TOML file (all optional; flags override them).
#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `sqlite:///path/to/hush.db`, `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=...` or
    /// `inmem`.
    pub storage: Option<String>,
    /// `IP:PORT`.
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (loopback only unless `allow_insecure_non_loopback`).
    pub insecure_no_tls: Option<bool>,
    pub allow_insecure_non_loopback: Option<bool>,
    /// `plain` (default) or `json`.
    pub log_format: Option<String>,
    /// A tracing filter such as `info` or `hush_store=debug`.
    pub log_level: Option<String>,
    /// Largest accepted request body in bytes (default 33554432 = 32 MiB).
    pub max_request_bytes: Option<usize>,
    /// Largest snapshot a restore accepts (`sys/storage/snapshot`), in bytes (default 64 GiB).
    pub max_snapshot_bytes: Option<u64>,
    /// Entries in the storage read cache (default 65536; 0 disables it).
    pub cache_entries: Option<usize>,
    /// How often TLS files are checked for changes, in seconds (default 10).
    pub tls_reload_interval_secs: Option<u64>,
    /// Failed logins of one identity (mount + role ID, or role + token subject) that lock it
    /// (default 5, Vault's `lockout_threshold`; 0 turns the lockout off).
    pub login_lockout_threshold: Option<u32>,
    /// How long a locked identity is refused, in seconds (default 900).
    pub login_lockout_duration_secs: Option<u64>,
    /// How long an identity's failures are counted from the first, in seconds (default 900).
    pub login_lockout_counter_reset_secs: Option<u64>,
    /// Failed logins from one address within the window after which its failed logins are
    /// answered 429 (default 100; 0: no ceiling). Never refuses valid credentials.
    pub login_address_max_failures: Option<u32>,
    /// The address ceiling's window, in seconds (default 60).
    pub login_address_window_secs: Option<u64>,
    /// Serve `sys/raw` (Vault's `raw_storage_endpoint`; default false).
    pub raw_storage_endpoint: Option<bool>,
    /// Serve `sys/internal/test/clock`, which moves the rotation scheduler's clock forward
    /// (for tests; default false).
    pub test_clock_endpoint: Option<bool>,
    /// Serve `sys/metrics` without a token (Vault's `unauthenticated_metrics_access`;
    /// default false: a token with `read` on `sys/metrics` is needed).
    pub unauthenticated_metrics_access: Option<bool>,
    /// How long agents' access events and their batch ids are kept (`sys/agents`), as a
    /// duration such as `720h` (the default) or `30d`; at least 1s.
    pub agent_access_retention: Option<String>,
    /// Run as one of several hushd on one PostgreSQL: one active, the others standing by
    /// (default false). Needs `storage = "postgres://..."` and `api_addr`.
    pub ha: Option<bool>,
    /// The URL other nodes and clients reach this node at, e.g. `https://10.0.0.5:8200`
    /// (standbys redirect clients to the active node's).
    pub api_addr: Option<String>,
    /// How long the active node's HA lock lasts unless renewed (renewed every third of it), as
    /// a duration from `1s` to `5m` (default `5s`): a standby takes over at most this long
    /// (plus a second) after the active node dies.
    pub ha_lock_ttl: Option<String>,
    /// How long a client may take to send a request's head, as a duration (Vault's listener
    /// option; default `10s`); also how long a kept-alive connection may wait for its next
    /// request.
    pub http_read_header_timeout: Option<String>,
    /// How long a request body may go without a byte before hushd answers 408 (default `30s`).
    pub http_read_timeout: Option<String>,
    /// How long a connection may go without a byte either way before hushd closes it (default
    /// `5m`).
    pub http_idle_timeout: Option<String>,
    /// Requests handled at once; beyond it hushd answers 503 with `Retry-After` (default 256
    /// per CPU core). `sys/health` and `sys/seal-status` are always served.
    pub max_in_flight_requests: Option<usize>,
}

impl RawConfig {
    /// Read a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| ConfigError(format!("config file {}: {}", path.display(), e.message())))
    }

    /// Fill every field set in `over` into `self`.
    pub fn overlay(mut self, over: RawConfig) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            storage,
            listen,
            tls_cert,
            tls_key,
            insecure_no_tls,
            allow_insecure_non_loopback,
            log_format,
            log_level,
            max_request_bytes,
            max_snapshot_bytes,
            cache_entries,
            tls_reload_interval_secs,
            login_lockout_threshold,
            login_lockout_duration_secs,
            login_lockout_counter_reset_secs,
            login_address_max_failures,
            login_address_window_secs,
            raw_storage_endpoint,
            test_clock_endpoint,
            unauthenticated_metrics_access,
            agent_access_retention,
            ha,
            api_addr,
            ha_lock_ttl,
            http_read_header_timeout,
            http_read_timeout,
            http_idle_timeout,
            max_in_flight_requests
        );
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Memory,
    Sqlite(PathBuf),
    /// Its `Debug` shows no password. Boxed: the client settings are large.
    Postgres(Box<crate::storage::postgres::PostgresUrl>),
}

impl StorageConfig {
    /// A storage URL as `--storage` takes it (`hushd migrate` parses its `--from` and `--to`
    /// with it too): one exact message per problem, never the password.
    pub fn parse(url: &str) -> Result<StorageConfig, ConfigError> {
        Ok(match url {
            "inmem" => StorageConfig::Memory,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StorageConfig::Postgres(Box::new(
                    crate::storage::postgres::PostgresUrl::parse(url)
                        .map_err(|e| ConfigError(format!("invalid storage: {e}")))?,
                ))
            }
            url => match url.strip_prefix("sqlite://") {
                Some(p) if !p.is_empty() => {
                    let path = PathBuf::from(p);
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        if !parent.is_dir() {
                            return err(format!(
                                "storage directory {} does not exist: create it first",
                                parent.display()
                            ));
                        }
                    }
                    StorageConfig::Sqlite(path)
                }
                _ => {
                    return err(format!(
                        "unsupported storage {:?}: use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE (or inmem for throw-away tests)",
                        // Only the scheme: the rest may hold a password.
                        match url.split_once("://") {
                            Some((scheme, _)) => format!("{scheme}://..."),
                            None => url.to_string(),
                        }
                    ));
                }
            },
        })
    }
}

pub use hush_api::LogFormat;

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Validated configuration.
#[derive(Debug)]
pub struct Config {
    pub storage: StorageConfig,
    pub listen: SocketAddr,
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `Some` in dev mode: an initialised, unsealed in-memory store.
    pub dev: Option<DevConfig>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_request_bytes: usize,
    pub max_snapshot_bytes: u64,
    pub cache_entries: usize,
    pub tls_reload_interval: std::time::Duration,
    pub login_limits: crate::core::login::limiter::LoginLimits,
    pub raw_storage_endpoint: bool,
    pub test_clock_endpoint: bool,
    pub unauthenticated_metrics_access: bool,
    /// How long agents' access events are kept.
    pub agent_access_retention: std::time::Duration,
    /// `Some`: one of several HA nodes.
    pub ha: Option<HaConfig>,
    /// The listener's timeouts.
    pub listener: hush_api::server::ConnLimits,
    /// Requests handled at once (503 beyond).
    pub max_in_flight_requests: usize,
}

/// The HA settings of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// Where clients and other nodes reach this node (`scheme://host:port`, no path).
    pub api_addr: String,
    pub lock_ttl: std::time::Duration,
}

/// The HA lock's TTL unless configured: a standby takes over within about this long.
pub const DEFAULT_HA_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct DevConfig {
    pub root_token: Option<SecretString>,
}

impl std::fmt::Debug for DevConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevConfig")
            .field(
                "root_token",
                &self.root_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// One exact configuration problem.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8200";

impl Config {
    /// Validate. `dev` comes from `--dev`, with its optional root token.
    pub fn validate(raw: RawConfig, dev: Option<DevConfig>) -> Result<Config, ConfigError> {
        let listen_str = raw
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_str.parse().map_err(|_| {
            ConfigError(format!(
                "invalid listen address {listen_str:?}: expected IP:PORT such as 127.0.0.1:8200"
            ))
        })?;
        let storage = match (&dev, raw.storage.as_deref()) {
            (Some(_), Some(_)) => {
                return err("--dev uses in-memory storage: do not combine it with --storage")
            }
            (Some(_), None) => StorageConfig::Memory,
            (None, None) => return err(
                "missing storage: pass --storage sqlite://PATH (or postgres://USER:PASSWORD@HOST:PORT/DATABASE) or set storage in the config file",
            ),
            (None, Some(url)) => StorageConfig::parse(url)?,
        };
        let insecure = raw.insecure_no_tls.unwrap_or(false) || dev.is_some();
        let tls = match (raw.tls_cert.clone(), raw.tls_key.clone(), insecure) {
            (Some(_), Some(_), true) if dev.is_none() => {
                return err("choose either --tls-cert/--tls-key or --insecure-no-tls, not both")
            }
            (Some(_), Some(_), true) => return err("--dev serves plain HTTP: do not pass --tls-cert/--tls-key"),
            (Some(cert), Some(key), false) => {
                for (what, p) in [("certificate", &cert), ("key", &key)] {
                    if !p.is_file() {
                        return err(format!("TLS {what} file {} does not exist", p.display()));
                    }
                }
                hush_api::tls::load_certified_key(&cert, &key).map_err(|e| ConfigError(e.to_string()))?;
                Some(TlsFiles { cert, key })
            }
            (Some(_), None, _) => return err("--tls-cert needs --tls-key"),
            (None, Some(_), _) => return err("--tls-key needs --tls-cert"),
            (None, None, true) => None,
            (None, None, false) => {
                return err("TLS is required: pass --tls-cert FILE --tls-key FILE, or --insecure-no-tls for plain HTTP on loopback")
            }
        };
        if tls.is_none()
            && !listen.ip().is_loopback()
            && !raw.allow_insecure_non_loopback.unwrap_or(false)
        {
            return err(format!(
                "refusing plain HTTP on non-loopback address {listen}: use TLS, listen on 127.0.0.1, \
                 or pass --allow-insecure-non-loopback"
            ));
        }
        let log_format = match raw.log_format.as_deref() {
            None => LogFormat::Text,
            Some(s) => s
                .parse()
                .or_else(|e| err(format!("invalid log_format: {e}")))?,
        };
        let max_request_bytes = raw
            .max_request_bytes
            .unwrap_or(crate::api::DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < 1024 {
            return err("max_request_bytes must be at least 1024");
        }
        let reload = raw.tls_reload_interval_secs.unwrap_or(10);
        if reload == 0 {
            return err("tls_reload_interval_secs must be at least 1");
        }
        let login_limits = login_limits(&raw)?;
        let agent_access_retention = agent_access_retention(raw.agent_access_retention.as_deref())?;
        let ha = ha(&raw, &storage, dev.is_some())?;
        let listener = listener_limits(&raw)?;
        let max_in_flight_requests = match raw.max_in_flight_requests {
            None => default_max_in_flight(),
            Some(0) => return err("max_in_flight_requests must be at least 1"),
            Some(n) => n,
        };
        Ok(Config {
            storage,
            listen,
            tls,
            dev,
            log_format,
            log_level: raw.log_level.unwrap_or_else(|| "info".into()),
            max_request_bytes,
            max_snapshot_bytes: raw
                .max_snapshot_bytes
                .unwrap_or(crate::api::snapshot::DEFAULT_MAX_SNAPSHOT_BYTES),
            cache_entries: raw.cache_entries.unwrap_or(65_536),
            tls_reload_interval: std::time::Duration::from_secs(reload),
            login_limits,
            raw_storage_endpoint: raw.raw_storage_endpoint.unwrap_or(false),
            test_clock_endpoint: raw.test_clock_endpoint.unwrap_or(false),
            unauthenticated_metrics_access: raw.unauthenticated_metrics_access.unwrap_or(false),
            agent_access_retention,
            ha,
            listener,
            max_in_flight_requests,
        })
    }
}

/// Requests in flight unless configured: 256 per CPU core.
pub fn default_max_in_flight() -> usize {
    256 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `http_read_header_timeout`, `http_read_timeout`, `http_idle_timeout`: durations from 1s to
/// 1h (Vault's defaults where unset).
fn listener_limits(raw: &RawConfig) -> Result<hush_api::server::ConnLimits, ConfigError> {
    use hush_api::server::ConnLimits;
    use std::time::Duration;
    let one = |name: &str, text: Option<&str>, default: Duration| match text {
        None => Ok(default),
        Some(text) => match hush_api::duration::parse(text) {
            Some(d) if (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) => Ok(d),
            Some(_) => err(format!("{name} must be from 1s to 1h")),
            None => err(format!(
                "invalid {name} {text:?}: use a duration such as 10s or 5m"
            )),
        },
    };
    Ok(ConnLimits {
        read_header_timeout: one(
            "http_read_header_timeout",
            raw.http_read_header_timeout.as_deref(),
            ConnLimits::DEFAULT_READ_HEADER_TIMEOUT,
        )?,
        read_timeout: one(
            "http_read_timeout",
            raw.http_read_timeout.as_deref(),
            ConnLimits::DEFAULT_READ_TIMEOUT,
        )?,
        idle_timeout: one(
            "http_idle_timeout",
            raw.http_idle_timeout.as_deref(),
            ConnLimits::DEFAULT_IDLE_TIMEOUT,
        )?,
    })
}

/// `ha`, `api_addr`, `ha_lock_ttl`: HA needs PostgreSQL and an address to be reached at.
fn ha(
    raw: &RawConfig,
    storage: &StorageConfig,
    dev: bool,
) -> Result<Option<HaConfig>, ConfigError> {
    let api_addr = raw.api_addr.as_deref().map(api_addr).transpose()?;
    if !raw.ha.unwrap_or(false) {
        if raw.ha_lock_ttl.is_some() {
            return err("ha_lock_ttl is set but HA is off: add --ha (ha = true)");
        }
        return Ok(None);
    }
    if dev {
        return err("--dev is one in-memory node: do not combine it with --ha");
    }
    if !matches!(storage, StorageConfig::Postgres(_)) {
        return err(
            "--ha needs shared storage: pass --storage postgres://USER:PASSWORD@HOST:PORT/DATABASE \
             (SQLite and inmem belong to one process)",
        );
    }
    let Some(api_addr) = api_addr else {
        return err(
            "--ha needs --api-addr URL: the address other nodes and clients reach this node at, \
             e.g. https://10.0.0.5:8200",
        );
    };
    let lock_ttl = match raw.ha_lock_ttl.as_deref() {
        None => DEFAULT_HA_LOCK_TTL,
        Some(text) => match hush_api::duration::parse(text) {
            Some(d)
                if (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(300))
                    .contains(&d) =>
            {
                d
            }
            Some(_) => return err("ha_lock_ttl must be from 1s to 5m"),
            None => {
                return err(format!(
                    "invalid ha_lock_ttl {text:?}: use a duration such as 5s or 15s"
                ))
            }
        },
    };
    Ok(Some(HaConfig { api_addr, lock_ttl }))
}

/// `api_addr`: an http(s) URL of a host and a port, nothing after them.
fn api_addr(text: &str) -> Result<String, ConfigError> {
    let bad = || {
        err(format!(
            "invalid api_addr {text:?}: use scheme://host:port, e.g. https://10.0.0.5:8200"
        ))
    };
    let Ok(url) = url::Url::parse(text) else {
        return bad();
    };
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return bad();
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// `agent_access_retention`: a duration of at least 1 s; default 720h.
fn agent_access_retention(text: Option<&str>) -> Result<std::time::Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(crate::core::state::DEFAULT_AGENT_ACCESS_RETENTION);
    };
    match hush_api::duration::parse(text) {
        None => err(format!(
            "invalid agent_access_retention {text:?}: use a duration such as 720h, 30d or 90m"
        )),
        Some(d) if d < std::time::Duration::from_secs(1) => {
            err("agent_access_retention must be at least 1s")
        }
        Some(d) => Ok(d),
    }
}

/// The failed-login limits: Vault's lockout defaults where unset; windows of at least 1 s.
fn login_limits(raw: &RawConfig) -> Result<crate::core::login::limiter::LoginLimits, ConfigError> {
    use std::time::Duration;
    let d = crate::core::login::limiter::LoginLimits::default();
    let secs = |v: Option<u64>, name: &str, default: Duration| match v {
        None => Ok(default),
        Some(0) => err(format!("{name} must be at least 1")),
        Some(n) => Ok(Duration::from_secs(n)),
    };
    Ok(crate::core::login::limiter::LoginLimits {
        lockout_threshold: raw.login_lockout_threshold.unwrap_or(d.lockout_threshold),
        lockout_duration: secs(
            raw.login_lockout_duration_secs,
            "login_lockout_duration_secs",
            d.lockout_duration,
        )?,
        lockout_counter_reset: secs(
            raw.login_lockout_counter_reset_secs,
            "login_lockout_counter_reset_secs",
            d.lockout_counter_reset,
        )?,
        address_max_failures: raw
            .login_address_max_failures
            .unwrap_or(d.address_max_failures),
        address_window: secs(
            raw.login_address_window_secs,
            "login_address_window_secs",
            d.address_window,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn fails(r: RawConfig, dev: bool) -> String {
        let dev = dev.then_some(DevConfig { root_token: None });
        Config::validate(r, dev).unwrap_err().0
    }

    #[test]
    fn good_configs() {
        let c = Config::validate(raw("storage = \"inmem\"\ninsecure_no_tls = true"), None).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.tls.is_none());
        let c =
            Config::validate(RawConfig::default(), Some(DevConfig { root_token: None })).unwrap();
        assert_eq!(c.storage, StorageConfig::Memory);
        assert_eq!(
            c.login_limits,
            crate::core::login::limiter::LoginLimits::default()
        );
        let c = Config::validate(
            raw(
                "storage = \"inmem\"\ninsecure_no_tls = true\nlogin_lockout_threshold = 0\n\
                 login_address_max_failures = 1000\nlogin_address_window_secs = 600",
            ),
            None,
        )
        .unwrap();
        assert_eq!(c.login_limits.lockout_threshold, 0);
        assert_eq!(c.login_limits.address_max_failures, 1000);
        assert_eq!(c.login_limits.address_window.as_secs(), 600);
        assert!(!c.raw_storage_endpoint);
        assert!(!c.test_clock_endpoint);
        assert!(!c.unauthenticated_metrics_access);
        let c = Config::validate(
            raw("storage = \"inmem\"\ninsecure_no_tls = true\nunauthenticated_metrics_access = true"),
            None,
        )
        .unwrap();
        assert!(c.unauthenticated_metrics_access);
    }

    #[test]
    fn listener_timeouts_and_the_in_flight_ceiling() {
        let c =
            Config::validate(RawConfig::default(), Some(DevConfig { root_token: None })).unwrap();
        assert_eq!(c.listener, hush_api::server::ConnLimits::default());
        assert_eq!(c.max_in_flight_requests, default_max_in_flight());
        let c = Config::validate(
            raw(
                "http_read_header_timeout = \"2s\"\nhttp_read_timeout = \"1m\"\n\
                 http_idle_timeout = \"1h\"\nmax_in_flight_requests = 8",
            ),
            Some(DevConfig { root_token: None }),
        )
        .unwrap();
        assert_eq!(c.listener.read_header_timeout.as_secs(), 2);
        assert_eq!(c.listener.read_timeout.as_secs(), 60);
        assert_eq!(c.listener.idle_timeout.as_secs(), 3600);
        assert_eq!(c.max_in_flight_requests, 8);
        assert_eq!(
            fails(raw("http_read_header_timeout = \"0s\""), true),
            "http_read_header_timeout must be from 1s to 1h"
        );
        assert_eq!(
            fails(raw("http_idle_timeout = \"2h\""), true),
            "http_idle_timeout must be from 1s to 1h"
        );
        assert_eq!(
            fails(raw("http_read_timeout = \"slow\""), true),
            "invalid http_read_timeout \"slow\": use a duration such as 10s or 5m"
        );
        assert_eq!(
            fails(raw("max_in_flight_requests = 0"), true),
            "max_in_flight_requests must be at least 1"
        );
    }

    #[test]
    fn each_bad_case_has_one_exact_message() {
        assert!(toml::from_str::<RawConfig>("storag = \"x\"").is_err());
        assert_eq!(
            fails(RawConfig::default(), false),
            "missing storage: pass --storage sqlite://PATH (or postgres://USER:PASSWORD@HOST:PORT/DATABASE) or set storage in the config file"
        );
        assert!(fails(
            raw("storage = \"mysql://u:pw@x/db\"\ninsecure_no_tls = true"),
            false
        )
        .starts_with("unsupported storage \"mysql://...\""));
        assert_eq!(
            fails(
                raw("storage = \"postgres://u:pw-9@x/db?sslmode=maybe\"\ninsecure_no_tls = true"),
                false
            ),
            "invalid storage: invalid sslmode \"maybe\": use disable, prefer, require, verify-ca or verify-full"
        );
        assert!(fails(
            raw("storage = \"sqlite:///nonexistent-dir/x.db\"\ninsecure_no_tls = true"),
            false
        )
        .contains("does not exist"));
        assert!(fails(raw("storage = \"inmem\""), false).starts_with("TLS is required"));
        assert!(fails(
            raw("storage = \"inmem\"\ninsecure_no_tls = true\nlisten = \"0.0.0.0:8200\""),
            false
        )
        .starts_with("refusing plain HTTP"));
        assert!(fails(
            raw("storage = \"inmem\"\ninsecure_no_tls = true\nlisten = \"nope\""),
            false
        )
        .starts_with("invalid listen address"));
        assert!(
            fails(raw("storage = \"inmem\"\ntls_cert = \"/nope\""), false)
                .contains("needs --tls-key")
        );
        assert!(fails(
            raw("storage = \"inmem\"\ntls_cert = \"/nope.pem\"\ntls_key = \"/nope.key\""),
            false
        )
        .contains("does not exist"));
        assert!(fails(
            raw("storage = \"inmem\"\ninsecure_no_tls = true\nlog_format = \"xml\""),
            false
        )
        .contains("log_format"));
        assert!(fails(raw("storage = \"inmem\""), true).contains("do not combine"));
        assert_eq!(
            fails(raw("login_lockout_duration_secs = 0"), true),
            "login_lockout_duration_secs must be at least 1"
        );
        assert_eq!(
            fails(raw("agent_access_retention = \"a month\""), true),
            "invalid agent_access_retention \"a month\": use a duration such as 720h, 30d or 90m"
        );
        assert_eq!(
            fails(raw("agent_access_retention = \"500ms\""), true),
            "agent_access_retention must be at least 1s"
        );
        let ok = Config::validate(
            raw("storage = \"inmem\"\ninsecure_no_tls = true\nlisten = \"0.0.0.0:0\"\nallow_insecure_non_loopback = true"),
            None,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn ha_needs_postgres_and_an_address() {
        let pg = "storage = \"postgres://u:pw@db:5432/hush\"\ninsecure_no_tls = true\n";
        let c = Config::validate(
            raw(&format!(
                "{pg}ha = true\napi_addr = \"https://10.0.0.5:8200/\""
            )),
            None,
        )
        .unwrap();
        assert_eq!(
            c.ha,
            Some(HaConfig {
                api_addr: "https://10.0.0.5:8200".into(),
                lock_ttl: DEFAULT_HA_LOCK_TTL
            })
        );
        let c = Config::validate(
            raw(&format!(
                "{pg}ha = true\napi_addr = \"http://h:1\"\nha_lock_ttl = \"15s\""
            )),
            None,
        )
        .unwrap();
        assert_eq!(c.ha.unwrap().lock_ttl, std::time::Duration::from_secs(15));
        // api_addr alone is allowed (and unused) without HA.
        assert!(
            Config::validate(raw(&format!("{pg}api_addr = \"http://h:1\"")), None)
                .unwrap()
                .ha
                .is_none()
        );
        assert_eq!(
            fails(raw("storage = \"inmem\"\ninsecure_no_tls = true\nha = true"), false),
            "--ha needs shared storage: pass --storage postgres://USER:PASSWORD@HOST:PORT/DATABASE \
             (SQLite and inmem belong to one process)"
        );
        assert_eq!(
            fails(raw(&format!("{pg}ha = true")), false),
            "--ha needs --api-addr URL: the address other nodes and clients reach this node at, \
             e.g. https://10.0.0.5:8200"
        );
        for bad in [
            "10.0.0.5:8200",
            "ftp://h:1",
            "http://h:1/v1",
            "http://h:1?x=1",
            "http://u:p@h:1",
        ] {
            assert_eq!(
                fails(raw(&format!("{pg}ha = true\napi_addr = \"{bad}\"")), false),
                format!(
                    "invalid api_addr {bad:?}: use scheme://host:port, e.g. https://10.0.0.5:8200"
                )
            );
        }
        let with = |ttl: &str| {
            fails(
                raw(&format!(
                    "{pg}ha = true\napi_addr = \"http://h:1\"\nha_lock_ttl = \"{ttl}\""
                )),
                false,
            )
        };
        assert_eq!(with("500ms"), "ha_lock_ttl must be from 1s to 5m");
        assert_eq!(with("1h"), "ha_lock_ttl must be from 1s to 5m");
        assert_eq!(
            with("soon"),
            "invalid ha_lock_ttl \"soon\": use a duration such as 5s or 15s"
        );
        assert_eq!(
            fails(raw(&format!("{pg}ha_lock_ttl = \"5s\"")), false),
            "ha_lock_ttl is set but HA is off: add --ha (ha = true)"
        );
        let dev = RawConfig {
            ha: Some(true),
            ..RawConfig::default()
        };
        assert_eq!(
            fails(dev, true),
            "--dev is one in-memory node: do not combine it with --ha"
        );
    }
}

//! hushd: the Hush secret store.
//!
//! hushd speaks a subset of the HashiCorp Vault HTTP API so that existing Vault clients work
//! against it unchanged.
//!
//! # Layout
//!
//! The layers follow Vault's, lowest first; a layer calls only layers below it (the `layers`
//! blocks of `docs/ARCHITECTURE.md` list them, and a test checks every `use`).
//!
//! - [`storage`]: dumb, durable key/value backends (SQLite and PostgreSQL with group commit,
//!   in-memory, a read cache).
//! - [`barrier`]: AES-256-GCM encryption of everything written to storage, with key terms,
//!   and the Shamir seal that protects the root key.
//! - [`logical`]: the request/response/error types and the [`logical::LogicalBackend`] trait
//!   every layer above the barrier shares, the stored token, field readers, Go durations, TTL
//!   rules and CIDR blocks.
//! - [`core`]: [`Core::handle`], the mount table and router, the token store, ACL policies,
//!   leases and their expiration, the audit broker, logins and the `sys/` system backend.
//! - [`auth`]: auth methods mounted under `auth/` (AppRole, Kubernetes, JWT/OIDC, AWS iam,
//!   GCP); the core mints their tokens.
//! - [`engines`]: secrets engines (KV versions 1 and 2; PostgreSQL dynamic and static
//!   credentials).
//! - [`api`]: HTTP(S) front end: Vault's wire format, body limits, path normalisation.
//! - [`config`]: the configuration file and flags.
//! - [`migrate`]: `hushd migrate`, an offline copy of every entry from one store to another.
//! - [`metrics`]: the Prometheus registry every layer updates (the lowest module: it uses
//!   none of the others), served by `sys/metrics`.
//!
//! This file wires them: [`backends`] is the registry of mountable types the core starts
//! mounts from, [`build_core`] and [`run`] start hushd.

pub mod api;
pub mod auth;
pub mod barrier;
pub mod config;
pub mod core;
pub mod engines;
pub mod logical;
pub mod metrics;
pub mod migrate;
pub mod storage;
pub mod tls;

pub use crate::core::Core;

use std::sync::Arc;

use crate::core::registry::Registry;
use crate::logical::LogicalBackend;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StorageConfig};
use crate::storage::Backend;

/// Errors that stop hushd from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] hush_api::tls::TlsError),
    #[error("cannot initialize the dev store: {0}")]
    Dev(logical::LogicalError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Credentials of a dev store, printed once at start.
pub struct DevCredentials {
    pub root_token: SecretString,
    pub unseal_key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DevCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCredentials([redacted])")
    }
}

/// A [`core::registry::Constructor`] for a backend type with `async fn new(BarrierView)`
/// (it takes no mount options).
macro_rules! start {
    ($backend:ty) => {
        |view, _options, _events, _system| {
            Box::pin(async move {
                Ok(Arc::new(<$backend>::new(view).await?) as Arc<dyn LogicalBackend>)
            })
        }
    };
}

/// The backend types hushd can mount: auth methods under `auth/`, and secrets engines.
pub fn backends() -> Registry {
    Registry::new()
        .auth("approle", start!(auth::approle::AppRoleBackend))
        .auth("aws", start!(auth::aws::AwsBackend))
        .auth("gcp", start!(auth::gcp::GcpBackend))
        .auth("jwt", start!(auth::jwt::JwtBackend))
        .auth("kubernetes", start!(auth::kubernetes::KubernetesBackend))
        .engine("kv", |view, options, events, _system| {
            Box::pin(engines::kv::open(view, options, events))
        })
        .engine("generic", |view, options, events, _system| {
            Box::pin(engines::kv::open(view, options, events))
        })
        .engine("database", |view, _options, events, system| {
            Box::pin(async move {
                let db = engines::database::DatabaseBackend::start(view, events, system).await?;
                Ok(Arc::new(db) as Arc<dyn LogicalBackend>)
            })
        })
        .engine("cubbyhole", start!(engines::cubbyhole::CubbyholeBackend))
        .engine_options(engines::normalize_kind)
}

/// Open the configured storage, with the read cache in front when enabled; SQLite and
/// PostgreSQL report their commits to `metrics`.
pub async fn open_storage(
    config: &Config,
    metrics: &metrics::Metrics,
) -> Result<Arc<dyn Backend>, StartError> {
    Ok(open_storage_ha(config, metrics).await?.0)
}

/// As [`open_storage`]; with HA configured, also this node's handle on the HA lock.
async fn open_storage_ha(
    config: &Config,
    metrics: &metrics::Metrics,
) -> Result<(Arc<dyn Backend>, Option<core::ha::HaConfig>), StartError> {
    let mut ha = None;
    let backend: Arc<dyn Backend> = match &config.storage {
        StorageConfig::Memory => Arc::new(storage::MemoryBackend::new()),
        StorageConfig::Sqlite(path) => {
            let sqlite = storage::SqliteBackend::open(path)?;
            sqlite.observe(metrics.storage());
            Arc::new(sqlite)
        }
        StorageConfig::Postgres(url) => match &config.ha {
            None => {
                let pg = storage::PostgresBackend::connect(url).await?;
                pg.observe(metrics.storage());
                Arc::new(pg)
            }
            Some(settings) => {
                let (pg, lock) = storage::PostgresBackend::connect_ha(
                    url,
                    storage::postgres::HaSettings {
                        node_id: uuid::Uuid::new_v4().to_string(),
                        api_addr: settings.api_addr.clone(),
                        // A partition must not hold a request past the lease.
                        call_timeout: settings.lock_ttl,
                    },
                )
                .await?;
                pg.observe(metrics.storage());
                ha = Some(core::ha::HaConfig {
                    lock,
                    api_addr: settings.api_addr.clone(),
                    lock_ttl: settings.lock_ttl,
                });
                Arc::new(pg)
            }
        },
    };
    if config.cache_entries == 0 {
        return Ok((backend, ha));
    }
    let cached = storage::cache::CachedBackend::new(backend, config.cache_entries);
    Ok((Arc::new(cached), ha))
}

/// Build the core for `config`; in dev mode it comes back initialised and unsealed.
pub async fn build_core(
    config: &mut Config,
) -> Result<(Arc<Core>, Option<DevCredentials>), StartError> {
    let options = core::CoreOptions {
        login_limits: config.login_limits,
        raw_storage_endpoint: config.raw_storage_endpoint,
        test_clock_endpoint: config.test_clock_endpoint,
        agent_access_retention: Some(config.agent_access_retention),
        listener: Some(core::ListenerInfo {
            addr: config.listen,
            tls: config.tls.is_some(),
        }),
    };
    let metrics = Arc::new(metrics::Metrics::new());
    let (storage, ha) = open_storage_ha(config, &metrics).await?;
    let core = Core::with_ha(storage, backends(), options, metrics, ha);
    core::failover::start(&core);
    let dev = match config.dev.take() {
        Some(dev) => {
            let (root_token, key) = core
                .init_dev(dev.root_token)
                .await
                .map_err(StartError::Dev)?;
            Some(DevCredentials {
                root_token,
                unseal_key: zeroize::Zeroizing::new(key),
            })
        }
        None => None,
    };
    Ok((core, dev))
}

/// Close every audit file so each is opened again at its next write: what `hushd` does on
/// SIGHUP, so logrotate can move a file away. A sealed store has no open audit files.
pub async fn reopen_audit_files(core: &Core) {
    if let Ok(st) = core.unsealed() {
        st.audit.reopen().await;
        tracing::info!("audit files reopened");
    }
}

/// Serve the API on `listener` until `shutdown` is cancelled, then drain and seal.
pub async fn run(
    core: Arc<Core>,
    config: &Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let tls = match &config.tls {
        Some(files) => {
            let cert = hush_api::tls::ReloadingCert::new(&files.cert, &files.key)?;
            cert.clone()
                .watch(config.tls_reload_interval, shutdown.child_token());
            Some(cert.server_config())
        }
        None => None,
    };
    let app = api::app_with(
        core.clone(),
        config.max_request_bytes,
        config.unauthenticated_metrics_access,
    )
    .merge(api::snapshot::routes(
        core.clone(),
        config.max_snapshot_bytes,
    ));
    let app = api::overload::limit_in_flight(app, config.max_in_flight_requests);
    hush_api::server::serve_with(listener, tls, app, shutdown, config.listener).await?;
    core.seal().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::json;

    use crate::logical::{Operation, Request};
    use crate::Core;

    #[tokio::test]
    async fn reopening_audit_files_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let core = Core::new(
            std::sync::Arc::new(crate::storage::MemoryBackend::new()),
            crate::backends(),
        );
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        let call = |op, path: &str, body| {
            let mut req = Request::new(op, path).with_data(body);
            req.client_token = Some(SecretString::from("root"));
            core.handle(req)
        };
        call(
            Operation::Update,
            "sys/audit/file",
            json!({"type": "file", "options": {"file_path": log}}),
        )
        .await
        .unwrap();
        call(Operation::Read, "sys/mounts", json!({}))
            .await
            .unwrap();
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        let before = std::fs::read_to_string(&rotated).unwrap();
        // Without a reopen the old file keeps growing; after it, the new one does.
        call(Operation::Read, "sys/mounts", json!({}))
            .await
            .unwrap();
        assert!(!log.exists());
        let grown = std::fs::read_to_string(&rotated).unwrap();
        assert!(grown.len() > before.len());
        super::reopen_audit_files(&core).await;
        call(Operation::Read, "sys/key-status", json!({}))
            .await
            .unwrap();
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("sys/key-status"));
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), grown);
        // Sealed: nothing to reopen, no panic.
        core.seal().await;
        super::reopen_audit_files(&core).await;
    }
}

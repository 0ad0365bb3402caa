//! The core and its lifecycle: init, unseal (which builds the subsystems that exist only
//! while unsealed: router, tokens, policies, audit, leases) and seal. Requests are handled
//! one level up ([`crate::core::Core::handle`]).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use secrecy::SecretString;

use super::agents::AgentIndex;
use super::audit::AuditBroker;
use super::events::{EventBus, EVENT_BUFFER};
use super::expiration::{ExpirationManager, LeaseBackends};
use super::ha::{Ha, HaConfig};
use super::lease::LeaseIndex;
use super::login::limiter::{LoginLimiter, LoginLimits};
use super::passwords::PasswordPolicies;
use super::policy::PolicyStore;
use super::registry::Registry;
use super::rotation::{Rotations, TestClock};
use super::router::Router;
use super::token::TokenStore;
use super::webhooks::Webhooks;
use crate::barrier::seal::{Seal, SealError, UnsealProgress};
use crate::barrier::{Barrier, BarrierView};
use crate::logical::LogicalError;
use crate::metrics::{Metrics, COUNT_EVERY};
use crate::storage::Backend;

/// Subsystems that exist only while unsealed.
pub struct Unsealed {
    pub router: Arc<Router>,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub audit: AuditBroker,
    pub expiration: Arc<ExpirationManager>,
    /// Failed logins per claimed identity, and a ceiling per source address.
    pub logins: LoginLimiter,
    /// What agents reported (`sys/agents`).
    pub agents: Arc<AgentIndex>,
    /// Scheduled rotations of KV secrets (`sys/rotation`).
    pub rotations: Arc<Rotations>,
    /// `sys/webhooks`: the webhooks and their durable delivery queue.
    pub webhooks: Arc<Webhooks>,
    /// Named password policies (`sys/policies/password`).
    pub passwords: Arc<PasswordPolicies>,
    /// Stops background tasks (lease expiry) when sealing.
    pub background: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed").finish_non_exhaustive()
    }
}

/// The store's core.
pub struct Core {
    barrier: Arc<Barrier>,
    seal: Seal,
    state: ArcSwapOption<Unsealed>,
    /// Serialises init, unseal, seal, HA transitions and mount-table changes.
    pub(super) lifecycle: tokio::sync::Mutex<()>,
    /// The backend types mounts are started from.
    backends: Arc<Registry>,
    options: CoreOptions,
    /// Sealed (true) or not, for whoever reports it (hushd's `STATUS=` to systemd).
    sealed: tokio::sync::watch::Sender<bool>,
    /// What `sys/metrics` serves; every layer updates it.
    metrics: Arc<Metrics>,
    /// Committed changes, for `sys/events/subscribe` (kept across seal and unseal).
    events: Arc<EventBus>,
    /// One of several HA nodes; `None`: the only node.
    ha: Option<Arc<Ha>>,
    /// The rotation scheduler's clock (a test moves it: `sys/internal/test/clock`).
    test_clock: Arc<TestClock>,
}

/// Settings of the core that come from hushd's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreOptions {
    /// The failed-login limits each unseal starts its limiter with.
    pub login_limits: LoginLimits,
    /// Serve `sys/raw` (Vault's `raw_storage_endpoint`); off: 404.
    pub raw_storage_endpoint: bool,
    /// How long agents' access events (and their batch ids) are kept; `None`: the default,
    /// [`DEFAULT_AGENT_ACCESS_RETENTION`].
    pub agent_access_retention: Option<std::time::Duration>,
    /// Serve `sys/internal/test/clock`, which moves the rotation clock forward (tests only).
    pub test_clock_endpoint: bool,
    /// How hushd serves its API (the compliance report's transport check); `None`: an
    /// embedded core, not started by hushd's listener.
    pub listener: Option<ListenerInfo>,
}

/// How hushd serves its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerInfo {
    pub addr: std::net::SocketAddr,
    /// TLS (else plain HTTP, `--insecure-no-tls`).
    pub tls: bool,
}

/// Agents' access events are kept 30 days unless configured otherwise.
pub const DEFAULT_AGENT_ACCESS_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(720 * 3600);

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("barrier", &self.barrier)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A sealed core over `backend`, mounting the backend types of `backends`.
    pub fn new(backend: Arc<dyn Backend>, backends: Registry) -> Arc<Self> {
        Self::with_options(backend, backends, CoreOptions::default())
    }

    /// As [`Core::new`], with settings other than the defaults.
    pub fn with_options(
        backend: Arc<dyn Backend>,
        backends: Registry,
        options: CoreOptions,
    ) -> Arc<Self> {
        Self::with_metrics(backend, backends, options, Arc::new(Metrics::new()))
    }

    /// As [`Core::with_options`], updating `metrics` (which storage may share).
    pub fn with_metrics(
        backend: Arc<dyn Backend>,
        backends: Registry,
        options: CoreOptions,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_ha(backend, backends, options, metrics, None)
    }

    /// As [`Core::with_metrics`]; with `ha`, one of several nodes on shared storage, which
    /// stays a standby until its HA loop runs: start it with [`super::failover::start`].
    pub fn with_ha(
        backend: Arc<dyn Backend>,
        backends: Registry,
        options: CoreOptions,
        metrics: Arc<Metrics>,
        ha: Option<HaConfig>,
    ) -> Arc<Self> {
        let core = Arc::new(Core {
            barrier: Arc::new(Barrier::new(backend.clone())),
            seal: Seal::new(backend),
            state: ArcSwapOption::empty(),
            lifecycle: tokio::sync::Mutex::new(()),
            backends: Arc::new(backends),
            options,
            sealed: tokio::sync::watch::Sender::new(true),
            metrics,
            events: EventBus::new(EVENT_BUFFER),
            ha: ha.map(|c| Arc::new(Ha::new(c))),
            test_clock: Arc::default(),
        });
        if core.ha.is_some() {
            // Other nodes write while this one is not active.
            core.barrier.backend().set_cache(false);
        }
        core
    }

    /// The HA state, when this is one of several nodes.
    pub fn ha(&self) -> Option<&Arc<Ha>> {
        self.ha.as_ref()
    }

    /// HA: this node is the active node and serves (it holds the lock and has loaded what an
    /// unseal loads; between the two it is neither: a brief 503).
    pub fn is_ha_active(&self) -> bool {
        self.ha.as_ref().is_some_and(|ha| ha.is_active()) && self.state.load().is_some()
    }

    /// An HA standby (unsealed, not active): where to send a request for `path`, `None` when
    /// this node answers it (it is active, sealed or alone, or the path is one a standby
    /// serves itself).
    pub fn standby_for(&self, path: &str) -> Option<LogicalError> {
        let ha = self.ha.as_ref()?;
        if self.barrier.is_sealed() || self.state.load().is_some() {
            return None;
        }
        let local = matches!(
            path,
            "sys/health" | "sys/leader" | "sys/seal-status" | "sys/unseal" | "sys/init"
        );
        (!local).then(|| LogicalError::Standby {
            leader: ha.leader_addr(),
        })
    }

    pub fn options(&self) -> &CoreOptions {
        &self.options
    }

    /// The rotation scheduler's clock.
    pub fn test_clock(&self) -> &Arc<TestClock> {
        &self.test_clock
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The event bus backends publish committed changes to.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Sealed: no keys in memory. An HA standby is unsealed (it holds the keys) though it
    /// serves nothing but its status.
    pub fn is_sealed(&self) -> bool {
        match &self.ha {
            Some(_) => self.barrier.is_sealed(),
            None => self.state.load().is_none(),
        }
    }

    /// Follows sealing and unsealing (`true`: sealed); `sys/init`'s brief unseal is not seen.
    pub fn sealed_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.sealed.subscribe()
    }

    /// The unsealed subsystems; on an HA node only while it is active and within its lease.
    pub fn unsealed(&self) -> Result<Arc<Unsealed>, LogicalError> {
        let st = self.state.load_full();
        match &self.ha {
            None => st.ok_or(LogicalError::Sealed),
            Some(_) if self.barrier.is_sealed() => Err(LogicalError::Sealed),
            Some(ha) => match st {
                Some(st) if ha.within_lease() => Ok(st),
                _ => Err(LogicalError::Standby {
                    leader: ha.leader_addr(),
                }),
            },
        }
    }

    /// Stop the unsealed subsystems (seal, HA step-down).
    pub(super) async fn drop_unsealed(&self) {
        if let Some(st) = self.state.swap(None) {
            st.background.cancel();
            st.router.cleanup().await;
        }
    }

    fn view(&self, prefix: &str) -> BarrierView {
        BarrierView::new(self.barrier.clone(), prefix)
    }

    /// Build the unsealed subsystems once the barrier is open.
    pub(super) async fn post_unseal(&self) -> Result<(), LogicalError> {
        let policies = Arc::new(PolicyStore::open(self.view("sys/policy/")).await?);
        // Before the subsystems that emit webhook events (audit, expiration, logins).
        let webhooks = Webhooks::open(
            self.barrier.clone(),
            self.view("sys/webhooks/"),
            self.metrics.webhooks(),
        )
        .await?;
        let leases = Arc::new(LeaseIndex::new(self.view("sys/expire/")));
        let tokens = Arc::new(
            TokenStore::open(self.view("sys/token/"))
                .await?
                .with_policy_store(policies.clone())
                .with_lease_index(leases.clone()),
        );
        let audit = AuditBroker::open(self.view("core/audit/"))
            .await?
            .with_metrics(self.metrics.clone())
            .with_webhooks(webhooks.clone());
        let passwords = Arc::new(PasswordPolicies::new(self.view("sys/password-policy/")));
        let router = Arc::new(
            Router::load(
                self.barrier.clone(),
                tokens.clone(),
                self.backends.clone(),
                self.events.clone(),
                passwords.clone(),
            )
            .await?,
        );
        let backends: Arc<dyn LeaseBackends> = router.clone();
        let expiration = ExpirationManager::new(leases, tokens.clone(), Arc::downgrade(&backends));
        expiration.set_webhooks(webhooks.clone());
        let background = tokio_util::sync::CancellationToken::new();
        webhooks.spawn(self.events.subscribe(), background.clone());
        // Nothing is loaded: the task reads the head of the stored expiry index.
        drop(expiration.spawn_expiry(background.clone()));
        drop(tokio::spawn(count_leases_and_tokens(
            self.barrier.backend().clone(),
            self.metrics.clone(),
            background.clone(),
        )));
        drop(super::rewrap::spawn(
            self.barrier.clone(),
            self.seal.root_key(),
            background.clone(),
        ));
        let agents = Arc::new(AgentIndex::new(self.view("sys/agents/")));
        let retention = self
            .options
            .agent_access_retention
            .unwrap_or(DEFAULT_AGENT_ACCESS_RETENTION);
        drop(tokio::spawn(super::agents::prune_task(
            agents.clone(),
            retention,
            super::agents::prune_interval(retention),
            background.clone(),
        )));
        let rotations =
            Arc::new(Rotations::open(self.view("sys/rotation/"), self.test_clock.clone()).await?);
        drop(super::rotation::spawn(
            super::rotation::Env {
                rotations: rotations.clone(),
                router: router.clone(),
                webhooks: webhooks.clone(),
                passwords: passwords.clone(),
            },
            background.clone(),
        ));
        let st = Arc::new(Unsealed {
            router,
            tokens,
            policies,
            audit,
            expiration,
            logins: LoginLimiter::new(self.options.login_limits),
            agents,
            rotations,
            webhooks: webhooks.clone(),
            passwords,
            background,
        });
        self.state.store(Some(st));
        let mut data = serde_json::Map::new();
        data.insert("ha".into(), self.ha.is_some().into());
        if let Err(e) = webhooks.emit("unseal", "sys/unseal", data).await {
            tracing::warn!(error = %e, "webhook: cannot queue the unseal event");
        }
        Ok(())
    }

    /// Initialise a dev store: one unseal key, unsealed, kv v2 at `secret/`. Returns the root
    /// token and the unseal key.
    pub async fn init_dev(
        &self,
        root_token: Option<SecretString>,
    ) -> Result<(SecretString, Vec<u8>), LogicalError> {
        let (keys, generated) = self.initialize(1, 1).await?;
        let key = keys.into_iter().next().expect("one key");
        self.unseal_with(&key).await?;
        let st = self.unsealed()?;
        st.router
            .mount(
                "secret/",
                "kv",
                "key/value secret storage",
                serde_json::json!({"version": "2"}),
            )
            .await?;
        let token = match root_token {
            Some(t) => {
                st.tokens.create_root_token_with_id(&t).await?;
                t
            }
            None => generated,
        };
        Ok((token, key.to_vec()))
    }

    /// `sys/init`: make the keys and the root token; the store is left sealed, as in Vault.
    pub async fn initialize(
        &self,
        shares: u8,
        threshold: u8,
    ) -> Result<(Vec<zeroize::Zeroizing<Vec<u8>>>, SecretString), LogicalError> {
        let _guard = self.lifecycle.lock().await;
        // Refused before anything changes: the end of this function seals, and a second
        // `sys/init` (unauthenticated) must not seal a running store.
        if self.seal.is_initialized().await.map_err(seal_err)? {
            return Err(seal_err(SealError::AlreadyInitialized));
        }
        // HA: init writes before anyone is active, so it takes the lock for its writes.
        let init_lock = match &self.ha {
            Some(ha) => Some((ha, ha.lock_for_init().await?)),
            None => None,
        };
        let result = async {
            let out = self
                .seal
                .initialize(&self.barrier, shares, threshold)
                .await
                .map_err(seal_err)?;
            self.post_unseal().await?;
            let st = self.state.load_full().ok_or(LogicalError::Sealed)?;
            Ok((out.keys, st.tokens.create_root_token().await?))
        }
        .await;
        if let Some(st) = self.state.swap(None) {
            st.background.cancel();
        }
        self.seal.seal(&self.barrier);
        if let Some((ha, generation)) = init_lock {
            ha.release(generation).await;
        }
        result
    }

    /// `sys/unseal` with one key share.
    pub async fn unseal_with(&self, key: &[u8]) -> Result<UnsealProgress, LogicalError> {
        let _guard = self.lifecycle.lock().await;
        if !self.is_sealed() {
            let (progress, nonce) = self.seal.progress();
            let cfg = self.seal.config().await.map_err(seal_err)?;
            return Ok(UnsealProgress {
                sealed: false,
                progress,
                threshold: cfg.as_ref().map_or(0, |c| c.secret_threshold),
                shares: cfg.as_ref().map_or(0, |c| c.secret_shares),
                nonce,
            });
        }
        let progress = self
            .seal
            .submit(&self.barrier, key)
            .await
            .map_err(seal_err)?;
        if !progress.sealed {
            if let Some(ha) = &self.ha {
                // Active only once it holds the lock: the HA loop takes it from here.
                tracing::info!("hushd unsealed: a standby until it holds the HA lock");
                ha.wake();
            } else {
                if let Err(e) = self.post_unseal().await {
                    self.seal.seal(&self.barrier);
                    return Err(e);
                }
                tracing::info!("hushd unsealed");
            }
            self.sealed.send_replace(false);
        }
        Ok(progress)
    }

    /// `sys/seal`.
    pub async fn seal(&self) {
        let _guard = self.lifecycle.lock().await;
        if let Some(st) = self.state.load_full() {
            // Queued while the barrier is open, and tried once at once: this node stops
            // delivering now; the stored copy goes after the next unseal (same id).
            let mut data = serde_json::Map::new();
            data.insert("ha".into(), self.ha.is_some().into());
            if let Err(e) = st
                .webhooks
                .emit_and_send_now("seal", "sys/seal", data)
                .await
            {
                tracing::warn!(error = %e, "webhook: cannot queue the seal event");
            }
        }
        let held = self.ha.as_ref().and_then(|ha| ha.set_standby_for_seal());
        self.drop_unsealed().await;
        self.seal.seal(&self.barrier);
        if let (Some(ha), Some(generation)) = (&self.ha, held) {
            self.barrier.backend().set_cache(false);
            // Let a standby take over now rather than when the lock expires.
            ha.release(generation).await;
        }
        tracing::info!("hushd sealed");
        self.sealed.send_replace(true);
    }

    /// A snapshot restore: seal, then replace every storage entry by `entries`, all or
    /// nothing. The store stays sealed and unseals with the keys of the entries written.
    /// HA: the active node keeps (and renews) the lock while storage is replaced, so the
    /// replace is fenced by its generation (PostgreSQL checks it before the commit); then it
    /// gives the lock up as a seal does.
    pub async fn seal_and_replace(
        &self,
        entries: crate::storage::ImportStream,
    ) -> Result<u64, LogicalError> {
        let _guard = self.lifecycle.lock().await;
        self.drop_unsealed().await;
        self.seal.seal(&self.barrier);
        self.sealed.send_replace(true);
        tracing::info!("hushd sealed for a snapshot restore");
        let result = self.barrier.replace_all(entries).await;
        let held = self.ha.as_ref().and_then(|ha| ha.set_standby_for_seal());
        if let (Some(ha), Some(generation)) = (&self.ha, held) {
            self.barrier.backend().set_cache(false);
            ha.release(generation).await;
        }
        Ok(result?)
    }

    pub fn seal_handle(&self) -> &Seal {
        &self.seal
    }

    /// Forget the keys, with the lifecycle lock held (an HA node whose keys no longer open the
    /// stored keyring).
    pub(super) fn seal_keys_locked(&self) {
        self.seal.seal(&self.barrier);
        self.sealed.send_replace(true);
    }
}

/// A seal error as the API answers it.
pub(crate) fn seal_err(e: SealError) -> LogicalError {
    match e {
        SealError::AlreadyInitialized => LogicalError::invalid("hushd is already initialized"),
        SealError::NotInitialized => LogicalError::NotInitialized,
        SealError::InvalidParameters(m) | SealError::InvalidKey(m) => {
            LogicalError::InvalidRequest(m)
        }
        e @ (SealError::WrongNonce | SealError::NoRekey | SealError::NoRekeyVerification) => {
            LogicalError::invalid(e.to_string())
        }
        SealError::Barrier(b) => LogicalError::Barrier(b),
        SealError::Storage(s) => LogicalError::Storage(s),
    }
}

/// Keep the lease and token gauges current: every [`COUNT_EVERY`] while unsealed, count the
/// keys of the lease expiry index (active leases), of the irrevocable index and of the token
/// store. Each count is an index count in storage (SQLite: `COUNT(*)` over a key range of its
/// primary-key b-tree; no value is read or decrypted); a scrape only reads the gauges, so its
/// cost does not grow with the number of leases or tokens.
async fn count_leases_and_tokens(
    storage: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) {
    use super::lease::index::{BY_EXPIRY, IRREVOCABLE};
    let prefix = |sub: &str| format!("sys/expire/{sub}");
    loop {
        let counts = async {
            Ok::<_, crate::storage::StorageError>((
                storage.count_prefix(&prefix(BY_EXPIRY)).await?,
                storage.count_prefix(&prefix(IRREVOCABLE)).await?,
                storage.count_prefix("sys/token/id/").await?,
            ))
        }
        .await;
        match counts {
            Ok((active, irrevocable, tokens)) => metrics.set_counts(active, irrevocable, tokens),
            Err(e) => tracing::warn!(error = %e, "cannot count leases and tokens for the metrics"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(COUNT_EVERY) => {}
        }
    }
}

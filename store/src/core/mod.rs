//! The core: everything between the barrier and HTTP.
//!
//! - [`router`]: the mount table and longest-prefix routing to engines.
//! - [`token`]: the token store (`auth/token/`) and token authentication.
//! - [`policy`]: ACL policies and their evaluation.
//! - [`audit`]: the audit broker (hash-chained, HMAC'd file devices).
//! - [`expiration`]: leases of dynamic secrets and tokens, and the one expiry task.
//! - [`sys`]: the `sys/` system backend (init, seal, mounts, policies, audit, keys).
//!
//! [`Core::handle`] is the one entry point: it authenticates the token, turns a write into a
//! create when the target does not exist, checks the ACL, audits, and dispatches.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use secrecy::SecretString;
use tracing::debug;

use crate::barrier::seal::Seal;
use crate::barrier::{Barrier, BarrierView};
use crate::logical::{path_matches_any, LogicalError, Operation, Request, Response};
use crate::storage::Backend;

pub mod audit;
pub mod expiration;
mod login;
pub mod policy;
pub mod router;
pub mod sys;
pub mod token;

use audit::AuditBroker;
use expiration::{ExpirationManager, LeaseIndex};
use policy::PolicyStore;
use router::Router;
use token::TokenStore;

/// Subsystems that exist only while unsealed.
pub struct Unsealed {
    pub router: Arc<Router>,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub audit: AuditBroker,
    pub expiration: Arc<ExpirationManager>,
    /// Failed logins per source address.
    pub logins: crate::auth::limiter::LoginLimiter,
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
    /// Serialises init, unseal, seal and mount-table changes.
    lifecycle: tokio::sync::Mutex<()>,
    options: CoreOptions,
}

/// Settings of the core that come from hushd's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreOptions {
    /// The failed-login limits each unseal starts its limiter with.
    pub login_limits: crate::auth::limiter::LoginLimits,
    /// Serve `sys/raw` (Vault's `raw_storage_endpoint`); off: 404.
    pub raw_storage_endpoint: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("barrier", &self.barrier)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Self> {
        Self::with_options(backend, CoreOptions::default())
    }

    /// As [`Core::new`], with settings other than the defaults.
    pub fn with_options(backend: Arc<dyn Backend>, options: CoreOptions) -> Arc<Self> {
        Arc::new(Core {
            barrier: Arc::new(Barrier::new(backend.clone())),
            seal: Seal::new(backend),
            state: ArcSwapOption::empty(),
            lifecycle: tokio::sync::Mutex::new(()),
            options,
        })
    }

    pub fn options(&self) -> &CoreOptions {
        &self.options
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    pub fn is_sealed(&self) -> bool {
        self.state.load().is_none()
    }

    pub fn unsealed(&self) -> Result<Arc<Unsealed>, LogicalError> {
        self.state.load_full().ok_or(LogicalError::Sealed)
    }

    fn view(&self, prefix: &str) -> BarrierView {
        BarrierView::new(self.barrier.clone(), prefix)
    }

    /// Build the unsealed subsystems once the barrier is open.
    async fn post_unseal(&self) -> Result<(), LogicalError> {
        let policies = Arc::new(PolicyStore::open(self.view("sys/policy/")).await?);
        let leases = Arc::new(LeaseIndex::new(self.view("sys/expire/")));
        let tokens = Arc::new(
            TokenStore::open(self.view("sys/token/"))
                .await?
                .with_policy_store(policies.clone())
                .with_lease_index(leases.clone()),
        );
        let audit = AuditBroker::open(self.view("core/audit/")).await?;
        let router = Arc::new(Router::load(self.barrier.clone(), tokens.clone()).await?);
        let backends: Arc<dyn expiration::LeaseBackends> = router.clone();
        let expiration = ExpirationManager::new(leases, tokens.clone(), Arc::downgrade(&backends));
        let background = tokio_util::sync::CancellationToken::new();
        // Nothing is loaded: the task reads the head of the stored expiry index.
        drop(expiration.spawn_expiry(background.clone()));
        self.state.store(Some(Arc::new(Unsealed {
            router,
            tokens,
            policies,
            audit,
            expiration,
            logins: crate::auth::limiter::LoginLimiter::new(self.options.login_limits),
            background,
        })));
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
        let out = self
            .seal
            .initialize(&self.barrier, shares, threshold)
            .await
            .map_err(seal_err)?;
        let result = async {
            self.post_unseal().await?;
            self.unsealed()?.tokens.create_root_token().await
        }
        .await;
        if let Some(st) = self.state.swap(None) {
            st.background.cancel();
        }
        self.seal.seal(&self.barrier);
        let root = result?;
        Ok((out.keys, root))
    }

    /// `sys/unseal` with one key share.
    pub async fn unseal_with(
        &self,
        key: &[u8],
    ) -> Result<crate::barrier::seal::UnsealProgress, LogicalError> {
        let _guard = self.lifecycle.lock().await;
        if !self.is_sealed() {
            let (progress, nonce) = self.seal.progress();
            let cfg = self.seal.config().await.map_err(seal_err)?;
            return Ok(crate::barrier::seal::UnsealProgress {
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
            if let Err(e) = self.post_unseal().await {
                self.seal.seal(&self.barrier);
                return Err(e);
            }
            tracing::info!("hushd unsealed");
        }
        Ok(progress)
    }

    /// `sys/seal`.
    pub async fn seal(&self) {
        let _guard = self.lifecycle.lock().await;
        if let Some(st) = self.state.swap(None) {
            st.background.cancel();
            st.router.cleanup().await;
        }
        self.seal.seal(&self.barrier);
        tracing::info!("hushd sealed");
    }

    pub fn seal_handle(&self) -> &Seal {
        &self.seal
    }

    /// Handle one API request end to end.
    pub async fn handle(&self, mut req: Request) -> Result<Response, LogicalError> {
        if let Some(resp) = sys::handle_unauthenticated(self, &req).await {
            return resp;
        }
        let st = self.unsealed()?;
        let target = match st.router.route(&req.path) {
            Ok(target) => target,
            Err(err) => return Err(refuse_unrouted(&st, &req, err).await),
        };
        req.mount_point = target.mount_point().to_string();
        req.mount_type = target.mount_type().to_string();
        let rel = req.rel_path().to_string();

        let unauthenticated = path_matches_any(&rel, target.unauthenticated_paths());
        if unauthenticated && req.path.starts_with("auth/") {
            return login::handle(self, &st, &target, req).await;
        }
        if !unauthenticated {
            if let Err(err) = authorize(&st, &target, &rel, &mut req).await {
                debug!(path = %req.path, op = req.operation.as_str(), error = %err, "request refused");
                // Refused requests are audited too: failed attempts matter most.
                st.audit.log_request(&req).await?;
                st.audit.log_response(&req, Err(&err)).await?;
                return Err(err);
            }
        }

        st.audit.log_request(&req).await?;
        let mut resp = target.handle(self, &st, &req).await;
        if let (Ok(r), router::Target::Mount(mount, _)) = (&mut resp, &target) {
            if let Err(e) = register_lease(&st, &req, mount, r).await {
                resp = Err(e);
            }
        }
        st.audit.log_response(&req, resp.as_ref()).await?;
        resp
    }
}

/// A dynamic secret in `resp`: register its lease and tell the client (before it is audited).
async fn register_lease(
    st: &Unsealed,
    req: &Request,
    mount: &router::MountEntry,
    resp: &mut Response,
) -> Result<(), LogicalError> {
    let Some(secret) = resp.secret.take() else {
        return Ok(());
    };
    resp.lease = Some(st.expiration.register(req, mount, &secret).await?);
    Ok(())
}

/// Check the token, turn a write to something absent into a create, and check the ACL.
async fn authorize(
    st: &Unsealed,
    target: &router::Target,
    rel: &str,
    req: &mut Request,
) -> Result<(), LogicalError> {
    let token = req
        .client_token
        .as_ref()
        .ok_or(LogicalError::PermissionDenied)?;
    let entry = st.tokens.authenticate(token).await?;
    check_bound_cidrs(&entry, req)?;
    req.token_entry = Some(entry.clone());
    if req.operation == Operation::Update && target.exists(req).await? == Some(false) {
        req.operation = Operation::Create;
    }
    let acl = st.policies.acl(&entry.policies).await?;
    let sudo = path_matches_any(rel, target.root_paths());
    if acl.allows(&req.path, req.operation, sudo) || target.is_always_allowed(rel, req.operation) {
        Ok(())
    } else {
        Err(LogicalError::PermissionDenied)
    }
}

/// A token bound to CIDR blocks (`token_bound_cidrs` of the role it logged in with) is refused
/// from any other address, as in Vault.
fn check_bound_cidrs(entry: &token::TokenEntry, req: &Request) -> Result<(), LogicalError> {
    if crate::auth::cidr::allowed(&entry.bound_cidrs, req.remote_addr) {
        Ok(())
    } else {
        Err(LogicalError::PermissionDenied)
    }
}

/// A path under no mount: as in Vault, the token and the ACL are checked before the route, so
/// a caller without permission learns nothing about which mounts exist (403, not 404).
async fn refuse_unrouted(st: &Unsealed, req: &Request, not_found: LogicalError) -> LogicalError {
    let Some(token) = req.client_token.as_ref() else {
        return LogicalError::PermissionDenied;
    };
    let entry = match st.tokens.authenticate(token).await {
        Ok(entry) => entry,
        Err(err) => return err,
    };
    if let Err(err) = check_bound_cidrs(&entry, req) {
        return err;
    }
    match st.policies.acl(&entry.policies).await {
        Ok(acl) if acl.allows(&req.path, req.operation, false) => not_found,
        Ok(_) => LogicalError::PermissionDenied,
        Err(err) => err,
    }
}

pub(crate) fn seal_err(e: crate::barrier::seal::SealError) -> LogicalError {
    use crate::barrier::seal::SealError;
    match e {
        SealError::AlreadyInitialized => LogicalError::invalid("hushd is already initialized"),
        SealError::NotInitialized => LogicalError::NotInitialized,
        SealError::InvalidParameters(m) | SealError::InvalidKey(m) => {
            LogicalError::InvalidRequest(m)
        }
        SealError::Barrier(b) => LogicalError::Barrier(b),
        SealError::Storage(s) => LogicalError::Storage(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn an_unmounted_path_is_403_until_the_token_may_know_it_is_404() {
        let core = Core::new(Arc::new(crate::storage::MemoryBackend::new()));
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        let call = |token: Option<&str>, path: &str| {
            let mut req = Request::new(Operation::Read, path);
            req.client_token = token.map(SecretString::from);
            core.handle(req)
        };
        let status =
            |r: Result<Response, LogicalError>| r.map(|_| 200).unwrap_or_else(|e| e.status());
        assert_eq!(status(call(None, "nomount/x").await), 403);
        assert_eq!(
            status(call(Some("hvs.forged0000000000000000"), "nomount/x").await),
            403
        );
        assert_eq!(status(call(Some("root"), "nomount/x").await), 404);
        // A token whose policies do not cover the path cannot tell a mount from no mount.
        let mut create = Request::new(Operation::Update, "auth/token/create")
            .with_data(serde_json::json!({"policies": ["default"]}));
        create.client_token = Some(SecretString::from("root"));
        let resp = core.handle(create).await.unwrap();
        let narrow = resp.auth.unwrap().client_token.expose_secret().to_string();
        assert_eq!(status(call(Some(&narrow), "nomount/x").await), 403);
        assert_eq!(status(call(Some(&narrow), "secret/data/x").await), 403);
    }

    #[tokio::test]
    async fn a_leased_answer_gets_its_lease_before_it_is_audited() {
        let core = Core::new(Arc::new(crate::storage::MemoryBackend::new()));
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        let st = core.unsealed().unwrap();
        let mut mount = st.router.get("secret/").unwrap();
        mount.config.max_lease_ttl = 90;
        let req = Request::new(Operation::Read, "secret/creds/ro");
        let secret = crate::logical::SecretLease {
            ttl: 600,
            renewable: true,
            ..Default::default()
        };
        let mut resp = Response::leased(serde_json::json!({"username": "u"}), secret);
        register_lease(&st, &req, &mount, &mut resp).await.unwrap();
        assert!(resp.secret.is_none());
        let lease = resp.lease.unwrap();
        assert!(lease.lease_id.starts_with("secret/creds/ro/"));
        assert_eq!(
            (lease.lease_duration, lease.renewable),
            (90, true),
            "mount max applies"
        );
        assert!(st.expiration.lookup(&lease.lease_id).await.is_ok());
        // An answer without a secret gets no lease.
        let mut plain = Response::data(serde_json::json!({"a": 1}));
        register_lease(&st, &req, &mount, &mut plain).await.unwrap();
        assert!(plain.lease.is_none());
    }
}

//! The core: everything between the barrier and the auth methods and engines.
//!
//! # Layout
//!
//! Lowest first; each module uses only those above it in this list:
//!
//! - [`mount`]: a mount as stored in the mount table (path, type, TTL tuning);
//! - [`passwords`]: named password policies behind the barrier (`sys/policies/password`);
//! - [`registry`]: the backend types that can be mounted (type name -> constructor), filled
//!   in by the crate root;
//! - [`rewrap`]: the background move of every entry to the newest key term after a rotation;
//! - [`webhooks`]: webhooks: signed POSTs of events from a durable queue (`sys/webhooks`);
//! - [`policy`]: ACL policies and their evaluation;
//! - [`audit`]: the audit broker (hash-chained, HMAC'd file devices);
//! - [`events`]: the event bus (committed changes, a bounded buffer per subscriber);
//! - [`lease`]: leases as stored and their index;
//! - [`agents`]: the fleet index (agent reports, accesses by path and time, retention);
//! - [`token`]: the token store (`auth/token/`) and token authentication;
//! - [`expiration`]: renewal and revocation of leases, and the one expiry task;
//! - [`ha`]: one node's HA state (active or standby, its lease on the lock);
//! - [`router`]: the mount table and longest-prefix routing to backends;
//! - [`login`]: logins to auth methods (token minting, the failed-login limiter);
//! - [`state`]: the [`Core`] and its lifecycle (init, unseal, seal) and the [`Unsealed`]
//!   subsystems;
//! - [`snapshot`]: snapshots of the whole store: save, verify, restore (`sys/storage/snapshot`);
//! - [`subscribe`]: who receives which event (`sys/events/subscribe`), checked per event;
//! - [`failover`]: the HA loop: take, renew and give up the lock, become active, step down;
//! - [`wrapping`]: response wrapping (`X-Vault-Wrap-TTL`, `sys/wrapping/*`);
//! - [`compliance`]: compliance reports (`sys/reports/compliance`): the evidence gathered
//!   once, each control of a standard judged on it;
//! - [`password_policy`]: the generator hushd calls: a named policy or Vault's default;
//! - [`sys`]: the `sys/` system backend (init, seal, mounts, policies, audit, keys, leases);
//! - this file: [`Core::handle`], the one entry point: it authenticates the token, turns a
//!   write into a create when the target does not exist, checks the ACL, audits, and
//!   dispatches to `sys/` or the routed mount.

use std::sync::Arc;

use tracing::debug;

use crate::logical::{
    path_matches_any, LogicalBackend, LogicalError, Operation, Request, Response,
};

pub mod agents;
pub mod audit;
pub mod compliance;
pub mod events;
pub mod expiration;
pub mod failover;
pub mod ha;
pub mod lease;
pub mod login;
pub mod mount;
pub mod password_policy;
pub mod passwords;
pub mod policy;
pub mod registry;
pub mod rewrap;
pub mod rotation;
pub mod router;
pub mod snapshot;
pub mod state;
pub mod subscribe;
pub mod sys;
pub mod token;
pub mod webhooks;
pub mod wrapping;

pub use mount::MountEntry;
pub use registry::Registry;
pub use state::{Core, CoreOptions, ListenerInfo, Unsealed};

/// Where a request goes.
pub enum Target {
    /// The built-in `sys/` backend.
    Sys,
    /// A mounted backend.
    Mount(Arc<MountEntry>, Arc<dyn LogicalBackend>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.mount_point())
    }
}

impl Target {
    /// Where `path` goes: `sys/`, or the mount the router finds.
    pub fn of(router: &router::Router, path: &str) -> Result<Target, LogicalError> {
        if path == "sys" || path.starts_with("sys/") {
            return Ok(Target::Sys);
        }
        let (entry, backend) = router.route(path)?;
        Ok(Target::Mount(entry, backend))
    }

    pub fn mount_point(&self) -> &str {
        match self {
            Target::Sys => "sys/",
            Target::Mount(e, _) => &e.path,
        }
    }

    pub fn mount_type(&self) -> &str {
        match self {
            Target::Sys => "system",
            Target::Mount(e, _) => &e.kind,
        }
    }

    pub fn unauthenticated_paths(&self) -> &'static [&'static str] {
        match self {
            Target::Sys => sys::UNAUTHENTICATED_PATHS,
            Target::Mount(_, b) => b.unauthenticated_paths(),
        }
    }

    pub fn root_paths(&self) -> &'static [&'static str] {
        match self {
            Target::Sys => sys::ROOT_PATHS,
            Target::Mount(_, b) => b.root_paths(),
        }
    }

    /// Paths any valid token may use regardless of policy.
    pub fn is_always_allowed(&self, rel: &str, _op: Operation) -> bool {
        match self {
            Target::Sys => crate::logical::path_matches_any(rel, sys::ANY_TOKEN_PATHS),
            Target::Mount(..) => false,
        }
    }

    pub async fn exists(&self, req: &Request) -> Result<Option<bool>, LogicalError> {
        match self {
            Target::Sys => Ok(None),
            Target::Mount(_, b) => b.exists(req).await,
        }
    }

    pub async fn handle(
        &self,
        core: &Core,
        st: &Unsealed,
        req: &Request,
    ) -> Result<Response, LogicalError> {
        // The route table decides what exists (404) and what it takes (405) before a
        // handler runs; the OpenAPI document is made from the same tables.
        match self {
            Target::Sys => {
                let rel = req.path.strip_prefix("sys/").unwrap_or("");
                crate::logical::check_route(sys::PATHS, rel, req.operation)?;
                sys::handle(core, st, req).await
            }
            Target::Mount(_, b) => {
                let table = b.paths();
                if !table.is_empty() {
                    crate::logical::check_route(table, req.rel_path(), req.operation)?;
                }
                b.handle(req).await
            }
        }
    }
}

impl Core {
    /// The route group of `path` for the request metrics: `sys`, `auth/<method type>` (so
    /// `auth/token`), the secrets engine type (`kv`, `database`, ...), `unrouted`, or
    /// `sealed`. Bounded by the registry's types: never a mount path or anything below it.
    pub fn route_group(&self, path: &str) -> String {
        if path == "sys" || path.starts_with("sys/") {
            return "sys".into();
        }
        let Ok(st) = self.unsealed() else {
            return "sealed".into();
        };
        match st.router.route(path) {
            Ok((entry, _)) if entry.path.starts_with("auth/") => format!("auth/{}", entry.kind),
            Ok((entry, _)) => entry.kind.clone(),
            Err(_) => "unrouted".into(),
        }
    }

    /// Handle one API request end to end, inside a `request` span (debug level: its id,
    /// operation, path and remote address; never its data or token). When it ends its status
    /// and duration are logged at debug, with the error text for a 5xx only: a 4xx message may
    /// quote what the client sent.
    pub async fn handle(&self, req: Request) -> Result<Response, LogicalError> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "request",
            id = %req.id,
            op = req.operation.as_str(),
            path = %req.path,
            remote = ?req.remote_addr,
        );
        let started = std::time::Instant::now();
        let result = self.handle_routed(req).instrument(span.clone()).await;
        let micros = started.elapsed().as_micros() as u64;
        span.in_scope(|| match &result {
            Ok(r) => debug!(status = r.status.unwrap_or(200), micros, "request served"),
            Err(e) if e.status() >= 500 => {
                debug!(status = e.status(), micros, error = %e, "request failed")
            }
            Err(e) => debug!(status = e.status(), micros, "request refused"),
        });
        result
    }

    async fn handle_routed(&self, mut req: Request) -> Result<Response, LogicalError> {
        if let Some(standby) = self.standby_for(&req.path) {
            return Err(standby);
        }
        if let Some(resp) = sys::handle_unauthenticated(self, &req).await {
            return resp;
        }
        let st = self.unsealed()?;
        let target = match Target::of(&st.router, &req.path) {
            Ok(target) => target,
            Err(err) => return Err(refuse_unrouted(&st, &req, err).await),
        };
        req.mount_point = target.mount_point().to_string();
        req.mount_type = target.mount_type().to_string();
        let rel = req.rel_path().to_string();
        let asked = wrapping::Asked::of(&req);

        if wrapping::served_without_acl(&req) {
            // The wrapping token itself is the credential (or, for a lookup, none is needed).
            st.audit.log_request(&req).await?;
            let mut resp = sys::handle(self, &st, &req).await;
            if let Ok(r) = resp {
                resp = wrapping::wrap_response(&st, &asked, r).await;
            }
            st.audit.log_response(&req, resp.as_ref()).await?;
            return resp;
        }

        let unauthenticated = path_matches_any(&rel, target.unauthenticated_paths());
        if unauthenticated && req.path.starts_with("auth/") {
            let Target::Mount(entry, backend) = &target else {
                return Err(LogicalError::Internal("a login outside auth/".into()));
            };
            let wrap = wrapping::WrapLogin {
                st: &st,
                asked: asked.clone(),
            };
            let flow = login::Login {
                limiter: &st.logins,
                audit: &st.audit,
                tokens: &st.tokens,
                finish: asked
                    .wrap_ttl
                    .is_some()
                    .then_some(&wrap as &dyn login::Finish),
                webhooks: Some(&st.webhooks),
            };
            let result = flow.handle(entry, backend.as_ref(), req).await;
            let status = match &result {
                Ok(r) => r.status.unwrap_or(200),
                Err(e) => e.status(),
            };
            self.metrics().login(&entry.kind, status);
            match result.as_ref().map(|r| r.auth.as_ref()) {
                Ok(Some(auth)) => debug!(
                    method = %entry.kind,
                    mount = %entry.path,
                    accessor = %auth.accessor,
                    policies = ?auth.policies,
                    ttl = auth.lease_duration,
                    "login succeeded"
                ),
                _ => debug!(method = %entry.kind, mount = %entry.path, status, "login refused"),
            }
            return result;
        }
        if !unauthenticated {
            if let Err(err) = authorize(&st, &target, &rel, &mut req).await {
                debug!(error = %err, "not authorized");
                // Refused requests are audited too: failed attempts matter most.
                st.audit.log_request(&req).await?;
                st.audit.log_response(&req, Err(&err)).await?;
                return Err(err);
            }
        }

        st.audit.log_request(&req).await?;
        let mut resp = target.handle(self, &st, &req).await;
        if req.operation == Operation::Read && matches!(&resp, Ok(r) if r.status.is_none()) {
            // `on_access` rotations count reads that returned the secret.
            if let Some(name) = st.rotations.note_read(&req.path) {
                if let Err(e) = st.rotations.rotate_soon(&name, "access").await {
                    tracing::warn!(rotation = %name, error = %e, "could not start an on-access rotation");
                }
            }
        }
        if let (Ok(r), Target::Mount(mount, _)) = (&mut resp, &target) {
            if let Err(e) = register_lease(&st, &req, mount, r).await {
                resp = Err(e);
            }
        }
        // Wrapped after the backend and before the audit: the log holds the wrap_info only.
        if let Ok(r) = resp {
            resp = wrapping::wrap_response(&st, &asked, r).await;
        }
        st.audit.log_response(&req, resp.as_ref()).await?;
        resp
    }
}

/// A dynamic secret in `resp`: register its lease and tell the client (before it is audited).
/// A lease without an id is a TTL hint (KV version 1's `ttl`): nothing is registered, but as
/// in Vault 0 takes the mount's default lease TTL and the mount's max caps it.
async fn register_lease(
    st: &Unsealed,
    req: &Request,
    mount: &MountEntry,
    resp: &mut Response,
) -> Result<(), LogicalError> {
    let Some(secret) = resp.secret.take() else {
        if let Some(hint) = resp.lease.as_mut().filter(|l| l.lease_id.is_empty()) {
            hint.lease_duration =
                expiration::effective_ttls(&mount.config, hint.lease_duration, 0).0;
        }
        return Ok(());
    };
    resp.lease = Some(st.expiration.register(req, mount, &secret).await?);
    Ok(())
}

/// Check the token, turn a write to something absent into a create, and check the ACL.
async fn authorize(
    st: &Unsealed,
    target: &Target,
    rel: &str,
    req: &mut Request,
) -> Result<(), LogicalError> {
    let token = req
        .client_token
        .as_ref()
        .ok_or(LogicalError::PermissionDenied)?;
    let entry = st.tokens.authenticate(token).await?;
    if wrapping::is_wrapping_token(&entry) {
        // A wrapping token serves only sys/wrapping/{lookup,unwrap,rewrap}.
        return Err(LogicalError::PermissionDenied);
    }
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
fn check_bound_cidrs(
    entry: &crate::logical::TokenEntry,
    req: &Request,
) -> Result<(), LogicalError> {
    if crate::logical::cidr::allowed(&entry.bound_cidrs, req.remote_addr) {
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

/// What the core's unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::state::Core;

    /// A dev store in memory: initialised, unsealed, kv v2 at `secret/`, root token `root`.
    pub(crate) async fn dev_core() -> Arc<Core> {
        let core = Core::new(
            Arc::new(crate::storage::MemoryBackend::new()),
            crate::backends(),
        );
        core.init_dev(Some(SecretString::from("root")))
            .await
            .unwrap();
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secrecy::{ExposeSecret, SecretString};

    /// An in-memory dev core with root token `root`.
    async fn dev_core() -> Arc<Core> {
        super::test_support::dev_core().await
    }

    #[tokio::test]
    async fn an_unmounted_path_is_403_until_the_token_may_know_it_is_404() {
        let core = dev_core().await;
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
    async fn ha_endpoints_on_a_single_node() {
        let core = dev_core().await;
        let call = |op, path: &str, data: serde_json::Value| {
            let mut req = Request::new(op, path).with_data(data);
            req.client_token = Some(SecretString::from("root"));
            core.handle(req)
        };
        let err = call(Operation::Update, "sys/step-down", serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("does not run with --ha"), "{err}");
        let leader = call(Operation::Read, "sys/leader", serde_json::json!({}))
            .await
            .unwrap();
        let body = leader.raw.unwrap();
        assert_eq!(
            (
                &body["ha_enabled"],
                &body["is_self"],
                &body["leader_address"]
            ),
            (
                &serde_json::json!(false),
                &serde_json::json!(false),
                &serde_json::json!("")
            )
        );
        let err = call(
            Operation::Read,
            "sys/health",
            serde_json::json!({"standbyok": "maybe"}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "standbyok must be a boolean");
        // Without a token: 403 before anything else.
        let req = Request::new(Operation::Update, "sys/step-down");
        assert_eq!(core.handle(req).await.unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn a_leased_answer_gets_its_lease_before_it_is_audited() {
        let core = dev_core().await;
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
        // A TTL hint (KV version 1): no lease; 0 is the mount default, the mount max caps it.
        let hint = |secs| {
            let mut r = Response::data(serde_json::json!({"a": 1}));
            r.lease = Some(crate::logical::LeaseInfo {
                lease_duration: secs,
                ..Default::default()
            });
            r
        };
        for (given, told) in [(0, 90), (30, 30), (600, 90)] {
            let mut r = hint(given);
            register_lease(&st, &req, &mount, &mut r).await.unwrap();
            let lease = r.lease.unwrap();
            assert_eq!((lease.lease_id.as_str(), lease.lease_duration), ("", told));
        }
        mount.config.max_lease_ttl = 0;
        let mut r = hint(0);
        register_lease(&st, &req, &mount, &mut r).await.unwrap();
        assert_eq!(
            r.lease.unwrap().lease_duration,
            768 * 3600,
            "system default"
        );
    }
}

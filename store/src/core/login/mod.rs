//! Logins (Vault's `handleLoginRequest`): a request to an auth method's unauthenticated path
//! skips the token check; a [`LoginGrant`] it answers with becomes an orphan service token.
//! Failed logins count against the caller's address ([`limiter`]); too many and it gets 429
//! for a while.

use super::audit::AuditBroker;
use super::mount::MountEntry;
use super::token::{CreateParams, TokenStore};
use crate::logical::{Auth, LogicalBackend, LogicalError, LoginGrant, Request, Response};

pub mod limiter;

use limiter::LoginLimiter;

/// What a login uses of the unsealed core.
#[derive(Debug)]
pub struct Login<'a> {
    pub limiter: &'a LoginLimiter,
    pub audit: &'a AuditBroker,
    pub tokens: &'a TokenStore,
}

impl Login<'_> {
    /// Serve a login request to `backend`, mounted at `entry`, end to end (rate limit, audit,
    /// backend, token).
    pub async fn handle(
        &self,
        entry: &MountEntry,
        backend: &dyn LogicalBackend,
        req: Request,
    ) -> Result<Response, LogicalError> {
        if let Err(err) = self.limiter.check(req.remote_addr) {
            self.audit.log_request(&req).await?;
            self.audit.log_response(&req, Err(&err)).await?;
            return Err(err);
        }
        self.audit.log_request(&req).await?;
        let mut resp = backend.handle(&req).await;
        if let Ok(r) = &mut resp {
            if let Some(grant) = r.login.take() {
                match self.mint(entry, &req, grant).await {
                    Ok(auth) => r.auth = Some(auth),
                    Err(e) => resp = Err(e),
                }
            }
        }
        if let Err(e) = &resp {
            if (400..500).contains(&e.status()) {
                self.limiter.record_failure(req.remote_addr);
            }
        }
        self.audit.log_response(&req, resp.as_ref()).await?;
        resp
    }

    async fn mint(
        &self,
        entry: &MountEntry,
        req: &Request,
        grant: LoginGrant,
    ) -> Result<Auth, LogicalError> {
        self.tokens
            .create(token_params(entry, &req.path, grant), None)
            .await
    }
}

/// The token a grant asks for, within the mount's and the system's limits.
pub(crate) fn token_params(entry: &MountEntry, path: &str, grant: LoginGrant) -> CreateParams {
    let cfg = &entry.config;
    let (ttl, max) = super::expiration::effective_ttls(cfg, grant.ttl, grant.max_ttl);
    let explicit_max_ttl = (grant.max_ttl > 0 || cfg.max_lease_ttl > 0).then_some(max);
    let source = entry
        .path
        .trim_start_matches("auth/")
        .trim_end_matches('/')
        .replace('/', "-");
    let display_name = match grant.display_name.as_str() {
        "" => source,
        name => format!("{source}-{name}"),
    };
    CreateParams {
        policies: grant.policies,
        meta: grant.metadata,
        no_parent: true,
        orphan: true,
        no_default_policy: grant.no_default_policy,
        renewable: Some(grant.renewable),
        ttl: Some(ttl),
        explicit_max_ttl,
        period: (grant.period > 0).then_some(grant.period),
        display_name: Some(display_name),
        display_name_as_is: true,
        num_uses: grant.num_uses,
        path: path.to_string(),
        sudo: true,
        bound_cidrs: grant.bound_cidrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mount::MountConfig;
    use crate::logical::ttl::{DEFAULT_TTL, MAX_TTL};

    fn mount(default_lease_ttl: u64, max_lease_ttl: u64) -> MountEntry {
        MountEntry {
            path: "auth/team/approle/".into(),
            kind: "approle".into(),
            description: String::new(),
            uuid: "u".into(),
            accessor: "a".into(),
            options: Default::default(),
            config: MountConfig {
                default_lease_ttl,
                max_lease_ttl,
            },
            created: chrono::Utc::now(),
        }
    }

    #[test]
    fn ttls_are_capped_by_the_mount_and_the_system() {
        let grant = |ttl, max_ttl| LoginGrant {
            ttl,
            max_ttl,
            ..Default::default()
        };
        let p = token_params(&mount(0, 0), "auth/team/approle/login", grant(0, 0));
        assert_eq!((p.ttl, p.explicit_max_ttl), (Some(DEFAULT_TTL), None));
        assert_eq!(p.display_name.as_deref(), Some("team-approle"));
        assert!(p.display_name_as_is && p.no_parent);
        let p = token_params(&mount(60, 600), "x", grant(0, 0));
        assert_eq!((p.ttl, p.explicit_max_ttl), (Some(60), Some(600)));
        let p = token_params(&mount(60, 600), "x", grant(3600, 7200));
        assert_eq!((p.ttl, p.explicit_max_ttl), (Some(600), Some(600)));
        let p = token_params(&mount(0, 0), "x", grant(300, 400));
        assert_eq!((p.ttl, p.explicit_max_ttl), (Some(300), Some(400)));
        let p = token_params(&mount(0, 0), "x", grant(u64::MAX, 0));
        assert_eq!(p.ttl, Some(MAX_TTL));
    }
}

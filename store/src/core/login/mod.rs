//! Logins (Vault's `handleLoginRequest`): a request to an auth method's unauthenticated path
//! skips the token check; a [`LoginGrant`] it answers with becomes an orphan service token.
//! Failed logins count against the identity the login claims and the caller's address
//! ([`limiter`]): a locked identity gets 429 before it is checked; an address over its ceiling
//! gets 429 for its failed logins only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use super::audit::AuditBroker;
use super::mount::MountEntry;
use super::token::{CreateParams, TokenStore};
use crate::logical::{Auth, LogicalBackend, LogicalError, LoginGrant, Request, Response};

pub mod limiter;

use limiter::{LoginIdentity, LoginLimiter};

/// What a login uses of the unsealed core.
#[derive(Debug)]
pub struct Login<'a> {
    pub limiter: &'a LoginLimiter,
    pub audit: &'a AuditBroker,
    pub tokens: &'a TokenStore,
    /// Last step on a successful answer before it is audited (response wrapping).
    pub finish: Option<&'a dyn Finish>,
    /// Told of failed logins (`login.failed`, at most one per identity per window).
    pub webhooks: Option<&'a std::sync::Arc<super::webhooks::Webhooks>>,
}

/// A last step on a successful login answer, run before the answer is audited; set by a
/// layer above (response wrapping), so the audit records what the client gets.
#[async_trait::async_trait]
pub trait Finish: Send + Sync + std::fmt::Debug {
    async fn finish(&self, resp: Response) -> Result<Response, LogicalError>;
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
        let who = claimed_identity(&req);
        if let Err(err) = self.limiter.check(&who) {
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
        match &resp {
            Ok(r) if r.auth.is_some() => self.limiter.record_success(&who),
            Err(e) if (400..500).contains(&e.status()) => {
                let limited = self.limiter.record_failure(who, req.remote_addr);
                // The role name only: a role ID is a credential, a token's claims unverified.
                let role = req.data.get("role").and_then(|v| v.as_str()).unwrap_or("");
                let locked = self.limiter.check(&who).is_err();
                if let Some(hooks) = self.webhooks {
                    hooks.emit_limited(
                        identity_key(&who),
                        "login.failed",
                        req.path.clone(),
                        login_failed_data(&req, role, e.status(), locked),
                    );
                }
                if locked {
                    tracing::warn!(
                        mount = %req.mount_point,
                        role = ?role,
                        remote_addr = ?req.remote_addr,
                        "login identity locked after repeated failed logins"
                    );
                }
                if let Some(limited) = limited {
                    resp = Err(limited);
                }
            }
            _ => {}
        }
        if let (Some(finish), Ok(r)) = (self.finish, resp.as_mut()) {
            resp = finish.finish(std::mem::take(r)).await;
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

/// The rate-limit key of an identity's `login.failed` events (a digest of its digest).
fn identity_key(who: &LoginIdentity) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    who.hash(&mut h);
    h.finish()
}

/// What a `login.failed` event says: the mount, the role name (never a role ID, a JWT or
/// anything else the login sent), the caller's address, the status, whether the identity is
/// now locked.
fn login_failed_data(
    req: &Request,
    role: &str,
    status: u16,
    locked: bool,
) -> serde_json::Map<String, Value> {
    let mut data = serde_json::Map::new();
    data.insert("mount".into(), req.mount_point.clone().into());
    data.insert("role".into(), role.into());
    data.insert(
        "remote_addr".into(),
        req.remote_addr.map(|a| a.to_string()).into(),
    );
    data.insert("status".into(), status.into());
    data.insert("locked".into(), locked.into());
    data
}

/// The identity a login claims, read before anything is verified: the `role_id` (approle),
/// else the `role` (kubernetes, jwt, gcp, aws) with the unverified `sub` of the `jwt` when
/// there is one (a Kubernetes token's `system:serviceaccount:NAMESPACE:NAME`, a GCP service
/// account's email, an OIDC subject), or for aws the access key ID the signed request names.
/// Per mount.
fn claimed_identity(req: &Request) -> LoginIdentity {
    let field = |k: &str| req.data.get(k).and_then(Value::as_str).map(str::trim);
    let id = match field("role_id") {
        Some(role_id) => format!("role_id\n{role_id}"),
        None => {
            let who = match (field("jwt"), field("iam_request_headers")) {
                (Some(jwt), _) => unverified_sub(jwt),
                (None, Some(headers)) => unverified_access_key(headers),
                (None, None) => None,
            };
            format!(
                "role\n{}\n{}",
                field("role").unwrap_or(""),
                who.unwrap_or_default()
            )
        }
    };
    LoginIdentity::new(&req.mount_point, &id)
}

/// The access key ID in the `Credential=AKID/...` of a signed STS request's Authorization
/// header (`iam_request_headers`: base64 of a JSON object of strings or lists), unverified.
fn unverified_access_key(headers_b64: &str) -> Option<String> {
    use base64::engine::general_purpose::STANDARD;
    if headers_b64.len() > 64 * 1024 {
        return None;
    }
    let headers: Value = serde_json::from_slice(&STANDARD.decode(headers_b64).ok()?).ok()?;
    let (_, auth) = headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?;
    let auth = match auth {
        Value::Array(items) => items.first()?.as_str()?,
        v => v.as_str()?,
    };
    let cred = &auth[auth.find("Credential=")? + "Credential=".len()..];
    Some(cred[..cred.find('/')?].to_string())
}

/// The `sub` claim of a compact JWS, unverified (never logged or trusted: a key only).
fn unverified_sub(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    if payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
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
        via_role: false,
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

    fn login(mount: &str, body: serde_json::Value) -> LoginIdentity {
        let mut req = Request::new(crate::logical::Operation::Update, "x").with_data(body);
        req.mount_point = mount.into();
        claimed_identity(&req)
    }

    #[test]
    fn the_claimed_identity_is_the_role_id_or_the_role_and_the_token_subject() {
        use serde_json::json;
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let jwt = |sub: &str| {
            format!(
                "{}.{}.sig",
                b64(json!({"alg": "RS256"})),
                b64(json!({"sub": sub}))
            )
        };
        let k8s = "auth/kubernetes/";
        let web = login(
            k8s,
            json!({"role": "r", "jwt": jwt("system:serviceaccount:prod:web")}),
        );
        // The same claims, another signature: the same identity.
        let again = format!("{}x", jwt("system:serviceaccount:prod:web"));
        assert_eq!(web, login(k8s, json!({"role": "r", "jwt": again})));
        for other in [
            json!({"role": "r", "jwt": jwt("system:serviceaccount:prod:broken")}),
            json!({"role": "r2", "jwt": jwt("system:serviceaccount:prod:web")}),
            json!({"role": "r", "jwt": "garbage"}),
        ] {
            assert_ne!(web, login(k8s, other));
        }
        assert_ne!(
            web,
            login(
                "auth/k8s2/",
                json!({"role": "r", "jwt": jwt("system:serviceaccount:prod:web")})
            )
        );
        let a = login("auth/approle/", json!({"role_id": "a", "secret_id": "s1"}));
        assert_eq!(
            a,
            login("auth/approle/", json!({"role_id": "a", "secret_id": "s2"}))
        );
        assert_ne!(
            a,
            login("auth/approle/", json!({"role_id": "b", "secret_id": "s1"}))
        );
        assert_eq!(unverified_sub("a.!!.c"), None);
        // aws: the role and the access key ID of the signed request.
        let signed = |akid: &str| {
            let auth = format!("AWS4-HMAC-SHA256 Credential={akid}/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00");
            base64::engine::general_purpose::STANDARD
                .encode(json!({"Authorization": [auth]}).to_string())
        };
        let aws = |akid: &str| {
            login(
                "auth/aws/",
                json!({"role": "r", "iam_request_headers": signed(akid)}),
            )
        };
        assert_eq!(aws("ASIAONE"), aws("ASIAONE"));
        assert_ne!(aws("ASIAONE"), aws("ASIATWO"));
        assert_eq!(
            unverified_access_key(&signed("ASIAONE")).as_deref(),
            Some("ASIAONE")
        );
        assert_eq!(unverified_access_key("not base64"), None);
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

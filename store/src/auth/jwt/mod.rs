//! The `jwt` auth method (Vault's generic OIDC/JWT method, JWT login only: no browser flow).
//!
//! Routes: `config` (GET/POST), `role/:name` (GET/POST/DELETE), `role` (LIST), `login`
//! {role, jwt}. Tokens are checked by [`crate::auth::jws`]: only RS256/384/512, ES256/384 and
//! EdDSA (never `none` or `HS*`), then issuer, audiences, time claims with the role's
//! leeways, `bound_subject` and `bound_claims`. A good login becomes a
//! [`crate::logical::LoginGrant`] with the role's token settings, metadata from
//! `claim_mappings` plus `role`, and the `user_claim` value as display name.
//!
//! The key source is exactly one of `jwt_validation_pubkeys`, `jwks_url` or
//! `oidc_discovery_url`; it is checked (keys parsed, URLs fetched) when `config` is written,
//! so a bad configuration is a 400 there rather than a failure at every login.
//!
//! Storage inside the mount's view: `config` ([`JwtConfig`]) and `role/<name>` ([`JwtRole`]).
//! Neither holds a secret. The presented JWT is never logged nor echoed in an error.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::jws::{
    self, claim_mappings, discover, match_bound_claims, user_claim, Algorithm, Claims, JwtError,
    KeySet, RemoteKeySet,
};
use crate::auth::method::AuthMethod;
use crate::auth::role_store::RoleStore;
use crate::barrier::BarrierView;
use crate::logical::cidr;
use crate::logical::fields::{field_str, list_field};
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LogicalError, Request, Response};

pub mod role;
#[cfg(test)]
mod tests;

pub use role::JwtRole;

const CONFIG_KEY: &str = "config";

/// The method's configuration, as `config` reads and writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub bound_issuer: String,
    /// Empty: every algorithm hushd accepts.
    pub jwt_supported_algs: Vec<String>,
    pub default_role: String,
}

impl JwtConfig {
    fn from_request(req: &Request) -> Result<JwtConfig, LogicalError> {
        // PEM text as written (Vault's TypeString: it reads back with its final newline).
        let pem = |key: &str| -> Result<String, LogicalError> {
            Ok(field_str(&req.data, key)?.unwrap_or_default().to_string())
        };
        let text = |key: &str| -> Result<String, LogicalError> { Ok(pem(key)?.trim().to_string()) };
        let cfg = JwtConfig {
            jwks_url: text("jwks_url")?,
            jwks_ca_pem: pem("jwks_ca_pem")?,
            jwt_validation_pubkeys: list_field(&req.data, "jwt_validation_pubkeys")?
                .unwrap_or_default(),
            oidc_discovery_url: text("oidc_discovery_url")?,
            oidc_discovery_ca_pem: pem("oidc_discovery_ca_pem")?,
            bound_issuer: text("bound_issuer")?,
            jwt_supported_algs: list_field(&req.data, "jwt_supported_algs")?.unwrap_or_default(),
            default_role: text("default_role")?,
        };
        let sources = [
            !cfg.jwt_validation_pubkeys.is_empty(),
            !cfg.jwks_url.is_empty(),
            !cfg.oidc_discovery_url.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(LogicalError::invalid(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' \
                 must be set",
            ));
        }
        if !cfg.jwks_ca_pem.trim().is_empty() && cfg.jwks_url.is_empty() {
            return Err(LogicalError::invalid(
                "jwks_ca_pem is only used with jwks_url",
            ));
        }
        if !cfg.oidc_discovery_ca_pem.trim().is_empty() && cfg.oidc_discovery_url.is_empty() {
            return Err(LogicalError::invalid(
                "oidc_discovery_ca_pem is only used with oidc_discovery_url",
            ));
        }
        cfg.algorithms()?;
        Ok(cfg)
    }

    fn algorithms(&self) -> Result<Vec<Algorithm>, LogicalError> {
        if self.jwt_supported_algs.is_empty() {
            return Ok(Algorithm::ALL.to_vec());
        }
        self.jwt_supported_algs
            .iter()
            .map(|a| {
                Algorithm::parse(a).ok_or_else(|| {
                    LogicalError::invalid(format!(
                        "invalid jwt_supported_algs entry {a:?}: hushd accepts RS256, RS384, \
                         RS512, ES256, ES384 and EdDSA"
                    ))
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        json!({
            "jwks_url": self.jwks_url,
            "jwks_ca_pem": self.jwks_ca_pem,
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "oidc_discovery_url": self.oidc_discovery_url,
            "oidc_discovery_ca_pem": self.oidc_discovery_ca_pem,
            "bound_issuer": self.bound_issuer,
            "jwt_supported_algs": self.jwt_supported_algs,
            "default_role": self.default_role,
            "oidc_client_id": "",
            "oidc_response_mode": "",
            "oidc_response_types": [],
            "provider_config": {},
            "namespace_in_state": false,
        })
    }
}

fn none_if_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

enum Keys {
    Static(KeySet),
    Remote(RemoteKeySet),
}

/// A configuration made ready for logins: keys parsed or their URL known.
struct Loaded {
    keys: Keys,
    issuer: Option<String>,
    algorithms: Vec<Algorithm>,
    default_role: String,
}

impl Loaded {
    /// Build from a configuration, fetching what it points at (so bad URLs fail here).
    async fn build(cfg: &JwtConfig) -> Result<Loaded, LogicalError> {
        let bad =
            |what: &str, e: JwtError| LogicalError::invalid(format!("error checking {what}: {e}"));
        let mut issuer = none_if_empty(&cfg.bound_issuer).map(str::to_string);
        let keys = if !cfg.jwt_validation_pubkeys.is_empty() {
            let set = KeySet::from_pem(&cfg.jwt_validation_pubkeys)
                .map_err(|e| bad("jwt_validation_pubkeys", e))?;
            Keys::Static(set)
        } else if !cfg.jwks_url.is_empty() {
            let ca = none_if_empty(&cfg.jwks_ca_pem);
            KeySet::from_jwks_url(&cfg.jwks_url, ca)
                .await
                .map_err(|e| bad("jwks_url", e))?;
            Keys::Remote(RemoteKeySet::new(&cfg.jwks_url, ca).map_err(|e| bad("jwks_url", e))?)
        } else {
            let ca = none_if_empty(&cfg.oidc_discovery_ca_pem);
            let found = discover(&cfg.oidc_discovery_url, ca)
                .await
                .map_err(|e| bad("oidc_discovery_url", e))?;
            issuer.get_or_insert(found.issuer);
            Keys::Remote(
                RemoteKeySet::new(&found.jwks_uri, ca).map_err(|e| bad("oidc_discovery_url", e))?,
            )
        };
        Ok(Loaded {
            keys,
            issuer,
            algorithms: cfg.algorithms()?,
            default_role: cfg.default_role.clone(),
        })
    }
}

/// The `jwt` backend of one mount.
pub struct JwtBackend {
    view: BarrierView,
    roles: RoleStore<JwtRole>,
    /// The configuration ready for logins; `None` until first needed or after a failed load.
    loaded: Mutex<Option<Arc<Loaded>>>,
    /// Serialises config writes and loads, so a stale load cannot replace a newer one.
    load_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBackend")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

fn no_role(name: &str) -> LogicalError {
    LogicalError::invalid(format!("role {name:?} could not be found"))
}

fn token_error(e: JwtError) -> LogicalError {
    if e.is_token_error() {
        LogicalError::invalid(format!("error validating token: {e}"))
    } else {
        // A configuration or fetch problem: not the caller's fault. The message holds no token.
        LogicalError::Internal(format!("cannot validate the token: {e}"))
    }
}

impl JwtBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Ok(JwtBackend {
            roles: RoleStore::new(view.clone()),
            view,
            loaded: Mutex::new(None),
            load_lock: tokio::sync::Mutex::new(()),
        })
    }

    async fn config(&self) -> Result<Option<JwtConfig>, LogicalError> {
        Ok(self.view.get_json(CONFIG_KEY).await?)
    }

    async fn loaded(&self) -> Result<Arc<Loaded>, LogicalError> {
        if let Some(l) = self.loaded.lock().clone() {
            return Ok(l);
        }
        let _guard = self.load_lock.lock().await;
        if let Some(l) = self.loaded.lock().clone() {
            return Ok(l);
        }
        let cfg = self
            .config()
            .await?
            .ok_or_else(|| LogicalError::invalid("could not load configuration: not set"))?;
        let loaded =
            Arc::new(Loaded::build(&cfg).await.map_err(|e| {
                LogicalError::Internal(format!("could not load configuration: {e}"))
            })?);
        *self.loaded.lock() = Some(loaded.clone());
        Ok(loaded)
    }

    async fn verify(
        &self,
        loaded: &Loaded,
        role: &JwtRole,
        token: &str,
    ) -> Result<Claims, JwtError> {
        let mut v = role.validation();
        v.algorithms = loaded.algorithms.clone();
        v.bound_issuer = loaded.issuer.clone();
        let now = jws::unix_now();
        match &loaded.keys {
            Keys::Static(set) => jws::verify(token, set, &v, now),
            Keys::Remote(remote) => remote.verify(token, &v, now).await,
        }
    }
}

#[async_trait::async_trait]
impl AuthMethod for JwtBackend {
    const PATHS: &'static [PathSpec] = PATHS;
    type Role = JwtRole;

    fn roles(&self) -> &RoleStore<JwtRole> {
        &self.roles
    }

    async fn login(&self, req: &Request) -> Result<Response, LogicalError> {
        let token = match req.data.get("jwt") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
            _ => return Err(LogicalError::invalid("missing jwt")),
        };
        let loaded = self.loaded().await?;
        let name = match req.get_str("role").map(str::trim).filter(|s| !s.is_empty()) {
            Some(n) => n.to_string(),
            None if !loaded.default_role.is_empty() => loaded.default_role.clone(),
            None => return Err(LogicalError::invalid("missing role")),
        };
        let role = self.roles.get(&name).await?.ok_or_else(|| no_role(&name))?;
        if !cidr::allowed(&role.token.token_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's token_bound_cidrs",
            ));
        }
        let claims = self
            .verify(&loaded, &role, token)
            .await
            .map_err(token_error)?;
        if !role.bound_subject.is_empty()
            && claims.get("sub").and_then(Value::as_str) != Some(role.bound_subject.as_str())
        {
            return Err(LogicalError::invalid(
                "sub claim does not match expected value",
            ));
        }
        match_bound_claims(&claims, &role.bound_claims, role.claims_type()).map_err(token_error)?;
        let user = user_claim(&claims, &role.user_claim).map_err(token_error)?;
        let mut metadata = claim_mappings(&claims, &role.claim_mappings).map_err(token_error)?;
        metadata.insert("role".into(), name);
        Ok(Response::login(role.token.grant(metadata, user)))
    }

    async fn write_config(&self, req: &Request) -> Result<Response, LogicalError> {
        let cfg = JwtConfig::from_request(req)?;
        let _guard = self.load_lock.lock().await;
        let loaded = Loaded::build(&cfg).await?;
        self.view.put_json(CONFIG_KEY, &cfg).await?;
        *self.loaded.lock() = Some(Arc::new(loaded));
        Ok(Response::empty())
    }

    async fn read_config(&self) -> Result<Option<Value>, LogicalError> {
        Ok(self.config().await?.map(|c| c.to_json()))
    }
}

/// The routes of a JWT/OIDC mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("login", "login", Ops::WRITE, "Log in with a JWT.").body(&[
        Field::req("jwt", Kind::String, "The signed JWT."),
        Field::opt("role", Kind::String, "The role (else the default role)."),
    ]),
    PathSpec::new("config", "config", Ops::RW, "The method's key sources.").body(&[
        Field::opt("jwks_url", Kind::String, "JWKS URL."),
        Field::opt("jwt_validation_pubkeys", Kind::Strings, "PEM public keys."),
        Field::opt("oidc_discovery_url", Kind::String, "OIDC discovery URL."),
        Field::opt("bound_issuer", Kind::String, "Required `iss`."),
        Field::opt("default_role", Kind::String, "Role for logins naming none."),
    ]),
    PathSpec::new("role", "roles", Ops::RL, "List the roles."),
    PathSpec::new(
        "role/{name}",
        "role",
        Ops::RWD,
        "Read, write or delete a role.",
    )
    .body(&[
        Field::opt("bound_audiences", Kind::Strings, "Accepted `aud` values."),
        Field::opt("user_claim", Kind::String, "Claim naming the user."),
        Field::opt("bound_claims", Kind::Object, "Claims that must match."),
    ])
    .shared(crate::auth::role::TOKEN_FIELDS),
];

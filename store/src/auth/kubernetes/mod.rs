//! The kubernetes auth method: a service-account JWT logs in.
//!
//! Two ways to check the token, picked by `config`:
//! - **local** (`kubernetes_host` empty): the signature against `pem_keys`, `exp`/`nbf`, the
//!   issuer (`issuer` when set; else legacy secret tokens must carry Vault's default
//!   `kubernetes/serviceaccount` and projected tokens are not checked), and the role's
//!   `audience` when set;
//! - **TokenReview** (`kubernetes_host` set): the API server reviews the token
//!   ([`review`]); its answer must name the same service account (and uid) the token claims,
//!   and include the role's `audience` when set.
//!
//! Then the service account's name and namespace must match the role's bound globs. The
//! grant carries the role's token settings, Vault's metadata and display name `NS-NAME`.
//!
//! Storage inside the mount's view: `config` ([`Config`]), `role/<name>` ([`Role`]).
//! The JWT is never logged, stored, or put in an error message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::jws::{self, Algorithm, JwtError, K8sIdentity, KeySet, Validation};
use crate::auth::method::AuthMethod;
use crate::auth::role_store::RoleStore;
use crate::barrier::BarrierView;
use crate::logical::cidr;
use crate::logical::fields::{field_bool, field_str};
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LogicalError, Request, Response};

pub mod local;
pub mod review;
pub mod role;
#[cfg(test)]
mod tests;

pub use role::Role;

/// Vault's issuer of legacy (secret-based) service-account tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// The mount's configuration.
#[derive(Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    /// A credential: never shown by `GET config` (only `token_reviewer_jwt_set`).
    pub token_reviewer_jwt: String,
    pub pem_keys: Vec<String>,
    pub issuer: String,
    pub disable_iss_validation: bool,
    pub disable_local_ca_jwt: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("kubernetes_host", &self.kubernetes_host)
            .field("issuer", &self.issuer)
            .field("pem_keys", &self.pem_keys.len())
            .field(
                "token_reviewer_jwt_set",
                &!self.token_reviewer_jwt.is_empty(),
            )
            .finish_non_exhaustive()
    }
}

/// A string field, trimmed (for names, URLs and tokens; PEM text is kept as written).
fn str_field(req: &Request, key: &str) -> Result<Option<String>, LogicalError> {
    Ok(field_str(&req.data, key)?.map(|s| s.trim().to_string()))
}

/// `pem_keys`: a list of PEM strings, or one string holding one or more PEM blocks (public
/// keys or certificates; each block becomes one entry).
fn pem_list(v: &Value) -> Result<Vec<String>, LogicalError> {
    let bad =
        || LogicalError::invalid("pem_keys must be a list of PEM public keys or certificates");
    let split = |s: &str| -> Vec<String> {
        // The end of the next `-----END <LABEL>-----` line.
        let block_end = |t: &str| {
            let i = t.find("-----END ")?;
            let close = t[i + 9..].find("-----")?;
            Some(i + 9 + close + 5)
        };
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(end) = block_end(rest) {
            out.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
        if !rest.trim().is_empty() {
            out.push(rest.trim().to_string());
        }
        out
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(split(s)),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                out.extend(split(i.as_str().ok_or_else(bad)?));
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

impl Config {
    /// Apply a `config` write and check the result.
    fn update(&mut self, req: &Request) -> Result<(), LogicalError> {
        if let Some(v) = str_field(req, "kubernetes_host")? {
            self.kubernetes_host = v.trim_end_matches('/').to_string();
        }
        // As written, like Vault: a trimmed PEM would read back without its final newline.
        if let Some(v) = field_str(&req.data, "kubernetes_ca_cert")? {
            self.kubernetes_ca_cert = v.to_string();
        }
        if let Some(v) = str_field(req, "token_reviewer_jwt")? {
            self.token_reviewer_jwt = v;
        }
        if let Some(v) = req.data.get("pem_keys") {
            self.pem_keys = pem_list(v)?;
        }
        if let Some(v) = str_field(req, "issuer")? {
            self.issuer = v;
        }
        if let Some(v) = field_bool(&req.data, "disable_iss_validation")? {
            self.disable_iss_validation = v;
        }
        if let Some(v) = field_bool(&req.data, "disable_local_ca_jwt")? {
            self.disable_local_ca_jwt = v;
        }
        if self.kubernetes_host.is_empty() {
            if self.pem_keys.is_empty() {
                return Err(LogicalError::invalid(
                    "either kubernetes_host (TokenReview) or pem_keys (local verification) \
                     must be set",
                ));
            }
        } else {
            match reqwest::Url::parse(&self.kubernetes_host) {
                Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
                _ => {
                    return Err(LogicalError::invalid(
                        "kubernetes_host must be an https URL",
                    ))
                }
            }
            jws::remote::http_client(Some(&self.kubernetes_ca_cert))
                .map_err(|e| LogicalError::invalid(format!("kubernetes_ca_cert: {e}")))?;
        }
        if !self.pem_keys.is_empty() {
            KeySet::from_pem(&self.pem_keys)
                .map_err(|e| LogicalError::invalid(format!("pem_keys: {e}")))?;
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        json!({
            "kubernetes_host": self.kubernetes_host,
            "kubernetes_ca_cert": self.kubernetes_ca_cert,
            "pem_keys": self.pem_keys,
            "issuer": self.issuer,
            "disable_iss_validation": self.disable_iss_validation,
            "disable_local_ca_jwt": self.disable_local_ca_jwt,
            "token_reviewer_jwt_set": !self.token_reviewer_jwt.is_empty(),
        })
    }
}

/// A JWT error as the 400 (token) or 500 (configuration) a login answers.
fn jwt_err(e: JwtError) -> LogicalError {
    if e.is_token_error() {
        LogicalError::invalid(e.to_string())
    } else {
        LogicalError::Internal(e.to_string())
    }
}

/// The stored config with its `pem_keys` parsed, kept between logins until the config is
/// written again (a login then costs no decryption, JSON or PEM parsing of the config).
struct Loaded {
    cfg: Config,
    keys: Result<KeySet, JwtError>,
}

/// The kubernetes backend of one mount.
pub struct KubernetesBackend {
    view: BarrierView,
    roles: RoleStore<Role>,
    /// The clock for token times (Unix seconds); injectable for tests.
    now: fn() -> u64,
    loaded: parking_lot::RwLock<Option<Arc<Loaded>>>,
    /// Bumped by each config write: a load that started before it is not cached.
    config_gen: AtomicU64,
    /// The pod's own service-account directory ([`local`]).
    local_dir: PathBuf,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend").finish_non_exhaustive()
    }
}

impl KubernetesBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Ok(Self::with_clock(view, jws::unix_now))
    }

    /// As [`KubernetesBackend::new`], with an injected clock (tests).
    pub fn with_clock(view: BarrierView, now: fn() -> u64) -> Self {
        KubernetesBackend {
            roles: RoleStore::new(view.clone()),
            view,
            now,
            loaded: parking_lot::RwLock::new(None),
            config_gen: AtomicU64::new(0),
            local_dir: PathBuf::from(local::DEFAULT_DIR),
        }
    }

    /// As [`KubernetesBackend::with_clock`], reading the pod's own credentials from `dir`
    /// (tests).
    pub fn with_local_dir(mut self, dir: PathBuf) -> Self {
        self.local_dir = dir;
        self
    }

    async fn config(&self) -> Result<Option<Config>, LogicalError> {
        Ok(self.view.get_json("config").await?)
    }

    /// The config and its parsed keys, from the cache or storage.
    async fn loaded(&self) -> Result<Option<Arc<Loaded>>, LogicalError> {
        if let Some(l) = self.loaded.read().clone() {
            return Ok(Some(l));
        }
        let gen = self.config_gen.load(Ordering::Acquire);
        let Some(cfg) = self.config().await? else {
            return Ok(None);
        };
        let keys = KeySet::from_pem(&cfg.pem_keys);
        let l = Arc::new(Loaded { cfg, keys });
        let mut slot = self.loaded.write();
        if self.config_gen.load(Ordering::Acquire) == gen {
            *slot = Some(l.clone());
        }
        Ok(Some(l))
    }

    /// The identity of a token checked locally against `pem_keys`.
    fn verify_local(
        &self,
        loaded: &Loaded,
        role: &Role,
        token: &str,
    ) -> Result<K8sIdentity, LogicalError> {
        let cfg = &loaded.cfg;
        let keys = loaded
            .keys
            .as_ref()
            .map_err(|e| LogicalError::Internal(format!("pem_keys: {e}")))?;
        let validation = Validation {
            algorithms: Algorithm::ALL.to_vec(),
            bound_audiences: if role.audience.is_empty() {
                Vec::new()
            } else {
                vec![role.audience.clone()]
            },
            // Legacy secret tokens have no `exp`; projected ones do and it is checked.
            require_exp: false,
            ..Validation::default()
        };
        let claims = jws::verify(token, keys, &validation, (self.now)()).map_err(jwt_err)?;
        if !cfg.disable_iss_validation {
            let legacy = !claims.contains_key("kubernetes.io");
            let want = match cfg.issuer.as_str() {
                "" if legacy => Some(LEGACY_ISSUER),
                "" => None,
                i => Some(i),
            };
            if let Some(want) = want {
                if claims.get("iss").and_then(Value::as_str) != Some(want) {
                    return Err(jwt_err(JwtError::Issuer));
                }
            }
        }
        K8sIdentity::from_claims(&claims).map_err(jwt_err)
    }

    /// The identity of a token reviewed by the API server. The token's own claims (read
    /// unverified) must name the same service account the review returns.
    async fn verify_review(
        &self,
        cfg: &Config,
        role: &Role,
        token: &str,
    ) -> Result<K8sIdentity, LogicalError> {
        let parsed = jws::parse(token, &Algorithm::ALL).map_err(jwt_err)?;
        let claimed = K8sIdentity::from_claims(&parsed.claims).map_err(jwt_err)?;
        let pod = if cfg.disable_local_ca_jwt {
            local::Local::default()
        } else {
            local::read(&self.local_dir).await
        };
        let (bearer, ca) = local::pick(
            &cfg.token_reviewer_jwt,
            &cfg.kubernetes_ca_cert,
            &pod,
            token,
        );
        let audience = Some(role.audience.as_str()).filter(|a| !a.is_empty());
        let r = review::review(&cfg.kubernetes_host, ca, bearer, token, audience)
            .await
            .map_err(|e| match e {
                review::ReviewError::Denied(_) => LogicalError::invalid(e.to_string()),
                review::ReviewError::Unavailable(_) => LogicalError::Internal(e.to_string()),
            })?;
        if r.namespace != claimed.namespace || r.service_account != claimed.service_account {
            return Err(LogicalError::invalid(
                "JWT names were not the same as the TokenReview response",
            ));
        }
        if !r.uid.is_empty() && r.uid != claimed.sa_uid {
            return Err(LogicalError::invalid(
                "JWT UID was not the same as the TokenReview response",
            ));
        }
        if let Some(a) = audience {
            if !r.audiences.iter().any(|x| x == a) {
                return Err(jwt_err(JwtError::Audience));
            }
        }
        Ok(K8sIdentity {
            pod_name: r.pod_name.or(claimed.pod_name.clone()),
            pod_uid: r.pod_uid.or(claimed.pod_uid.clone()),
            ..claimed
        })
    }
}

#[async_trait::async_trait]
impl AuthMethod for KubernetesBackend {
    const PATHS: &'static [PathSpec] = PATHS;
    type Role = Role;
    const CONFIG_EXISTENCE: bool = true;

    fn roles(&self) -> &RoleStore<Role> {
        &self.roles
    }

    async fn login(&self, req: &Request) -> Result<Response, LogicalError> {
        let name = str_field(req, "role")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LogicalError::invalid("missing role"))?;
        let token = str_field(req, "jwt")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LogicalError::invalid("missing jwt"))?;
        let role = self
            .roles
            .get(&name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("invalid role name {name:?}")))?;
        if !cidr::allowed(&role.token.token_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's token_bound_cidrs",
            ));
        }
        let loaded = self
            .loaded()
            .await?
            .ok_or_else(|| LogicalError::invalid("could not load backend configuration"))?;
        let id = if loaded.cfg.kubernetes_host.is_empty() {
            self.verify_local(&loaded, &role, &token)?
        } else {
            self.verify_review(&loaded.cfg, &role, &token).await?
        };
        if !jws::glob_match_any(&role.bound_service_account_names, &id.service_account) {
            return Err(LogicalError::invalid("service account name not authorized"));
        }
        if !jws::glob_match_any(&role.bound_service_account_namespaces, &id.namespace) {
            return Err(LogicalError::invalid("namespace not authorized"));
        }
        let mut metadata: BTreeMap<String, String> = id.metadata();
        metadata
            .entry("service_account_secret_name".into())
            .or_default();
        metadata.insert("role".into(), name);
        Ok(Response::login(role.token.grant(
            metadata,
            format!("{}-{}", id.namespace, id.service_account),
        )))
    }

    async fn write_config(&self, req: &Request) -> Result<Response, LogicalError> {
        let mut cfg = self.config().await?.unwrap_or_default();
        cfg.update(req)?;
        self.view.put_json("config", &cfg).await?;
        self.config_gen.fetch_add(1, Ordering::AcqRel);
        *self.loaded.write() = None;
        Ok(Response::empty())
    }

    async fn read_config(&self) -> Result<Option<Value>, LogicalError> {
        Ok(self.config().await?.map(|c| c.to_json()))
    }
}

/// The routes of a Kubernetes mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new(
        "login",
        "login",
        Ops::WRITE,
        "Log in with a service account token.",
    )
    .body(&[
        Field::req("role", Kind::String, "The role."),
        Field::req("jwt", Kind::String, "The service account token."),
    ]),
    PathSpec::new(
        "config",
        "config",
        Ops::RW,
        "The cluster to ask (TokenReview).",
    )
    .body(&[
        Field::opt("kubernetes_host", Kind::String, "API server URL."),
        Field::opt("kubernetes_ca_cert", Kind::String, "Its CA (PEM)."),
        Field::opt(
            "token_reviewer_jwt",
            Kind::String,
            "Token for TokenReview calls.",
        ),
        Field::opt(
            "disable_local_ca_jwt",
            Kind::Boolean,
            "Do not read the pod's own files.",
        ),
    ]),
    PathSpec::new("role", "roles", Ops::RL, "List the roles."),
    PathSpec::new(
        "role/{name}",
        "role",
        Ops::RWD,
        "Read, write or delete a role.",
    )
    .body(&[
        Field::opt(
            "bound_service_account_names",
            Kind::Strings,
            "Accepted names.",
        ),
        Field::opt(
            "bound_service_account_namespaces",
            Kind::Strings,
            "Accepted namespaces.",
        ),
    ])
    .shared(crate::auth::role::TOKEN_FIELDS),
];

//! The aws auth method, iam type: a workload proves its IAM identity with a signed STS
//! `GetCallerIdentity` request that hushd sends on to STS ([`sts`]) and reads the answer of.
//!
//! Routes (Vault's): `config/client` (read, write, delete), `config/identity` (read, write:
//! [`identity`]), `role/:name` (read, write, delete), `LIST role` or `roles`, and `login` {role, iam_http_request_method,
//! iam_request_url, iam_request_body, iam_request_headers} (the last three base64).
//!
//! A login is checked before anything leaves hushd ([`iam::SignedRequest::decode`]): POST
//! only, a GetCallerIdentity body and nothing else, and, when the mount has an
//! `iam_server_id_header_value`, the `X-Vault-AWS-IAM-Server-ID` header present, equal and
//! among the signed headers (so a signed request captured by another server that trusts the
//! same AWS account cannot be replayed here). STS's answer names the caller's ARN; an
//! assumed-role ARN counts as its role (`arn:aws:iam::ACCT:role/NAME`) for the role's
//! `bound_iam_principal_arn` globs. The role defaults to the caller's friendly name (user or
//! role name) as in Vault.
//!
//! Not supported: the ec2 auth type (refused with a 400), `resolve_aws_unique_ids` (false
//! only), identity-integration, role tags. `access_key`/`secret_key` in `config/client` are
//! accepted and kept but never shown: the iam login needs no AWS credentials of hushd's.
//!
//! Storage inside the mount's view: `config/client` ([`ClientConfig`]), `config/identity`
//! ([`identity::IdentityConfig`]), `role/<name>` ([`Role`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::jws::glob_match_any;
use crate::auth::method::AuthMethod;
use crate::auth::role_store::RoleStore;
use crate::barrier::BarrierView;
use crate::logical::cidr;
use crate::logical::fields::field_u64;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{LogicalError, Operation, Request, Response};

pub mod iam;
pub mod identity;
pub mod role;
pub mod sts;
#[cfg(test)]
mod tests;

pub use role::Role;

use iam::{Principal, SignedRequest};

/// The mount's `config/client`.
#[derive(Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ClientConfig {
    pub sts_endpoint: String,
    pub sts_region: String,
    pub iam_server_id_header_value: String,
    pub endpoint: String,
    pub iam_endpoint: String,
    pub ec2_endpoint: String,
    pub max_retries: Option<u64>,
    /// Accepted for Vault compatibility; never shown, never used by an iam login.
    pub access_key: String,
    /// As `access_key`.
    pub secret_key: String,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("sts_endpoint", &self.sts_endpoint)
            .field("sts_region", &self.sts_region)
            .field(
                "iam_server_id_header_value",
                &self.iam_server_id_header_value,
            )
            .field("credentials_set", &!self.secret_key.is_empty())
            .finish_non_exhaustive()
    }
}

fn str_field(req: &Request, key: &str) -> Result<Option<String>, LogicalError> {
    match req.data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(LogicalError::invalid(format!("{key} must be a string"))),
    }
}

impl ClientConfig {
    fn update(&mut self, req: &Request) -> Result<(), LogicalError> {
        for (key, slot) in [
            ("sts_endpoint", &mut self.sts_endpoint),
            ("sts_region", &mut self.sts_region),
            (
                "iam_server_id_header_value",
                &mut self.iam_server_id_header_value,
            ),
            ("endpoint", &mut self.endpoint),
            ("iam_endpoint", &mut self.iam_endpoint),
            ("ec2_endpoint", &mut self.ec2_endpoint),
            ("access_key", &mut self.access_key),
            ("secret_key", &mut self.secret_key),
        ] {
            if let Some(v) = str_field(req, key)? {
                *slot = v;
            }
        }
        if let Some(v) = field_u64(&req.data, "max_retries")? {
            self.max_retries = Some(v);
        }
        if !self.sts_endpoint.is_empty() {
            match reqwest::Url::parse(&self.sts_endpoint) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {}
                _ => {
                    return Err(LogicalError::invalid(
                        "sts_endpoint must be an https (or http) URL",
                    ))
                }
            }
        }
        if !self.sts_region.is_empty() && self.sts_endpoint.is_empty() {
            return Err(LogicalError::invalid(
                "sts_region is only used with sts_endpoint: set both",
            ));
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        json!({
            "sts_endpoint": self.sts_endpoint,
            "sts_region": self.sts_region,
            "iam_server_id_header_value": self.iam_server_id_header_value,
            "endpoint": self.endpoint,
            "iam_endpoint": self.iam_endpoint,
            "ec2_endpoint": self.ec2_endpoint,
            "max_retries": self.max_retries.map_or(-1, |n| n as i64),
            "use_sts_region_from_client": false,
        })
    }
}

/// The aws backend of one mount.
#[derive(Debug)]
pub struct AwsBackend {
    view: BarrierView,
    /// Role names are case-insensitive, as in Vault.
    roles: RoleStore<Role>,
}

impl AwsBackend {
    pub async fn new(view: BarrierView) -> Result<Self, LogicalError> {
        Ok(AwsBackend {
            roles: RoleStore::case_insensitive(view.clone()),
            view,
        })
    }

    async fn config(&self) -> Result<Option<ClientConfig>, LogicalError> {
        Ok(self.view.get_json("config/client").await?)
    }

    async fn identity(&self) -> Result<identity::IdentityConfig, LogicalError> {
        Ok(self
            .view
            .get_json(identity::PATH)
            .await?
            .unwrap_or_default())
    }

    /// `config/identity`: read (the defaults when never written) and write.
    async fn identity_path(&self, req: &Request) -> Result<Response, LogicalError> {
        match req.operation {
            Operation::Read => Ok(Response::data(self.identity().await?.to_json())),
            Operation::Update | Operation::Create => {
                let mut cfg = self.identity().await?;
                cfg.update(&req.data)?;
                self.view.put_json(identity::PATH, &cfg).await?;
                Ok(Response::empty())
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }
}

#[async_trait::async_trait]
impl AuthMethod for AwsBackend {
    const PATHS: &'static [PathSpec] = PATHS;
    type Role = Role;
    const CONFIG_PATH: &'static str = "config/client";
    const CONFIG_EXISTENCE: bool = true;
    const ROLES_ALIAS: bool = true;

    fn roles(&self) -> &RoleStore<Role> {
        &self.roles
    }

    async fn login(&self, req: &Request) -> Result<Response, LogicalError> {
        let field = |key: &str| -> Result<String, LogicalError> {
            Ok(str_field(req, key)?.unwrap_or_default())
        };
        let cfg = self.config().await?.unwrap_or_default();
        let signed = SignedRequest::decode(
            &field("iam_http_request_method")?,
            &field("iam_request_url")?,
            &field("iam_request_body")?,
            &field("iam_request_headers")?,
            &cfg.iam_server_id_header_value,
        )?;
        let given = field("role")?;
        // Refuse an unknown role before asking STS (no upstream call for a typo).
        let known = if given.is_empty() {
            None
        } else {
            Some(self.roles.get(&given).await?.ok_or_else(|| {
                LogicalError::invalid(format!("entry for role {given:?} not found"))
            })?)
        };
        let caller = sts::get_caller_identity(&cfg.sts_endpoint, &signed).await?;
        let principal = Principal::parse(&caller.arn).map_err(LogicalError::invalid)?;
        let (name, role) = match known {
            Some(r) => (given, r),
            None => {
                let name = principal.friendly_name.clone();
                let r = self.roles.get(&name).await?.ok_or_else(|| {
                    LogicalError::invalid(format!("entry for role {name:?} not found"))
                })?;
                (name, r)
            }
        };
        if !cidr::allowed(&role.token.token_bound_cidrs, req.remote_addr) {
            return Err(LogicalError::invalid(
                "source address unauthorized by the role's token_bound_cidrs",
            ));
        }
        let canonical = principal.canonical_arn();
        let bound = &role.bound_iam_principal_arn;
        if !glob_match_any(bound, &canonical) && !glob_match_any(bound, &caller.arn) {
            return Err(LogicalError::invalid(format!(
                "IAM Principal {:?} does not belong to the role {name:?}",
                caller.arn
            )));
        }
        let mut metadata: BTreeMap<String, String> = [
            ("account_id", caller.account.clone()),
            ("auth_type", "iam".into()),
            ("canonical_arn", canonical),
            ("client_arn", caller.arn.clone()),
            ("client_user_id", caller.user_id.clone()),
            ("inferred_entity_id", String::new()),
            ("inferred_entity_type", String::new()),
            ("inferred_aws_region", String::new()),
            ("role_id", role.role_id.clone()),
            ("role", name.to_lowercase()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.identity().await?.select_iam(&mut metadata);
        Ok(Response::login(
            role.token.grant(metadata, principal.friendly_name),
        ))
    }

    async fn write_config(&self, req: &Request) -> Result<Response, LogicalError> {
        let mut cfg = self.config().await?.unwrap_or_default();
        cfg.update(req)?;
        self.view.put_json("config/client", &cfg).await?;
        Ok(Response::empty())
    }

    async fn read_config(&self) -> Result<Option<Value>, LogicalError> {
        Ok(self.config().await?.map(|c| c.to_json()))
    }

    async fn delete_config(&self) -> Result<Response, LogicalError> {
        self.view.delete("config/client").await?;
        Ok(Response::empty())
    }

    async fn other_path(&self, req: &Request, rel: &str) -> Option<Result<Response, LogicalError>> {
        (rel == identity::PATH).then_some(())?;
        Some(self.identity_path(req).await)
    }
}

/// The routes of an AWS mount.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new(
        "login",
        "login",
        Ops::WRITE,
        "Log in with a signed sts:GetCallerIdentity.",
    )
    .body(&[
        Field::req("iam_http_request_method", Kind::String, "`POST`."),
        Field::req("iam_request_url", Kind::String, "Base64 of the STS URL."),
        Field::req("iam_request_body", Kind::String, "Base64 of the body."),
        Field::req(
            "iam_request_headers",
            Kind::String,
            "Base64 of the headers (JSON).",
        ),
        Field::opt("role", Kind::String, "The role."),
    ]),
    PathSpec::new(
        "config/client",
        "config-client",
        Ops::RWD,
        "STS endpoint and credentials.",
    )
    .body(&[
        Field::opt("sts_endpoint", Kind::String, "STS URL."),
        Field::opt("sts_region", Kind::String, "STS region."),
        Field::opt(
            "iam_server_id_header_value",
            Kind::String,
            "Required X-Vault-AWS-IAM-Server-ID.",
        ),
    ]),
    PathSpec::new(
        "config/identity",
        "config-identity",
        Ops::RW,
        "Alias and metadata settings.",
    )
    .body(&[
        Field::opt(
            "iam_alias",
            Kind::String,
            "`role_id`, `unique_id` or `full_arn`.",
        ),
        Field::opt("iam_metadata", Kind::Strings, "Metadata to attach."),
    ]),
    PathSpec::new("role", "roles", Ops::RL, "List the roles."),
    PathSpec::new("roles", "roles-alias", Ops::RL, "List the roles."),
    PathSpec::new(
        "role/{name}",
        "role",
        Ops::RWD,
        "Read, write or delete a role.",
    )
    .body(&[
        Field::opt("auth_type", Kind::String, "`iam`."),
        Field::opt(
            "bound_iam_principal_arn",
            Kind::Strings,
            "Accepted principals.",
        ),
    ])
    .shared(crate::auth::role::TOKEN_FIELDS),
];

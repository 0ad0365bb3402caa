//! The `auth/token/` endpoints, with Vault's request and response shapes.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::store::{auth_for, CreateParams, TokenStore};
use super::TokenEntry;
use crate::logical::fields::field_secs;
use crate::logical::paths::{Field, Kind, Ops, PathSpec};
use crate::logical::{Data, LogicalBackend, LogicalError, Operation, Request, Response};

/// Vault's answer to a lookup of a token that does not exist.
fn bad_token() -> Response {
    Response::raw(json!({ "errors": ["bad token"] })).with_status(403)
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn invalid_field(key: &str, why: &str) -> LogicalError {
    LogicalError::invalid(format!("invalid value for {key:?}: {why}"))
}

/// A boolean field, accepting `true`/`false`, `"true"`/`"false"` and 0/1 as Vault does.
fn bool_field(data: &Data, key: &str) -> Result<Option<bool>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "t" => Ok(Some(true)),
            "false" | "0" | "f" => Ok(Some(false)),
            _ => Err(invalid_field(key, "must be a boolean")),
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(invalid_field(key, "must be a boolean")),
        },
        Some(_) => Err(invalid_field(key, "must be a boolean")),
    }
}

fn string_field<'a>(data: &'a Data, key: &str) -> Result<Option<&'a str>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid_field(key, "must be a string")),
    }
}

/// A list of strings, or one comma-separated string.
fn list_field(data: &Data, key: &str) -> Result<Vec<String>, LogicalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split(',').map(|p| p.trim().to_string()).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid_field(key, "must be a list of strings")),
        Some(_) => Err(invalid_field(key, "must be a list of strings")),
    }
}

fn meta_field(data: &Data) -> Result<BTreeMap<String, String>, LogicalError> {
    let key = if data.contains_key("meta") {
        "meta"
    } else {
        "metadata"
    };
    match data.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(invalid_field(key, "values must be strings")),
                };
                Ok((k.clone(), v))
            })
            .collect(),
        Some(_) => Err(invalid_field(key, "must be a map of strings")),
    }
}

fn num_uses_field(data: &Data) -> Result<u64, LogicalError> {
    let negative = || LogicalError::invalid("number of uses cannot be negative");
    match data.get("num_uses") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(v), _) => Ok(v),
            (None, Some(_)) => Err(negative()),
            _ => Err(invalid_field("num_uses", "must be a whole number")),
        },
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(v) if v < 0 => Err(negative()),
            Ok(v) => Ok(v as u64),
            Err(_) => Err(invalid_field("num_uses", "must be a whole number")),
        },
        Some(_) => Err(invalid_field("num_uses", "must be a whole number")),
    }
}

/// A required string field holding a token or accessor.
fn required<'a>(req: &'a Request, key: &str, missing: &str) -> Result<&'a str, LogicalError> {
    match string_field(&req.data, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(LogicalError::invalid(missing)),
    }
}

fn caller(req: &Request) -> Result<&TokenEntry, LogicalError> {
    req.token_entry
        .as_deref()
        .ok_or(LogicalError::PermissionDenied)
}

/// Vault's lookup answer. `id` is the token when the caller gave it, else empty.
fn lookup_data(entry: &TokenEntry, id: &str, now: chrono::DateTime<chrono::Utc>) -> Data {
    let ttl = entry
        .expire_time
        .map(|t| (t - now).num_seconds().max(0))
        .unwrap_or(0);
    let meta = if entry.meta.is_empty() {
        Value::Null
    } else {
        json!(entry.meta)
    };
    let mut data = json!({
        "accessor": entry.accessor,
        "creation_time": entry.creation_time.timestamp(),
        "creation_ttl": entry.ttl,
        "display_name": entry.display_name,
        "entity_id": entry.entity_id,
        "expire_time": entry.expire_time.map(rfc3339),
        "explicit_max_ttl": entry.explicit_max_ttl,
        "id": id,
        "issue_time": rfc3339(entry.creation_time),
        "meta": meta,
        "num_uses": entry.num_uses,
        "orphan": entry.parent_hash.is_none(),
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable && entry.expire_time.is_some(),
        "ttl": ttl,
        "type": entry.token_type,
    });
    if entry.period > 0 {
        data["period"] = json!(entry.period);
    }
    if let Some(at) = entry.last_renewal {
        data["last_renewal_time"] = json!(at.timestamp());
        data["last_renewal"] = json!(rfc3339(at));
    }
    if !entry.bound_cidrs.is_empty() {
        data["bound_cidrs"] = json!(entry.bound_cidrs);
    }
    match data {
        Value::Object(map) => map,
        _ => Data::new(),
    }
}

impl TokenStore {
    /// Root, or `sudo` on the request path under the caller's policies.
    async fn caller_has_sudo(
        &self,
        req: &Request,
        entry: &TokenEntry,
    ) -> Result<bool, LogicalError> {
        if entry.is_root() {
            return Ok(true);
        }
        match &self.policies {
            Some(store) => Ok(store.acl(&entry.policies).await?.has_sudo(&req.path)),
            None => Ok(false),
        }
    }

    /// `create`, `create-orphan` and `create/:role` (`role`: the name in the path, else a
    /// `role_name` field, as Vault reads either).
    async fn handle_create(
        &self,
        req: &Request,
        orphan_endpoint: bool,
        role: Option<&str>,
    ) -> Result<Response, LogicalError> {
        let parent = caller(req)?;
        let data = &req.data;
        if string_field(data, "id")?.is_some_and(|s| !s.is_empty()) {
            return Err(LogicalError::invalid(
                "specifying a token id is not supported by hushd",
            ));
        }
        let role = match role.or(string_field(data, "role_name")?.filter(|s| !s.is_empty())) {
            Some(name) => Some(self.must_role(name).await?),
            None => None,
        };
        if string_field(data, "entity_alias")?.is_some_and(|s| !s.is_empty()) {
            return Err(LogicalError::invalid(
                "'entity_alias' is only allowed in combination with token role",
            ));
        }
        match string_field(data, "type")?.unwrap_or("") {
            "" | "service" | "default" | "default-service" => {}
            "batch" | "default-batch" => {
                return Err(LogicalError::invalid(
                    "batch tokens are not supported by hushd",
                ))
            }
            _ => return Err(LogicalError::invalid("invalid 'token_type' value")),
        }
        let sudo = self.caller_has_sudo(req, parent).await?;
        let ttl = match field_secs(data, "ttl")? {
            Some(t) => Some(t),
            None => field_secs(data, "lease")?,
        };
        let params = CreateParams {
            policies: list_field(data, "policies")?,
            meta: meta_field(data)?,
            no_parent: bool_field(data, "no_parent")?.unwrap_or(false),
            orphan: orphan_endpoint,
            no_default_policy: bool_field(data, "no_default_policy")?.unwrap_or(false),
            renewable: bool_field(data, "renewable")?,
            ttl,
            explicit_max_ttl: field_secs(data, "explicit_max_ttl")?,
            period: field_secs(data, "period")?,
            display_name: string_field(data, "display_name")?.map(str::to_string),
            display_name_as_is: false,
            num_uses: num_uses_field(data)?,
            path: format!("auth/token/{}", req.rel_path()),
            sudo,
            bound_cidrs: Vec::new(),
            via_role: false,
        };
        let params = match &role {
            Some(role) => role.shape(params, parent)?,
            None => params,
        };
        let (auth, warnings) = self.create_with_warnings(params, Some(parent)).await?;
        Ok(Response {
            auth: Some(auth),
            warnings,
            ..Default::default()
        })
    }

    async fn handle_lookup(&self, req: &Request) -> Result<Response, LogicalError> {
        let token = required(req, "token", "missing token ID")?;
        match self.lookup(token).await? {
            Some(entry) => Ok(Response::data(Value::Object(lookup_data(
                &entry,
                token,
                self.now(),
            )))),
            None => Ok(bad_token()),
        }
    }

    fn handle_lookup_self(&self, req: &Request) -> Result<Response, LogicalError> {
        let entry = caller(req)?;
        let token = req
            .client_token
            .as_ref()
            .ok_or(LogicalError::PermissionDenied)?;
        let data = lookup_data(entry, token.expose_secret(), self.now());
        Ok(Response::data(Value::Object(data)))
    }

    async fn handle_lookup_accessor(&self, req: &Request) -> Result<Response, LogicalError> {
        let accessor = required(req, "accessor", "missing accessor")?;
        match self.lookup_accessor(accessor).await? {
            Some(entry) => Ok(Response::data(Value::Object(lookup_data(
                &entry,
                "",
                self.now(),
            )))),
            None => Err(LogicalError::invalid("invalid accessor")),
        }
    }

    async fn handle_renew(&self, req: &Request, token: &str) -> Result<Response, LogicalError> {
        let increment = field_secs(&req.data, "increment")?.unwrap_or(0);
        let Some(entry) = self.lookup(token).await? else {
            return Err(LogicalError::invalid("token not found"));
        };
        self.renew_entry(&entry, increment, SecretString::from(token.to_string()))
            .await
    }

    /// `renew-accessor`: as `renew`, found by accessor; the reply cannot name the token.
    async fn handle_renew_accessor(&self, req: &Request) -> Result<Response, LogicalError> {
        let accessor = required(req, "accessor", "missing accessor")?;
        let increment = field_secs(&req.data, "increment")?.unwrap_or(0);
        let Some(entry) = self.lookup_accessor(accessor).await? else {
            return Err(LogicalError::invalid("invalid accessor"));
        };
        self.renew_entry(&entry, increment, SecretString::from(String::new()))
            .await
    }

    async fn renew_entry(
        &self,
        entry: &TokenEntry,
        increment: u64,
        shown_token: SecretString,
    ) -> Result<Response, LogicalError> {
        let renewed = self.renew(&entry.id_hash, increment).await?;
        let auth = auth_for(&renewed.entry, shown_token, renewed.ttl);
        Ok(Response {
            auth: Some(auth),
            warnings: renewed.warnings,
            ..Default::default()
        })
    }

    async fn handle_revoke_accessor(&self, req: &Request) -> Result<Response, LogicalError> {
        let accessor = required(req, "accessor", "missing accessor")?;
        match self.lookup_accessor(accessor).await? {
            Some(entry) => {
                self.revoke_tree(&entry.id_hash).await?;
                Ok(Response::empty())
            }
            None => Ok(Response::empty().with_warning("No token found with this accessor")),
        }
    }

    async fn handle_revoke_orphan(&self, req: &Request) -> Result<Response, LogicalError> {
        let token = required(req, "token", "missing token ID")?;
        // The core already requires sudo here (see `root_paths`); check again regardless.
        if !self.caller_has_sudo(req, caller(req)?).await? {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to revoke and orphan",
            ));
        }
        let Some(entry) = self.load_token(token).await? else {
            return Err(LogicalError::invalid("token to revoke not found"));
        };
        self.revoke_orphan(&entry.id_hash).await?;
        Ok(Response::empty())
    }
}

#[async_trait::async_trait]
impl LogicalBackend for TokenStore {
    async fn handle(&self, req: &Request) -> Result<Response, LogicalError> {
        let op = req.operation;
        let write = matches!(op, Operation::Update | Operation::Create);
        let read_or_write = write || op == Operation::Read;
        let path = req.rel_path();
        match path {
            "create" if write => self.handle_create(req, false, None).await,
            "create-orphan" if write => self.handle_create(req, true, None).await,
            "lookup" if read_or_write => self.handle_lookup(req).await,
            "lookup-self" if read_or_write => self.handle_lookup_self(req),
            "lookup-accessor" if write => self.handle_lookup_accessor(req).await,
            "renew" if write => {
                let token = required(req, "token", "missing token ID")?;
                self.handle_renew(req, token).await
            }
            "renew-self" if write => {
                caller(req)?;
                let token = req
                    .client_token
                    .as_ref()
                    .ok_or(LogicalError::PermissionDenied)?;
                self.handle_renew(req, token.expose_secret()).await
            }
            "revoke" if write => {
                let token = required(req, "token", "missing token ID")?;
                if let Some(entry) = self.load_token(token).await? {
                    self.revoke_tree(&entry.id_hash).await?;
                }
                Ok(Response::empty())
            }
            "revoke-self" if write => {
                self.revoke_tree(&caller(req)?.id_hash).await?;
                Ok(Response::empty())
            }
            "renew-accessor" if write => self.handle_renew_accessor(req).await,
            "revoke-accessor" if write => self.handle_revoke_accessor(req).await,
            "revoke-orphan" if write => self.handle_revoke_orphan(req).await,
            "create" | "create-orphan" | "lookup" | "lookup-self" | "lookup-accessor" | "renew"
            | "renew-self" | "renew-accessor" | "revoke" | "revoke-self" | "revoke-accessor"
            | "revoke-orphan" => Err(LogicalError::UnsupportedOperation),
            p if p.starts_with("create/") && write => {
                let role = p.trim_start_matches("create/");
                self.handle_create(req, false, Some(role)).await
            }
            "roles" | "roles/" => self.handle_roles(req).await,
            p if p.starts_with("roles/") => self.handle_roles(req).await,
            _ => Err(LogicalError::UnsupportedPath),
        }
    }

    fn paths(&self) -> &'static [PathSpec] {
        PATHS
    }

    fn root_paths(&self) -> &'static [&'static str] {
        // `create-orphan` is ACL'd by path alone, as in Vault.
        &["revoke-orphan"]
    }
}

const CREATE: &[Field] = &[
    Field::opt("policies", Kind::Strings, "Policies of the new token."),
    Field::opt("ttl", Kind::Duration, "TTL of the new token."),
    Field::opt(
        "explicit_max_ttl",
        Kind::Duration,
        "A hard cap on its life.",
    ),
    Field::opt("period", Kind::Duration, "A periodic token's period."),
    Field::opt("no_parent", Kind::Boolean, "An orphan (needs sudo)."),
    Field::opt("no_default_policy", Kind::Boolean, "Leave out `default`."),
    Field::opt("renewable", Kind::Boolean, "Can it be renewed."),
    Field::opt("display_name", Kind::String, "Display name."),
    Field::opt("num_uses", Kind::Integer, "Uses allowed (0: unlimited)."),
    Field::opt("meta", Kind::Object, "String metadata."),
    Field::opt(
        "type",
        Kind::String,
        "`service` (hushd has no batch tokens).",
    ),
];
const TOKEN: &[Field] = &[Field::req("token", Kind::String, "The token.")];
const ACCESSOR: &[Field] = &[Field::req(
    "accessor",
    Kind::String,
    "The token's accessor.",
)];
const RENEW: &[Field] = &[
    Field::req("token", Kind::String, "The token."),
    Field::opt("increment", Kind::Duration, "Requested extension."),
];

/// The routes of `auth/token/`.
pub const PATHS: &[PathSpec] = &[
    PathSpec::new("create", "create", Ops::WRITE, "Create a child token.").body(CREATE),
    PathSpec::new(
        "create-orphan",
        "create-orphan",
        Ops::WRITE,
        "Create an orphan token.",
    )
    .body(CREATE),
    PathSpec::new(
        "create/{role+}",
        "create-role",
        Ops::WRITE,
        "Create a token from a role.",
    )
    .body(CREATE),
    PathSpec::new("lookup", "lookup", Ops::RW, "Look up a token.").body(TOKEN),
    PathSpec::new(
        "lookup-self",
        "lookup-self",
        Ops::RW,
        "Look up the caller's token.",
    ),
    PathSpec::new(
        "lookup-accessor",
        "lookup-accessor",
        Ops::WRITE,
        "Look up a token by accessor.",
    )
    .body(ACCESSOR),
    PathSpec::new("renew", "renew", Ops::WRITE, "Renew a token.").body(RENEW),
    PathSpec::new(
        "renew-self",
        "renew-self",
        Ops::WRITE,
        "Renew the caller's token.",
    )
    .body(&[Field::opt(
        "increment",
        Kind::Duration,
        "Requested extension.",
    )]),
    PathSpec::new(
        "renew-accessor",
        "renew-accessor",
        Ops::WRITE,
        "Renew a token by accessor.",
    )
    .body(ACCESSOR),
    PathSpec::new(
        "revoke",
        "revoke",
        Ops::WRITE,
        "Revoke a token and its children.",
    )
    .body(TOKEN),
    PathSpec::new(
        "revoke-self",
        "revoke-self",
        Ops::WRITE,
        "Revoke the caller's token.",
    ),
    PathSpec::new(
        "revoke-accessor",
        "revoke-accessor",
        Ops::WRITE,
        "Revoke a token by accessor.",
    )
    .body(ACCESSOR),
    PathSpec::new(
        "revoke-orphan",
        "revoke-orphan",
        Ops::WRITE,
        "Revoke a token, orphan its children.",
    )
    .body(TOKEN),
    PathSpec::new("roles", "roles", Ops::RL, "List token roles."),
    PathSpec::new(
        "roles/{name+}",
        "role",
        Ops::RWD,
        "Read, write or delete a token role.",
    )
    .body(&[
        Field::opt(
            "allowed_policies",
            Kind::Strings,
            "Policies tokens may have.",
        ),
        Field::opt(
            "disallowed_policies",
            Kind::Strings,
            "Policies tokens may not have.",
        ),
        Field::opt("orphan", Kind::Boolean, "Tokens are orphans."),
        Field::opt("renewable", Kind::Boolean, "Tokens can be renewed."),
        Field::opt("token_period", Kind::Duration, "Periodic tokens."),
        Field::opt(
            "token_explicit_max_ttl",
            Kind::Duration,
            "Hard cap on life.",
        ),
    ]),
];

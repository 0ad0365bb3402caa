//! The token store's storage and the operations the core and auth methods call.
//!
//! Storage layout inside the view (`sys/token/`):
//! - `salt`: the 32-byte HMAC key, made on first open;
//! - `id/<hmac-hex>`: the [`TokenEntry`] as JSON;
//! - `accessor/<accessor>`: the entry's HMAC;
//! - `parent/<parent-hmac>/<child-hmac>`: empty, one per child, for tree revocation.
//!
//! With a lease index ([`TokenStore::with_lease_index`]), every token with a TTL also has a
//! lease (`sys/expire/`) written in the same atomic batch as the token: the expiration
//! manager's one expiry task revokes it when due, and renewals move it.
//!
//! The token string itself is never stored. Every read-modify-write of entries (use counts,
//! renewals, creation under a parent, revocation) runs under one async lock, so a revocation
//! cannot race with a write that would bring a token back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cache::TokenCache;
use super::TokenEntry;
use crate::barrier::BarrierView;
use crate::core::lease::{LeaseEntry, LeaseIndex, TokenRevocationHook};
use crate::core::policy::PolicyStore;
use crate::logical::ttl::{add_seconds, calculate_ttl, TtlInput};
use crate::logical::{Auth, LogicalError};
use crate::storage::Op;

/// Prefix of every service token.
pub const TOKEN_PREFIX: &str = "hvs.";
/// Random base62 characters after the prefix, and in an accessor.
pub const TOKEN_RANDOM_LEN: usize = 24;
const SALT_KEY: &str = "salt";
/// Parent-index deletions per storage batch during revocation.
const BATCH: usize = 500;

pub use crate::logical::ttl::Clock;

/// What a new token should be. Durations are seconds; `None` / 0 mean "not set".
#[derive(Debug, Clone, Default)]
pub struct CreateParams {
    /// Requested policies; empty inherits the parent's.
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    /// Make an orphan even though there is a parent (root or sudo only).
    pub no_parent: bool,
    /// Make an orphan because the caller used `create-orphan`: that path is ACL'd by policy,
    /// so no sudo is needed (as in Vault); the policy-subset rule still applies.
    pub orphan: bool,
    pub no_default_policy: bool,
    /// Defaults to true.
    pub renewable: Option<bool>,
    pub ttl: Option<u64>,
    pub explicit_max_ttl: Option<u64>,
    pub period: Option<u64>,
    /// Shown as `token-<name>`; sanitised.
    pub display_name: Option<String>,
    /// Auth-method logins: `display_name` is shown as given (e.g. `approle`), not as
    /// `token-<name>`.
    pub display_name_as_is: bool,
    pub num_uses: u64,
    /// The creating path, e.g. `auth/token/create`.
    pub path: String,
    /// The caller has `sudo` on the creating path (or is root): lifts the policy-subset rule
    /// and allows `no_parent` and `period`.
    pub sudo: bool,
    /// CIDR blocks the token is bound to (auth-method logins, token roles).
    pub bound_cidrs: Vec<String>,
    /// Made through a token role (`auth/token/create/:role`), which has already decided the
    /// policies (see `roles.rs`) and the period: neither is checked against the parent here.
    pub via_role: bool,
}

/// The result of a renewal.
#[derive(Debug)]
pub struct Renewed {
    pub entry: TokenEntry,
    /// Seconds from now.
    pub ttl: u64,
    pub warnings: Vec<String>,
}

/// Service tokens, stored by keyed hash.
pub struct TokenStore {
    pub(super) view: BarrierView,
    hmac_key: Zeroizing<Vec<u8>>,
    clock: Clock,
    pub(super) lock: tokio::sync::Mutex<()>,
    pub(super) policies: Option<Arc<PolicyStore>>,
    pub(super) cache: TokenCache,
    /// Where token leases go; `None`: tokens have no leases (some unit tests).
    pub(super) leases: Option<Arc<LeaseIndex>>,
    /// Told before tokens are revoked, so the leases they created go with them.
    pub(super) revocation_hook:
        parking_lot::RwLock<Option<std::sync::Weak<dyn TokenRevocationHook>>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

fn random_base62(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

fn well_formed(token: &str) -> bool {
    // Generated tokens are `hvs.` + 24 base62 chars, but a dev root token may be any id the
    // operator chose. Tokens are only ever hashed, so accept any short printable ASCII.
    !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Accessors are 24 base62 characters; anything else cannot exist (and must not reach a
/// storage key).
fn valid_accessor(accessor: &str) -> bool {
    accessor.len() == TOKEN_RANDOM_LEN && accessor.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn expired(entry: &TokenEntry, now: DateTime<Utc>) -> bool {
    entry.expire_time.is_some_and(|t| t <= now)
}

fn expiry(now: DateTime<Utc>, ttl: u64) -> Result<DateTime<Utc>, LogicalError> {
    add_seconds(now, ttl).ok_or_else(|| LogicalError::invalid("the TTL is too large"))
}

/// Entry hashes are lower-case hex; anything else cannot exist (and must not reach a
/// storage key).
fn is_hash(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn id_key(hash: &str) -> String {
    format!("id/{hash}")
}

/// Lower-case, trim, drop empties, de-duplicate and sort; `root` swallows everything else.
pub(super) fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".to_string()];
    }
    if add_default {
        out.push("default".to_string());
    }
    out.sort();
    out.dedup();
    out
}

/// Vault's display name: `token` or `token-<name>` with anything but `[A-Za-z0-9-]` as `-`.
fn display_name(name: Option<&str>) -> String {
    match name.filter(|n| !n.is_empty()) {
        None => "token".to_string(),
        Some(n) => {
            let full: String = format!("token-{n}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            full.strip_suffix('-').map(str::to_string).unwrap_or(full)
        }
    }
}

/// The `auth` block for `entry` with `token`.
pub(super) fn auth_for(entry: &TokenEntry, token: SecretString, ttl: u64) -> Auth {
    Auth {
        client_token: token,
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        // Always an object (`{}` without metadata), as hushd has always answered.
        metadata: Some(entry.meta.clone()),
        lease_duration: ttl,
        renewable: entry.renewable && ttl > 0,
        orphan: entry.parent_hash.is_none(),
        num_uses: entry.num_uses,
        token_type: entry.token_type.clone(),
        entity_id: entry.entity_id.clone(),
        identity_policies: None,
    }
}

impl TokenStore {
    /// Open the store over `view`, making the HMAC key on first use.
    pub async fn open(view: BarrierView) -> Result<TokenStore, LogicalError> {
        Self::open_with_clock(view, Arc::new(Utc::now)).await
    }

    /// As [`TokenStore::open`], with an injected clock.
    pub async fn open_with_clock(
        view: BarrierView,
        clock: Clock,
    ) -> Result<TokenStore, LogicalError> {
        let key = match view.get(SALT_KEY).await? {
            Some(key) if key.len() == 32 => Zeroizing::new(key.to_vec()),
            Some(_) => {
                return Err(LogicalError::Internal(
                    "the token store's HMAC key is corrupt".into(),
                ))
            }
            None => {
                let mut key = Zeroizing::new(vec![0u8; 32]);
                rand::rng().fill_bytes(&mut key);
                view.put(SALT_KEY, key.to_vec()).await?;
                key
            }
        };
        Ok(TokenStore {
            view,
            hmac_key: key,
            clock,
            lock: tokio::sync::Mutex::new(()),
            policies: None,
            cache: TokenCache::default(),
            leases: None,
            revocation_hook: parking_lot::RwLock::new(None),
        })
    }

    /// Let the store consult policies: for the caller's `sudo` on token endpoints and for
    /// "policy does not exist" warnings. Without it only root counts as privileged.
    pub fn with_policy_store(mut self, policies: Arc<PolicyStore>) -> Self {
        self.policies = Some(policies);
        self
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// HMAC-SHA256 of `token` under the store's key, hex: the storage key of its entry.
    pub fn hmac(&self, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key)
            .expect("HMAC accepts any key length");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    async fn load(&self, hash: &str) -> Result<Option<TokenEntry>, LogicalError> {
        if !is_hash(hash) {
            return Ok(None);
        }
        Ok(self.view.get_json::<TokenEntry>(&id_key(hash)).await?)
    }

    /// Load the entry for `token` and check it is the one asked for. `None` when malformed
    /// or unknown; expired entries are returned as they are.
    pub(super) async fn load_token(&self, token: &str) -> Result<Option<TokenEntry>, LogicalError> {
        if !well_formed(token) {
            return Ok(None);
        }
        self.load_token_hashed(&self.hmac(token)).await
    }

    /// As [`TokenStore::load_token`] for a token already hashed with [`TokenStore::hmac`].
    async fn load_token_hashed(&self, hash: &str) -> Result<Option<TokenEntry>, LogicalError> {
        let Some(entry) = self.load(hash).await? else {
            return Ok(None);
        };
        if !bool::from(entry.id_hash.as_bytes().ct_eq(hash.as_bytes())) {
            tracing::error!(accessor = %entry.accessor, "token entry stored under the wrong key");
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// A live token's entry, without spending a use. `None` when unknown, malformed or
    /// expired.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>, LogicalError> {
        Ok(self
            .load_token(token)
            .await?
            .filter(|e| !expired(e, self.now())))
    }

    /// A live token's entry by accessor.
    pub async fn lookup_accessor(
        &self,
        accessor: &str,
    ) -> Result<Option<TokenEntry>, LogicalError> {
        if !valid_accessor(accessor) {
            return Ok(None);
        }
        let Some(hash) = self.view.get(&format!("accessor/{accessor}")).await? else {
            return Ok(None);
        };
        let hash = String::from_utf8_lossy(&hash).into_owned();
        Ok(self.load(&hash).await?.filter(|e| !expired(e, self.now())))
    }

    /// Make the root token: policy `root`, no TTL, not renewable, no parent.
    pub async fn create_root_token(&self) -> Result<SecretString, LogicalError> {
        let token =
            SecretString::from(format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_LEN)));
        self.create_root_token_with_id(&token).await?;
        Ok(token)
    }

    /// A root token with a caller-chosen id (`hushd --dev --dev-root-token`).
    pub async fn create_root_token_with_id(
        &self,
        token: &SecretString,
    ) -> Result<(), LogicalError> {
        if token.expose_secret().is_empty() {
            return Err(LogicalError::invalid("the root token must not be empty"));
        }
        let entry = TokenEntry {
            id_hash: self.hmac(token.expose_secret()),
            accessor: random_base62(TOKEN_RANDOM_LEN),
            parent_hash: None,
            policies: vec!["root".to_string()],
            meta: BTreeMap::new(),
            display_name: "root".to_string(),
            num_uses: 0,
            creation_time: self.now(),
            ttl: 0,
            explicit_max_ttl: 0,
            period: 0,
            renewable: false,
            expire_time: None,
            path: "auth/token/root".to_string(),
            token_type: "service".to_string(),
            entity_id: String::new(),
            bound_cidrs: Vec::new(),
            last_renewal: None,
        };
        self.write_new(&entry).await
    }

    /// Write `ops` and then drop every token entry they touch from the cache, even when the
    /// write failed (its outcome is unknown). The only way token storage is written.
    async fn write(&self, ops: Vec<Op>) -> Result<(), LogicalError> {
        let id_prefix = format!("{}id/", self.view.prefix());
        let hashes: Vec<String> = ops
            .iter()
            .filter_map(|op| op.key().strip_prefix(&id_prefix).map(str::to_string))
            .collect();
        let result = self.view.write(ops).await;
        if !hashes.is_empty() {
            self.cache.invalidate(hashes.iter().map(String::as_str));
        }
        Ok(result?)
    }

    /// Write one entry (a spent use, a renewal, a new parent).
    async fn put_entry(&self, entry: &TokenEntry) -> Result<(), LogicalError> {
        self.write(vec![self
            .view
            .put_json_op(&id_key(&entry.id_hash), entry)?])
            .await
    }

    async fn write_new(&self, entry: &TokenEntry) -> Result<(), LogicalError> {
        let mut ops = vec![
            self.view.put_json_op(&id_key(&entry.id_hash), entry)?,
            self.view.put_op(
                &format!("accessor/{}", entry.accessor),
                entry.id_hash.as_bytes().to_vec(),
            )?,
        ];
        if let Some(parent) = &entry.parent_hash {
            ops.push(
                self.view
                    .put_op(&format!("parent/{parent}/{}", entry.id_hash), Vec::new())?,
            );
        }
        let lease = self.leases.as_ref().zip(LeaseEntry::for_token(entry));
        if let Some((index, lease)) = &lease {
            ops.extend(index.put_ops(lease, None)?);
        }
        self.write(ops).await?;
        if let Some((index, lease)) = lease {
            index.note_due(lease.due);
        }
        Ok(())
    }

    /// Check a presented token. Unknown, malformed, expired and revoked tokens are all
    /// `PermissionDenied`. A token with limited uses spends one; the use that brings it to 0
    /// still succeeds, and the token is revoked (with its children) before this returns.
    pub async fn authenticate(
        &self,
        token: &SecretString,
    ) -> Result<Arc<TokenEntry>, LogicalError> {
        let token = token.expose_secret();
        if !well_formed(token) {
            return Err(LogicalError::PermissionDenied);
        }
        let hash = self.hmac(token);
        let generation = match self.cache.get(&hash) {
            // Cached entries have no use limit; expiry is checked as for a stored one.
            Ok(entry) if !expired(&entry, self.now()) => return Ok(entry),
            Ok(_) => None,
            Err(generation) => Some(generation),
        };
        let Some(entry) = self.load_token_hashed(&hash).await? else {
            return Err(LogicalError::PermissionDenied);
        };
        if expired(&entry, self.now()) {
            self.revoke_tree(&entry.id_hash).await?;
            return Err(LogicalError::PermissionDenied);
        }
        if entry.num_uses == 0 {
            let entry = Arc::new(entry);
            if let Some(generation) = generation {
                self.cache.insert(generation, entry.clone());
            }
            return Ok(entry);
        }
        let _guard = self.lock.lock().await;
        // Re-read under the lock: another request may have spent or revoked it meanwhile.
        let Some(mut entry) = self.load(&entry.id_hash).await? else {
            return Err(LogicalError::PermissionDenied);
        };
        if expired(&entry, self.now()) {
            self.revoke_tree_locked(&entry.id_hash).await?;
            return Err(LogicalError::PermissionDenied);
        }
        if entry.num_uses == 0 {
            return Ok(Arc::new(entry));
        }
        entry.num_uses -= 1;
        if entry.num_uses == 0 {
            self.revoke_tree_locked(&entry.id_hash).await?;
        } else {
            self.put_entry(&entry).await?;
        }
        Ok(Arc::new(entry))
    }

    /// Create a token; `parent` is the caller's entry (`None` for auth-method logins, which
    /// make orphans).
    pub async fn create(
        &self,
        params: CreateParams,
        parent: Option<&TokenEntry>,
    ) -> Result<Auth, LogicalError> {
        Ok(self.create_with_warnings(params, parent).await?.0)
    }

    /// As [`TokenStore::create`], also returning warnings (capped TTLs, unknown policies).
    pub async fn create_with_warnings(
        &self,
        params: CreateParams,
        parent: Option<&TokenEntry>,
    ) -> Result<(Auth, Vec<String>), LogicalError> {
        let privileged = params.sudo || parent.is_none_or(TokenEntry::is_root);
        let requested = sanitize_policies(&params.policies, false);
        let (base, add_default) = match parent {
            None => (requested, !params.no_default_policy),
            Some(_) if params.via_role => (requested, !params.no_default_policy),
            Some(p) if requested.is_empty() => (sanitize_policies(&p.policies, false), false),
            Some(p) if !privileged => {
                let parent_set = sanitize_policies(&p.policies, false);
                let subset = requested.iter().all(|r| parent_set.iter().any(|q| q == r));
                if !subset {
                    return Err(LogicalError::invalid(
                        "child policies must be subset of parent",
                    ));
                }
                let parent_has_default = parent_set.iter().any(|q| q == "default");
                (requested, !params.no_default_policy && parent_has_default)
            }
            Some(_) => (requested, !params.no_default_policy),
        };
        let mut policies = sanitize_policies(&base, add_default);
        if params.no_default_policy {
            policies.retain(|p| p != "default");
        }
        let is_root_token = policies.iter().any(|p| p == "root");
        if is_root_token && !parent.is_some_and(TokenEntry::is_root) {
            return Err(LogicalError::invalid(
                "root tokens may not be created without parent token being root",
            ));
        }
        if params.no_parent && !privileged {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to create orphan token",
            ));
        }

        let now = self.now();
        let explicit_max_ttl = params.explicit_max_ttl.unwrap_or(0);
        let period = params.period.unwrap_or(0);
        if period > 0 && !privileged && !params.via_role {
            return Err(LogicalError::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let mut ttl = params.ttl.unwrap_or(0);
        let mut warnings = Vec::new();
        if period > 0 || ttl > 0 || !is_root_token {
            let input = TtlInput {
                increment: 0,
                ttl,
                period,
                explicit_max_ttl,
            };
            let (t, w) = calculate_ttl(now, now, input)?;
            ttl = t;
            warnings = w;
        }
        if ttl == 0 && explicit_max_ttl > 0 {
            ttl = explicit_max_ttl;
        }
        let mut renewable = params.renewable.unwrap_or(true);
        if ttl == 0 {
            if parent.is_some_and(|p| p.expire_time.is_some()) {
                return Err(LogicalError::invalid(
                    "expiring root tokens cannot create non-expiring root tokens",
                ));
            }
            renewable = false;
        }

        let token =
            SecretString::from(format!("{TOKEN_PREFIX}{}", random_base62(TOKEN_RANDOM_LEN)));
        let orphan = params.no_parent || params.orphan || parent.is_none();
        let entry = TokenEntry {
            id_hash: self.hmac(token.expose_secret()),
            accessor: random_base62(TOKEN_RANDOM_LEN),
            parent_hash: if orphan {
                None
            } else {
                parent.map(|p| p.id_hash.clone())
            },
            policies,
            meta: params.meta,
            display_name: match params.display_name {
                Some(name) if params.display_name_as_is => name,
                other => display_name(other.as_deref()),
            },
            num_uses: params.num_uses,
            creation_time: now,
            ttl,
            explicit_max_ttl,
            period,
            renewable,
            expire_time: if ttl > 0 {
                Some(expiry(now, ttl)?)
            } else {
                None
            },
            path: params.path,
            token_type: "service".to_string(),
            entity_id: String::new(),
            bound_cidrs: params.bound_cidrs,
            last_renewal: None,
        };

        {
            // The lock orders a child's creation against its parent's revocation. An orphan
            // (every auth-method login, `create-orphan`) is not linked to a parent and has a
            // fresh random id, so it does not queue behind other tokens' fsyncs.
            let _guard = match parent {
                Some(_) if !orphan => Some(self.lock.lock().await),
                _ => None,
            };
            if let Some(parent) = parent {
                // The caller's entry is a snapshot: check the parent is still alive and not
                // use-limited (a child would let it escape its use count).
                let stored = self.load(&parent.id_hash).await?;
                let Some(stored) = stored.filter(|e| !expired(e, now)) else {
                    return Err(LogicalError::invalid(
                        "parent token lookup failed: no parent found",
                    ));
                };
                if stored.num_uses > 0 {
                    return Err(LogicalError::invalid(
                        "restricted use token cannot generate child tokens",
                    ));
                }
            }
            self.write_new(&entry).await?;
        }

        if let Some(store) = &self.policies {
            for name in entry.policies.iter().filter(|p| *p != "root") {
                if store.get(name).await?.is_none() {
                    warnings.push(format!("Policy {name:?} does not exist"));
                }
            }
        }
        tracing::debug!(accessor = %entry.accessor, policies = ?entry.policies, ttl, "token created");
        Ok((auth_for(&entry, token, ttl), warnings))
    }

    /// Extend the token `id_hash` by `increment` seconds from now (0: by its own TTL),
    /// within its explicit max TTL and the system maximum. Periodic tokens get their period.
    pub async fn renew(&self, id_hash: &str, increment: u64) -> Result<Renewed, LogicalError> {
        let _guard = self.lock.lock().await;
        let now = self.now();
        let Some(mut entry) = self.load(id_hash).await?.filter(|e| !expired(e, now)) else {
            return Err(LogicalError::invalid("token not found"));
        };
        if !entry.renewable || entry.expire_time.is_none() {
            return Err(LogicalError::invalid("lease is not renewable"));
        }
        let input = TtlInput {
            increment,
            ttl: entry.ttl,
            period: entry.period,
            explicit_max_ttl: entry.explicit_max_ttl,
        };
        let (ttl, warnings) = calculate_ttl(now, entry.creation_time, input)?;
        entry.expire_time = Some(expiry(now, ttl)?);
        entry.last_renewal = Some(now);
        let mut ops = vec![self.view.put_json_op(&id_key(&entry.id_hash), &entry)?];
        let lease = self.leases.as_ref().zip(LeaseEntry::for_token(&entry));
        if let Some((index, lease)) = lease {
            let old = index.load(&lease.lease_id).await?;
            let lease = LeaseEntry {
                last_renewal: Some(now),
                ..lease
            };
            ops.extend(index.put_ops(&lease, old.as_ref())?);
            self.write(ops).await?;
            index.note_due(lease.due);
        } else {
            self.write(ops).await?;
        }
        Ok(Renewed {
            entry,
            ttl,
            warnings,
        })
    }

    /// Revoke the token `id_hash` and all its descendants. Revoking what is gone succeeds.
    pub async fn revoke_tree(&self, id_hash: &str) -> Result<(), LogicalError> {
        if !is_hash(id_hash) {
            return Ok(());
        }
        let _guard = self.lock.lock().await;
        self.revoke_tree_locked(id_hash).await
    }

    /// Iterative depth-first walk; deletes children before parents so that a failure half
    /// way leaves every surviving token still reachable from its parent.
    async fn revoke_tree_locked(&self, root: &str) -> Result<(), LogicalError> {
        let mut order: Vec<String> = Vec::new();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack = vec![root.to_string()];
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash.clone()) {
                continue;
            }
            let kids: Vec<String> = self
                .view
                .list(&format!("parent/{hash}/"))
                .await?
                .into_iter()
                .map(|k| k.trim_end_matches('/').to_string())
                .collect();
            stack.extend(kids.iter().cloned());
            children.insert(hash.clone(), kids);
            order.push(hash);
        }
        // Their leases first (Vault's order): a crash half way leaves tokens, not leases
        // without the token that owns them.
        self.tokens_revoked(&order).await?;
        tracing::debug!(tokens = order.len(), "revoking a token tree");
        for hash in order.iter().rev() {
            let mut ops = Vec::new();
            for chunk in children[hash].chunks(BATCH) {
                let links = chunk
                    .iter()
                    .map(|c| self.view.delete_op(&format!("parent/{hash}/{c}")))
                    .collect::<Result<Vec<_>, _>>()?;
                self.write(links).await?;
            }
            if let Some(entry) = self.load(hash).await? {
                ops.extend(self.lease_delete_ops(&entry).await?);
                ops.push(
                    self.view
                        .delete_op(&format!("accessor/{}", entry.accessor))?,
                );
                if let Some(parent) = &entry.parent_hash {
                    ops.push(self.view.delete_op(&format!("parent/{parent}/{hash}"))?);
                }
            }
            ops.push(self.view.delete_op(&id_key(hash))?);
            self.write(ops).await?;
        }
        Ok(())
    }

    /// Revoke only `id_hash`; its children become orphans.
    pub async fn revoke_orphan(&self, id_hash: &str) -> Result<(), LogicalError> {
        let _guard = self.lock.lock().await;
        let Some(entry) = self.load(id_hash).await? else {
            return Err(LogicalError::invalid("token to revoke not found"));
        };
        self.tokens_revoked(&[id_hash.to_string()]).await?;
        let kids = self.view.list(&format!("parent/{id_hash}/")).await?;
        for chunk in kids.chunks(BATCH) {
            let mut ops = Vec::new();
            for kid in chunk {
                let kid = kid.trim_end_matches('/');
                if let Some(mut child) = self.load(kid).await? {
                    child.parent_hash = None;
                    ops.push(self.view.put_json_op(&id_key(kid), &child)?);
                }
                ops.push(self.view.delete_op(&format!("parent/{id_hash}/{kid}"))?);
            }
            self.write(ops).await?;
        }
        let mut ops = self.lease_delete_ops(&entry).await?;
        ops.push(self.view.delete_op(&id_key(id_hash))?);
        ops.push(
            self.view
                .delete_op(&format!("accessor/{}", entry.accessor))?,
        );
        if let Some(parent) = &entry.parent_hash {
            ops.push(self.view.delete_op(&format!("parent/{parent}/{id_hash}"))?);
        }
        self.write(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> TokenStore {
        let backend = Arc::new(crate::storage::MemoryBackend::new());
        let barrier = Arc::new(crate::barrier::Barrier::new(backend));
        barrier
            .initialize(&crate::barrier::KeyBytes::random())
            .await
            .unwrap();
        TokenStore::open(BarrierView::new(barrier, "sys/token/"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn concurrent_uses_never_exceed_the_limit() {
        let ts = store().await;
        let params = CreateParams {
            policies: vec!["a".into()],
            num_uses: 3,
            ..Default::default()
        };
        let token = ts.create(params, None).await.unwrap().client_token;
        let a = || ts.authenticate(&token);
        let results = tokio::join!(a(), a(), a(), a(), a(), a());
        let ok = [
            results.0, results.1, results.2, results.3, results.4, results.5,
        ]
        .into_iter()
        .filter(Result::is_ok)
        .count();
        assert_eq!(ok, 3);
    }

    #[tokio::test]
    async fn odd_hashes_and_accessors_are_not_found() {
        let ts = store().await;
        ts.revoke_tree("../salt").await.unwrap();
        ts.revoke_tree("").await.unwrap();
        assert!(ts.revoke_orphan("../salt").await.is_err());
        assert!(ts.lookup_accessor("../../salt").await.unwrap().is_none());
        assert!(ts.view.get(SALT_KEY).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn auth_method_logins_make_orphans_without_a_subset_check() {
        let ts = store().await;
        let params = CreateParams {
            policies: vec!["Ops".into()],
            ..Default::default()
        };
        let auth = ts.create(params, None).await.unwrap();
        assert!(auth.orphan);
        assert_eq!(auth.policies, vec!["default", "ops"]);
        let root = CreateParams {
            policies: vec!["root".into()],
            ..Default::default()
        };
        assert_eq!(ts.create(root, None).await.unwrap_err().status(), 400);
    }
}

//! Who receives which event: the access rules of `sys/events/subscribe`, checked again for
//! every event (Vault 1.15+).
//!
//! Subscribing needs `read` on `sys/events/subscribe/<event type>` ([`super::Core::handle`]
//! checks it, and audits the request, before the connection is upgraded). Each event is then
//! sent only when its type matches the subscription's glob and the rule governing the
//! event's data path grants `read` and `subscribe` with a matching `subscribe_event_types`
//! glob ([`Acl::allows_event`]), so a subscriber never learns the name of a path it cannot
//! read. The token
//! is looked up again at most every [`RECHECK`]: a revoked or expired token, or a sealed
//! store, ends the subscription.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::policy::Acl;
use super::state::Core;
use crate::logical::events::{glob_matches, Event};
use crate::logical::LogicalError;

/// How long a token check holds: a revoked token's subscription ends within this.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One subscription's view of the bus.
pub struct Subscriber {
    token: SecretString,
    remote: Option<IpAddr>,
    pattern: String,
    checked: Option<(Instant, Arc<Acl>)>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The subscription of `token` (already authorised by `Core::handle`) to the event types
    /// matching `pattern`.
    pub fn new(token: SecretString, remote: Option<IpAddr>, pattern: impl Into<String>) -> Self {
        Subscriber {
            token,
            remote,
            pattern: pattern.into(),
            checked: None,
        }
    }

    /// The event-type glob subscribed to.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The token's ACL, looked up again when the last check is older than [`RECHECK`] (or
    /// `now` is forced). An error ends the subscription: the token is gone, or the store is
    /// sealed.
    pub async fn check(&mut self, core: &Core, force: bool) -> Result<Arc<Acl>, LogicalError> {
        if let Some((at, acl)) = &self.checked {
            if !force && at.elapsed() < RECHECK {
                return Ok(acl.clone());
            }
        }
        let st = core.unsealed()?;
        // A lookup, not an authentication: a subscription spends no uses of the token.
        let entry = st
            .tokens
            .lookup(self.token.expose_secret())
            .await?
            .ok_or(LogicalError::PermissionDenied)?;
        if !crate::logical::cidr::allowed(&entry.bound_cidrs, self.remote) {
            return Err(LogicalError::PermissionDenied);
        }
        let acl = st.policies.acl(&entry.policies).await?;
        self.checked = Some((Instant::now(), acl.clone()));
        Ok(acl)
    }

    /// Whether `event` goes to this subscriber; an error ends the subscription.
    pub async fn allows(&mut self, core: &Core, event: &Event) -> Result<bool, LogicalError> {
        if !glob_matches(&self.pattern, &event.event_type) {
            return Ok(false);
        }
        let acl = self.check(core, false).await?;
        Ok(visible(&acl, event))
    }
}

/// May a token with `acl` see `event`? Root sees everything; others need `read` and
/// `subscribe` on the path the event is about, with a matching `subscribe_event_types`.
pub fn visible(acl: &Acl, event: &Event) -> bool {
    acl.allows_event(event.access_path(), &event.event_type)
}

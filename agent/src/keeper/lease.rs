//! Leased secrets (dynamic credentials such as `database/creds/ro`): when to renew, when to
//! lease anew, and when to revoke a lease that was replaced.
//!
//! A read that answers with a `lease_id` is not read again at the refresh interval (each read
//! would mint another credential). Instead the lease is renewed at about 2/3 of its remaining
//! time (with jitter), asking for its original TTL again. Once a renewal comes back shorter
//! than asked (the lease's max TTL is near), or the lease is not renewable, or the agent's
//! token changed (leases die with the token that made them), the next due time leases **new**
//! credentials instead: with about 1/3 of the old lease still to run, the new ones are
//! rendered and swapped in together (every field of a source comes from the same read), the
//! app is told, and the old lease is revoked after a grace period (never later than it would
//! expire anyway). The app never holds expired credentials.

use std::time::{Duration, Instant};

use crate::retry::backoff::renew_delay;

/// One live lease of a source.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    /// The TTL the lease was issued with; each renewal asks for this again.
    pub ttl: Duration,
    pub renewable: bool,
    pub expires: Instant,
    /// When to act next (renew, or lease anew).
    pub due: Instant,
    /// The last renewal granted less than asked: the max TTL is near.
    pub capped: bool,
    /// The agent token's generation the lease was made under.
    pub token_gen: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A lease ID is not a credential (it cannot read anything), but keep logs short.
        f.debug_struct("Lease")
            .field("id", &self.id)
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("capped", &self.capped)
            .finish_non_exhaustive()
    }
}

/// What a leased source needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until then (`None`: a lease without a TTL never needs anything).
    Wait(Option<Instant>),
    Renew,
    /// Read the secret again: a new lease with new credentials.
    NewLease,
}

/// Least time the old credentials still have when new ones are swapped in: stores keep expiry
/// times to the second (PostgreSQL's `VALID UNTIL` from a truncated timestamp), so a smaller
/// margin could hand the app credentials that the database already refuses.
const MIN_MARGIN: Duration = Duration::from_secs(2);

/// When to lease anew, with `left` to run: at about 2/3 of it, but at least [`MIN_MARGIN`]
/// before the end (at once when less is left).
fn new_lease_due(now: Instant, left: Duration) -> Instant {
    now + renew_delay(left).min(left.saturating_sub(MIN_MARGIN))
}

impl Lease {
    /// A lease just issued (`ttl_secs` from `now`).
    pub fn issued(
        id: String,
        ttl_secs: u64,
        renewable: bool,
        now: Instant,
        token_gen: u64,
    ) -> Self {
        let ttl = Duration::from_secs(ttl_secs);
        Lease {
            id,
            ttl,
            renewable,
            expires: now + ttl,
            due: if renewable {
                now + renew_delay(ttl)
            } else {
                new_lease_due(now, ttl)
            },
            capped: false,
            token_gen,
        }
    }

    /// What to do at `now`, with the agent's token at generation `token_gen`.
    pub fn action(&self, now: Instant, token_gen: u64) -> Action {
        if self.ttl.is_zero() {
            return Action::Wait(None);
        }
        if token_gen != self.token_gen {
            return Action::NewLease;
        }
        if now < self.due {
            return Action::Wait(Some(self.due));
        }
        if self.renewable && !self.capped {
            Action::Renew
        } else {
            Action::NewLease
        }
    }

    /// A renewal granted `granted_secs` from `now`.
    pub fn renewed(&mut self, granted_secs: u64, renewable: bool, now: Instant) {
        let granted = Duration::from_secs(granted_secs);
        self.expires = now + granted;
        self.renewable = renewable;
        // Less than asked (the store counts the increment from now): the max TTL is near.
        self.capped = granted < self.ttl;
        self.due = if self.capped || !renewable {
            new_lease_due(now, granted)
        } else {
            now + renew_delay(granted)
        };
    }

    /// Adopted with `left` to run; `capped` when it cannot outlive that (its token ends first).
    pub fn adopted(&mut self, now: Instant, left: Duration, capped: bool) {
        self.expires = now + left;
        self.capped = capped;
        self.due = if capped || !self.renewable {
            new_lease_due(now, left)
        } else {
            now + renew_delay(left)
        };
    }

    /// When a replaced lease should be revoked: after `grace`, unless it expires before.
    /// `None`: it runs out by itself first.
    pub fn revoke_at(&self, now: Instant, grace: Duration) -> Option<Instant> {
        let at = now + grace;
        (at < self.expires || self.ttl.is_zero()).then_some(at)
    }
}

/// A replaced lease waiting for its grace period to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retiring {
    pub id: String,
    pub revoke_at: Instant,
    /// Past this there is nothing left to revoke.
    pub expires: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn renews_at_about_two_thirds_then_leases_anew_once_capped() {
        let t0 = Instant::now();
        let mut l = Lease::issued("db/creds/ro/1".into(), 30, true, t0, 7);
        // 2/3 of 30 s minus up to 10% jitter: between 17 and 20 s.
        assert!(
            l.due >= t0 + secs(17) && l.due <= t0 + secs(20),
            "{:?}",
            l.due - t0
        );
        assert_eq!(l.action(t0, 7), Action::Wait(Some(l.due)));
        let t1 = l.due;
        assert_eq!(l.action(t1, 7), Action::Renew);
        l.renewed(30, true, t1);
        assert!(!l.capped);
        assert_eq!(l.expires, t1 + secs(30));
        // The max TTL allows only 12 more seconds: the next due time leases anew.
        let t2 = l.due;
        l.renewed(12, true, t2);
        assert!(l.capped);
        assert!(l.due <= t2 + secs(8) && l.due > t2, "{:?}", l.due - t2);
        assert_eq!(l.action(l.due, 7), Action::NewLease);
        assert!(
            l.due < l.expires,
            "new credentials come before the old expire"
        );
        // Any shortfall is a cap; with little left, new credentials at once, 2 s before the end.
        let t3 = l.due;
        l.renewed(29, true, t3);
        assert!(l.capped);
        assert!(l.expires - l.due >= MIN_MARGIN);
        l.renewed(1, true, t3);
        assert_eq!(l.due, t3);
        l.renewed(3, true, t3);
        assert_eq!(l.due, t3 + secs(1));
    }

    #[test]
    fn a_new_token_or_no_renewal_means_new_credentials() {
        let t0 = Instant::now();
        let l = Lease::issued("x/1".into(), 60, true, t0, 1);
        assert_eq!(l.action(t0, 2), Action::NewLease);
        let fixed = Lease::issued("x/2".into(), 60, false, t0, 1);
        assert_eq!(fixed.action(fixed.due, 1), Action::NewLease);
        let forever = Lease::issued("x/3".into(), 0, true, t0, 1);
        assert_eq!(forever.action(t0 + secs(9999), 1), Action::Wait(None));
    }

    #[test]
    fn a_replaced_lease_is_revoked_after_the_grace_unless_it_expires_first() {
        let t0 = Instant::now();
        let l = Lease::issued("x/1".into(), 60, true, t0, 1);
        assert_eq!(l.revoke_at(t0, secs(10)), Some(t0 + secs(10)));
        assert_eq!(l.revoke_at(t0 + secs(55), secs(10)), None);
    }
}

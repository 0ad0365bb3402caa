//! Failed-login limits, after Vault's user lockout.
//!
//! **Per identity** (the lockout): failed logins are counted per mount and *claimed identity*,
//! the name a login says it is before anything is verified (the core derives it, see
//! `core::login`): the AppRole `role_id`; for the JWT methods (kubernetes, jwt, gcp) the `role`
//! plus the token's unverified `sub` (a Kubernetes token's is
//! `system:serviceaccount:NAMESPACE:NAME`); for aws the `role` plus the access key ID the
//! signed request names. After
//! [`LoginLimits::lockout_threshold`] failures within [`LoginLimits::lockout_counter_reset`]
//! of the first one, that identity is locked for [`LoginLimits::lockout_duration`]: its logins
//! are answered 429 with `Retry-After` without being checked, valid or not, as Vault refuses a
//! locked user. A successful login clears the identity's count. Vault's defaults: 5 failures,
//! counted for 15 minutes, locked for 15 minutes.
//!
//! **Per source address** (a ceiling, much higher): [`LoginLimits::address_max_failures`]
//! failures within [`LoginLimits::address_window`]. It never refuses a login before its
//! credentials are checked, so a valid login from a busy address always succeeds unless its
//! *own* identity is locked: in a cluster every pod behind one node or NAT shares an address,
//! and one broken pod must not lock out its neighbours. What the ceiling does instead: while an
//! address is over it, its *failed* logins are answered 429 with `Retry-After` instead of 400,
//! telling a misbehaving client to back off. What that means: the address guard alone cannot
//! stop an attacker from spending the store's CPU (each attempt is still verified) and cannot
//! stop guessing; guessing is bounded by the per-identity lockout (and by secrets that are not
//! guessable: 128-bit secret IDs, signatures), the load by the listener's own limits.
//!
//! Trade-offs, written down: the claimed identity is read before verification, so whoever
//! knows an identity (a role ID, a service account's name) can lock it out by failing on
//! purpose, as with Vault's lockout; replicas that share a service account share an identity,
//! so a replica failing over and over (an old token, a wrong key) locks out its siblings of
//! the same service account for the lockout duration, never other service accounts. Set
//! `login_lockout_threshold = 0` to turn the lockout off (Vault's `disable_lockout`).
//!
//! One departure from Vault: Vault counts only the failures a method classes as invalid
//! credentials (`ErrInvalidCredentials`); hushd counts every refused login (any 4xx), so a
//! misconfigured client (a wrong role name, a malformed request) also locks out the identity
//! it claims, and only that one.
//!
//! Identities are kept as SHA-256 digests (no role ID is held in clear), at most
//! [`MAX_TRACKED`] of each kind; when full, expired entries are dropped, and if none were,
//! new identities are not tracked (existing locks stay rather than being wiped).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::logical::LogicalError;

/// Vault's `lockout_threshold` default.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// Vault's `lockout_duration` default.
pub const LOCKOUT_DURATION: Duration = Duration::from_secs(15 * 60);
/// Vault's `lockout_counter_reset` default.
pub const LOCKOUT_COUNTER_RESET: Duration = Duration::from_secs(15 * 60);
/// Failed logins per address and window before its failures are answered 429.
pub const ADDRESS_MAX_FAILURES: u32 = 100;
/// The window the address ceiling counts in.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// Entries tracked at most, per kind.
pub const MAX_TRACKED: usize = 100_000;

/// The limits (hushd's `login_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one identity that lock it; 0: no lockout.
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    /// Failures older than this (counted from the first) are forgotten.
    pub lockout_counter_reset: Duration,
    /// Failures from one address in [`LoginLimits::address_window`] before its failed logins
    /// are answered 429; 0: no ceiling.
    pub address_max_failures: u32,
    pub address_window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            lockout_threshold: LOCKOUT_THRESHOLD,
            lockout_duration: LOCKOUT_DURATION,
            lockout_counter_reset: LOCKOUT_COUNTER_RESET,
            address_max_failures: ADDRESS_MAX_FAILURES,
            address_window: ADDRESS_WINDOW,
        }
    }
}

/// A mount and claimed identity, as a digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginIdentity([u8; 32]);

impl LoginIdentity {
    /// The identity `id` claims on the mount at `mount` (e.g. `auth/approle/`).
    pub fn new(mount: &str, id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(mount.as_bytes());
        h.update([0]);
        h.update(id.as_bytes());
        LoginIdentity(h.finalize().into())
    }
}

impl std::fmt::Debug for LoginIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginIdentity(..)")
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn expired(&self, now: Instant, window: Duration) -> bool {
        match self.locked_until {
            Some(until) => now >= until,
            None => now >= self.start + window,
        }
    }
}

/// Failure counts per key: `threshold` failures within `window` of the first lock the key
/// for `lock`.
#[derive(Debug)]
struct Counter<K> {
    threshold: u32,
    window: Duration,
    lock: Duration,
    state: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq> Counter<K> {
    fn new(threshold: u32, window: Duration, lock: Duration) -> Self {
        Counter {
            threshold,
            window,
            lock,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        // A panic elsewhere cannot leave the counts inconsistent: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time left while `key` is locked.
    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.guard().get(key)?.locked_until?;
        (now < until).then(|| until - now)
    }

    /// Count a failure; the time left if `key` is (now) locked.
    fn fail(&self, key: K, now: Instant) -> Option<Duration> {
        if self.threshold == 0 {
            return None;
        }
        let window = self.window;
        let mut state = self.guard();
        if state.len() >= MAX_TRACKED && !state.contains_key(&key) {
            state.retain(|_, e| !e.expired(now, window));
            if state.len() >= MAX_TRACKED {
                return None;
            }
        }
        let e = state.entry(key).or_insert(Entry {
            start: now,
            failures: 0,
            locked_until: None,
        });
        if e.expired(now, window) {
            *e = Entry {
                start: now,
                failures: 0,
                locked_until: None,
            };
        }
        if let Some(until) = e.locked_until {
            return Some(until - now);
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= self.threshold {
            e.locked_until = Some(now + self.lock);
            return Some(self.lock);
        }
        None
    }

    /// Forget `key`'s failures, unless it is locked.
    fn clear(&self, key: &K, now: Instant) {
        let mut state = self.guard();
        if state
            .get(key)
            .is_some_and(|e| e.locked_until.is_none_or(|u| now >= u))
        {
            state.remove(key);
        }
    }
}

/// The 429 a limited login gets, with the seconds to wait (sent as `Retry-After`).
fn limited(what: &str, wait: Duration) -> LogicalError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    LogicalError::RateLimited {
        message: format!("too many failed login attempts {what}: try again in {secs}s"),
        retry_after: secs,
    }
}

/// Failed logins per identity (the lockout) and per source address (the ceiling).
#[derive(Debug)]
pub struct LoginLimiter {
    identities: Counter<LoginIdentity>,
    /// `None`: in-process callers without an address.
    addresses: Counter<Option<IpAddr>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(LoginLimits::default())
    }
}

impl LoginLimiter {
    pub fn new(l: LoginLimits) -> Self {
        LoginLimiter {
            identities: Counter::new(
                l.lockout_threshold,
                l.lockout_counter_reset,
                l.lockout_duration,
            ),
            addresses: Counter::new(l.address_max_failures, l.address_window, l.address_window),
        }
    }

    /// May `who` try to log in now? 429 while the identity is locked. The address is not
    /// looked at: a valid login is never refused for other identities' failures.
    pub fn check(&self, who: &LoginIdentity) -> Result<(), LogicalError> {
        self.check_at(who, Instant::now())
    }

    /// [`LoginLimiter::check`] at `now` (tests move time this way).
    pub fn check_at(&self, who: &LoginIdentity, now: Instant) -> Result<(), LogicalError> {
        match self.identities.locked(who, now) {
            Some(wait) => Err(limited("for this identity", wait)),
            None => Ok(()),
        }
    }

    /// Count a failed login of `who` from `addr`. `Some(429)` when the address is over its
    /// ceiling: the failure is then answered with it instead of its own error.
    pub fn record_failure(&self, who: LoginIdentity, addr: Option<IpAddr>) -> Option<LogicalError> {
        self.record_failure_at(who, addr, Instant::now())
    }

    /// [`LoginLimiter::record_failure`] at `now`.
    pub fn record_failure_at(
        &self,
        who: LoginIdentity,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Option<LogicalError> {
        self.identities.fail(who, now);
        self.addresses
            .fail(addr, now)
            .map(|wait| limited("from this address", wait))
    }

    /// A successful login of `who`: its failures are forgotten (the address's are not).
    pub fn record_success(&self, who: &LoginIdentity) {
        self.identities.clear(who, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            lockout_threshold: 3,
            lockout_duration: Duration::from_secs(600),
            lockout_counter_reset: Duration::from_secs(300),
            address_max_failures: 10,
            address_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn an_identity_is_locked_after_its_own_failures_only() {
        let limiter = LoginLimiter::new(limits());
        let a = LoginIdentity::new("auth/approle/", "role-a");
        let b = LoginIdentity::new("auth/approle/", "role-b");
        let a_elsewhere = LoginIdentity::new("auth/other/", "role-a");
        let ip = Some("10.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..3 {
            assert!(limiter.check_at(&a, t0).is_ok());
            assert!(limiter.record_failure_at(a, ip, t0).is_none());
        }
        let err = limiter.check_at(&a, at(1)).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after(), Some(599));
        assert!(err.to_string().contains("too many failed login attempts"));
        // Other identities, and the same name on another mount, are not affected.
        assert!(limiter.check_at(&b, at(1)).is_ok());
        assert!(limiter.check_at(&a_elsewhere, at(1)).is_ok());
        // Success does not unlock a locked identity; the lock ends after its duration.
        limiter.record_success(&a);
        assert!(limiter.check_at(&a, at(599)).is_err());
        assert!(limiter.check_at(&a, at(600)).is_ok());
        // Then it starts from scratch.
        assert!(limiter.record_failure_at(a, ip, at(600)).is_none());
        assert!(limiter.check_at(&a, at(600)).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_the_counter_reset_or_a_success() {
        let limiter = LoginLimiter::new(limits());
        let a = LoginIdentity::new("auth/k8s/", "web\nsystem:serviceaccount:prod:web");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        limiter.record_failure_at(a, None, t0);
        limiter.record_failure_at(a, None, at(10));
        // The window counts from the first failure: at 300 s a new one starts.
        limiter.record_failure_at(a, None, at(300));
        assert!(limiter.check_at(&a, at(300)).is_ok());
        limiter.record_failure_at(a, None, at(301));
        limiter.record_success(&a);
        limiter.record_failure_at(a, None, at(302));
        assert!(limiter.check_at(&a, at(302)).is_ok());
        limiter.record_failure_at(a, None, at(303));
        limiter.record_failure_at(a, None, at(304));
        assert!(limiter.check_at(&a, at(304)).is_err());
    }

    #[test]
    fn the_address_ceiling_turns_failures_into_429_but_never_checks_first() {
        let limiter = LoginLimiter::new(limits());
        let ip = Some("10.0.0.1".parse().unwrap());
        let other_ip = Some("10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for i in 0..9 {
            let who = LoginIdentity::new("auth/approle/", &format!("forged-{i}"));
            assert!(limiter.record_failure_at(who, ip, t0).is_none());
        }
        let who = LoginIdentity::new("auth/approle/", "forged-9");
        let err = limiter.record_failure_at(who, ip, at(1)).unwrap();
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after(), Some(60));
        assert!(err.to_string().contains("from this address"), "{err}");
        // A login of an identity that did not fail is let through to be checked.
        let valid = LoginIdentity::new("auth/approle/", "valid");
        assert!(limiter.check_at(&valid, at(2)).is_ok());
        // Other addresses' failures are answered as they are.
        assert!(limiter.record_failure_at(valid, other_ip, at(2)).is_none());
        // Once the window has passed, the address starts from scratch.
        assert!(limiter.record_failure_at(valid, ip, at(61)).is_none());
    }

    #[test]
    fn zero_turns_the_limits_off_and_the_real_clock_works() {
        let limiter = LoginLimiter::new(LoginLimits {
            lockout_threshold: 0,
            address_max_failures: 0,
            ..limits()
        });
        let a = LoginIdentity::new("auth/approle/", "a");
        for _ in 0..20 {
            assert!(limiter.record_failure(a, None).is_none());
        }
        assert!(limiter.check(&a).is_ok());
        assert_eq!(format!("{a:?}"), "LoginIdentity(..)");
    }
}

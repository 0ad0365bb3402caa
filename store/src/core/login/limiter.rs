//! Failed-login rate limiting per source address: after `max_failures` failed logins from
//! one address within `window`, further logins from it are refused with 429 until the window
//! that began with its first failure has passed. Successful logins do not count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

use crate::logical::LogicalError;

/// Failed logins allowed per address and window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; past it, expired windows are dropped, then the table is reset.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Failure counts per source address (`None`: in-process callers without one).
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(MAX_FAILURES, WINDOW)
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Window>> {
        // A panic elsewhere cannot leave the counts inconsistent: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May `addr` try to log in now? `RateLimited` (429) when it has failed too often.
    pub fn check(&self, addr: Option<IpAddr>) -> Result<(), LogicalError> {
        self.check_at(addr, Instant::now())
    }

    /// [`LoginLimiter::check`] at `now` (tests move time this way).
    pub fn check_at(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), LogicalError> {
        let state = self.lock();
        match state.get(&addr) {
            Some(w) if w.failures >= self.max_failures && now < w.start + self.window => {
                let wait = (w.start + self.window - now).as_secs().max(1);
                Err(LogicalError::RateLimited(format!(
                    "too many failed login attempts from this address: try again in {wait}s"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Count a failed login from `addr`.
    pub fn record_failure(&self, addr: Option<IpAddr>) {
        self.record_failure_at(addr, Instant::now());
    }

    /// [`LoginLimiter::record_failure`] at `now`.
    pub fn record_failure_at(&self, addr: Option<IpAddr>, now: Instant) {
        let window = self.window;
        let mut state = self.lock();
        if state.len() >= MAX_TRACKED && !state.contains_key(&addr) {
            state.retain(|_, w| now < w.start + window);
            if state.len() >= MAX_TRACKED {
                state.clear();
            }
        }
        let w = state.entry(addr).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now >= w.start + window {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_failures_are_refused_until_the_window_passes() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..3 {
            assert!(limiter.check_at(a, t0).is_ok());
            limiter.record_failure_at(a, t0);
        }
        let err = limiter.check_at(a, t0).unwrap_err();
        assert_eq!(err.status(), 429);
        assert!(err.to_string().contains("too many failed login attempts"));
        // Other addresses are not affected.
        assert!(limiter.check_at(b, t0).is_ok());
        assert!(limiter.check_at(None, t0).is_ok());
        assert!(limiter.check_at(a, at(59)).is_err());
        assert!(limiter.check_at(a, at(61)).is_ok());
        // A new window starts from scratch.
        limiter.record_failure_at(a, at(61));
        assert!(limiter.check_at(a, at(61)).is_ok());
        // The real clock works too.
        assert!(limiter.check(b).is_ok());
        limiter.record_failure(b);
    }
}

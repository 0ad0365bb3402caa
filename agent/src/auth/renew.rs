//! Keeping the token alive: `lookup-self`, then `renew-self` at about 2/3 of its TTL (with
//! jitter), again and again. A token that is not renewable or has no TTL is left alone. A
//! new token in the file starts over. Failures are retried with backoff.
//!
//! A login source ([`TokenSource::for_login`]) logs in again instead of idling: when its token
//! is not renewable (at about 2/3 of its TTL), when a renewal comes back capped by the maximum
//! TTL (before it runs out), and when lookup or renewal get a 403 (revoked).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_api::Client;
use tokio_util::sync::CancellationToken;

use super::source::{Persist, TokenSource};
use crate::retry::backoff::{renew_delay, Backoff};
use crate::retry::{classify, ErrorClass};
use crate::telemetry::Observer;

/// The renewal task's settings.
#[derive(Debug, Clone)]
pub struct RenewSettings {
    /// First retry delay after a failure.
    pub retry_base: Duration,
    pub backoff_max: Duration,
    /// How often to look again at a token that cannot be renewed (it may become valid).
    pub recheck: Duration,
}

/// What the last look at the token found (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Renew after this long.
    RenewIn(Duration),
    /// Not renewable or no TTL: nothing to do until the token changes.
    Idle,
}

/// Decide from a token's TTL and renewability.
pub fn plan(ttl_secs: u64, renewable: bool) -> Plan {
    if !renewable || ttl_secs == 0 {
        Plan::Idle
    } else {
        Plan::RenewIn(renew_delay(Duration::from_secs(ttl_secs)))
    }
}

enum Wake {
    Elapsed,
    TokenChanged,
    Shutdown,
}

/// Keep the token of `tokens` alive until `shutdown`.
pub async fn run(
    base: Client,
    tokens: Arc<TokenSource>,
    settings: RenewSettings,
    observer: Arc<dyn Observer>,
    shutdown: CancellationToken,
) {
    let mut changes = tokens.subscribe();
    let mut backoff = Backoff::new(settings.retry_base, settings.backoff_max);
    // Wait for `d`, a new token or shutdown.
    macro_rules! wait {
        ($d:expr) => {{
            let d: Option<Duration> = $d;
            tokio::select! {
                _ = shutdown.cancelled() => Wake::Shutdown,
                r = changes.changed() => match r {
                    Ok(()) => Wake::TokenChanged,
                    Err(_) => Wake::Shutdown,
                },
                _ = async { match d {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                } } => Wake::Elapsed,
            }
        }};
    }

    let mut errors = ErrorLog::default();
    let logs_in = tokens.login_spec().is_some();
    // Log in again (with backoff) and start over with the new token.
    macro_rules! relogin {
        () => {{
            if tokens
                .login_until_ok(&base, &mut backoff, &shutdown, Persist::Forever)
                .await
                .is_err()
            {
                return;
            }
        }};
    }
    // Wait for `d`, then log in again (unless a new token came meanwhile). The caller then
    // starts over with `continue 'token`.
    macro_rules! relogin_in {
        ($d:expr) => {{
            match wait!(Some($d)) {
                Wake::Shutdown => return,
                Wake::TokenChanged => {}
                Wake::Elapsed => relogin!(),
            }
        }};
    }

    'token: loop {
        changes.borrow_and_update();
        let client = base.with_token(Some(tokens.token()));
        let started = Instant::now();
        let lookup = client.token_lookup_self().await;
        observer.store("token_lookup_self", outcome(&lookup), started.elapsed());
        let (mut ttl, renewable) = match lookup {
            Ok(l) => (l.ttl, l.renewable),
            Err(e) => {
                let class = classify(&e);
                errors.log("could not look up the agent's token", &e);
                if logs_in && class == ErrorClass::Forbidden {
                    relogin!();
                    continue 'token;
                }
                let d = match class {
                    ErrorClass::Transient => backoff.next_delay(),
                    _ => settings.recheck,
                };
                match wait!(Some(d)) {
                    Wake::Shutdown => return,
                    _ => continue 'token,
                }
            }
        };
        backoff.reset();
        errors.clear();
        observer.token_ttl(ttl);
        let mut renewable = renewable;
        loop {
            let delay = match plan(ttl, renewable) {
                Plan::Idle if logs_in && ttl > 0 => {
                    tracing::info!(
                        ttl_secs = ttl,
                        "the agent's token is not renewable: logging in again before it expires"
                    );
                    relogin_in!(renew_delay(Duration::from_secs(ttl)));
                    continue 'token;
                }
                Plan::Idle => {
                    tracing::info!(
                        ttl_secs = ttl,
                        renewable,
                        "the agent's token is not renewable or has no TTL: not renewing it"
                    );
                    match wait!(None) {
                        Wake::Shutdown => return,
                        _ => continue 'token,
                    }
                }
                Plan::RenewIn(d) => d,
            };
            tracing::debug!(
                ttl_secs = ttl,
                renew_in_ms = delay.as_millis() as u64,
                "token renewal scheduled"
            );
            match wait!(Some(delay)) {
                Wake::Shutdown => return,
                Wake::TokenChanged => continue 'token,
                Wake::Elapsed => {}
            }
            let started = Instant::now();
            let renewed = client.token_renew_self(None).await;
            observer.store("token_renew_self", outcome(&renewed), started.elapsed());
            match renewed {
                Ok(auth) => {
                    tracing::info!(ttl_secs = auth.lease_duration, "renewed the agent's token");
                    if auth.lease_duration <= ttl / 3 && auth.lease_duration > 0 {
                        tracing::warn!(
                            ttl_secs = auth.lease_duration,
                            "the agent's token is near its maximum TTL; it will expire unless the token file gets a new one"
                        );
                    }
                    errors.clear();
                    let capped = auth.lease_duration < ttl;
                    ttl = auth.lease_duration;
                    renewable = auth.renewable;
                    observer.token_ttl(ttl);
                    if logs_in && capped && ttl > 0 {
                        tracing::info!(
                            ttl_secs = ttl,
                            "the agent's token reached its maximum TTL: logging in again before it expires"
                        );
                        relogin_in!(renew_delay(Duration::from_secs(ttl)));
                        continue 'token;
                    }
                }
                Err(e) => {
                    errors.log("could not renew the agent's token", &e);
                    if logs_in && classify(&e) == ErrorClass::Forbidden {
                        relogin!();
                        continue 'token;
                    }
                    let d = match classify(&e) {
                        ErrorClass::Transient => backoff.next_delay(),
                        _ => settings.recheck,
                    };
                    match wait!(Some(d)) {
                        Wake::Shutdown => return,
                        _ => continue 'token,
                    }
                }
            }
        }
    }
}

/// Logs a lasting problem once at warn level, its repeats at debug.
#[derive(Default)]
struct ErrorLog {
    last: Option<String>,
}

impl ErrorLog {
    fn log(&mut self, what: &str, e: &hush_api::ClientError) {
        let text = e.to_string();
        if self.last.as_deref() == Some(text.as_str()) {
            tracing::debug!(error = %text, "{what} (again)");
        } else {
            tracing::warn!(error = %text, "{what}");
            self.last = Some(text);
        }
    }

    fn clear(&mut self) {
        self.last = None;
    }
}

fn outcome<T>(r: &Result<T, hush_api::ClientError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => classify(e).as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_when_not_renewable_or_no_ttl() {
        assert_eq!(plan(0, true), Plan::Idle);
        assert_eq!(plan(3600, false), Plan::Idle);
        match plan(30, true) {
            Plan::RenewIn(d) => {
                assert!(d <= Duration::from_secs(20) && d >= Duration::from_secs(17))
            }
            Plan::Idle => panic!("a renewable token with a TTL is renewed"),
        }
    }
}

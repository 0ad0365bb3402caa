//! Exponential backoff with jitter, for retries while hushd is unreachable or failing.

use std::time::Duration;

use rand::Rng;

/// Delays `base, 2·base, 4·base, …` capped at `max`, each drawn uniformly from its upper half
/// so that many agents do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        let base = base.min(max).max(Duration::from_millis(1));
        Backoff {
            base,
            max,
            next: base,
        }
    }

    /// The delay before the next try (grows each call).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        jitter(d)
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// Uniform in `[d/2, d]`.
pub fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// When to renew something that lives `ttl`: about two thirds of it, minus up to a tenth
/// (jitter), and never sooner than 100ms.
pub fn renew_delay(ttl: Duration) -> Duration {
    let two_thirds = ttl * 2 / 3;
    let spread = u64::try_from((ttl / 10).as_nanos()).unwrap_or(u64::MAX);
    let minus = Duration::from_nanos(rand::rng().random_range(0..=spread));
    two_thirds
        .saturating_sub(minus)
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let caps = [1, 2, 4, 5, 5];
        for cap in caps {
            let d = b.next_delay();
            let cap = Duration::from_secs(cap);
            assert!(
                d >= cap / 2 && d <= cap,
                "{d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn renews_at_about_two_thirds() {
        for _ in 0..100 {
            let d = renew_delay(Duration::from_secs(30));
            assert!(
                d >= Duration::from_secs(17) && d <= Duration::from_secs(20),
                "{d:?}"
            );
        }
        assert_eq!(renew_delay(Duration::ZERO), Duration::from_millis(100));
    }
}

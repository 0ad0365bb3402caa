//! A token's TTL from the requested TTL, period, explicit max TTL and the system maximum.
//! Duration fields are read with [`super::fields::field_secs`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::duration::format_secs;
use super::LogicalError;

/// TTL of a token created without one (Vault's default: 768h).
pub const DEFAULT_TTL: u64 = 768 * 3600;
/// Longest lifetime of a non-periodic token, counted from its creation (768h).
pub const MAX_TTL: u64 = 768 * 3600;

/// The time source; tests inject one to move time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// `t` plus `secs`, or `None` past the representable range.
pub fn add_seconds(t: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    let delta = chrono::TimeDelta::try_seconds(i64::try_from(secs).ok()?)?;
    t.checked_add_signed(delta)
}

/// Inputs of [`calculate_ttl`], all in seconds (0 = not set).
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlInput {
    /// Requested by a renewal.
    pub increment: u64,
    /// The token's own TTL (requested at creation).
    pub ttl: u64,
    pub period: u64,
    pub explicit_max_ttl: u64,
}

/// Vault's TTL rule: a periodic token gets its period (capped at the system maximum) and is
/// bounded only by its explicit max TTL; any other token gets the increment, else its own TTL,
/// else the default, bounded by the smaller of the system maximum and the explicit max TTL,
/// both counted from `start` (creation). Returns the TTL from `now` and any warnings.
pub fn calculate_ttl(
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    input: TtlInput,
) -> Result<(u64, Vec<String>), LogicalError> {
    let mut warnings = Vec::new();
    let mut max_ttl = MAX_TTL;
    if input.explicit_max_ttl > 0 && input.explicit_max_ttl < max_ttl {
        max_ttl = input.explicit_max_ttl;
    }
    let (mut ttl, limit) = if input.period > 0 {
        let mut period = input.period;
        if period > max_ttl {
            warnings.push(format!(
                "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped \
                 accordingly",
                format_secs(period),
                format_secs(max_ttl)
            ));
            period = max_ttl;
        }
        let limit = (input.explicit_max_ttl > 0).then_some(input.explicit_max_ttl);
        (period, limit)
    } else {
        let ttl = [input.increment, input.ttl, DEFAULT_TTL]
            .into_iter()
            .find(|t| *t > 0);
        (ttl.unwrap_or(DEFAULT_TTL), Some(max_ttl))
    };
    // A deadline past the representable range is no limit at all.
    if let Some(deadline) = limit.and_then(|l| add_seconds(start, l)) {
        let left = (deadline - now).num_seconds();
        if left <= 0 {
            return Err(LogicalError::invalid("past the max TTL, cannot renew"));
        }
        let left = left as u64;
        if ttl > left {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped \
                 accordingly",
                format_secs(ttl),
                format_secs(left)
            ));
            ttl = left;
        }
    }
    Ok((ttl, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_defaults_and_caps() {
        let now = Utc::now();
        let t = |input| calculate_ttl(now, now, input).unwrap();
        assert_eq!(t(TtlInput::default()).0, DEFAULT_TTL);
        assert_eq!(
            t(TtlInput {
                ttl: 60,
                ..Default::default()
            })
            .0,
            60
        );
        let (ttl, warnings) = t(TtlInput {
            ttl: 7200,
            explicit_max_ttl: 3600,
            ..Default::default()
        });
        assert_eq!(ttl, 3600);
        assert_eq!(warnings.len(), 1);
        let (ttl, warnings) = t(TtlInput {
            ttl: MAX_TTL * 2,
            ..Default::default()
        });
        assert_eq!(ttl, MAX_TTL);
        assert!(warnings[0].contains("768h0m0s"), "{warnings:?}");
        // Periodic: the period, capped by the system max only.
        assert_eq!(
            t(TtlInput {
                period: 600,
                ttl: 60,
                ..Default::default()
            })
            .0,
            600
        );
    }

    #[test]
    fn renewal_is_bounded_from_creation() {
        let start = Utc::now();
        let now = start + chrono::Duration::seconds(3000);
        let input = TtlInput {
            increment: 3600,
            explicit_max_ttl: 3600,
            ..Default::default()
        };
        let (ttl, warnings) = calculate_ttl(now, start, input).unwrap();
        assert_eq!(ttl, 600);
        assert_eq!(warnings.len(), 1);
        let late = start + chrono::Duration::seconds(3600);
        assert_eq!(calculate_ttl(late, start, input).unwrap_err().status(), 400);
        // A periodic token without an explicit max renews forever.
        let far = start + chrono::Duration::seconds(10 * MAX_TTL as i64);
        let periodic = TtlInput {
            period: 60,
            ..Default::default()
        };
        assert_eq!(calculate_ttl(far, start, periodic).unwrap().0, 60);
    }
}

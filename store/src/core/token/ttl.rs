//! Durations for tokens: parsing Vault's duration strings and computing a token's TTL from
//! the requested TTL, period, explicit max TTL and the system maximum.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::logical::{Data, LogicalError};

/// TTL of a token created without one (Vault's default: 768h).
pub const DEFAULT_TTL: u64 = 768 * 3600;
/// Longest lifetime of a non-periodic token, counted from its creation (768h).
pub const MAX_TTL: u64 = 768 * 3600;

/// Parse `"90"`, `"90s"`, `"30m"`, `"1h"`, `"1h30m"` or `"2d"` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    if text.starts_with('-') {
        return Err("duration must not be negative".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "invalid duration {text:?} (use s, m, h or d units)"
                ))
            }
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    Ok(total)
}

/// A duration field of a request: integer seconds or a duration string. Absent, `null` and
/// `""` are `None`. Errors name the field.
pub fn duration_field(data: &Data, key: &str) -> Result<Option<u64>, LogicalError> {
    let bad = |why: String| LogicalError::invalid(format!("invalid value for {key:?}: {why}"));
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_duration(s).map(Some).map_err(bad),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Ok(Some(v)),
            None => Err(bad("must be a non-negative whole number of seconds".into())),
        },
        Some(_) => Err(bad(
            "must be a duration such as \"1h\" or a number of seconds".into(),
        )),
    }
}

/// `t` plus `secs`, or `None` past the representable range.
pub fn add_seconds(t: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    let delta = chrono::TimeDelta::try_seconds(i64::try_from(secs).ok()?)?;
    t.checked_add_signed(delta)
}

/// Go's `time.Duration` rendering of whole seconds, as Vault's warnings show it.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
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
                go_duration(period),
                go_duration(max_ttl)
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
                go_duration(ttl),
                go_duration(left)
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
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1h30m10s"), Ok(5410));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        for bad in ["", "h", "1x", "-5", "1.5h", "5 m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_fields_name_the_field() {
        let data = serde_json::json!({"ttl": "1h", "n": 30, "e": "", "bad": "soon", "neg": -1});
        let data = data.as_object().unwrap();
        assert_eq!(duration_field(data, "ttl").unwrap(), Some(3600));
        assert_eq!(duration_field(data, "n").unwrap(), Some(30));
        assert_eq!(duration_field(data, "e").unwrap(), None);
        assert_eq!(duration_field(data, "missing").unwrap(), None);
        let err = duration_field(data, "bad").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("\"bad\""));
        assert!(duration_field(data, "neg").is_err());
    }

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

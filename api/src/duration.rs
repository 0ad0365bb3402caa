//! Durations as people write them in flags and config (hush-agent's, and the injector's
//! `hush.dev/refresh-interval` that becomes one): `100ms`, `60s`, `5m`, `1h30m`, `2d`,
//! or plain seconds (`90`). Go's duration units, whole numbers only, no sign.

use std::time::Duration;

/// Parse a duration; `None` when malformed or too large.
pub fn parse(text: &str) -> Option<Duration> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut rest = s;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => Duration::from_nanos(1),
            "us" | "µs" => Duration::from_micros(1),
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        rest = &rest[unit_len..];
        let part = unit.checked_mul(u32::try_from(value).ok()?)?;
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Render a duration the short way (`100ms`, `60s`, `5m0s` is written `300s`) for messages.
pub fn show(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        assert_eq!(parse("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse(" 5m "), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "s",
            "5x",
            "-1s",
            "1.5h",
            "ms5",
            "5 m",
            "99999999999999999999s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn shows_seconds_or_millis() {
        assert_eq!(show(Duration::from_secs(300)), "300s");
        assert_eq!(show(Duration::from_millis(150)), "150ms");
    }
}

//! Vault's durations: one parser of Go duration strings and one formatter in Go's rendering.
//!
//! Vault takes a duration as a number of seconds or as a Go duration string (`"90"`, `"90s"`,
//! `"1h30m"`, `"1.5h"`, `"-1s"`; units ns, us, µs, ms, s, m, h, d), and prints one the way
//! Go's `time.Duration.String()` does (`"1h30m0s"`). Duration fields of a request are read
//! with [`super::fields::field_secs`].

/// Parse a Go duration string (or plain seconds) into whole seconds, truncating toward zero.
/// `None` when malformed or out of range. The caller trims surrounding whitespace.
pub fn parse_secs(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(secs);
    }
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60.0 * 1e9,
            "h" => 3600.0 * 1e9,
            "d" => 86400.0 * 1e9,
            _ => return None,
        };
        total_ns += value * scale;
    }
    let secs = (total_ns / 1e9).trunc();
    if !secs.is_finite() || secs.abs() > 9.2e18 {
        return None;
    }
    let secs = secs as i64;
    Some(if neg { -secs } else { secs })
}

/// Format whole seconds as Go's `time.Duration.String()` does: `0s`, `45s`, `1m30s`,
/// `3h0m0s`, `-1s`. Takes any integer seconds (`i64` or `u64`) without wrapping.
pub fn format_secs(secs: impl Into<i128>) -> String {
    let secs: i128 = secs.into();
    let sign = if secs < 0 { "-" } else { "" };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs / 60) % 60, abs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_secs("3h25m19s"), Some(3 * 3600 + 25 * 60 + 19));
        assert_eq!(parse_secs("90"), Some(90));
        assert_eq!(parse_secs("90s"), Some(90));
        assert_eq!(parse_secs("30m"), Some(1800));
        assert_eq!(parse_secs("1h"), Some(3600));
        assert_eq!(parse_secs("1h30m"), Some(5400));
        assert_eq!(parse_secs("1h30m10s"), Some(5410));
        assert_eq!(parse_secs("1.5h"), Some(5400));
        assert_eq!(parse_secs("2d"), Some(172_800));
        assert_eq!(parse_secs("1500ms"), Some(1));
        assert_eq!(parse_secs("2500000µs"), Some(2));
        assert_eq!(parse_secs("0"), Some(0));
        assert_eq!(parse_secs("0s"), Some(0));
        assert_eq!(parse_secs("-1s"), Some(-1));
        assert_eq!(parse_secs("-5"), Some(-5));
        assert_eq!(parse_secs("+2m"), Some(120));
    }

    #[test]
    fn refuses_malformed_durations() {
        for bad in [
            "",
            "h",
            "1x",
            "3x",
            "1y",
            "10m5",
            "1h-2m",
            "5 m",
            "..s",
            "-",
            "soon",
            "99999999999999999999h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_secs(0), "0s");
        assert_eq!(format_secs(45), "45s");
        assert_eq!(format_secs(90), "1m30s");
        assert_eq!(format_secs(3600), "1h0m0s");
        assert_eq!(format_secs(12319), "3h25m19s");
        assert_eq!(format_secs(768u64 * 3600), "768h0m0s");
        assert_eq!(format_secs(-1), "-1s");
        assert_eq!(format_secs(-3661), "-1h1m1s");
        assert_eq!(format_secs(u64::MAX), "5124095576030431h0m15s");
        assert_eq!(format_secs(i64::MIN), "-2562047788015215h30m8s");
    }
}

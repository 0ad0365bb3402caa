//! The grammars annotation values are checked against: Kubernetes quantities, DNS-1123
//! names, octal file modes, plain file names, absolute directories. Each check answers
//! `Err(reason)`, the reason saying what is wrong and what is accepted.

/// A Kubernetes quantity (`250m`, `1.5`, `128Mi`, `1e3`), non-negative, as its value in base
/// units (cores, bytes): good enough to compare a request with its limit.
pub fn quantity(text: &str) -> Result<f64, String> {
    const ACCEPTED: &str = "want a Kubernetes quantity: a number with an optional suffix \
         (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3), e.g. 250m, 0.5, 128Mi";
    let bad = |what: &str| Err(format!("{text:?} {what}; {ACCEPTED}"));
    if text.is_empty() {
        return bad("is empty");
    }
    if text.starts_with(['-', '+']) {
        return bad("has a sign (resources and sizes are never negative)");
    }
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return bad("does not start with a number");
    }
    let Ok(value) = number.parse::<f64>() else {
        return bad("does not start with a number");
    };
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let digits = exp[1..].strip_prefix(['-', '+']).unwrap_or(&exp[1..]);
            match exp[1..].parse::<i32>() {
                Ok(e) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    10f64.powi(e)
                }
                _ => return bad(&format!("has a bad exponent {exp:?}")),
            }
        }
        other => return bad(&format!("has an unknown suffix {other:?}")),
    };
    Ok(value * scale)
}

/// A DNS-1123 subdomain (ConfigMap names): lowercase letters, digits, '-' and '.', starting and
/// ending with a letter or digit, at most 253 characters.
pub fn dns_subdomain(text: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !text.is_empty() && text.len() <= 253 && text.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a ConfigMap name: want a DNS-1123 subdomain (lowercase letters, \
             digits, '-' and '.', starting and ending with a letter or digit, at most 253 \
             characters), e.g. app-agent-config"
        ))
    }
}

/// An octal file mode of 3 or 4 digits (`0400`, `440`), at most 0777.
pub fn octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix('0').filter(|_| text.len() == 4);
    let digits = digits.unwrap_or(text);
    if digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        if let Ok(mode) = u32::from_str_radix(digits, 8) {
            return Ok(mode);
        }
    }
    Err(format!(
        "{text:?} is not a file mode: want 3 or 4 octal digits, e.g. 0400, 0440 or 0644"
    ))
}

/// A plain file name in the destination: `[A-Za-z0-9._-]`, not starting with '.', at most 63.
pub fn file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a file name: want letters, digits, '.', '_' and '-', not starting \
             with '.', at most 63 characters, e.g. db.password"
        ))
    }
}

/// An absolute directory other than `/`, without empty, `.` or `..` segments.
pub fn absolute_dir(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!(
            "{text:?} is not an absolute path: want a directory like /secrets"
        ));
    };
    if rest.is_empty() {
        return Err(
            "\"/\" would hide the container's whole filesystem: want a directory like /secrets"
                .into(),
        );
    }
    if rest
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "{text:?} has an empty, \".\" or \"..\" segment (or a trailing \"/\"): want a \
             plain directory like /secrets or /run/app/secrets"
        ));
    }
    Ok(())
}

/// Whether `a` and `b` (absolute, normalised) are the same directory or one holds the other.
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    let under = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|r| r.starts_with('/'));
    a == b || under(a, b) || under(b, a)
}

/// One word: not empty, no whitespace or control characters.
pub fn word(text: &str, example: &str) -> Result<(), String> {
    if !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is empty or holds spaces: want one word, e.g. {example}"
        ))
    }
}

/// `"true"` or `"false"`.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{text:?}: want \"true\" or \"false\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_the_kubernetes_grammar() {
        assert_eq!(quantity("250m").unwrap(), 0.25);
        assert_eq!(quantity("1").unwrap(), 1.0);
        assert_eq!(quantity("0.5").unwrap(), 0.5);
        assert_eq!(quantity(".5").unwrap(), 0.5);
        assert_eq!(quantity("128Mi").unwrap(), 128.0 * 1024.0 * 1024.0);
        assert_eq!(quantity("1e3").unwrap(), 1000.0);
        assert_eq!(quantity("2E-1").unwrap(), 0.2);
        assert_eq!(quantity("1G").unwrap(), 1e9);
        for bad in [
            "", "-1", "+1", "1.2.3", ".", "Mi", "12MB", "1mi", "1e", "1e+", "1 Mi", "1Ki1",
        ] {
            assert!(quantity(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            quantity("12MB").unwrap_err(),
            "\"12MB\" has an unknown suffix \"MB\"; want a Kubernetes quantity: a number with an \
             optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like \
             e3), e.g. 250m, 0.5, 128Mi"
        );
    }

    #[test]
    fn dns_subdomains() {
        for good in ["a", "app-config", "a.b-c.d1", "0abc"] {
            dns_subdomain(good).unwrap();
        }
        let long = "a".repeat(254);
        for bad in ["", "App", "-a", "a-", "a..b", "a_b", "a.", long.as_str()] {
            assert!(dns_subdomain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn octal_modes() {
        assert_eq!(octal_mode("0400"), Ok(0o400));
        assert_eq!(octal_mode("440"), Ok(0o440));
        assert_eq!(octal_mode("0644"), Ok(0o644));
        for bad in ["", "400a", "0800", "1400", "04000", "40", "0o400", "rw-"] {
            assert!(octal_mode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_and_dirs() {
        file_name("db.password").unwrap();
        file_name("tls-cert_1.pem").unwrap();
        for bad in ["", ".env", "a/b", "a b", "é", &"a".repeat(64)] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        absolute_dir("/secrets").unwrap();
        absolute_dir("/run/app/secrets").unwrap();
        for bad in ["/", "secrets", "/a/../b", "/a//b", "/a/", "/./a", ""] {
            assert!(absolute_dir(bad).is_err(), "{bad:?}");
        }
        assert!(paths_overlap("/etc/hush", "/etc/hush/ca"));
        assert!(paths_overlap("/etc/hush/ca/x", "/etc/hush/ca"));
        assert!(paths_overlap("/secrets", "/secrets/"));
        assert!(!paths_overlap("/etc/hushx", "/etc/hush"));
    }
}

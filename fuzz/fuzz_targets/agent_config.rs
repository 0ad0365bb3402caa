//! hush-agent's TOML config (agent/src/config/): parse, then validate.
//!
//! Checks: no panic; an accepted raw config, written out as TOML again, parses back to a
//! config that writes out the same way and that validation treats the same way (the same
//! error message, or the same validated config).
#![no_main]

use hush_agent::config::{parse_text, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = parse_text("fuzz", text) else {
        return;
    };
    let first = Config::from_raw(raw.clone()).map(|c| format!("{c:?}"));
    let Ok(written) = toml::to_string(&raw) else {
        return;
    };
    let back = parse_text("fuzz", &written)
        .unwrap_or_else(|e| panic!("a written config parses: {e}\n{written}"));
    assert_eq!(
        toml::to_string(&back).ok().as_deref(),
        Some(written.as_str()),
        "writing is stable"
    );
    let second = Config::from_raw(back).map(|c| format!("{c:?}"));
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.0, b.0),
        _ => panic!("validation differs: {first:?} vs {second:?}\n{written}"),
    }
});

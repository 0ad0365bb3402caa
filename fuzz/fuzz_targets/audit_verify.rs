//! The audit hash chain: what hushd's file device writes (store/src/core/audit/file.rs) and
//! what `hush audit verify` checks (api/src/audit.rs).
//!
//! Input: a byte to flip and a mask, then lines. Checks: the verifier never panics on any
//! bytes; entries written the way the device writes them verify, with the head the device
//! reports; a file with any one byte changed never verifies to that same head.
#![no_main]

use hush_api::audit::{line_hash, verify, verify_with, VerifySummary, GENESIS};
use hush_store::core::audit::chained_lines;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    // Any bytes: an error or a summary, never a panic; a limit only shortens the walk.
    let full = verify(data);
    if let Ok(summary) = &full {
        let part = verify_with(data, Some(1), |_| {}).expect("a prefix of a good file verifies");
        assert!(part.lines <= 1 && part.lines <= summary.lines);
    }

    let [pos_hi, pos_lo, mask, rest @ ..] = data else {
        return;
    };
    // Each input line becomes an entry: a JSON object as it is, anything else as a string.
    let entries: Vec<Map<String, Value>> = rest
        .split(|b| *b == b'\n')
        .map(|line| match serde_json::from_slice(line) {
            Ok(Value::Object(m)) => m,
            _ => {
                let mut m = Map::new();
                m.insert("type".into(), String::from_utf8_lossy(line).into());
                m
            }
        })
        .collect();
    let n = entries.len() as u64;
    let file = chained_lines(entries).expect("entries serialise");
    let head = verify(&file[..]).expect("what the device writes verifies");
    let last = file[..file.len() - 1]
        .rsplit(|b| *b == b'\n')
        .next()
        .expect("a last line");
    assert_eq!(
        head,
        VerifySummary {
            lines: n,
            last_seq: n,
            last_hash: if n == 0 {
                GENESIS.into()
            } else {
                line_hash(last)
            },
        }
    );

    let mask = if *mask == 0 { 1 } else { *mask };
    let pos = usize::from(u16::from_be_bytes([*pos_hi, *pos_lo])) % file.len();
    let mut changed = file.clone();
    changed[pos] ^= mask;
    if let Ok(summary) = verify(&changed[..]) {
        assert_ne!(summary, head, "byte {pos} changed, same head");
    }
});

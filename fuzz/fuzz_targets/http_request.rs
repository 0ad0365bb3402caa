//! hushd's request decoding (store/src/api/http.rs): path normalisation, query parsing,
//! JSON bodies, the token and wrap headers.
//!
//! Input: `METHOD\nURI\nName: value\n...\n\nbody`. Checks: no panic; an accepted path has no
//! `.`/`..` segment, no empty segment but a trailing one and no control character, and
//! normalises to itself once percent-encoded again; a decoded request carries that path.
#![no_main]

use hush_store::api::http::{fuzz_api::decode_request, normalize_path};
use hush_store::logical::Operation;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

fn check_path(path: &str) {
    assert!(!path.is_empty());
    assert!(!path.chars().any(char::is_control), "{path:?}");
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        assert!(*seg != "." && *seg != "..", "{path:?}");
        assert!(!seg.is_empty() || i + 1 == segments.len(), "{path:?}");
    }
    let encoded: Vec<String> = segments
        .iter()
        .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
        .collect();
    let again = normalize_path(&format!("/v1/{}", encoded.join("/")));
    assert_eq!(again.ok().as_deref(), Some(path), "re-encoded {path:?}");
}

fuzz_target!(|data: &[u8]| {
    // The path alone, as any string (hyper hands over only valid URIs; this is wider).
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(path) = normalize_path(text) {
            check_path(&path);
        }
    }
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let (Some(method), Some(uri)) = (lines.next(), lines.next()) else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    for line in lines {
        if let Some(i) = line.iter().position(|b| *b == b':') {
            let value = line[i + 1..].trim_ascii();
            builder = builder.header(&line[..i], value);
        }
    }
    // What hyper would refuse never reaches the decoder.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let normalized = normalize_path(parts.uri.path());
    match decode_request(&parts, body) {
        Ok(req) => {
            let path = normalized.expect("a decoded request has a valid path");
            check_path(&path);
            assert_eq!(req.path, path);
            if req.operation == Operation::List {
                assert!(!req.data.contains_key("list"));
            }
        }
        Err(e) => {
            let status = e.status();
            assert!((400..500).contains(&status), "status {status} for {e}");
        }
    }
});

//! hush-agent's rendering (agent/src/render/, agent/src/template.rs): a template over two
//! secrets, and the dotenv and JSON files of the same secrets.
//!
//! Input: `template \0 db-json \0 api-json`. Checks: no panic, no hang; a template error
//! never shows a secret value; a dotenv file reads back to the secret's values; a JSON file
//! parses back to the secret.
#![no_main]

use std::sync::{Arc, OnceLock};

use hush_agent::config::{parse_text, Config, Format, RawConfig};
use hush_agent::render::{RenderError, Renderer};
use hush_api::wire::Data;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BASE: &str = r#"
[server]
addr = "http://127.0.0.1:8200"
token_file = "/run/hush/token"

[destination]
path = "/run/secrets/app"

[secrets]
db = "secret/data/db"
api = "secret/data/api"

[[file]]
name = "app.conf"
template = ""

[[file]]
name = "db.env"
secret = "db"
format = "dotenv"

[[file]]
name = "api.json"
secret = "api"
format = "json"
"#;

fn base() -> &'static RawConfig {
    static BASE_RAW: OnceLock<RawConfig> = OnceLock::new();
    BASE_RAW.get_or_init(|| parse_text("base", BASE).expect("the base config parses"))
}

/// Read `KEY='value'` lines back as a dotenv parser (or a shell) would.
fn read_dotenv(mut text: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !text.is_empty() {
        let eq = text.iter().position(|b| *b == b'=').expect("KEY=");
        let key = String::from_utf8(text[..eq].to_vec()).expect("UTF-8 key");
        assert_eq!(text[eq + 1], b'\'', "value starts with a quote");
        text = &text[eq + 2..];
        let mut value = Vec::new();
        loop {
            let q = text
                .iter()
                .position(|b| *b == b'\'')
                .expect("closing quote");
            value.extend_from_slice(&text[..q]);
            text = &text[q + 1..];
            if let Some(rest) = text.strip_prefix(b"\\''") {
                value.push(b'\'');
                text = rest;
            } else {
                text = text.strip_prefix(b"\n").expect("newline after the value");
                break;
            }
        }
        out.push((key, value));
    }
    out
}

fn object(bytes: &[u8]) -> Option<Data> {
    match serde_json::from_slice(bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Every string of `v` (keys and values) at least `min` bytes long.
fn strings<'a>(v: &'a Value, min: usize, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) if s.len() >= min => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, min, out)),
        Value::Object(m) => m.values().for_each(|i| strings(i, min, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(template), Some(db), Some(api)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(template), Some(db), Some(api)) =
        (std::str::from_utf8(template), object(db), object(api))
    else {
        return;
    };
    let mut raw = base().clone();
    raw.files[0].template = Some(template.to_string());
    let Ok(config) = Config::from_raw(raw) else {
        return;
    };
    let Ok(renderer) = Renderer::new(&config) else {
        return;
    };
    let (db, api) = (Arc::new(db), Arc::new(api));
    let values: Vec<Option<Arc<Data>>> = config
        .sources
        .iter()
        .map(|s| {
            Some(if s.names.iter().any(|n| n == "db") {
                db.clone()
            } else {
                api.clone()
            })
        })
        .collect();
    for spec in &config.files {
        let result = renderer.render(spec, &values);
        match (&spec.format, result) {
            (Format::Template { .. }, Err(RenderError::Template(msg))) => {
                let values = [Value::Object((*db).clone()), Value::Object((*api).clone())];
                let mut secret_strings = Vec::new();
                for v in &values {
                    strings(v, 6, &mut secret_strings);
                }
                for s in secret_strings {
                    assert!(
                        template.contains(s) || !msg.contains(s),
                        "a template error shows a secret value: {msg}"
                    );
                }
            }
            (Format::Dotenv { .. }, Ok(bytes)) => {
                let back = read_dotenv(&bytes);
                assert_eq!(back.len(), db.len());
                for ((key, value), (k, v)) in back.iter().zip(db.iter()) {
                    assert_eq!(key, k);
                    let want = match v {
                        Value::String(s) => s.as_bytes().to_vec(),
                        other => serde_json::to_vec(other).unwrap(),
                    };
                    assert_eq!(value, &want, "dotenv value of {k}");
                }
            }
            // The secret as serde_json writes it (not compared as values: serde_json reads
            // floats to the nearest double only with its `float_roundtrip` feature).
            (Format::Json { .. }, Ok(bytes)) => {
                assert_eq!(*bytes, serde_json::to_vec(&*api).unwrap());
            }
            _ => {}
        }
    }
});

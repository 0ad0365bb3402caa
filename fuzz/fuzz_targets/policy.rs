//! The policy parser (store/src/core/policy/parse.rs), HCL and JSON.
//!
//! Checks: no panic; an accepted policy, written out again as JSON and as HCL, parses to the
//! same rules (same patterns, capabilities, event types, in the same order).
#![no_main]

use hush_store::core::policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map};

fn as_json(policy: &Policy) -> String {
    let mut paths = Map::new();
    for rule in &policy.rules {
        let mut block = json!({ "capabilities": rule.capabilities.names() });
        if !rule.subscribe_event_types.is_empty() {
            block["subscribe_event_types"] = json!(rule.subscribe_event_types);
        }
        paths.insert(rule.pattern.clone(), block);
    }
    json!({ "path": paths }).to_string()
}

fn as_hcl(policy: &Policy) -> String {
    let mut body = hcl::Body::builder();
    for rule in &policy.rules {
        let mut block = hcl::Block::builder("path")
            .add_label(rule.pattern.as_str())
            .add_attribute(("capabilities", rule.capabilities.names()));
        if !rule.subscribe_event_types.is_empty() {
            block =
                block.add_attribute(("subscribe_event_types", rule.subscribe_event_types.clone()));
        }
        body = body.add_block(block.build());
    }
    hcl::to_string(&body.build()).expect("an HCL body serialises")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse("fuzz", text) else {
        return;
    };
    let json = as_json(&policy);
    let again = Policy::parse("fuzz", &json).expect("the JSON form of a policy parses");
    assert_eq!(again.rules, policy.rules, "JSON form: {json}");
    let hcl = as_hcl(&policy);
    let again = Policy::parse("fuzz", &hcl).expect("the HCL form of a policy parses");
    assert_eq!(again.rules, policy.rules, "HCL form: {hcl}");
});

//! The checked-in generated files (bindings, the TypeScript client's
//! protocol.ts, docs/api.md) must be what codegen writes today.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn checked_in_generated_files_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, text) in dbbridge_protocol::apidoc::generated_files() {
        let current = std::fs::read_to_string(root.join(name)).unwrap_or_default();
        assert!(
            current == text,
            "{name} is stale: run `cargo xtask codegen`"
        );
    }
}

#[test]
fn typescript_declares_each_name_once() {
    let ts = dbbridge_protocol::codegen::typescript();
    let mut seen = std::collections::HashSet::new();
    for line in ts.lines() {
        if let Some(rest) = line.strip_prefix("export type ") {
            let name = rest.split([' ', '<', '=']).next().unwrap();
            assert!(seen.insert(name.to_owned()), "{name} is declared twice");
        }
    }
}

#[test]
fn typescript_has_every_method_and_event() {
    let ts = dbbridge_protocol::codegen::typescript();
    for m in dbbridge_protocol::method_infos() {
        assert!(
            ts.contains(&format!("\"{}\": {{ params:", m.name)),
            "{}",
            m.name
        );
    }
    for e in dbbridge_protocol::event_infos() {
        assert!(ts.contains(&format!("\"{}\":", e.name)), "{}", e.name);
    }
    // Database values are never plain numbers when they can exceed 2^53.
    assert!(
        !ts.contains(": bigint") && !ts.contains("bigint |") && !ts.contains("<bigint"),
        "a 64-bit integer leaked into TypeScript as bigint"
    );
}

//! The checked-in bindings must be what codegen writes today.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn checked_in_bindings_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bindings");
    let ts = std::fs::read_to_string(dir.join("dbbridge.d.ts")).expect("bindings/dbbridge.d.ts");
    assert!(
        ts == dbbridge_protocol::codegen::typescript(),
        "bindings/dbbridge.d.ts is stale: run `cargo xtask codegen`"
    );
    let openrpc = std::fs::read_to_string(dir.join("openrpc.json")).expect("bindings/openrpc.json");
    let expected =
        serde_json::to_string_pretty(&dbbridge_protocol::codegen::openrpc()).unwrap() + "\n";
    assert!(
        openrpc == expected,
        "bindings/openrpc.json is stale: run `cargo xtask codegen`"
    );
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

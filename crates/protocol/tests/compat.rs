//! The API freeze: everything in the committed v1 baseline
//! (`bindings/openrpc.v1.json`) must still be in today's contract with the
//! same type and optionality. Adding methods, fields, events, enum values or
//! error codes stays free; removing or changing one fails here.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

/// Every checkable point of a contract: a path (`method:query.run.params.sql`)
/// and its signature (`string required`).
fn surface(doc: &Value) -> BTreeMap<String, String> {
    let defs = doc["components"]["schemas"].as_object().unwrap().clone();
    let mut out = BTreeMap::new();
    for m in doc["methods"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let at = format!("method:{name}");
        out.insert(at.clone(), "method".into());
        for p in m["params"].as_array().unwrap() {
            let required = p["required"] == true;
            walk(
                &defs,
                &p["schema"],
                &format!("{at}.params.{}", p["name"].as_str().unwrap()),
                Some(required),
                &mut Vec::new(),
                &mut out,
            );
        }
        let data = &m["result"]["schema"]["properties"]["data"]["anyOf"][0];
        walk(
            &defs,
            data,
            &format!("{at}.result"),
            None,
            &mut Vec::new(),
            &mut out,
        );
    }
    for e in doc["x-events"].as_array().unwrap() {
        let at = format!("event:{}", e["name"].as_str().unwrap());
        out.insert(at.clone(), "event".into());
        walk(
            &defs,
            &e["params"],
            &format!("{at}.params"),
            None,
            &mut Vec::new(),
            &mut out,
        );
    }
    for code in defs["ErrorCode"]["enum"].as_array().unwrap() {
        out.insert(format!("error:{}", code.as_str().unwrap()), "code".into());
    }
    out
}

fn walk(
    defs: &Map<String, Value>,
    schema: &Value,
    at: &str,
    required: Option<bool>,
    stack: &mut Vec<String>,
    out: &mut BTreeMap<String, String>,
) {
    let optionality = match required {
        Some(true) => " required",
        Some(false) => " optional",
        None => "",
    };
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap().to_owned();
        out.insert(at.to_owned(), format!("ref {name}{optionality}"));
        // A recursive type (a JSON value, a cell) is walked once per path.
        if stack.contains(&name) {
            return;
        }
        stack.push(name.clone());
        walk(
            defs,
            &defs[&name],
            &format!("{at}<{name}>"),
            None,
            stack,
            out,
        );
        stack.pop();
        return;
    }
    let kind = if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        for v in values {
            out.insert(format!("{at}={v}"), "enum value".into());
        }
        "enum".to_owned()
    } else if let Some(c) = schema.get("const") {
        format!("const {c}")
    } else if let Some(variants) = schema
        .get("anyOf")
        .or(schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        for v in variants {
            let tag = v
                .get("$ref")
                .and_then(Value::as_str)
                .map(|r| r.rsplit('/').next().unwrap().to_owned())
                .or_else(|| v.get("type").map(|t| t.to_string()))
                .or_else(|| v.get("const").map(|c| format!("const {c}")))
                .unwrap_or_else(|| {
                    // An untagged object variant: named by its required fields.
                    let fields: BTreeSet<&str> = v["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    format!("{fields:?}")
                });
            walk(defs, v, &format!("{at}|{tag}"), None, stack, out);
        }
        "union".to_owned()
    } else {
        match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => {
                let mut ts: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
                ts.sort_unstable();
                ts.join("|")
            }
            _ => "any".to_owned(),
        }
    };
    out.insert(at.to_owned(), format!("{kind}{optionality}"));
    if let Some(items) = schema.get("items") {
        walk(defs, items, &format!("{at}[]"), None, stack, out);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (field, s) in properties {
            walk(
                defs,
                s,
                &format!("{at}.{field}"),
                Some(required.contains(field.as_str())),
                stack,
                out,
            );
        }
    }
}

/// What the baseline has that `current` lost or changed.
fn breaks(baseline: &Value, current: &Value) -> Vec<String> {
    let now = surface(current);
    surface(baseline)
        .into_iter()
        .filter_map(|(at, was)| match now.get(&at) {
            None => Some(format!("{at} ({was}) is gone")),
            Some(is) if *is != was => Some(format!("{at} changed: {was} -> {is}")),
            Some(_) => None,
        })
        .collect()
}

fn baseline() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bindings/openrpc.v1.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_contract_keeps_everything_of_the_v1_baseline() {
    let broken = breaks(&baseline(), &dbbridge_protocol::codegen::openrpc());
    assert!(
        broken.is_empty(),
        "the v1 contract is frozen; these break it:\n{}",
        broken.join("\n")
    );
}

/// The checker itself: each kind of break is caught, an addition is not one.
#[test]
fn the_checker_catches_each_kind_of_break() {
    let base = baseline();
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut doc = base.clone();
        f(&mut doc);
        breaks(&base, &doc)
    };
    let method = |doc: &mut Value, name: &str| -> usize {
        doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .position(|m| m["name"] == name)
            .unwrap()
    };
    // A method disappears.
    let b = mutate(&|d| {
        let i = method(d, "query.fetch");
        d["methods"].as_array_mut().unwrap().remove(i);
    });
    assert!(
        b.iter().any(|s| s.starts_with("method:query.fetch ")),
        "{b:?}"
    );
    // A field disappears.
    let b = mutate(&|d| {
        let i = method(d, "query.run");
        d["methods"][i]["params"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p["name"] != "window");
    });
    assert!(
        b.iter()
            .any(|s| s.contains(".window") && s.ends_with("is gone")),
        "{b:?}"
    );
    // A field changes type.
    let b = mutate(&|d| {
        d["components"]["schemas"]["QueryRunResult"]["properties"]["queryId"]["type"] =
            "integer".into();
    });
    assert!(
        b.iter()
            .any(|s| s.contains("queryId changed: string required -> integer")),
        "{b:?}"
    );
    // A required field becomes optional.
    let b = mutate(&|d| {
        let i = method(d, "query.run");
        for p in d["methods"][i]["params"].as_array_mut().unwrap() {
            if p["name"] == "sql" {
                p["required"] = false.into();
            }
        }
    });
    assert!(
        b.iter()
            .any(|s| s.contains(".sql changed") && s.contains("optional")),
        "{b:?}"
    );
    // An event, an error code and an enum value disappear.
    let b = mutate(&|d| {
        d["x-events"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["name"] != "query.paused");
        d["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array_mut()
            .unwrap()
            .retain(|c| c != "SESSION_BUSY");
        d["components"]["schemas"]["ExportFormat"]["enum"]
            .as_array_mut()
            .unwrap()
            .retain(|c| c != "xlsx");
    });
    for lost in ["event:query.paused ", "error:SESSION_BUSY ", "=\"xlsx\""] {
        assert!(
            b.iter().any(|s| s.contains(lost)),
            "{lost} not caught: {b:?}"
        );
    }
    // Additions are free.
    let b = mutate(&|d| {
        let i = method(d, "query.run");
        d["methods"][i]["params"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "newOption", "required": false, "schema": {"type": "boolean"}}));
        d["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array_mut()
            .unwrap()
            .push("NEW_CODE".into());
        let mut m = d["methods"][0].clone();
        m["name"] = "new.method".into();
        d["methods"].as_array_mut().unwrap().push(m);
    });
    assert!(b.is_empty(), "an addition was called a break: {b:?}");
}

//! SQLite metadata end to end: a schema with composite keys, partial and
//! expression indexes and a view, through the real binary.

use serde_json::{Value, json};

use crate::harness::Bridge;
use crate::sqlite::db_path;

#[test]
fn metadata_of_a_schema_with_composite_keys_partial_and_expression_indexes_and_a_view() {
    let mut b = Bridge::start();
    let path = db_path(&b, "meta.db");
    let s = b.open_sqlite(&path);
    let out = b.query(
        &s,
        "CREATE TABLE regions (country TEXT NOT NULL, code TEXT NOT NULL, name TEXT, PRIMARY KEY (country, code));
         CREATE TABLE shops (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             country TEXT NOT NULL,
             region TEXT NOT NULL,
             name TEXT NOT NULL DEFAULT 'unnamed',
             deleted INTEGER NOT NULL DEFAULT 0,
             name_lower TEXT GENERATED ALWAYS AS (lower(name)) VIRTUAL,
             FOREIGN KEY (country, region) REFERENCES regions (country, code) ON UPDATE CASCADE ON DELETE RESTRICT
         );
         CREATE UNIQUE INDEX shops_live_name ON shops (name) WHERE deleted = 0;
         CREATE INDEX shops_lower ON shops (lower(name), country);
         CREATE VIEW live_shops AS SELECT id, name FROM shops WHERE deleted = 0;",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);

    let schemas = b.ok("metadata.listSchemas", json!({"sessionId": s}));
    assert_eq!(schemas[0], json!({"name": "main", "isSystem": false}));

    let tables = b.ok(
        "metadata.listTables",
        json!({"sessionId": s, "schema": "main"}),
    );
    let names: Vec<(&str, &str)> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("live_shops", "view"),
            ("regions", "table"),
            ("shops", "table")
        ]
    );

    let shops = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "main", "table": "shops"}),
    );
    let cols = shops["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 6);
    assert_eq!(cols[0]["name"], "id");
    assert_eq!(cols[0]["autoIncrement"], true);
    assert_eq!(cols[0]["nullable"], false);
    assert_eq!(cols[0]["kind"], "bigint");
    assert_eq!(cols[3]["default"], "'unnamed'");
    assert_eq!(cols[3]["nullable"], false);
    assert_eq!(cols[5]["generated"], "virtual");
    assert_eq!(cols[5]["ordinal"], 6);
    assert_eq!(shops["primaryKey"]["columns"], json!(["id"]));
    assert_eq!(
        shops["foreignKeys"],
        json!([{
            "name": null, "columns": ["country", "region"], "referencedSchema": "main", "referencedTable": "regions",
            "referencedColumns": ["country", "code"], "onUpdate": "CASCADE", "onDelete": "RESTRICT"
        }])
    );
    let indexes = shops["indexes"].as_array().unwrap();
    let live = indexes
        .iter()
        .find(|i| i["name"] == "shops_live_name")
        .unwrap();
    assert_eq!(live["unique"], true);
    assert_eq!(live["columns"], json!(["name"]));
    assert_eq!(live["predicate"], "deleted = 0");
    let lower = indexes.iter().find(|i| i["name"] == "shops_lower").unwrap();
    assert_eq!(lower["columns"], json!(["lower(name)", "country"]));
    assert_eq!(lower["unique"], false);
    assert_eq!(lower["predicate"], Value::Null);

    let regions = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "main", "table": "regions"}),
    );
    assert_eq!(regions["primaryKey"]["columns"], json!(["country", "code"]));
    assert_eq!(regions["columns"][0]["autoIncrement"], false);
    let pk_index = regions["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["primary"] == true)
        .unwrap();
    assert_eq!(pk_index["columns"], json!(["country", "code"]));

    let view = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "main", "table": "live_shops"}),
    );
    assert_eq!(view["type"], "view");
    assert_eq!(view["columns"].as_array().unwrap().len(), 2);

    let e = b.err(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "main", "table": "nope"}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS");
    let e = b.err(
        "metadata.listTables",
        json!({"sessionId": s, "schema": "nope"}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS");

    // An attached database is a schema of its own.
    let other = db_path(&b, "other.db");
    b.query(
        &s,
        &format!("ATTACH DATABASE '{other}' AS aux; CREATE TABLE aux.extra (x)"),
        json!({}),
    );
    let schemas = b.ok("metadata.listSchemas", json!({"sessionId": s}));
    assert!(
        schemas
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "aux")
    );
    let tables = b.ok(
        "metadata.listTables",
        json!({"sessionId": s, "schema": "aux"}),
    );
    assert_eq!(tables[0]["name"], "extra");
}

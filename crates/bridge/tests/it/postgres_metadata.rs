//! Postgres metadata on a fixture schema with every kind of object, and the
//! listing of a schema with 10,000 tables.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Bridge, find};
use crate::servers::postgres;

const FIXTURE: &str = r#"
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE SCHEMA app;
CREATE SCHEMA ref;
CREATE TABLE ref.region (code text, country text, name text NOT NULL, PRIMARY KEY (code, country));
COMMENT ON TABLE ref.region IS 'regions of the world';
CREATE TABLE app.customer (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    legacy_no serial,
    email varchar(200) NOT NULL,
    price numeric(12,2) DEFAULT 0,
    region_code text,
    region_country text,
    tags text[],
    full_name text GENERATED ALWAYS AS (email || '!') STORED,
    FOREIGN KEY (region_code, region_country) REFERENCES ref.region (code, country)
        ON UPDATE CASCADE ON DELETE SET NULL
);
COMMENT ON COLUMN app.customer.email IS 'where we write';
CREATE UNIQUE INDEX customer_email_lower ON app.customer (lower(email));
CREATE INDEX customer_partial ON app.customer (region_code) WHERE price > 100;
CREATE INDEX customer_tags ON app.customer USING gin (tags);
INSERT INTO app.customer (email) SELECT 'u' || g || '@x' FROM generate_series(1, 50) g;
ANALYZE app.customer;
CREATE VIEW app.customer_emails AS SELECT id, email FROM app.customer;
CREATE MATERIALIZED VIEW app.customer_count AS SELECT count(*) AS n FROM app.customer;
CREATE FOREIGN TABLE app.outside (line text) SERVER files OPTIONS (filename '/dev/null');
CREATE TABLE app.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"#;

#[test]
fn metadata_of_a_fixture_with_every_kind_of_object() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let out = pg.psql(&db, FIXTURE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = Bridge::start();
    let s = b.open_session(&pg.connection(&db));

    let schemas = b.ok("metadata.listSchemas", json!({"sessionId": s}));
    assert_eq!(find(&schemas, "name", "app")["isSystem"], false);
    assert_eq!(find(&schemas, "name", "public")["isSystem"], false);
    assert_eq!(find(&schemas, "name", "pg_catalog")["isSystem"], true);
    assert_eq!(
        find(&schemas, "name", "information_schema")["isSystem"],
        true
    );

    let tables = b.ok(
        "metadata.listTables",
        json!({"sessionId": s, "schema": "app"}),
    );
    let kinds: Vec<(String, String)> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().into(),
                t["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, kind) in [
        ("customer", "table"),
        ("customer_emails", "view"),
        ("customer_count", "materializedView"),
        ("outside", "foreignTable"),
        ("events", "table"),
        ("events_2024", "table"),
    ] {
        assert!(
            kinds.contains(&(name.into(), kind.into())),
            "{name} {kind}: {kinds:?}"
        );
    }
    assert_eq!(find(&tables, "name", "events")["partitioned"], true);
    assert_eq!(find(&tables, "name", "customer")["rowEstimate"], 50);
    assert!(
        find(&tables, "name", "customer")
            .get("partitioned")
            .is_none()
    );
    let all = b.ok("metadata.listTables", json!({"sessionId": s}));
    assert_eq!(
        find(&all, "name", "region")["comment"],
        "regions of the world"
    );
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["schema"] == "pg_catalog"),
        "system schemas only when asked for"
    );

    let t = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "app", "table": "customer"}),
    );
    assert_eq!(t["type"], "table");
    let col = |name: &str| find(&t["columns"], "name", name).clone();
    assert_eq!(col("id")["dbType"], "bigint");
    assert_eq!(col("id")["kind"], "bigint");
    assert_eq!(col("id")["autoIncrement"], true);
    assert_eq!(col("id")["nullable"], false);
    assert_eq!(col("legacy_no")["autoIncrement"], true);
    assert!(
        col("legacy_no")["default"]
            .as_str()
            .unwrap()
            .starts_with("nextval(")
    );
    assert_eq!(col("email")["dbType"], "character varying(200)");
    assert_eq!(col("email")["comment"], "where we write");
    assert_eq!(col("price")["dbType"], "numeric(12,2)");
    assert_eq!(col("price")["kind"], "decimal");
    assert_eq!(col("price")["default"], "0");
    assert_eq!(col("tags")["dbType"], "text[]");
    assert_eq!(col("tags")["kind"], "array");
    assert_eq!(col("full_name")["generated"], "stored");
    assert_eq!(col("full_name")["autoIncrement"], false);
    assert_eq!(col("full_name")["ordinal"], 8);
    assert_eq!(t["primaryKey"]["columns"], json!(["id"]));

    let fk = &t["foreignKeys"][0];
    assert_eq!(fk["columns"], json!(["region_code", "region_country"]));
    assert_eq!(fk["referencedSchema"], "ref");
    assert_eq!(fk["referencedTable"], "region");
    assert_eq!(fk["referencedColumns"], json!(["code", "country"]));
    assert_eq!(fk["onUpdate"], "CASCADE");
    assert_eq!(fk["onDelete"], "SET NULL");

    let idx = |name: &str| find(&t["indexes"], "name", name).clone();
    assert_eq!(idx("customer_pkey")["primary"], true);
    assert_eq!(idx("customer_email_lower")["unique"], true);
    assert_eq!(
        idx("customer_email_lower")["columns"],
        json!(["lower(email::text)"])
    );
    assert_eq!(idx("customer_partial")["predicate"], "price > 100::numeric");
    assert_eq!(idx("customer_partial")["columns"], json!(["region_code"]));
    assert_eq!(idx("customer_tags")["method"], "gin");
    assert_eq!(idx("customer_partial")["method"], "btree");

    let region = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "ref", "table": "region"}),
    );
    assert_eq!(region["primaryKey"]["columns"], json!(["code", "country"]));
    let view = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "app", "table": "customer_emails"}),
    );
    assert_eq!(view["type"], "view");
    assert_eq!(view["columns"].as_array().unwrap().len(), 2);

    let e = b.err(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "app", "table": "nope"}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS");
}

#[test]
fn listing_ten_thousand_tables_is_quick() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    for part in 0..5 {
        let out = pg.psql(
            &db,
            &format!(
                "CREATE SCHEMA IF NOT EXISTS many; \
                 DO $$ BEGIN FOR i IN {}..{} LOOP \
                 EXECUTE format('CREATE TABLE many.t%s (id int)', i); END LOOP; END $$",
                part * 2000 + 1,
                part * 2000 + 2000
            ),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut b = Bridge::start();
    let s = b.open_session(&pg.connection(&db));
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let tables = b.ok(
            "metadata.listTables",
            json!({"sessionId": s, "schema": "many"}),
        );
        best = best.min(t.elapsed());
        assert_eq!(tables.as_array().unwrap().len(), 10_000);
    }
    eprintln!(
        "metadata.listTables, 10,000 tables: {} ms",
        best.as_millis()
    );
    assert!(best < Duration::from_secs(1), "{best:?}");
}

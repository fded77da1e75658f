//! Postgres queries against a real server: every value type compared with
//! what psql prints, streaming, cancellation, timeouts, transactions, the
//! script splitter, errors and a server that goes away.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Bridge, Options, find};
use crate::servers::{Cluster, Postgres, postgres};

const T: Duration = Duration::from_secs(120);

fn open(b: &mut Bridge, pg: &Postgres, db: &str) -> String {
    b.open_session(&pg.connection(db))
}

fn psql_ok(pg: &Postgres, db: &str, sql: &str) -> String {
    let out = pg.psql(db, sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// How a column's bridge value is checked against psql.
#[derive(Clone, Copy)]
enum Check {
    /// The JSON string equals the output text psql prints (`format('%s', col)`).
    Text,
    /// A JSON number whose digits are `col::text`.
    Int,
    /// A JSON number equal to `col::text` parsed (or the NaN/Infinity string).
    Float,
    Bool,
    /// Base64 equal to `encode(col, 'base64')`.
    Base64,
    /// Equal to `to_json(col)` (numbers there may be strings here).
    ToJson,
    /// A one-dimensional array whose elements are strings equal to each
    /// element's output text.
    Elements,
    /// The output text with its `+HH` offset written `+HH:00`, as RFC 3339 has it.
    Offset,
}

/// (column, declaration, literal, kind, check)
const EVERY: &[(&str, &str, &str, &str, Check)] = &[
    ("c_int2", "int2", "-32768", "int", Check::Int),
    ("c_int4", "int4", "2147483647", "int", Check::Int),
    (
        "c_int8",
        "int8",
        "9223372036854775807",
        "bigint",
        Check::Text,
    ),
    (
        "c_int8_min",
        "int8",
        "-9223372036854775808",
        "bigint",
        Check::Text,
    ),
    (
        "c_num40",
        "numeric",
        "1234567890123456789012345678901234567890.0123456789",
        "decimal",
        Check::Text,
    ),
    (
        "c_num122",
        "numeric(12,2)",
        "-1234567890.12",
        "decimal",
        Check::Text,
    ),
    ("c_num_nan", "numeric", "'NaN'", "decimal", Check::Text),
    (
        "c_num_inf",
        "numeric",
        "'-Infinity'",
        "decimal",
        Check::Text,
    ),
    ("c_f4", "float4", "3.4028235e38", "float", Check::Float),
    ("c_f8", "float8", "0.1", "float", Check::Float),
    ("c_f8_big", "float8", "1e300", "float", Check::Float),
    ("c_f8_nan", "float8", "'NaN'", "float", Check::Float),
    ("c_f8_inf", "float8", "'Infinity'", "float", Check::Float),
    ("c_bool", "bool", "true", "bool", Check::Bool),
    (
        "c_text",
        "text",
        "E'multi\\nline \"quoted\" \\\\ back \\t tab \\r \\b \\f \\x0b \\x01 \\\\N é 漢字 🎉'",
        "text",
        Check::Text,
    ),
    ("c_varchar", "varchar(20)", "'short'", "text", Check::Text),
    ("c_char", "char(5)", "'ab'", "text", Check::Text),
    (
        "c_bytea",
        "bytea",
        "'\\x00ff10deadbeef'::bytea",
        "bytes",
        Check::Base64,
    ),
    (
        "c_json",
        "json",
        "'{\"big\": 123456789012345678901234567890, \"k\": [1, 2.50]}'",
        "json",
        Check::Text,
    ),
    (
        "c_jsonb",
        "jsonb",
        "'{\"big\": 123456789012345678901234567890, \"z\": null}'",
        "json",
        Check::Text,
    ),
    (
        "c_uuid",
        "uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "uuid",
        Check::Text,
    ),
    ("c_date", "date", "'2024-02-29'", "date", Check::Text),
    ("c_time", "time", "'13:45:07.123456'", "time", Check::Text),
    ("c_timetz", "timetz", "'13:45:07+02'", "time", Check::Offset),
    (
        "c_ts",
        "timestamp",
        "'2024-02-29 13:45:07.123456'",
        "timestamp",
        Check::ToJson,
    ),
    (
        "c_ts_inf",
        "timestamp",
        "'infinity'",
        "timestamp",
        Check::Text,
    ),
    (
        "c_tstz",
        "timestamptz",
        "'2024-02-29 13:45:07.123456+00'",
        "timestamptz",
        Check::ToJson,
    ),
    (
        "c_interval",
        "interval",
        "'1 year 2 mons 3 days 04:05:06.789'",
        "interval",
        Check::Text,
    ),
    ("c_inet", "inet", "'192.168.0.1/24'", "other", Check::Text),
    ("c_cidr", "cidr", "'10.0.0.0/8'", "other", Check::Text),
    (
        "c_mac",
        "macaddr",
        "'08:00:2b:01:02:03'",
        "other",
        Check::Text,
    ),
    ("c_bit", "bit(4)", "B'1010'", "other", Check::Text),
    ("c_varbit", "varbit", "B'101'", "other", Check::Text),
    ("c_money", "money", "'1234.56'", "other", Check::Text),
    (
        "c_int_arr",
        "int4[]",
        "'{1,NULL,3}'",
        "array",
        Check::ToJson,
    ),
    (
        "c_int_2d",
        "int4[]",
        "'{{1,2},{3,4}}'",
        "array",
        Check::ToJson,
    ),
    (
        "c_text_arr",
        "text[]",
        "ARRAY['a,b', 'c\"d', NULL, 'NULL', '', 'x\\y', E't\\tab\\nline']",
        "array",
        Check::ToJson,
    ),
    (
        "c_int8_arr",
        "int8[]",
        "'{9223372036854775807,-1}'",
        "array",
        Check::ToJson,
    ),
    (
        "c_num_arr",
        "numeric[]",
        "'{1.10,NaN}'",
        "array",
        Check::Elements,
    ),
    (
        "c_tstz_arr",
        "timestamptz[]",
        "ARRAY['2024-01-01 00:00:00+00'::timestamptz, NULL]",
        "array",
        Check::ToJson,
    ),
    ("c_bool_arr", "bool[]", "'{t,f}'", "array", Check::ToJson),
    ("c_enum", "mood", "'happy'", "enum", Check::Text),
    (
        "c_enum_arr",
        "mood[]",
        "'{sad,happy}'",
        "array",
        Check::ToJson,
    ),
    ("c_domain", "posint", "42", "int", Check::Int),
    ("c_domain_num", "amount", "'12.30'", "decimal", Check::Text),
    ("c_range", "int4range", "'[1,10)'", "other", Check::Text),
    (
        "c_tstzrange",
        "tstzrange",
        "'[2024-01-01 00:00+00,2024-02-01 00:00+00)'",
        "other",
        Check::Text,
    ),
    (
        "c_comp",
        "pair",
        "ROW(1, 'a b')::pair",
        "other",
        Check::Text,
    ),
    ("c_point", "point", "'(1.5,2)'", "other", Check::Text),
    ("c_box", "box", "'((0,0),(1,1))'", "other", Check::Text),
    (
        "c_box_arr",
        "box[]",
        "ARRAY['((0,0),(1,1))'::box, '((2,2),(3,3))'::box]",
        "array",
        Check::Elements,
    ),
    ("c_circle", "circle", "'<(0,0),2>'", "other", Check::Text),
    (
        "c_polygon",
        "polygon",
        "'((0,0),(1,0),(1,1))'",
        "other",
        Check::Text,
    ),
    (
        "c_hstore",
        "hstore",
        "'a=>1, b=>NULL'",
        "other",
        Check::Text,
    ),
    ("c_citext", "citext", "'MiXeD'", "text", Check::Text),
    ("c_xml", "xml", "'<a>1</a>'", "other", Check::Text),
    ("c_oid", "oid", "4294967295", "int", Check::Int),
];

/// Whether a bridge value matches a `to_json` reference: arrays element by
/// element, a string where `to_json` has a number when the digits match.
fn same(bridge: &Value, reference: &Value) -> bool {
    match (bridge, reference) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::String(s), Value::Number(n)) => s == &n.to_string(),
        _ => bridge == reference,
    }
}

#[test]
fn every_type_matches_what_psql_prints() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    // A server built without libxml (the PostgreSQL 18 of the tests) has no xml.
    let xml = pg.psql(&db, "SELECT '<a/>'::xml").status.success();
    let every: Vec<_> = EVERY.iter().filter(|c| xml || c.1 != "xml").collect();
    let columns: Vec<String> = every.iter().map(|(n, d, ..)| format!("{n} {d}")).collect();
    let literals: Vec<&str> = every.iter().map(|(_, _, l, ..)| *l).collect();
    psql_ok(
        &pg,
        &db,
        &format!(
            "ALTER DATABASE {db} SET timezone = 'Asia/Kolkata'; \
             CREATE EXTENSION hstore; CREATE EXTENSION citext; \
             CREATE TYPE mood AS ENUM ('sad', 'happy'); \
             CREATE DOMAIN posint AS int4 CHECK (VALUE > 0); \
             CREATE DOMAIN amount AS numeric(12,2); \
             CREATE TYPE pair AS (a int, b text); \
             CREATE TABLE every ({}); \
             INSERT INTO every VALUES ({}); \
             INSERT INTO every DEFAULT VALUES;",
            columns.join(", "),
            literals.join(", ")
        ),
    );
    let reference: Vec<String> = every
        .iter()
        .map(|(n, _, _, _, check)| match check {
            Check::Base64 => format!("replace(encode({n}, 'base64'), E'\\n', '')"),
            Check::ToJson => format!("to_json({n})::text"),
            Check::Elements => {
                format!("(SELECT json_agg(format('%s', x))::text FROM unnest({n}) x)")
            }
            _ => format!("format('%s', {n})"),
        })
        .collect();
    let printed = psql_ok(
        &pg,
        &db,
        &format!(
            "SELECT concat_ws(chr(31), {}) FROM every WHERE c_int4 IS NOT NULL",
            reference.join(", ")
        ),
    );
    // One line, the values joined by a unit separator (values may hold newlines).
    let printed = printed.strip_suffix('\n').unwrap();
    let printed: Vec<&str> = printed.split('\x1f').collect();
    assert_eq!(printed.len(), every.len(), "{printed:?}");

    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let out = b.query(
        &s,
        "SELECT * FROM every ORDER BY c_int4 NULLS LAST",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    let cols = &out.results[0].columns;
    let row = out.rows(0)[0].as_array().unwrap();
    let nulls = out.rows(0)[1].as_array().unwrap();
    for (i, (name, _, _, kind, check)) in every.iter().enumerate() {
        let got = &row[i];
        let want = printed[i];
        assert_eq!(cols[i]["name"], *name);
        assert_eq!(cols[i]["kind"], *kind, "{name}: {}", cols[i]);
        assert_eq!(nulls[i], Value::Null, "{name}");
        let ok = match check {
            Check::Text => got.as_str() == Some(want),
            Check::Int => got.as_i64().map(|n| n.to_string()).as_deref() == Some(want),
            Check::Float => match want {
                "NaN" | "Infinity" | "-Infinity" => got.as_str() == Some(want),
                _ => got.as_f64() == Some(want.parse::<f64>().unwrap()),
            },
            Check::Bool => got.as_bool() == Some(want == "t"),
            Check::Base64 => got.as_str() == Some(want),
            Check::ToJson => same(got, &serde_json::from_str(want).unwrap()),
            Check::Elements => got == &serde_json::from_str::<Value>(want).unwrap(),
            Check::Offset => got.as_str() == Some(&format!("{want}:00")),
        };
        assert!(ok, "{name}: bridge {got} vs psql {want:?}");
    }
    // The same rows read through a cursor (maxRows set) rather than COPY.
    let cursor = b.query(
        &s,
        "SELECT * FROM every ORDER BY c_int4 NULLS LAST",
        json!({"maxRows": 10}),
    );
    assert_eq!(cursor.status(), "completed", "{}", cursor.done);
    assert_eq!(cursor.rows(0), out.rows(0));
    // dbType as Postgres writes it.
    let db_type = |name: &str| {
        cols.iter().find(|c| c["name"] == name).unwrap()["dbType"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(db_type("c_num122"), "numeric(12,2)");
    assert_eq!(db_type("c_varchar"), "character varying(20)");
    assert_eq!(db_type("c_int_arr"), "integer[]");
    assert_eq!(db_type("c_int8"), "bigint");
    assert_eq!(db_type("c_enum"), "mood");
    // Timestamps with zone are RFC 3339 with the session's offset.
    let tstz = every.iter().position(|c| c.0 == "c_tstz").unwrap();
    assert_eq!(row[tstz], "2024-02-29T19:15:07.123456+05:30");
    // Big numbers inside JSON survive as text.
    let js = every.iter().position(|c| c.0 == "c_jsonb").unwrap();
    assert!(
        row[js]
            .as_str()
            .unwrap()
            .contains("123456789012345678901234567890")
    );
}

#[test]
fn a_million_rows_stream_exactly_and_max_rows_truncates() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let out = b.query(
        &s,
        "SELECT g, 'row-' || g AS label FROM generate_series(1, 1000000) g",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    let rows = out.rows(0);
    assert_eq!(rows.len(), 1_000_000);
    assert_eq!(out.done["results"][0]["rowCount"], 1_000_000);
    assert_eq!(out.done["results"][0]["command"], "SELECT");
    assert!(out.batches >= 2000, "batches of 500: {}", out.batches);
    for (i, row) in rows.iter().enumerate().step_by(99_991) {
        assert_eq!(row, &json!([i + 1, format!("row-{}", i + 1)]));
    }
    assert_eq!(rows[999_999], json!([1_000_000, "row-1000000"]));

    // maxRows stops the read; the session goes on at once.
    let out = b.query(
        &s,
        "SELECT generate_series(1, 1000000000) AS g",
        json!({"maxRows": 1234}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 1234);
    assert_eq!(out.done["results"][0]["truncated"], true);
    assert!(
        out.done["durationMs"].as_u64().unwrap() < 5000,
        "{}",
        out.done
    );
    let out = b.query(&s, "SELECT 1 AS one", json!({"maxRows": 1}));
    assert_eq!(out.done["results"][0]["truncated"], false);
    assert_eq!(out.rows(0), [json!([1])]);
}

#[test]
fn a_stalled_client_keeps_memory_flat() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start_with(Options::default());
    let s = open(&mut b, &pg, &db);
    let sql =
        "SELECT g, lpad(g::text, 80, '0') AS pad, g * 1.5 AS f FROM generate_series(1, 3000000) g";
    let (out, peak) = b.stream_while_stalled(&s, sql);
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 3_000_000);
    assert!(
        peak > 0 && peak < 100 << 20,
        "RSS while stalled: {} MiB",
        peak >> 20
    );
}

/// Cancels `sql` after `after`, checks it ends `cancelled` promptly and that
/// the session runs its next query.
fn cancel_case(b: &mut Bridge, s: &str, sql: &str, after: Duration, read_first: bool) {
    let started = Instant::now();
    let q = b.start_query(s, sql, json!({}));
    if read_first {
        b.event_where(T, |e| {
            e["method"] == "query.result" && e["params"]["queryId"] == q.as_str()
        });
    }
    std::thread::sleep(after);
    let asked = Instant::now();
    assert_eq!(
        b.ok("query.cancel", json!({"sessionId": s}))["cancelled"],
        true
    );
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "cancelled", "{sql}: {done}");
    assert_eq!(done["error"]["code"], "QUERY_CANCELLED");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{sql}: {:?}",
        asked.elapsed()
    );
    let next = b.query(s, "SELECT 2 AS two", json!({}));
    assert_eq!(next.rows(0), [json!([2])], "{sql}");
    eprintln!(
        "{sql}: {:?} to cancel and run the next query",
        started.elapsed()
    );
}

#[test]
fn cancel_during_planning_before_the_first_row_and_mid_stream() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    // An immutable function in a WHERE clause is folded to a constant by the
    // planner: the sleep happens while planning.
    psql_ok(
        &pg,
        &db,
        "CREATE FUNCTION slow_const() RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(30); RETURN 1; END $$",
    );
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let t = Instant::now();
    cancel_case(
        &mut b,
        &s,
        "SELECT g FROM generate_series(1, 10) g WHERE g = slow_const()",
        Duration::from_millis(500),
        false,
    );
    cancel_case(
        &mut b,
        &s,
        "SELECT pg_sleep(30), 1",
        Duration::from_millis(500),
        false,
    );
    cancel_case(
        &mut b,
        &s,
        // In the select list the series streams (in FROM it would be materialized first).
        "SELECT generate_series(1, 1000000000) AS g",
        Duration::from_millis(100),
        true,
    );
    // The same inside a script: the first statement's result stays, the rest is not run.
    let q = b.start_query(
        &s,
        "SELECT 1 AS a; SELECT pg_sleep(30); SELECT 3",
        json!({}),
    );
    std::thread::sleep(Duration::from_millis(500));
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["results"].as_array().unwrap().len(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "cancels were not prompt"
    );
}

#[test]
fn timeout_cancels_through_the_same_path() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let t = Instant::now();
    let out = b.query(&s, "SELECT pg_sleep(30)", json!({"timeoutMs": 500}));
    assert_eq!(out.status(), "timeout", "{}", out.done);
    assert_eq!(out.done["error"]["code"], "QUERY_TIMEOUT");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

#[test]
fn a_transaction_spans_calls_and_is_invisible_until_commit() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    psql_ok(&pg, &db, "CREATE TABLE t (id int)");
    let mut b = Bridge::start();
    let s1 = open(&mut b, &pg, &db);
    let s2 = open(&mut b, &pg, &db);
    let in_tx = |b: &mut Bridge, s: &str| {
        let listed = b.ok("session.list", json!({}));
        find(&listed, "sessionId", s)["inTransaction"].clone()
    };
    assert_eq!(in_tx(&mut b, &s1), false);
    let out = b.query(&s1, "BEGIN; INSERT INTO t VALUES (1), (2)", json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.done["results"][1]["command"], "INSERT");
    assert_eq!(out.done["results"][1]["affectedRows"], 2);
    assert_eq!(in_tx(&mut b, &s1), true);
    // Reads inside the open transaction (through a cursor) leave it open.
    assert_eq!(
        b.query(&s1, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );
    assert_eq!(in_tx(&mut b, &s1), true);
    assert_eq!(
        b.query(&s2, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["0"])]
    );
    let out = b.query(&s1, "COMMIT", json!({}));
    assert_eq!(out.done["results"][0]["command"], "COMMIT");
    assert_eq!(in_tx(&mut b, &s1), false);
    assert_eq!(
        b.query(&s2, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );

    // A failed statement leaves the block aborted (and still open) until ROLLBACK.
    b.query(&s1, "BEGIN", json!({}));
    let out = b.query(&s1, "SELECT 1/0", json!({}));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.done["error"]["details"]["sqlstate"], "22012");
    assert_eq!(in_tx(&mut b, &s1), true);
    let out = b.query(&s1, "SELECT 1", json!({}));
    assert_eq!(out.done["error"]["details"]["sqlstate"], "25P02");
    b.query(&s1, "ROLLBACK", json!({}));
    assert_eq!(in_tx(&mut b, &s1), false);
}

#[test]
fn the_splitter_handles_dollar_quoted_bodies_comments_and_parameters() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let script = r#"
-- a comment; with a semicolon
CREATE FUNCTION add_one(x int) RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
  -- inside the body; still the body
  /* nested /* block; */ comment */
  RETURN x + 1;
END;
$body$;
/* a block comment; between statements */
CREATE TABLE "semi;colon" (v text);
INSERT INTO "semi;colon" VALUES ('it''s; fine'), (E'esc\'; aped'), ($$dollar; $$);
SELECT add_one(41) AS answer, $q$;$q$ AS semi;
SELECT v FROM "semi;colon" ORDER BY v
"#;
    let out = b.query(&s, script, json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let commands: Vec<&str> = out.done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["CREATE", "CREATE", "INSERT", "SELECT", "SELECT"]);
    assert_eq!(out.done["results"][2]["affectedRows"], 3);
    assert_eq!(out.rows(3), [json!([42, ";"])]);
    assert_eq!(
        out.rows(4),
        [
            json!(["dollar; "]),
            json!(["esc'; aped"]),
            json!(["it's; fine"])
        ]
    );
    // DDL and DML report their result sets with no columns.
    assert_eq!(out.results[0].columns, Vec::<Value>::new());

    // Parameters bind to every statement that has placeholders, by value.
    let out = b.query(
        &s,
        "SELECT $1::int + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull",
        json!({"params": [41, "x'); DROP TABLE \"semi;colon\"; --", null]}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(
        out.rows(0),
        [json!([42, "x'); DROP TABLE \"semi;colon\"; --", true])]
    );
    let out = b.query(
        &s,
        "SELECT count(*) FROM \"semi;colon\" WHERE v <> $1",
        json!({"params": ["nothing"]}),
    );
    assert_eq!(out.rows(0), [json!(["3"])]);
    let e = b.query(&s, "SELECT $2", json!({"params": [1]}));
    assert_eq!(e.status(), "failed");
    assert_eq!(e.done["error"]["code"], "INVALID_PARAMS");
}

#[test]
fn a_syntax_error_reports_sqlstate_and_position_in_the_script() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let script = "SELECT 1;\nSELECT 'é' AS x, 2 FROM;";
    let out = b.query(&s, script, json!({}));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.done["results"].as_array().unwrap().len(), 1);
    let e = &out.done["error"];
    assert_eq!(e["code"], "QUERY_FAILED");
    assert_eq!(e["details"]["sqlstate"], "42601");
    assert!(
        e["message"].as_str().unwrap().contains("syntax error"),
        "{e}"
    );
    // 1-based characters into the whole script: the ';' after FROM.
    let expected = script.chars().count();
    assert_eq!(e["details"]["position"], expected, "{e}");
    // With a parameter written in before the error, the position still points into the caller's text.
    let script = "SELECT $1, FROM x";
    let out = b.query(&s, script, json!({"params": ["a long parameter value"]}));
    assert_eq!(
        out.done["error"]["details"]["position"],
        script.find("FROM").unwrap() + 1
    );
}

#[test]
fn a_server_restart_mid_query_fails_it_and_closes_the_session() {
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let pg = &cluster.pg;
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, pg, &db);
    let other = open(&mut b, pg, &db);
    let q = b.start_query(&s, "SELECT pg_sleep(60)", json!({}));
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "CONNECTION_FAILED", "{done}");
    let closed = b.event_where(T, |e| {
        e["method"] == "session.closed" && e["params"]["sessionId"] == s.as_str()
    });
    assert_eq!(closed["params"]["reason"], "connectionLost");
    // The idle session on the same server learns of it too.
    let closed = b.event_where(T, |e| {
        e["method"] == "session.closed" && e["params"]["sessionId"] == other.as_str()
    });
    assert_eq!(closed["params"]["reason"], "connectionLost");
    assert_eq!(
        b.err("query.run", json!({"sessionId": s, "sql": "SELECT 1"}))["code"],
        "SESSION_NOT_FOUND"
    );
    // The bridge serves on: a new session on the restarted server works.
    let s = open(&mut b, pg, &db);
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

#[test]
fn bytes_that_are_not_utf8_in_a_sql_ascii_database_fail_clearly_and_the_session_goes_on() {
    let Some(pg) = postgres() else { return };
    let db = format!("{}_ascii", pg.create_database());
    psql_ok(
        &pg,
        "postgres",
        &format!(
            "CREATE DATABASE {db} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    );
    // A Latin-1 byte, which SQL_ASCII stores as it is.
    psql_ok(
        &pg,
        &db,
        "CREATE TABLE t (n int, v text); INSERT INTO t VALUES (1, E'caf\\xe9'), (2, 'plain')",
    );
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    // The server refuses to send it as UTF-8: the query fails with its SQLSTATE.
    let out = b.query(&s, "SELECT n, v FROM t ORDER BY n", json!({}));
    assert_eq!(out.status(), "failed", "{}", out.done);
    assert_eq!(
        out.done["error"]["details"]["sqlstate"], "22021",
        "{}",
        out.done
    );
    // The rest of the table reads, through COPY and through a cursor.
    for extra in [json!({}), json!({"maxRows": 5})] {
        let out = b.query(&s, "SELECT n, v FROM t WHERE n = 2", extra);
        assert_eq!(out.status(), "completed", "{}", out.done);
        assert_eq!(out.rows(0), [json!([2, "plain"])]);
    }
}

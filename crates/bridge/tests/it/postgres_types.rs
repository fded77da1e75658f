//! Every Postgres type the bridge maps, against what psql prints for the
//! same values (the test command runs it on PostgreSQL 15 and 18).

use serde_json::{Value, json};

use crate::harness::Bridge;
use crate::postgres_query::{open, psql_ok};
use crate::servers::postgres;

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

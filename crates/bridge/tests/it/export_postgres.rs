//! Exports of a Postgres database: every format from a table holding every
//! value kind, read back by Postgres's own loaders (`COPY FROM` through
//! psql's `\copy`, and the SQL file run by `psql -f` into a fresh database),
//! by serde_json and by calamine; the snapshot is read-only; cancel mid-way
//! with the session free meanwhile; bad destinations.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::export::{
    bad_destinations, cancel_mid_way, check_readable_formats, export_ok, part_files, refuses_writes,
};
use crate::harness::Bridge;
use crate::servers::{Postgres, postgres};

const FIXTURE: &str = r#"
CREATE TABLE "every ""odd"" name;" (id int PRIMARY KEY, t text, b bytea, big int8, dec numeric(45,5), d date,
  ts timestamp, tz timestamptz, f float8, flag bool, j jsonb, arr int4[], tarr text[], barr bytea[],
  iv interval, u uuid, "Ünï ""col""" varchar(20));
INSERT INTO "every ""odd"" name;" VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 'plain', '\x00ff10', 9223372036854775807, 1234567890123456789012345678901234567890.12345, '2024-02-29',
  '2024-02-29 13:45:07.123', '2024-02-29 13:45:07.5+02', 1.5, true, '{"a": [1, 2.50], "big": 123456789012345678901234567890}',
  '{1,NULL,3}', '{"a b","q\"","",NULL,"NULL","x,y"}', '{"\\x00ff",NULL}', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'x'),
 (3, E'quote " comma , semi ; tab \t lf \n crlf \r\n backslash \\ é 日本 😀', '\x', -9223372036854775808, -0.00001,
  '0001-01-01', '1899-12-31 23:59:59.999999', '2024-02-29 13:45:07.123456+00', 'NaN', false, '[]', '{}', '{}', '{}',
  '-1 year', NULL, ''),
 (4, '', '\x5c7830302c22', 42, 0, '9999-12-31', '1900-01-01 00:00:00', '1970-01-01 00:00:00+00', 'Infinity', NULL,
  '"text"', '{{1,2},{3,4}}', '{"\\"}', NULL, '00:00:00', NULL, NULL),
 (5, 'NULL', NULL, 0, 12.5, NULL, NULL, NULL, '-Infinity', NULL, 'null', NULL, NULL, NULL, NULL, NULL, 'NULL'),
 (6, '\.', NULL, 1, NULL, NULL, NULL, NULL, -2.5e-300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\.');
"#;

const TABLE: &str = "every \"odd\" name;";
const QUOTED: &str = r#""every ""odd"" name;""#;

fn psql_ok(pg: &Postgres, db: &str, sql: &str) -> String {
    let out = pg.psql(db, sql);
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `psql -f file`, stopping at the first error.
fn psql_file(pg: &Postgres, db: &str, file: &Path) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &pg.host, "-p"])
        .arg(pg.port.to_string())
        .args(["-U", &pg.user, "-d", db, "-f"])
        .arg(file)
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql -f: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn checksum(pg: &Postgres, db: &str, table: &str) -> String {
    psql_ok(
        pg,
        db,
        &format!("SELECT count(*), md5(string_agg(e::text, '|' ORDER BY id)) FROM {table} e"),
    )
}

#[test]
fn every_format_round_trips_through_postgres_own_loaders() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    psql_ok(&pg, &db, FIXTURE);
    let source = checksum(&pg, &db, QUOTED);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Bridge::start();
    let s = b.open_session(&pg.connection(&db));
    let table = json!({"schema": "public", "table": TABLE});

    // CSV, read back by COPY FROM (psql's \copy) into a table like the source.
    let csv = dir.path().join("every.csv");
    let done = export_ok(
        &mut b,
        &s,
        table.clone(),
        "csv",
        &csv,
        json!({"binary": "hex"}),
    );
    assert_eq!(done["rowsWritten"], 6);
    psql_ok(
        &pg,
        &db,
        &format!("CREATE TABLE every_copy (LIKE {QUOTED})"),
    );
    psql_ok(
        &pg,
        &db,
        &format!(
            "\\copy every_copy FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ),
    );
    assert_eq!(checksum(&pg, &db, "every_copy"), source);

    // SQL with its CREATE TABLE, run by psql into a fresh database.
    let sql = dir.path().join("every.sql");
    export_ok(
        &mut b,
        &s,
        table.clone(),
        "sql",
        &sql,
        json!({"createTable": true, "batchRows": 4}),
    );
    let fresh = pg.create_database();
    psql_file(&pg, &fresh, &sql);
    assert_eq!(checksum(&pg, &fresh, QUOTED), source);

    // JSON, JSON Lines and XLSX match query.run; numbers when asked for.
    check_readable_formats(
        &mut b,
        &s,
        &table,
        &format!("SELECT * FROM {QUOTED}"),
        dir.path(),
    );
    let numbers = dir.path().join("numbers.json");
    export_ok(
        &mut b,
        &s,
        json!({"sql": format!("SELECT big, dec, f FROM {QUOTED} WHERE id IN (2, 3) ORDER BY id")}),
        "json",
        &numbers,
        json!({"numbersAsStrings": false}),
    );
    let text = std::fs::read_to_string(&numbers).unwrap();
    assert!(text.contains(r#""big":9223372036854775807,"dec":1234567890123456789012345678901234567890.12345,"f":1.5"#), "{text}");
    assert!(text.contains(r#""dec":-0.00001,"f":"NaN""#), "{text}");

    // The export's snapshot is read-only.
    let done = refuses_writes(
        &mut b,
        &s,
        &format!("INSERT INTO {QUOTED} (id) VALUES (99) RETURNING id"),
        dir.path(),
    );
    assert_eq!(done["error"]["details"]["sqlstate"], "25006", "{done}");

    // A table that is not there is refused at start.
    let e = b.err(
        "export.start",
        json!({"sessionId": s, "source": {"schema": "public", "table": "nope"}, "format": "csv",
               "destination": dir.path().join("nope.csv").to_str().unwrap()}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    assert!(part_files(dir.path()).is_empty());
    bad_destinations(&mut b, &s, table, dir.path());
}

#[test]
fn a_postgres_export_cancels_mid_way_while_its_session_stays_free() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = b.open_session(&pg.connection(&db));
    cancel_mid_way(
        &mut b,
        &s,
        "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g",
        "csv",
        "SELECT pg_backend_pid() <> 0",
    );
}

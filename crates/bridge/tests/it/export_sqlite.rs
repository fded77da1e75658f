//! Exports of a SQLite database: every format from a table holding every
//! value kind, read back by the sqlite3 CLI (`.import`, and the SQL file run
//! into a fresh database), by serde_json and by calamine; cancel mid-way,
//! the session free meanwhile, the sheet limit, and bad destinations.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::export::{bad_destinations, check_readable_formats, export_ok, part_files, run_export};
use crate::harness::Bridge;

const COLUMNS: &str = "id INTEGER PRIMARY KEY, t TEXT, b BLOB, big INTEGER, dec TEXT, d DATE, ts TIMESTAMP, f REAL, flag BOOLEAN";

fn fixture(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE every ({COLUMNS});
         INSERT INTO every VALUES
          (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (2, 'plain', X'00ff10', 9223372036854775807, '1234567890123456789012345678901234.567890', '2024-02-29', '2024-02-29 13:45:07.123', 1.5, 1),
          (3, 'quote \" comma , semi ; tab ' || char(9) || ' lf ' || char(10) || ' cr ' || char(13) || ' backslash \\ é 日本 😀', X'', -9223372036854775808, '-0.00001', '1899-12-31', '2024-02-29T13:45:07.123456', -2.5e-300, 0),
          (4, '', X'5c7830302c22', 42, '0', '0001-01-01', NULL, 0.1, NULL),
          (5, 'NULL', NULL, 0, NULL, NULL, NULL, 1e300, NULL),
          (6, '\\.', NULL, 1, '12.50', '9999-12-31', '1900-01-01 00:00:00', NULL, NULL);"
    ))
    .unwrap();
}

fn sqlite3(db: &Path, script: &str) -> String {
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 CLI");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every value of a table, typed (`quote`), binary as upper-case hex (or,
/// for a column imported from hex text, that text).
fn checksum(db: &Path, table: &str, blob: &str) -> String {
    sqlite3(
        db,
        &format!(
            "SELECT count(*), group_concat(quote(id) || '|' || quote(t) || '|' || {blob} || '|' || quote(big) || '|' || quote(dec) || '|' || quote(d) || '|' || quote(ts) || '|' || quote(f) || '|' || quote(flag), '#') FROM (SELECT * FROM {table} ORDER BY id);"
        ),
    )
}

#[test]
fn every_format_round_trips_through_sqlites_own_loaders() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    fixture(&db);
    let mut b = Bridge::start();
    let s = b.open_sqlite(db.to_str().unwrap());
    let table = json!({"schema": "main", "table": "every"});
    let source = checksum(
        &db,
        "every",
        "CASE WHEN b IS NULL THEN 'NULL' ELSE hex(b) END",
    );

    // CSV, read back by the sqlite3 CLI's .import into the same columns
    // (.import knows no NULL: the NULL text is turned back afterwards; and
    // it reads a CR LF inside a quoted field as LF, so the fixture's text
    // has a lone CR here; the Postgres and MySQL tests carry CR LF).
    let csv = dir.path().join("every.csv");
    let done = export_ok(
        &mut b,
        &s,
        table.clone(),
        "csv",
        &csv,
        json!({"binary": "hex", "nullText": "\\N"}),
    );
    assert_eq!(done["rowsWritten"], 6);
    let copy = dir.path().join("copy.db");
    let nulls: String = ["t", "b", "big", "dec", "d", "ts", "f", "flag"]
        .iter()
        .map(|c| format!("UPDATE every SET {c} = NULL WHERE {c} = '\\N';\n"))
        .collect();
    sqlite3(
        &copy,
        &format!(
            "CREATE TABLE every ({COLUMNS});\n.import --csv --skip 1 {} every\n{nulls}",
            csv.display()
        ),
    );
    assert_eq!(
        checksum(
            &copy,
            "every",
            "CASE WHEN b IS NULL THEN 'NULL' ELSE upper(b) END"
        ),
        source
    );

    // SQL with its CREATE TABLE, run into a fresh database.
    let sql = dir.path().join("every.sql");
    export_ok(
        &mut b,
        &s,
        table.clone(),
        "sql",
        &sql,
        json!({"createTable": true, "batchRows": 4}),
    );
    let text = std::fs::read_to_string(&sql).unwrap();
    assert_eq!(
        text.matches("INSERT INTO \"every\"").count(),
        2,
        "batches of 4: {text}"
    );
    let fresh = dir.path().join("fresh.db");
    sqlite3(&fresh, &format!(".read {}\n", sql.display()));
    assert_eq!(
        checksum(
            &fresh,
            "every",
            "CASE WHEN b IS NULL THEN 'NULL' ELSE hex(b) END"
        ),
        source
    );

    // JSON, JSON Lines and XLSX match query.run.
    check_readable_formats(&mut b, &s, &table, "SELECT * FROM every", dir.path());
    let text = std::fs::read_to_string(dir.path().join("every.jsonl")).unwrap();
    assert!(
        text.contains("\"big\":\"9223372036854775807\""),
        "int8 as a string: {text}"
    );
    // Numbers when asked for; duplicate names get a stable suffix.
    let numbers = dir.path().join("numbers.jsonl");
    export_ok(
        &mut b,
        &s,
        json!({"sql": "SELECT big, id, t AS id, id AS id FROM every WHERE id = 2"}),
        "jsonl",
        &numbers,
        json!({"numbersAsStrings": false}),
    );
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&numbers).unwrap().trim()).unwrap();
    assert_eq!(
        line,
        json!({"big": 9223372036854775807i64, "id": 2, "id_2": "plain", "id_3": 2})
    );
    assert!(
        std::fs::read_to_string(&numbers)
            .unwrap()
            .contains("9223372036854775807")
    );

    // Overwrite replaces a file when asked to.
    let done = export_ok(
        &mut b,
        &s,
        table.clone(),
        "csv",
        &csv,
        json!({"overwrite": true, "header": false, "lineEnding": "lf", "delimiter": ";", "bom": true}),
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("\u{feff}1;;;"), "{text}");
    assert_eq!(
        text.lines().count(),
        done["rowsWritten"].as_u64().unwrap() as usize + 1,
        "no header; the text with a line feed spans two lines"
    );
    assert!(part_files(dir.path()).is_empty());
    bad_destinations(&mut b, &s, table.clone(), dir.path());

    // An in-memory database has no second connection to export on.
    let memory = b.open_sqlite(":memory:");
    let e = b.err(
        "export.start",
        json!({"sessionId": memory, "source": {"sql": "SELECT 1"}, "format": "csv",
               "destination": dir.path().join("memory.csv").to_str().unwrap()}),
    );
    assert_eq!(e["code"], "NOT_SUPPORTED", "{e}");
}

#[test]
fn a_cancelled_export_leaves_no_file_and_the_session_stays_free() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, amount REAL);
             WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < 1000000)
             INSERT INTO big SELECT v, 'name ' || v, v * 0.5 FROM g;",
        )
        .unwrap();
    let mut b = Bridge::start();
    let s = b.open_sqlite(db.to_str().unwrap());
    let dest = dir.path().join("big.jsonl");
    let data = b.ok(
        "export.start",
        json!({"sessionId": s, "source": {"schema": "main", "table": "big"}, "format": "jsonl", "destination": dest.to_str().unwrap()}),
    );
    let id = data["exportId"].as_str().unwrap().to_string();
    let first = b.event_where(Duration::from_secs(60), |e| {
        e["params"]["exportId"] == id.as_str()
    });
    assert_eq!(first["method"], "export.progress", "{first}");
    assert!(
        first["params"]["percent"].as_f64().unwrap() < 100.0,
        "{first}"
    );
    // The session is not the export's: it answers while the export streams.
    let out = b.query(&s, "SELECT count(*) FROM big", json!({}));
    assert_eq!(out.status(), "completed");
    assert_eq!(out.results[0].rows[0][0], json!("1000000"));
    assert_eq!(
        b.ok("export.cancel", json!({"exportId": id}))["cancelled"],
        true
    );
    let (events, done) = b.job_events("exportId", &id, "export.done");
    assert_eq!(done["status"], "cancelled", "{done}");
    let last = events
        .last()
        .map_or(first["params"].clone(), |e| e["params"].clone());
    assert!(
        last["rowsWritten"].as_u64().unwrap() < 1_000_000,
        "cancelled mid-way: {last}"
    );
    assert!(!dest.exists());
    assert!(
        part_files(dir.path()).is_empty(),
        "{:?}",
        part_files(dir.path())
    );
    assert_eq!(
        b.ok("export.cancel", json!({"exportId": id}))["cancelled"],
        false
    );
    // The session still works after.
    assert_eq!(b.query(&s, "SELECT 1", json!({})).status(), "completed");
}

#[test]
fn more_rows_than_a_sheet_holds_is_refused_with_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    let mut b = Bridge::start();
    let s = b.open_sqlite(db.to_str().unwrap());
    let dest = dir.path().join("huge.xlsx");
    // 1,048,576 rows and the header: one more than a sheet holds.
    let (_, done) = run_export(
        &mut b,
        &s,
        json!({"sql": "WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < 1048576) SELECT v FROM g"}),
        "xlsx",
        &dest,
        json!({}),
    );
    eprintln!("sheet limit: {done}");
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "EXPORT_FAILED", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{done}"
    );
    assert!(!dest.exists());
    assert!(part_files(dir.path()).is_empty());
}

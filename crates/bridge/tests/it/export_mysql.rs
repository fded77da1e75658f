//! Exports of a MariaDB database: every format from a table holding every
//! value kind, read back by the server's own loaders (`LOAD DATA LOCAL
//! INFILE` through the `mariadb` client, and the SQL file run by that client
//! into a fresh database), by serde_json and by calamine; the snapshot is
//! read-only; cancel mid-way with the session free meanwhile.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::export::{
    bad_destinations, cancel_mid_way, check_readable_formats, export_ok, refuses_writes,
};
use crate::harness::Bridge;
use crate::mysql::client_ok;
use crate::servers::{Mysql, mysql};

const FIXTURE: &str = r#"
CREATE TABLE `every ``odd`` name;` (id INT PRIMARY KEY, t TEXT, b BLOB, big BIGINT, ubig BIGINT UNSIGNED,
  `dec` DECIMAL(45,5), d DATE, ts DATETIME(6), f DOUBLE, flag BOOLEAN, j JSON, e ENUM('a','b'),
  `Ünï "col"` VARCHAR(20)) CHARACTER SET utf8mb4;
INSERT INTO `every ``odd`` name;` VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 'plain', X'00ff10', 9223372036854775807, 18446744073709551615, 1234567890123456789012345678901234567890.12345,
  '2024-02-29', '2024-02-29 13:45:07.123', 1.5, TRUE, '{"a": [1, 2.50], "big": 123456789012345678901234567890}', 'a', 'x'),
 (3, CONCAT('quote " comma , semi ; tab ', CHAR(9), ' lf ', CHAR(10), ' crlf ', CHAR(13), CHAR(10), ' backslash \\ é 日本 😀'),
  X'', -9223372036854775808, 0, -0.00001, '1000-01-01', '1899-12-31 23:59:59.999999', -2.5e-300, FALSE, '[]', 'b', ''),
 (4, '', X'5c7830302c22', 42, 1, 0, '9999-12-31', '1900-01-01 00:00:00', 0.1, NULL, '"text"', NULL, NULL),
 (5, 'NULL', NULL, 0, NULL, 12.5, NULL, NULL, 1e300, NULL, 'null', NULL, 'NULL'),
 (6, '\\N', NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\\.');
"#;

const TABLE: &str = "every `odd` name;";
const QUOTED: &str = "`every ``odd`` name;`";
const COLUMNS: &str =
    "(id, t, @b, big, ubig, `dec`, d, ts, f, flag, j, e, `Ünï \"col\"`) SET b = UNHEX(@b)";

/// Every value, typed where QUOTE shows it, binary as hex.
fn checksum(my: &Mysql, db: &str, table: &str) -> String {
    client_ok(
        my,
        db,
        &format!(
            "SET SESSION group_concat_max_len = 1000000; \
             SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', QUOTE(id), QUOTE(t), QUOTE(HEX(b)), QUOTE(big), QUOTE(ubig), \
               QUOTE(`dec`), QUOTE(d), QUOTE(ts), QUOTE(f), QUOTE(flag), QUOTE(j), QUOTE(e), QUOTE(`Ünï \"col\"`)) \
               ORDER BY id SEPARATOR '#')) FROM {table}"
        ),
    )
}

/// The `mariadb` client with LOCAL INFILE allowed, running `sql` (or the
/// file on stdin).
fn client_with(my: &Mysql, db: &str, sql: Option<&str>, stdin: Option<&Path>) {
    let mut c = Command::new("mariadb");
    c.args([
        "--no-defaults",
        "--local-infile=1",
        "--protocol=TCP",
        "-h",
        &my.host,
        "-P",
    ])
    .arg(my.port.to_string())
    .args(["-u", &my.user, "--default-character-set=utf8mb4"])
    .env("MYSQL_PWD", &my.password);
    if let Some(sql) = sql {
        c.args(["-e", sql]);
    }
    c.arg(db);
    c.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    });
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_format_round_trips_through_mariadbs_own_loaders() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    client_ok(&my, &db, FIXTURE);
    let source = checksum(&my, &db, QUOTED);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Bridge::start();
    let s = b.open_session(&my.connection(&db));
    let table = json!({"schema": db, "table": TABLE});

    // CSV, read back by LOAD DATA LOCAL INFILE (binary through UNHEX; the
    // unquoted word NULL is its NULL when fields are enclosed).
    let csv = dir.path().join("every.csv");
    let done = export_ok(
        &mut b,
        &s,
        table.clone(),
        "csv",
        &csv,
        json!({"binary": "hex", "nullText": "NULL"}),
    );
    assert_eq!(done["rowsWritten"], 6);
    client_ok(&my, &db, &format!("CREATE TABLE every_copy LIKE {QUOTED}"));
    client_with(
        &my,
        &db,
        Some(&format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE every_copy CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' \
             LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES {COLUMNS}; SHOW WARNINGS",
            csv.display()
        )),
        None,
    );
    assert_eq!(checksum(&my, &db, "every_copy"), source);

    // SQL with its CREATE TABLE, run by the client into a fresh database.
    let sql = dir.path().join("every.sql");
    export_ok(
        &mut b,
        &s,
        table.clone(),
        "sql",
        &sql,
        json!({"createTable": true, "batchRows": 4}),
    );
    let fresh = my.create_database();
    client_with(&my, &fresh, None, Some(&sql));
    assert_eq!(checksum(&my, &fresh, QUOTED), source);

    // JSON, JSON Lines and XLSX match query.run; the snapshot is read-only.
    check_readable_formats(
        &mut b,
        &s,
        &table,
        &format!("SELECT * FROM {QUOTED}"),
        dir.path(),
    );
    let done = refuses_writes(
        &mut b,
        &s,
        &format!("INSERT INTO {QUOTED} (id) VALUES (99)"),
        dir.path(),
    );
    assert_eq!(
        done["error"]["details"]["errno"], 1792,
        "read-only transaction: {done}"
    );
    bad_destinations(&mut b, &s, table, dir.path());
}

#[test]
fn a_mariadb_export_cancels_mid_way_while_its_session_stays_free() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = b.open_session(&my.connection(&db));
    cancel_mid_way(
        &mut b,
        &s,
        "SELECT seq, MD5(seq) FROM seq_1_to_1000000",
        "json",
        "SELECT CONNECTION_ID()",
    );
}

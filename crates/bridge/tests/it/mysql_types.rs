//! Every MariaDB column type through the bridge, in both protocols,
//! against what the `mariadb` client prints for the same values.

use serde_json::{Value, json};

use crate::harness::Bridge;
use crate::mysql::{client_ok, open};
use crate::servers::mysql;

/// (column, declaration, literal, reference expression for the client, check)
#[derive(Clone, Copy)]
enum Check {
    Text,
    Int,
    Float,
    /// The stored single-precision value, every digit: the client is shown
    /// the value widened to DOUBLE, as its own FLOAT text keeps six digits.
    Float32,
    /// Base64 of the bytes whose `HEX()` the client prints.
    Hex,
    /// A `T` between date and time.
    DateTime,
}

const EVERY: &[(&str, &str, &str, &str, &str, Check)] = &[
    ("c_tiny", "tinyint", "-128", "c_tiny", "int", Check::Int),
    ("c_bool", "boolean", "1", "c_bool", "int", Check::Int),
    (
        "c_small",
        "smallint unsigned",
        "65535",
        "c_small",
        "int",
        Check::Int,
    ),
    (
        "c_medium",
        "mediumint",
        "-8388608",
        "c_medium",
        "int",
        Check::Int,
    ),
    ("c_int", "int", "-2147483648", "c_int", "int", Check::Int),
    (
        "c_int_u",
        "int unsigned",
        "4294967295",
        "c_int_u",
        "int",
        Check::Int,
    ),
    (
        "c_big",
        "bigint",
        "-9223372036854775808",
        "c_big",
        "bigint",
        Check::Text,
    ),
    (
        "c_big_u",
        "bigint unsigned",
        "18446744073709551615",
        "c_big_u",
        "bigint",
        Check::Text,
    ),
    (
        "c_dec",
        "decimal(40,10)",
        "123456789012345678901234567890.0123456789",
        "c_dec",
        "decimal",
        Check::Text,
    ),
    ("c_float", "float", "1.5", "c_float", "float", Check::Float),
    (
        "c_float_digits",
        "float",
        "0.1234567",
        "CAST(c_float_digits AS DOUBLE)",
        "float",
        Check::Float32,
    ),
    (
        "c_float_fixed",
        "float(7,3)",
        "3.14159",
        "c_float_fixed",
        "float",
        Check::Float,
    ),
    (
        "c_double_fixed",
        "double(10,2)",
        "12.5",
        "c_double_fixed",
        "float",
        Check::Float,
    ),
    (
        "c_double",
        "double",
        "1e300",
        "c_double",
        "float",
        Check::Float,
    ),
    (
        "c_bit",
        "bit(10)",
        "b'1010101010'",
        "c_bit + 0",
        "int",
        Check::Int,
    ),
    (
        "c_date",
        "date",
        "'2024-02-29'",
        "c_date",
        "date",
        Check::Text,
    ),
    (
        "c_zero",
        "date",
        "'0000-00-00'",
        "c_zero",
        "date",
        Check::Text,
    ),
    (
        "c_time",
        "time(6)",
        "'-838:59:59.000000'",
        "c_time",
        "time",
        Check::Text,
    ),
    (
        "c_time_frac",
        "time(2)",
        "'100:00:00.01'",
        "c_time_frac",
        "time",
        Check::Text,
    ),
    (
        "c_dt",
        "datetime(6)",
        "'2024-02-29 13:45:07.123456'",
        "c_dt",
        "timestamp",
        Check::DateTime,
    ),
    (
        "c_zero_dt",
        "datetime",
        "'0000-00-00 00:00:00'",
        "c_zero_dt",
        "timestamp",
        Check::Text,
    ),
    (
        "c_ts",
        "timestamp(3)",
        "'2024-02-29 13:45:07.123'",
        "c_ts",
        "timestamp",
        Check::DateTime,
    ),
    (
        "c_zero_dt_frac",
        "datetime(3)",
        "'0000-00-00 00:00:00'",
        "c_zero_dt_frac",
        "timestamp",
        Check::Text,
    ),
    ("c_year", "year", "2024", "c_year", "int", Check::Int),
    (
        "c_year_zero",
        "year",
        "0",
        "c_year_zero",
        "int",
        Check::Text,
    ),
    ("c_char", "char(5)", "'ab'", "c_char", "text", Check::Text),
    (
        "c_varchar",
        "varchar(50)",
        "'é 漢字 🎉'",
        "c_varchar",
        "text",
        Check::Text,
    ),
    (
        "c_latin1",
        "varchar(20) CHARACTER SET latin1",
        "'café'",
        "c_latin1",
        "text",
        Check::Text,
    ),
    (
        "c_text",
        "text",
        "'multi\\nline'",
        "c_text",
        "text",
        Check::Text,
    ),
    (
        "c_binary",
        "binary(4)",
        "x'00ff10ab'",
        "HEX(c_binary)",
        "bytes",
        Check::Hex,
    ),
    (
        "c_varbinary",
        "varbinary(10)",
        "x'deadbeef'",
        "HEX(c_varbinary)",
        "bytes",
        Check::Hex,
    ),
    (
        "c_blob",
        "blob",
        "x'000102'",
        "HEX(c_blob)",
        "bytes",
        Check::Hex,
    ),
    (
        "c_json",
        "json",
        "'{\"big\": 123456789012345678901234567890}'",
        "c_json",
        "json",
        Check::Text,
    ),
    (
        "c_uuid",
        "uuid",
        "'123e4567-e89b-12d3-a456-426614174000'",
        "c_uuid",
        "uuid",
        Check::Text,
    ),
    (
        "c_enum",
        "enum('sad','happy')",
        "'happy'",
        "c_enum",
        "enum",
        Check::Text,
    ),
    (
        "c_set",
        "set('a','b','c')",
        "'a,c'",
        "c_set",
        "text",
        Check::Text,
    ),
    (
        "c_point",
        "point",
        "ST_GeomFromText('POINT(1 2)')",
        "LOWER(HEX(c_point))",
        "other",
        Check::Text,
    ),
];

#[test]
fn every_type_matches_what_the_mariadb_client_prints() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let columns: Vec<String> = EVERY.iter().map(|c| format!("{} {}", c.0, c.1)).collect();
    let literals: Vec<&str> = EVERY.iter().map(|c| c.2).collect();
    client_ok(
        &my,
        &db,
        &format!(
            "SET sql_mode = ''; CREATE TABLE every ({}); INSERT INTO every VALUES ({}); INSERT INTO every () VALUES ();",
            columns.join(", "),
            literals.join(", ")
        ),
    );
    let reference: Vec<&str> = EVERY.iter().map(|c| c.3).collect();
    let printed = client_ok(
        &my,
        &db,
        &format!(
            "SELECT {} FROM every WHERE c_int IS NOT NULL",
            reference.join(", ")
        ),
    );
    let printed: Vec<&str> = printed.trim_end_matches('\n').split('\t').collect();
    assert_eq!(printed.len(), EVERY.len(), "{printed:?}");

    client_ok(
        &my,
        &db,
        "CREATE PROCEDURE every_rows() SELECT * FROM every ORDER BY c_int IS NULL",
    );

    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    // A query is read in the binary protocol; a procedure's rows come in text.
    let binary = b.query(&s, "SELECT * FROM every ORDER BY c_int IS NULL", json!({}));
    let text = b.query(&s, "CALL every_rows()", json!({}));
    for (out, protocol) in [(&binary, "binary"), (&text, "text")] {
        assert_eq!(out.status(), "completed", "{protocol}: {}", out.done);
        let cols = &out.results[0].columns;
        let row = out.rows(0)[0].as_array().unwrap();
        let nulls = out.rows(0)[1].as_array().unwrap();
        for (i, (name, _, _, _, kind, check)) in EVERY.iter().enumerate() {
            let got = &row[i];
            // The client escapes newlines in --batch output.
            let want = printed[i].replace("\\n", "\n");
            assert_eq!(cols[i]["name"], *name);
            assert_eq!(cols[i]["kind"], *kind, "{protocol} {name}: {}", cols[i]);
            if *name != "c_ts" {
                assert_eq!(nulls[i], Value::Null, "{protocol} {name}");
            }
            let ok = match check {
                Check::Text => got.as_str() == Some(want.as_str()),
                Check::Int => got.as_i64().map(|n| n.to_string()) == Some(want.clone()),
                Check::Float => got.as_f64() == want.parse::<f64>().ok(),
                // The text protocol carries the server's six-digit rounding.
                Check::Float32 if protocol == "text" => got.as_f64() == Some(0.123457),
                Check::Float32 => {
                    got.as_f64().map(|v| v as f32) == want.parse::<f64>().ok().map(|v| v as f32)
                        && got.as_f64() == Some(0.1234567)
                }
                Check::Hex => {
                    use std::fmt::Write;
                    let bytes = base64_decode(got.as_str().unwrap_or_default());
                    let hex = bytes.iter().fold(String::new(), |mut s, b| {
                        let _ = write!(s, "{b:02X}");
                        s
                    });
                    hex == want
                }
                Check::DateTime => {
                    got.as_str().map(|s| s.replacen('T', " ", 1)) == Some(want.clone())
                }
            };
            assert!(ok, "{protocol} {name}: bridge {got} vs client {want:?}");
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = acc << 6 | ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

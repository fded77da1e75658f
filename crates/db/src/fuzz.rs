//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz's layout) and for
//! their smoke runs in the test command: each feeds raw bytes to a parser
//! that reads outside input, the way the crate meets it. None may panic,
//! hang or grow without bound on any input. Not part of the crate's API.

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;

use crate::value::RowWriter;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Postgres's psql-faithful script splitter, then parameter binding.
pub fn pg_split(data: &[u8]) {
    if let Some(sql) = text(data)
        && let Ok(statements) = crate::postgres::split::split(sql)
    {
        for s in &statements {
            // Every statement is a slice of the script, on char boundaries.
            assert!(s.start <= s.end && s.end <= sql.len());
            assert!(sql.get(s.start..s.end).is_some());
        }
    }
}

/// MySQL's DELIMITER-aware splitter.
pub fn my_split(data: &[u8]) {
    if let Some(sql) = text(data) {
        let statements = crate::mysql::split::split(sql);
        for s in &statements {
            assert!(s.start <= s.end && s.end <= sql.len());
            assert!(sql.get(s.start..s.end).is_some());
        }
    }
}

/// One line of `COPY ... TO STDOUT` text.
pub fn pg_copy_row(data: &[u8]) {
    if let Some(line) = text(data) {
        let mut scratch = String::new();
        let mut fields = 0;
        crate::postgres::copy_fields(line, &mut scratch, |_, _| fields += 1);
    }
}

/// Postgres's array text (`{1,"a b",NULL}`, `[0:1]={..}`), with text,
/// number and bytea elements.
pub fn pg_array(data: &[u8]) {
    if let Some(array) = text(data) {
        for element in [
            crate::postgres::values::Encoder::Text,
            crate::postgres::values::Encoder::Number,
            crate::postgres::values::Encoder::Bytes,
        ] {
            let encoder = crate::postgres::values::Encoder::Array {
                element: Box::new(element),
                delimiter: b',',
            };
            let mut out = String::new();
            let mut w = RowWriter::new(&mut out);
            crate::postgres::values::encode(&mut w, &encoder, Some(array));
            w.finish();
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_ok(),
                "{out}"
            );
        }
    }
}

/// The column types a MySQL row walker meets; the first bytes of the input
/// choose a result's columns.
const TYPES: [(ColumnType, u16, bool); 16] = [
    (ColumnType::MYSQL_TYPE_TINY, 63, false),
    (ColumnType::MYSQL_TYPE_SHORT, 63, true),
    (ColumnType::MYSQL_TYPE_LONG, 63, false),
    (ColumnType::MYSQL_TYPE_LONGLONG, 63, true),
    (ColumnType::MYSQL_TYPE_FLOAT, 63, false),
    (ColumnType::MYSQL_TYPE_DOUBLE, 63, false),
    (ColumnType::MYSQL_TYPE_NEWDECIMAL, 63, false),
    (ColumnType::MYSQL_TYPE_VAR_STRING, 45, false),
    (ColumnType::MYSQL_TYPE_VAR_STRING, 8, false),
    (ColumnType::MYSQL_TYPE_BLOB, 63, false),
    (ColumnType::MYSQL_TYPE_DATE, 63, false),
    (ColumnType::MYSQL_TYPE_DATETIME, 63, false),
    (ColumnType::MYSQL_TYPE_TIME, 63, false),
    (ColumnType::MYSQL_TYPE_TIMESTAMP, 63, false),
    (ColumnType::MYSQL_TYPE_JSON, 45, false),
    (ColumnType::MYSQL_TYPE_BIT, 63, true),
];

/// MySQL's text and binary row walkers on a row packet, for columns chosen
/// by the first bytes (`n`, then `n` type picks).
pub fn my_row(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    let Some((picks, row)) = rest.split_at_checked(n) else {
        return;
    };
    let cells: Vec<crate::mysql::values::Cell> = picks
        .iter()
        .map(|&p| {
            let (ty, charset, unsigned) = TYPES[usize::from(p) % TYPES.len()];
            let mut column = Column::new(ty).with_character_set(charset);
            if unsigned {
                column = column.with_flags(ColumnFlags::UNSIGNED_FLAG);
            }
            let (_, _, encoder) = crate::mysql::values::describe(&column);
            crate::mysql::values::Cell::new(&column, encoder)
        })
        .collect();
    for binary in [false, true] {
        let mut out = String::new();
        let mut w = RowWriter::new(&mut out);
        let walked = if binary {
            crate::mysql::values::encode_binary_row(&mut w, &cells, row)
        } else {
            crate::mysql::values::encode_text_row(&mut w, &cells, row)
        };
        w.finish();
        if walked.is_ok() {
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_ok(),
                "{out}"
            );
        }
    }
}

/// A MySQL column definition packet, plain and with MariaDB's extended
/// metadata.
pub fn my_column_definition(data: &[u8]) {
    if let Ok(column) = ParseBuf(data).parse::<Column>(()) {
        let _ = crate::mysql::values::describe(&column);
    }
    crate::mysql::fuzz_split_extended(data);
}

/// Runs `target` over `seeds` and `rounds` mutations of them (a fixed
/// xorshift, so a failure reproduces): the smoke run the test command
/// does; the long runs are `cargo xtask fuzz`'s.
pub fn smoke(target: fn(&[u8]), seeds: &[&[u8]], rounds: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        target(seed);
    }
    let mut input = Vec::new();
    for _ in 0..rounds {
        input.clear();
        input.extend_from_slice(seeds[(next() as usize) % seeds.len()]);
        for _ in 0..=(next() % 8) {
            let r = next();
            let at = if input.is_empty() {
                0
            } else {
                (r as usize >> 8) % input.len()
            };
            match r % 4 {
                0 if !input.is_empty() => input[at] = (r >> 32) as u8,
                1 => input.insert(at.min(input.len()), (r >> 40) as u8),
                2 if !input.is_empty() => {
                    input.remove(at);
                }
                _ => {
                    let from = seeds[(r as usize >> 16) % seeds.len()];
                    if !from.is_empty() {
                        let start = (r as usize >> 24) % from.len();
                        let piece: Vec<u8> = from[start..].iter().take(16).copied().collect();
                        let at = at.min(input.len());
                        input.splice(at..at, piece);
                    }
                }
            }
        }
        target(&input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &[&[u8]] = &[
        b"SELECT 1; SELECT 'a;b' -- c\n; $$x;$$; /* /* */ */ E'\\'';",
        b"CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END; COPY t FROM stdin;\n1\t2\n\\.\n",
        b"DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END//\nDELIMITER ;\nSELECT `a;b`, \"c;d\" # x\n;",
        b"U&'\\0041' UESCAPE '!'; $tag$ $$ $tag$; \\connect x",
    ];

    #[test]
    fn crashes_libfuzzer_found() {
        pg_array(b"{02,,NU\n}");
        // An "integer" of 310 digits, which JavaScript reads as Infinity.
        pg_array(format!("{{1,{}0,2}}", "1".repeat(309)).as_bytes());
        my_row(b"\x5b\x04\x35\x00\x35\x35\x35\x35\x35\x35\x32\x34\x38\x37\x37\x37\x31\x31\x32\x32\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x36\x34\x34\x30\x37\x34\x37\x32\x33\x36\x45\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x04\x35\x00\x35\x35\x35\x35\x35\x35\x32\x34\x38\x37\x37\x37\x31\x31\x32\x32\x34\x34\x30\x37\x34\x37\x32\x33\x36\x45\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x32\x35\x35\x32\x32\x32\x32\x32\x32\x32\x32\x35\x35\x35");
    }

    #[test]
    fn the_fuzz_targets_survive_a_smoke_run() {
        smoke(pg_split, SQL, 20_000);
        smoke(my_split, SQL, 20_000);
        smoke(
            pg_copy_row,
            &[b"1\t\\N\tab\\tc\\\\d\\x41\\101\n", b"\\\\\t\t\\", b""],
            20_000,
        );
        smoke(
            pg_array,
            &[
                b"{1,2,NULL}",
                b"{{\"a b\",c},{d,\"\\\"\"}}",
                b"[0:1]={1,2}",
                b"{\"\\\\x00ff\"}",
            ],
            20_000,
        );
        smoke(
            my_row,
            &[
                b"\x03\x02\x07\x0a\x00\x00\x01\x05\x03abc\x0a2024-02-29",
                b"\x01\x03\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f",
                b"\x02\x0b\x0c\x00\x00\x0b\xe8\x07\x02\x1d\x0d\x2d\x07\x40\xe2\x01\x00\x08\x00\x00\x00\x00\x00\x0d\x2d\x07",
            ],
            20_000,
        );
        smoke(
            my_column_definition,
            &[
                b"\x03def\x02db\x01t\x01t\x01c\x01c\x0c\x2d\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00",
                b"\x03def\x00\x00\x00\x01c\x00\x07\x00\x04json\x0c\x3f\x00\x0a\x00\x00\x00\x03\x00\x00\x00\x00\x00",
            ],
            20_000,
        );
    }
}

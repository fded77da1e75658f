//! Tests of `values`.

use super::*;
use crate::batch::BatchBuilder;

fn column(t: ColumnType, flags: ColumnFlags, charset: u16, decimals: u8) -> Column {
    Column::new(t)
        .with_flags(flags)
        .with_character_set(charset)
        .with_decimals(decimals)
        .with_column_length(20)
}

fn cells(columns: &[Column]) -> Vec<Cell> {
    columns
        .iter()
        .map(|c| Cell::new(c, describe(c).2))
        .collect()
}

fn binary_row(cells: &[Cell], packet: &[u8]) -> Option<String> {
    let mut b = BatchBuilder::new(10);
    b.try_row(|w| encode_binary_row(w, cells, packet).map_err(|_| ()))
        .ok()?;
    Some(b.take().json)
}

#[test]
fn binary_rows_are_read_where_they_lie() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    let unsigned = ColumnFlags::UNSIGNED_FLAG;
    let columns = [
        column(MYSQL_TYPE_TINY, none, 63, 0),
        column(MYSQL_TYPE_TINY, unsigned, 63, 0),
        column(MYSQL_TYPE_SHORT, none, 63, 0),
        column(MYSQL_TYPE_LONG, unsigned, 63, 0),
        column(MYSQL_TYPE_LONGLONG, unsigned, 63, 0),
        column(MYSQL_TYPE_LONGLONG, none, 63, 0),
        column(MYSQL_TYPE_DOUBLE, none, 63, 31),
        column(MYSQL_TYPE_FLOAT, none, 63, 31),
        column(MYSQL_TYPE_DATETIME, none, 63, 3),
        column(MYSQL_TYPE_DATE, none, 63, 0),
        column(MYSQL_TYPE_TIME, none, 63, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 45, 0),
        column(MYSQL_TYPE_BLOB, none, 63, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 45, 0),
        column(MYSQL_TYPE_NEWDECIMAL, none, 63, 2),
    ];
    let cells = cells(&columns);
    // Header, then a NULL bitmap of (15 + 2 + 7) / 8 = 3 bytes: column
    // 13 (bit 15) is NULL.
    let mut p = vec![0x00, 0x00, 0x80, 0x00];
    p.push(0xff); // TINY -1
    p.push(0xff); // TINY UNSIGNED 255
    p.extend_from_slice(&(-2i16).to_le_bytes());
    p.extend_from_slice(&u32::MAX.to_le_bytes());
    p.extend_from_slice(&u64::MAX.to_le_bytes());
    p.extend_from_slice(&i64::MIN.to_le_bytes());
    p.extend_from_slice(&0.1f64.to_le_bytes());
    p.extend_from_slice(&1.5f32.to_le_bytes());
    // DATETIME(3) with microseconds: length 11.
    p.extend_from_slice(&[11, 0xe8, 0x07, 2, 29, 13, 45, 7]);
    p.extend_from_slice(&123_000u32.to_le_bytes());
    // A zero DATE: length 0.
    p.push(0);
    // TIME -100:00:01: negative, 4 days, 4 hours.
    p.extend_from_slice(&[8, 1, 4, 0, 0, 0, 4, 0, 1]);
    p.extend_from_slice(&[5, b'q', b'"', 0xc3, 0xa9, b'x']);
    p.extend_from_slice(&[2, 0x00, 0xff]);
    p.extend_from_slice(&[4, b'1', b'.', b'2', b'5']);
    assert_eq!(
        binary_row(&cells, &p).as_deref(),
        Some(
            r#"[[-1,255,-2,4294967295,"18446744073709551615","-9223372036854775808",0.1,1.5,"2024-02-29T13:45:07.123","0000-00-00","-100:00:01","q\"éx","AP8=",null,"1.25"]]"#
        )
    );
    // Cut short anywhere: no row, rather than a wrong one.
    for len in 0..p.len() {
        assert_eq!(binary_row(&cells, &p[..len]), None, "cut at {len}");
    }
}

#[test]
fn string_types_carry_their_length_in_characters() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    let db_type =
        |t, charset, length| describe(&column(t, none, charset, 0).with_column_length(length)).1;
    // utf8mb4 (45): four bytes a character; latin1 (8): one; binary (63).
    assert_eq!(db_type(MYSQL_TYPE_VAR_STRING, 45, 80), "varchar(20)");
    assert_eq!(db_type(MYSQL_TYPE_STRING, 45, 144), "char(36)");
    assert_eq!(db_type(MYSQL_TYPE_VAR_STRING, 8, 20), "varchar(20)");
    assert_eq!(db_type(MYSQL_TYPE_VAR_STRING, 63, 16), "varbinary(16)");
    assert_eq!(db_type(MYSQL_TYPE_STRING, 63, 4), "binary(4)");
    assert_eq!(db_type(MYSQL_TYPE_BLOB, 45, 262140), "text");
}

#[test]
fn text_rows_have_lengths_and_nulls() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    let columns = [
        column(MYSQL_TYPE_LONG, none, 63, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 45, 0),
        column(MYSQL_TYPE_DATETIME, none, 63, 0),
        column(MYSQL_TYPE_BLOB, none, 45, 0),
    ];
    let cells = cells(&columns);
    let long = "y".repeat(300);
    let mut p = vec![2, b'4', b'2', 0xfb, 19];
    p.extend_from_slice(b"2024-02-29 13:45:07");
    // 300 bytes: a two-byte length after 0xfc.
    p.extend_from_slice(&[0xfc, 0x2c, 0x01]);
    p.extend_from_slice(long.as_bytes());
    let mut b = BatchBuilder::new(10);
    b.try_row(|w| encode_text_row(w, &cells, &p).map_err(|_| ()))
        .unwrap();
    assert_eq!(
        b.take().json,
        format!(r#"[[42,null,"2024-02-29T13:45:07","{long}"]]"#)
    );
    let mut b = BatchBuilder::new(10);
    assert!(
        b.try_row(|w| encode_text_row(w, &cells, &p[..p.len() - 1]).map_err(|_| ()))
            .is_err()
    );
    assert_eq!(b.take().json, "[]");
}

fn cell(encoder: Encoder, value: Value) -> String {
    let mut b = BatchBuilder::new(10);
    b.row(|w| encode_value(w, encoder, &value));
    let text = b.take().json;
    text[2..text.len() - 2].to_string()
}

#[test]
fn binary_values_are_written_as_the_server_prints_them() {
    let dt = |d| Encoder::DateTime(d);
    let date = Value::Date(2024, 2, 29, 13, 45, 7, 123_456);
    assert_eq!(cell(dt(6), date.clone()), r#""2024-02-29T13:45:07.123456""#);
    assert_eq!(cell(dt(3), date.clone()), r#""2024-02-29T13:45:07.123""#);
    assert_eq!(cell(dt(0), date.clone()), r#""2024-02-29T13:45:07""#);
    assert_eq!(
        cell(dt(2), Value::Date(0, 0, 0, 0, 0, 0, 0)),
        r#""0000-00-00 00:00:00.00""#
    );
    assert_eq!(
        cell(dt(0), Value::Date(2020, 0, 15, 0, 0, 0, 0)),
        r#""2020-00-15T00:00:00""#
    );
    assert_eq!(cell(Encoder::Date, date), r#""2024-02-29""#);
    assert_eq!(
        cell(Encoder::Date, Value::Date(1, 1, 1, 0, 0, 0, 0)),
        r#""0001-01-01""#
    );
    assert_eq!(
        cell(Encoder::Time(6), Value::Time(true, 34, 22, 59, 59, 0)),
        r#""-838:59:59.000000""#
    );
    assert_eq!(
        cell(Encoder::Time(2), Value::Time(false, 4, 4, 0, 0, 10_000)),
        r#""100:00:00.01""#
    );
    assert_eq!(
        cell(Encoder::Time(0), Value::Time(false, 0, 0, 0, 5, 0)),
        r#""00:00:05""#
    );
    // Regression found by the fuzz smoke run: a hostile packet's day count
    // saturates instead of overflowing.
    let huge = cell(Encoder::Time(0), Value::Time(false, u32::MAX, 23, 0, 0, 0));
    assert!(huge.starts_with('"') && huge.ends_with('"'), "{huge}");
    assert_eq!(
        cell(Encoder::Time(31), Value::Time(false, 0, 1, 2, 3, 500)),
        r#""01:02:03.000500""#
    );
}

#[test]
fn binary_numbers_keep_their_kind_and_every_digit() {
    let float = |single, decimals| Encoder::Float { single, decimals };
    assert_eq!(cell(Encoder::Number, Value::Int(-128)), "-128");
    assert_eq!(
        cell(Encoder::Number, Value::UInt(4_294_967_295)),
        "4294967295"
    );
    assert_eq!(cell(Encoder::Year, Value::Int(2024)), "2024");
    assert_eq!(cell(Encoder::Year, Value::Int(0)), r#""0000""#);
    assert_eq!(
        cell(Encoder::Text, Value::Int(i64::MIN)),
        r#""-9223372036854775808""#
    );
    assert_eq!(
        cell(Encoder::Text, Value::UInt(u64::MAX)),
        r#""18446744073709551615""#
    );
    // The stored single-precision value, every digit of it (the server's
    // text says 0.123457 and 16777200).
    assert_eq!(
        cell(float(true, None), Value::Float(0.123_456_7)),
        "0.1234567"
    );
    assert_eq!(
        cell(float(true, None), Value::Float(16_777_216.0)),
        "16777216.0"
    );
    assert_eq!(cell(float(false, None), Value::Double(1e300)), "1e300");
    assert_eq!(cell(float(true, Some(3)), Value::Float(1.2346)), "1.235");
    assert_eq!(cell(float(false, Some(2)), Value::Double(12.5)), "12.50");
    assert_eq!(cell(float(false, Some(2)), Value::Double(-0.001)), "-0.00");
    assert_eq!(cell(Encoder::Text, Value::NULL), "null");
    assert_eq!(
        cell(Encoder::Text, Value::Bytes(b"12.50".to_vec())),
        r#""12.50""#
    );
}

fn text_row(cells: &[Cell], packet: &[u8]) -> Result<String, RowError> {
    let mut b = BatchBuilder::new(10);
    b.try_row(|w| encode_text_row(w, cells, packet))?;
    Ok(b.take().json)
}

#[test]
fn malformed_rows_are_errors_never_half_rows() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    let cells = cells(&[
        column(MYSQL_TYPE_LONG, none, 63, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 45, 0),
        column(MYSQL_TYPE_DATETIME, none, 63, 0),
    ]);
    // 0x00 header, bitmap (one byte for 3 columns), LONG 7, "ab", DATETIME of 4 bytes.
    let good = [0x00, 0x00, 7, 0, 0, 0, 2, b'a', b'b', 4, 0xe8, 0x07, 2, 29];
    assert!(binary_row(&cells, &good).is_some());
    for cut in 0..good.len() {
        assert!(binary_row(&cells, &good[..cut]).is_none(), "cut at {cut}");
    }
    let mut trailing = good.to_vec();
    trailing.push(0);
    assert!(binary_row(&cells, &trailing).is_none());
    let mut header = good;
    header[0] = 0x01;
    assert!(binary_row(&cells, &header).is_none());
    // Text rows: exactly as long as their cells.
    let text_cells = cells.clone();
    let row = [1, b'7', 2, b'a', b'b', 0xfb];
    assert!(text_row(&text_cells, &row).is_ok());
    for cut in 0..row.len() {
        assert_eq!(
            text_row(&text_cells, &row[..cut]),
            Err(RowError::Malformed),
            "cut at {cut}"
        );
    }
    assert_eq!(
        text_row(&text_cells, &[1, b'7', 2, b'a', b'b', 0xfb, 0]),
        Err(RowError::Malformed)
    );
    // A length past the packet, and a huge one, are cut short, not allocations.
    assert_eq!(
        text_row(
            &text_cells,
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
        ),
        Err(RowError::Malformed)
    );
}

#[test]
fn text_is_decoded_by_its_character_set() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    // latin1_swedish_ci (8), utf8mb4 (45), utf32 (60), koi8r (7).
    let cells = cells(&[
        column(MYSQL_TYPE_VAR_STRING, none, 8, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 45, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 60, 0),
        column(MYSQL_TYPE_VAR_STRING, none, 7, 0),
    ]);
    let row = [1, 0xe9, 2, 0xc3, 0xbc, 4, 0, 0, 0, 0xe9, 1, 0xc1];
    assert_eq!(
        text_row(&cells, &row).unwrap(),
        "[[\"é\",\"ü\",\"é\",\"а\"]]"
    );
    // Bytes that are not UTF-8 in a utf8mb4 column: an error, no U+FFFD.
    assert_eq!(
        text_row(&cells, &[1, 0xe9, 1, 0xe9, 4, 0, 0, 0, 0x41, 1, 0x41]),
        Err(RowError::Text(1))
    );
    // A character set with no decoder is bytes, kept exactly.
    let dec8 = column(MYSQL_TYPE_VAR_STRING, none, 3, 0);
    assert_eq!(describe(&dec8).0, ValueKind::Bytes);
}

#[test]
fn zerofill_reads_the_same_in_both_protocols() {
    use ColumnType::*;
    let zerofill = ColumnFlags::ZEROFILL_FLAG | ColumnFlags::UNSIGNED_FLAG;
    let columns = [
        column(MYSQL_TYPE_LONG, zerofill, 63, 0),
        column(MYSQL_TYPE_LONGLONG, zerofill, 63, 0),
    ];
    let cells = cells(&columns);
    let text = text_row(
        &cells,
        &[5, b'0', b'0', b'0', b'4', b'2', 3, b'0', b'0', b'7'],
    )
    .unwrap();
    let binary = binary_row(&cells, &[0x00, 0x00, 42, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(text, "[[42,\"7\"]]");
    assert_eq!(binary, text);
}

#[test]
fn unknown_collations_are_sized_as_utf8mb4() {
    let c = Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
        .with_character_set(2304)
        .with_column_length(100);
    assert_eq!(describe(&c).1, "varchar(25)");
}

/// MySQL 8's default collations (`utf8mb4_0900_*`, ids a MariaDB never
/// sends): text, sized at four bytes a character, read as UTF-8 the same
/// in both protocols.
#[test]
fn mysql_8_utf8mb4_0900_collations_are_utf8_text() {
    use ColumnType::*;
    let none = ColumnFlags::empty();
    // utf8mb4_0900_ai_ci (MySQL 8's default), _as_cs, _as_ci, _bin, and a
    // language-specific one (utf8mb4_ja_0900_as_cs).
    for id in [255u16, 278, 305, 309, 303] {
        let c = Column::new(MYSQL_TYPE_VAR_STRING)
            .with_character_set(id)
            .with_column_length(80);
        assert!(
            matches!(Charset::of(&c), Some(Charset::Utf8)),
            "collation {id}"
        );
        let (kind, db_type, _) = describe(&c);
        assert_eq!(
            (kind, db_type.as_str()),
            (ValueKind::Text, "varchar(20)"),
            "collation {id}"
        );
        let cells = cells(&[column(MYSQL_TYPE_VAR_STRING, none, id, 0)]);
        let word = "h\u{e9}llo \u{2713} \u{1f600}";
        let mut text = vec![word.len() as u8];
        text.extend_from_slice(word.as_bytes());
        let mut binary = vec![0x00, 0x00, word.len() as u8];
        binary.extend_from_slice(word.as_bytes());
        let expected = format!("[[\"{word}\"]]");
        assert_eq!(text_row(&cells, &text).unwrap(), expected, "collation {id}");
        assert_eq!(
            binary_row(&cells, &binary).unwrap(),
            expected,
            "collation {id}"
        );
    }
}

//! MySQL values, from the text protocol's bytes to the protocol's JSON, by the
//! column definition (type, flags, character set).

use dbbridge_protocol::query::ValueKind;
use mysql_async::Column;
use mysql_async::consts::{ColumnFlags, ColumnType};

use crate::value::RowWriter;

/// The `binary` character set: the bytes are not text.
const BINARY_CHARSET: u16 = 63;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoder {
    /// Digits written as a JSON number.
    Number,
    /// Digits or other exact text kept as a string.
    Text,
    Float,
    /// BIT(n): the big-endian bits, a number up to 32 bits, digits beyond.
    Bit,
    /// DATETIME / TIMESTAMP: `T` between date and time; zero dates as they are.
    DateTime,
    Bytes,
    /// Spatial values (WKB) as hex.
    Hex,
}

/// The kind, `dbType` and encoder of a column.
pub fn describe(column: &Column) -> (ValueKind, String, Encoder) {
    use ColumnType::*;
    let flags = column.flags();
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.character_set() == BINARY_CHARSET;
    let with_sign = |name: &str| {
        if unsigned {
            format!("{name} unsigned")
        } else {
            name.to_string()
        }
    };
    match column.column_type() {
        MYSQL_TYPE_TINY => (ValueKind::Int, with_sign("tinyint"), Encoder::Number),
        MYSQL_TYPE_SHORT => (ValueKind::Int, with_sign("smallint"), Encoder::Number),
        MYSQL_TYPE_INT24 => (ValueKind::Int, with_sign("mediumint"), Encoder::Number),
        MYSQL_TYPE_LONG => (ValueKind::Int, with_sign("int"), Encoder::Number),
        MYSQL_TYPE_YEAR => (ValueKind::Int, "year".into(), Encoder::Number),
        MYSQL_TYPE_LONGLONG => (ValueKind::Bigint, with_sign("bigint"), Encoder::Text),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            let scale = u32::from(column.decimals());
            let precision = column
                .column_length()
                .saturating_sub(u32::from(scale > 0) + u32::from(!unsigned));
            (
                ValueKind::Decimal,
                with_sign(&format!("decimal({precision},{scale})")),
                Encoder::Text,
            )
        }
        MYSQL_TYPE_FLOAT => (ValueKind::Float, with_sign("float"), Encoder::Float),
        MYSQL_TYPE_DOUBLE => (ValueKind::Float, with_sign("double"), Encoder::Float),
        MYSQL_TYPE_BIT => (
            if column.column_length() <= 32 {
                ValueKind::Int
            } else {
                ValueKind::Bigint
            },
            format!("bit({})", column.column_length()),
            Encoder::Bit,
        ),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (ValueKind::Date, "date".into(), Encoder::Text),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => (ValueKind::Time, "time".into(), Encoder::Text),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => {
            (ValueKind::Timestamp, "datetime".into(), Encoder::DateTime)
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            (ValueKind::Timestamp, "timestamp".into(), Encoder::DateTime)
        }
        MYSQL_TYPE_JSON => (ValueKind::Json, "json".into(), Encoder::Text),
        MYSQL_TYPE_GEOMETRY => (ValueKind::Other, "geometry".into(), Encoder::Hex),
        MYSQL_TYPE_NULL => (ValueKind::Other, "null".into(), Encoder::Text),
        _ if flags.contains(ColumnFlags::ENUM_FLAG) => {
            (ValueKind::Enum, "enum".into(), Encoder::Text)
        }
        _ if flags.contains(ColumnFlags::SET_FLAG) => {
            (ValueKind::Text, "set".into(), Encoder::Text)
        }
        MYSQL_TYPE_STRING if binary => (ValueKind::Bytes, "binary".into(), Encoder::Bytes),
        MYSQL_TYPE_STRING => (ValueKind::Text, "char".into(), Encoder::Text),
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR if binary => {
            (ValueKind::Bytes, "varbinary".into(), Encoder::Bytes)
        }
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => {
            (ValueKind::Text, "varchar".into(), Encoder::Text)
        }
        _ if binary => (ValueKind::Bytes, "blob".into(), Encoder::Bytes),
        _ => (ValueKind::Text, "text".into(), Encoder::Text),
    }
}

/// Writes one cell from its text-protocol bytes.
pub fn encode(w: &mut RowWriter<'_>, encoder: Encoder, value: Option<&[u8]>) {
    let Some(bytes) = value else {
        w.null();
        return;
    };
    match encoder {
        Encoder::Bytes => w.bytes(bytes),
        Encoder::Hex => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let hex: String = bytes
                .iter()
                .flat_map(|b| {
                    [
                        HEX[(b >> 4) as usize] as char,
                        HEX[(b & 0xf) as usize] as char,
                    ]
                })
                .collect();
            w.str(&hex);
        }
        Encoder::Bit => {
            let n = bytes
                .iter()
                .take(8)
                .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
            if bytes.len() <= 4 {
                w.number_text(itoa::Buffer::new().format(n));
            } else {
                w.ubigint(n);
            }
        }
        _ => {
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    w.str(&String::from_utf8_lossy(bytes));
                    return;
                }
            };
            match encoder {
                Encoder::Number if is_integer(text) => w.number_text(text),
                Encoder::Float if crate::value::is_json_number(text) => w.number_text(text),
                Encoder::DateTime
                    if text.len() > 10
                        && text.as_bytes()[10] == b' '
                        && !text.starts_with("0000-00-00") =>
                {
                    w.str_parts(&[&text[..10], "T", &text[11..]])
                }
                _ => w.str(text),
            }
        }
    }
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

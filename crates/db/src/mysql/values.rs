//! MySQL values to the protocol's JSON, by the column definition (type, flags,
//! character set, decimals): from the text protocol's bytes ([`encode`]) and
//! from the binary protocol's values ([`encode_value`]). Both give the same
//! JSON, except that a FLOAT read in binary keeps every digit of the stored
//! single-precision value where the server's text rounds it to six.

use dbbridge_protocol::query::ValueKind;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::packets::Column;
use mysql_common::value::Value;

use super::wire::Extended;

mod charset;
mod rows;
use crate::value::RowWriter;
pub use charset::Charset;
pub use rows::{Cell, RowError, encode_binary_row, encode_text_row};

/// The `binary` character set: the bytes are not text.
const BINARY_CHARSET: u16 = 63;

/// The decimals of a column whose values have no fixed number of them
/// (`NOT_FIXED_DEC`); any value at or above it means the same.
const NOT_FIXED_DEC: u8 = 31;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoder {
    /// Digits written as a JSON number.
    Number,
    /// YEAR: a number, but the zero year as the text `0000` the server prints.
    Year,
    /// Digits or other exact text kept as a string.
    Text,
    /// BIGINT: digits as a string (a ZEROFILL column's leading zeros dropped,
    /// as the binary protocol has it).
    BigInt,
    /// FLOAT (`single`) or DOUBLE; `decimals` when the column fixes them
    /// (`FLOAT(7,3)`, `ROUND(x, 2)`), which the server's text always shows.
    Float {
        single: bool,
        decimals: Option<u8>,
    },
    /// BIT(n): the big-endian bits, a number up to 32 bits, digits beyond.
    Bit,
    /// DATE.
    Date,
    /// TIME, with its fractional digits: negative and beyond 24 hours too.
    Time(u8),
    /// DATETIME / TIMESTAMP, with its fractional digits: `T` between date and
    /// time; zero dates as the server prints them.
    DateTime(u8),
    Bytes,
    /// Spatial values (WKB) as hex.
    Hex,
}

/// The kind, `dbType` and encoder of a column. Text in a character set that
/// cannot be decoded here is `bytes`: kept exactly, never substituted.
pub fn describe(column: &Column) -> (ValueKind, String, Encoder) {
    let (kind, db_type, encoder) = describe_type(column);
    let textual = matches!(
        kind,
        ValueKind::Text | ValueKind::Enum | ValueKind::Json | ValueKind::Uuid
    );
    if textual && Charset::of(column).is_none() {
        return (ValueKind::Bytes, db_type, Encoder::Bytes);
    }
    (kind, db_type, encoder)
}

fn describe_type(column: &Column) -> (ValueKind, String, Encoder) {
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
        MYSQL_TYPE_YEAR => (ValueKind::Int, "year".into(), Encoder::Year),
        MYSQL_TYPE_LONGLONG => (ValueKind::Bigint, with_sign("bigint"), Encoder::BigInt),
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
        MYSQL_TYPE_FLOAT => (
            ValueKind::Float,
            with_sign("float"),
            Encoder::Float {
                single: true,
                decimals: fixed_decimals(column),
            },
        ),
        MYSQL_TYPE_DOUBLE => (
            ValueKind::Float,
            with_sign("double"),
            Encoder::Float {
                single: false,
                decimals: fixed_decimals(column),
            },
        ),
        MYSQL_TYPE_BIT => (
            if column.column_length() <= 32 {
                ValueKind::Int
            } else {
                ValueKind::Bigint
            },
            format!("bit({})", column.column_length()),
            Encoder::Bit,
        ),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (ValueKind::Date, "date".into(), Encoder::Date),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => (
            ValueKind::Time,
            "time".into(),
            Encoder::Time(column.decimals()),
        ),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => (
            ValueKind::Timestamp,
            "datetime".into(),
            Encoder::DateTime(column.decimals()),
        ),
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => (
            ValueKind::Timestamp,
            "timestamp".into(),
            Encoder::DateTime(column.decimals()),
        ),
        MYSQL_TYPE_JSON => (ValueKind::Json, "json".into(), Encoder::Text),
        MYSQL_TYPE_GEOMETRY => (ValueKind::Other, "geometry".into(), Encoder::Hex),
        MYSQL_TYPE_NULL => (ValueKind::Other, "null".into(), Encoder::Text),
        _ if flags.contains(ColumnFlags::ENUM_FLAG) => {
            (ValueKind::Enum, "enum".into(), Encoder::Text)
        }
        _ if flags.contains(ColumnFlags::SET_FLAG) => {
            (ValueKind::Text, "set".into(), Encoder::Text)
        }
        MYSQL_TYPE_STRING if binary => (ValueKind::Bytes, sized("binary", column), Encoder::Bytes),
        MYSQL_TYPE_STRING => (ValueKind::Text, sized("char", column), Encoder::Text),
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR if binary => {
            (ValueKind::Bytes, sized("varbinary", column), Encoder::Bytes)
        }
        MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => {
            (ValueKind::Text, sized("varchar", column), Encoder::Text)
        }
        _ if binary => (ValueKind::Bytes, "blob".into(), Encoder::Bytes),
        _ => (ValueKind::Text, "text".into(), Encoder::Text),
    }
}

/// `name(n)`, `n` the column's length in characters: the server gives it in
/// bytes of the result's character set (four a character in utf8mb4). A
/// collation id mysql_common does not know (MariaDB's newer UCA ones) is
/// taken as the session's utf8mb4.
fn sized(name: &str, column: &Column) -> String {
    let per_char = if column.character_set() == BINARY_CHARSET {
        1
    } else {
        match CollationId::from(column.character_set()) {
            CollationId::UNKNOWN_COLLATION_ID => 4,
            id => Collation::resolve(id).max_len().max(1),
        }
    };
    format!("{name}({})", column.column_length() / u32::from(per_char))
}

/// [`describe`], with what MariaDB's extended metadata adds: a JSON column
/// (a LONGTEXT with the format `json`) is `json`, and a type of MariaDB's
/// own goes by its name (`uuid` as the `uuid` kind; `inet6`, `point`, ...).
pub fn describe_with(column: &Column, extended: Option<&Extended>) -> (ValueKind, String, Encoder) {
    let (kind, db_type, encoder) = describe(column);
    let Some(extended) = extended else {
        return (kind, db_type, encoder);
    };
    if extended.format.as_deref() == Some("json") {
        return (ValueKind::Json, "json".into(), encoder);
    }
    match extended.type_name.as_deref() {
        Some("uuid") => (ValueKind::Uuid, "uuid".into(), encoder),
        Some(name) if !name.is_empty() => (kind, name.to_string(), encoder),
        _ => (kind, db_type, encoder),
    }
}

fn fixed_decimals(column: &Column) -> Option<u8> {
    Some(column.decimals()).filter(|d| *d < NOT_FIXED_DEC)
}

/// Writes one cell from its text-protocol bytes; `Err` when text is not
/// valid in the column's character set (nothing is ever substituted).
pub fn encode(
    w: &mut RowWriter<'_>,
    encoder: Encoder,
    charset: Charset,
    value: Option<&[u8]>,
) -> Result<(), ()> {
    let Some(bytes) = value else {
        w.null();
        return Ok(());
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
            let text = charset.decode(bytes).ok_or(())?;
            let text: &str = &text;
            match encoder {
                // A ZEROFILL column's text has leading zeros the binary
                // protocol (and JSON numbers) do not.
                Encoder::Number | Encoder::Year | Encoder::BigInt
                    if is_integer(without_zero_fill(text)) =>
                {
                    let digits = without_zero_fill(text);
                    match encoder {
                        Encoder::BigInt => w.str(digits),
                        Encoder::Year if text == "0000" => w.str(text),
                        _ => w.number_text(digits),
                    }
                }
                Encoder::Float { .. } if crate::value::is_json_number(text) => w.number_text(text),
                Encoder::DateTime(_)
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
    Ok(())
}

/// Digits without the leading zeros of a ZEROFILL column (`"00042"` is 42).
fn without_zero_fill(text: &str) -> &str {
    if text.len() > 1 && text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = text.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    } else {
        text
    }
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Writes one cell from its binary-protocol value: numbers and temporal values
/// arrive as such and are written here as the server's text would show them.
pub fn encode_value(w: &mut RowWriter<'_>, encoder: Encoder, value: &Value) {
    match *value {
        Value::NULL => w.null(),
        // Only the catalog helpers hand over values as such, in UTF-8.
        Value::Bytes(ref bytes) => {
            if encode(w, encoder, Charset::Utf8, Some(bytes)).is_err() {
                w.bytes(bytes);
            }
        }
        Value::Int(n) => match encoder {
            Encoder::Year if n == 0 => w.str("0000"),
            Encoder::Number | Encoder::Year | Encoder::Bit => {
                w.number_text(itoa::Buffer::new().format(n))
            }
            Encoder::Float { .. } => w.float(n as f64),
            _ => w.bigint(n),
        },
        Value::UInt(n) => match encoder {
            Encoder::Number | Encoder::Year | Encoder::Bit => {
                w.number_text(itoa::Buffer::new().format(n))
            }
            _ => w.ubigint(n),
        },
        Value::Float(v) => match encoder {
            Encoder::Float {
                decimals: Some(d), ..
            } => w.fixed(f64::from(v), usize::from(d)),
            _ => w.float32(v),
        },
        Value::Double(v) => match encoder {
            Encoder::Float {
                decimals: Some(d), ..
            } => w.fixed(v, usize::from(d)),
            _ => w.float(v),
        },
        Value::Date(year, month, day, hour, minute, second, micros) => {
            let mut t = Temporal::default();
            t.digits(u32::from(year), 4);
            t.push(b'-');
            t.digits(u32::from(month), 2);
            t.push(b'-');
            t.digits(u32::from(day), 2);
            let decimals = match encoder {
                Encoder::Date => None,
                Encoder::DateTime(d) => Some(d),
                // A temporal value in a column of another type: all it holds.
                _ => Some(if micros == 0 { 0 } else { 6 }),
            };
            if let Some(decimals) = decimals {
                let zero_date = year == 0 && month == 0 && day == 0;
                t.push(if zero_date { b' ' } else { b'T' });
                t.clock(u32::from(hour), minute, second);
                t.fraction(micros, decimals);
            }
            w.plain_str(t.as_str());
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let mut t = Temporal::default();
            if negative {
                t.push(b'-');
            }
            // Saturating: a hostile packet's day count must not wrap (fuzz smoke run).
            t.clock(
                days.saturating_mul(24).saturating_add(u32::from(hours)),
                minutes,
                seconds,
            );
            let decimals = match encoder {
                Encoder::Time(d) => d,
                _ => 6,
            };
            t.fraction(micros, decimals);
            w.plain_str(t.as_str());
        }
    }
}

/// A date, time or timestamp being written as text, without allocating.
struct Temporal {
    buf: [u8; 40],
    len: usize,
}

impl Default for Temporal {
    fn default() -> Self {
        Temporal {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl Temporal {
    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    /// `n` in decimal, zero-padded to at least `width` digits.
    fn digits(&mut self, n: u32, width: usize) {
        // The usual widths by pairs of digits from a table.
        match (width, n) {
            (2, 0..=99) => return self.pair(n),
            (4, 0..=9999) => {
                self.pair(n / 100);
                return self.pair(n % 100);
            }
            _ => {}
        }
        let mut tmp = [b'0'; 10];
        let mut i = tmp.len();
        let mut n = n;
        while n > 0 || tmp.len() - i < width {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if i == 0 {
                break;
            }
        }
        for &b in &tmp[i..] {
            self.push(b);
        }
    }

    /// Two digits of `n` (below 100).
    fn pair(&mut self, n: u32) {
        const PAIRS: [[u8; 2]; 100] = {
            let mut table = [[0u8; 2]; 100];
            let mut i = 0;
            while i < 100 {
                table[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
                i += 1;
            }
            table
        };
        let [a, b] = PAIRS[n as usize % 100];
        self.push(a);
        self.push(b);
    }

    /// `HH:MM:SS`, the hours at least two digits.
    fn clock(&mut self, hours: u32, minutes: u8, seconds: u8) {
        self.digits(hours, 2);
        self.push(b':');
        self.digits(u32::from(minutes), 2);
        self.push(b':');
        self.digits(u32::from(seconds), 2);
    }

    /// The first `decimals` digits of the microseconds, as the server shows a
    /// column of that many; a column without fixed decimals shows six when
    /// there are any.
    fn fraction(&mut self, micros: u32, decimals: u8) {
        let decimals = if decimals > 6 {
            if micros == 0 { 0 } else { 6 }
        } else {
            u32::from(decimals)
        };
        if decimals > 0 {
            self.push(b'.');
            self.digits(micros / 10u32.pow(6 - decimals), decimals as usize);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;

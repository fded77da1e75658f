//! MySQL values to the protocol's JSON, by the column definition (type, flags,
//! character set, decimals): from the text protocol's bytes ([`encode`]) and
//! from the binary protocol's values ([`encode_value`]). Both give the same
//! JSON, except that a FLOAT read in binary keeps every digit of the stored
//! single-precision value where the server's text rounds it to six.

use dbbridge_protocol::query::ValueKind;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::{Column, Value};

use crate::value::RowWriter;

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
        MYSQL_TYPE_YEAR => (ValueKind::Int, "year".into(), Encoder::Year),
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

fn fixed_decimals(column: &Column) -> Option<u8> {
    Some(column.decimals()).filter(|d| *d < NOT_FIXED_DEC)
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
                Encoder::Number | Encoder::Year if is_integer(text) => w.number_text(text),
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
        Value::Bytes(ref bytes) => encode(w, encoder, Some(bytes)),
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
            w.str(t.as_str());
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let mut t = Temporal::default();
            if negative {
                t.push(b'-');
            }
            t.clock(days * 24 + u32::from(hours), minutes, seconds);
            let decimals = match encoder {
                Encoder::Time(d) => d,
                _ => 6,
            };
            t.fraction(micros, decimals);
            w.str(t.as_str());
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
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

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
}

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

use super::wire::{Extended, lenenc_bytes};
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

/// How a column's cells lie in a binary-protocol row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    Tiny,
    Short,
    Long,
    LongLong,
    Float,
    Double,
    /// DATE, DATETIME, TIMESTAMP: a length byte, then as many fields as it says.
    Date,
    /// TIME: a length byte, then sign, days, clock and microseconds.
    Time,
    Null,
    /// Everything else: a length-encoded string.
    Str,
}

/// One column of a result as this module reads and writes it.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub encoder: Encoder,
    charset: Charset,
    wire: Wire,
    unsigned: bool,
}

/// How a column's text bytes become a string.
#[derive(Debug, Clone, Copy)]
pub enum Charset {
    /// UTF-8 (utf8mb4, utf8mb3, ascii), and the `binary` set of numbers,
    /// temporal values and MySQL's JSON, whose text is ASCII or UTF-8.
    Utf8,
    /// A legacy character set, by its WHATWG decoder (latin1 is windows-1252).
    Legacy(&'static encoding_rs::Encoding),
    /// UTF-32, big-endian.
    Utf32,
}

impl Charset {
    /// The column's character set, or `None` where no decoder is known.
    pub fn of(column: &Column) -> Option<Charset> {
        let id = column.character_set();
        if id == BINARY_CHARSET {
            return Some(Charset::Utf8);
        }
        let collation = match CollationId::from(id) {
            // Newer collations (MariaDB's UCA 14.0 ones) are utf8mb4's.
            CollationId::UNKNOWN_COLLATION_ID => return Some(Charset::Utf8),
            known => Collation::resolve(known),
        };
        let label: &[u8] = match collation.charset() {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => return Some(Charset::Utf8),
            "utf32" => return Some(Charset::Utf32),
            "latin1" => b"windows-1252",
            "latin2" => b"iso-8859-2",
            "latin5" => b"windows-1254",
            "latin7" => b"iso-8859-13",
            "cp1250" => b"windows-1250",
            "cp1251" => b"windows-1251",
            "cp1256" => b"windows-1256",
            "cp1257" => b"windows-1257",
            "cp866" => b"ibm866",
            "koi8r" => b"koi8-r",
            "koi8u" => b"koi8-u",
            "greek" => b"iso-8859-7",
            "hebrew" => b"iso-8859-8",
            "tis620" => b"windows-874",
            "macroman" => b"macintosh",
            "sjis" | "cp932" => b"shift_jis",
            "ujis" | "eucjpms" => b"euc-jp",
            "gbk" | "gb2312" => b"gbk",
            "gb18030" => b"gb18030",
            "big5" => b"big5",
            "euckr" => b"euc-kr",
            "ucs2" | "utf16" => b"utf-16be",
            "utf16le" => b"utf-16le",
            _ => return None,
        };
        encoding_rs::Encoding::for_label(label).map(Charset::Legacy)
    }

    /// The text of `bytes`, or `None` if they are not valid in this set.
    fn decode(self, bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(Into::into),
            Charset::Legacy(encoding) => {
                encoding.decode_without_bom_handling_and_without_replacement(bytes)
            }
            Charset::Utf32 => {
                if !bytes.len().is_multiple_of(4) {
                    return None;
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect::<Option<String>>()
                    .map(Into::into)
            }
        }
    }
}

/// Why a row packet could not be written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowError {
    /// Shorter than its columns, longer, or with a wrong header: the stream
    /// cannot be trusted.
    Malformed,
    /// This column's text is not valid in its character set.
    Text(usize),
}

impl Cell {
    pub fn new(column: &Column, encoder: Encoder) -> Cell {
        use ColumnType::*;
        let wire = match column.column_type() {
            MYSQL_TYPE_TINY => Wire::Tiny,
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => Wire::Short,
            MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => Wire::Long,
            MYSQL_TYPE_LONGLONG => Wire::LongLong,
            MYSQL_TYPE_FLOAT => Wire::Float,
            MYSQL_TYPE_DOUBLE => Wire::Double,
            MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => Wire::Date,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Wire::Time,
            MYSQL_TYPE_NULL => Wire::Null,
            _ => Wire::Str,
        };
        Cell {
            encoder,
            charset: Charset::of(column).unwrap_or(Charset::Utf8),
            wire,
            unsigned: column.flags().contains(ColumnFlags::UNSIGNED_FLAG),
        }
    }
}

/// Writes the cells of a text-protocol row packet: each a length-encoded
/// string, or `0xfb` for NULL, which must fill the packet exactly.
pub fn encode_text_row(w: &mut RowWriter<'_>, cells: &[Cell], row: &[u8]) -> Result<(), RowError> {
    let mut at = 0;
    for (i, cell) in cells.iter().enumerate() {
        if row.get(at) == Some(&0xfb) {
            at += 1;
            w.null();
            continue;
        }
        let value = lenenc_bytes(row, &mut at).ok_or(RowError::Malformed)?;
        encode(w, cell.encoder, cell.charset, Some(value)).map_err(|()| RowError::Text(i))?;
    }
    if at == row.len() {
        Ok(())
    } else {
        Err(RowError::Malformed)
    }
}

/// Writes the cells of a binary-protocol row packet (a `0x00` header, a NULL
/// bitmap offset by two bits, then the values by column type), straight from
/// the packet, which the values must fill exactly.
pub fn encode_binary_row(
    w: &mut RowWriter<'_>,
    cells: &[Cell],
    row: &[u8],
) -> Result<(), RowError> {
    match binary_row(w, cells, row) {
        Some(Ok(at)) if at == row.len() => Ok(()),
        Some(Err(column)) => Err(RowError::Text(column)),
        _ => Err(RowError::Malformed),
    }
}

/// The binary walk: `None` when the packet is cut short or its header is
/// wrong, else where the values ended or the column whose text is invalid.
fn binary_row(w: &mut RowWriter<'_>, cells: &[Cell], row: &[u8]) -> Option<Result<usize, usize>> {
    if row.first() != Some(&0x00) {
        return None;
    }
    let bitmap = row.get(1..1 + (cells.len() + 9) / 8)?;
    let mut at = 1 + bitmap.len();
    for (i, cell) in cells.iter().enumerate() {
        if bitmap[(i + 2) / 8] & (1 << ((i + 2) % 8)) != 0 {
            w.null();
            continue;
        }
        let value = match cell.wire {
            Wire::Null => Value::NULL,
            Wire::Tiny => {
                let [b] = le(row, &mut at)?;
                int(cell.unsigned, b, b as i8)
            }
            Wire::Short => {
                let b = le(row, &mut at)?;
                int(cell.unsigned, u16::from_le_bytes(b), i16::from_le_bytes(b))
            }
            Wire::Long => {
                let b = le(row, &mut at)?;
                int(cell.unsigned, u32::from_le_bytes(b), i32::from_le_bytes(b))
            }
            Wire::LongLong => {
                let b = le::<8>(row, &mut at)?;
                if cell.unsigned {
                    Value::UInt(u64::from_le_bytes(b))
                } else {
                    Value::Int(i64::from_le_bytes(b))
                }
            }
            Wire::Float => Value::Float(f32::from_le_bytes(le(row, &mut at)?)),
            Wire::Double => Value::Double(f64::from_le_bytes(le(row, &mut at)?)),
            Wire::Date => {
                let [len] = le::<1>(row, &mut at)?;
                let len = usize::from(len);
                let f = take(row, &mut at, len)?;
                let (mut date, mut clock, mut micros) = ([0u8; 4], [0u8; 3], 0u32);
                if len >= 4 {
                    date.copy_from_slice(&f[..4]);
                }
                if len >= 7 {
                    clock.copy_from_slice(&f[4..7]);
                }
                if len >= 11 {
                    micros = u32::from_le_bytes(f[7..11].try_into().ok()?);
                }
                Value::Date(
                    u16::from_le_bytes([date[0], date[1]]),
                    date[2],
                    date[3],
                    clock[0],
                    clock[1],
                    clock[2],
                    micros,
                )
            }
            Wire::Time => {
                let [len] = le::<1>(row, &mut at)?;
                let len = usize::from(len);
                let f = take(row, &mut at, len)?;
                if len < 8 {
                    Value::Time(false, 0, 0, 0, 0, 0)
                } else {
                    let micros = if len >= 12 {
                        u32::from_le_bytes(f[8..12].try_into().ok()?)
                    } else {
                        0
                    };
                    Value::Time(
                        f[0] == 1,
                        u32::from_le_bytes(f[1..5].try_into().ok()?),
                        f[5],
                        f[6],
                        f[7],
                        micros,
                    )
                }
            }
            Wire::Str => {
                let value = lenenc_bytes(row, &mut at)?;
                if encode(w, cell.encoder, cell.charset, Some(value)).is_err() {
                    return Some(Err(i));
                }
                continue;
            }
        };
        encode_value(w, cell.encoder, &value);
    }
    Some(Ok(at))
}

/// The `n` bytes at `*at`, moving past them.
fn take<'r>(row: &'r [u8], at: &mut usize, n: usize) -> Option<&'r [u8]> {
    let bytes = row.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(bytes)
}

/// An integer of up to 32 bits as the column's signedness reads its bytes.
fn int(unsigned: bool, as_unsigned: impl Into<i64>, as_signed: impl Into<i64>) -> Value {
    Value::Int(if unsigned {
        as_unsigned.into()
    } else {
        as_signed.into()
    })
}

/// The `N` bytes at `*at` (a little-endian number's), moving past them.
fn le<const N: usize>(row: &[u8], at: &mut usize) -> Option<[u8; N]> {
    take(row, at, N)?.try_into().ok()
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
            t.clock(days * 24 + u32::from(hours), minutes, seconds);
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
mod tests {
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
        let db_type = |t, charset, length| {
            describe(&column(t, none, charset, 0).with_column_length(length)).1
        };
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
        let binary =
            binary_row(&cells, &[0x00, 0x00, 42, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]).unwrap();
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
}

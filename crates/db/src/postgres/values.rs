//! Postgres values, from the server's text form to the protocol's JSON. Every
//! value arrives as text (the simple-query protocol), so any type, built-in,
//! extension or user-defined, has a lossless form; only the kinds PROTOCOL.md
//! gives a richer shape are converted.

use dbbridge_protocol::query::ValueKind;
use tokio_postgres::types::{Kind, Type};

use crate::value::RowWriter;

/// How one column's text turns into JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoder {
    Bool,
    /// A JSON number, written as the server's digits (int2, int4, oid).
    Number,
    Float,
    /// A JSON string of the text, unchanged.
    Text,
    /// bytea: hex (or escape) text to base64.
    Bytes,
    Timestamp,
    Timestamptz,
    TimeTz,
    Array {
        element: Box<Encoder>,
        delimiter: u8,
    },
}

/// The protocol kind and the encoder of a column of type `ty`.
pub fn encoder_for(ty: &Type) -> (ValueKind, Encoder) {
    match ty.kind() {
        Kind::Enum(_) => return (ValueKind::Enum, Encoder::Text),
        Kind::Domain(base) => return encoder_for(base),
        Kind::Array(element) => {
            let (_, element) = encoder_for(element);
            // `box` is the one built-in type whose arrays use `;`.
            let delimiter = if *ty == Type::BOX_ARRAY { b';' } else { b',' };
            return (
                ValueKind::Array,
                Encoder::Array {
                    element: Box::new(element),
                    delimiter,
                },
            );
        }
        _ => {}
    }
    match *ty {
        Type::BOOL => (ValueKind::Bool, Encoder::Bool),
        Type::INT2 | Type::INT4 | Type::OID => (ValueKind::Int, Encoder::Number),
        Type::INT8 => (ValueKind::Bigint, Encoder::Text),
        Type::FLOAT4 | Type::FLOAT8 => (ValueKind::Float, Encoder::Float),
        Type::NUMERIC => (ValueKind::Decimal, Encoder::Text),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR | Type::UNKNOWN => {
            (ValueKind::Text, Encoder::Text)
        }
        Type::UUID => (ValueKind::Uuid, Encoder::Text),
        Type::BYTEA => (ValueKind::Bytes, Encoder::Bytes),
        Type::JSON | Type::JSONB => (ValueKind::Json, Encoder::Text),
        Type::DATE => (ValueKind::Date, Encoder::Text),
        Type::TIME => (ValueKind::Time, Encoder::Text),
        Type::TIMETZ => (ValueKind::Time, Encoder::TimeTz),
        Type::TIMESTAMP => (ValueKind::Timestamp, Encoder::Timestamp),
        Type::TIMESTAMPTZ => (ValueKind::Timestamptz, Encoder::Timestamptz),
        Type::INTERVAL => (ValueKind::Interval, Encoder::Text),
        _ if ty.name() == "citext" => (ValueKind::Text, Encoder::Text),
        _ => (ValueKind::Other, Encoder::Text),
    }
}

/// Writes one cell.
pub fn encode(w: &mut RowWriter<'_>, encoder: &Encoder, text: Option<&str>) {
    let Some(text) = text else {
        w.null();
        return;
    };
    match encoder {
        Encoder::Bool => match text {
            "t" => w.bool(true),
            "f" => w.bool(false),
            other => w.str(other),
        },
        Encoder::Number => {
            // A JSON integer exactly (`-`? then `0` or a digit string without
            // a leading zero) of at most the 10 digits an int2, int4 or oid
            // has; anything else a server sends stays a string. Found by the
            // fuzz runs: a lone `-`, `02`, and a 310-digit "integer" that
            // JavaScript would read as Infinity.
            let digits = text.strip_prefix('-').unwrap_or(text);
            let json_int = !digits.is_empty()
                && digits.len() <= 10
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if json_int {
                w.number_text(text);
            } else {
                w.str(text);
            }
        }
        Encoder::Float => match text {
            "NaN" | "Infinity" | "-Infinity" => w.str(text),
            _ if crate::value::is_json_number(text) => w.number_text(text),
            _ => w.str(text),
        },
        Encoder::Text => w.str(text),
        Encoder::Bytes => {
            let hex = text.strip_prefix("\\x").map(str::as_bytes);
            if !hex.is_some_and(|hex| w.bytes_from_hex(hex)) {
                match decode_bytea_escape(text) {
                    Some(bytes) => w.bytes(&bytes),
                    None => w.str(text),
                }
            }
        }
        Encoder::Timestamp => match iso_date_end(text, b' ') {
            Some(at) if !text.ends_with(" BC") => w.str_parts(&[&text[..at], "T", &text[at + 1..]]),
            _ => w.str(text),
        },
        Encoder::Timestamptz => match iso_date_end(text, b' ') {
            Some(at) if !text.ends_with(" BC") => {
                let time = &text[at + 1..];
                let minutes = if offset_needs_minutes(time) {
                    ":00"
                } else {
                    ""
                };
                w.str_parts(&[&text[..at], "T", time, minutes])
            }
            _ => w.str(text),
        },
        Encoder::TimeTz => {
            if offset_needs_minutes(text) {
                w.str_parts(&[text, ":00"]);
            } else {
                w.str(text);
            }
        }
        Encoder::Array { element, delimiter } => {
            let mark = w.mark();
            if write_array(w, element, *delimiter, text).is_none() {
                // Not the array text we know (a server that sends something
                // else): drop what was written of it and keep it whole, so
                // the batch stays valid JSON. Found by the fuzz smoke run.
                w.rewind(mark);
                w.str(text);
            }
        }
    }
}

/// bytea in the older escape format (`bytea_output = escape`).
fn decode_bytea_escape(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else {
                let octal = b.get(i + 1..i + 4)?;
                let v = octal.iter().try_fold(0u16, |acc, &c| {
                    (b'0'..=b'7')
                        .contains(&c)
                        .then(|| acc * 8 + u16::from(c - b'0'))
                })?;
                out.push(u8::try_from(v).ok()?);
                i += 4;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether `s` starts with an ISO date (`YYYY-MM-DD`, the year possibly longer)
/// followed by `sep`; returns where `sep` is.
fn iso_date_end(s: &str, sep: u8) -> Option<usize> {
    let b = s.as_bytes();
    // Years of four digits, the usual case, put `sep` at 10.
    let at = match b.get(10) {
        Some(&c) if c == sep => 10,
        _ => s.find(sep as char)?,
    };
    let date = &b[..at];
    let ok = date.len() >= 10
        && date[date.len() - 3] == b'-'
        && date[date.len() - 6] == b'-'
        && date
            .iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || i == date.len() - 3 || i == date.len() - 6);
    ok.then_some(at)
}

/// Whether a time's offset is `+HH` only: RFC 3339 wants `+HH:MM`.
fn offset_needs_minutes(time: &str) -> bool {
    time.rfind(['+', '-'])
        .is_some_and(|sign| time.len() - sign == 3)
}

/// Writes an array's text (`{1,2,NULL}`, `{{"a b",c},{d,e}}`, `[0:1]={1,2}`)
/// as nested JSON arrays. Lower bounds other than 1 are not kept.
fn write_array(w: &mut RowWriter<'_>, element: &Encoder, delimiter: u8, text: &str) -> Option<()> {
    let body = match text.find("={") {
        Some(at) if text.starts_with('[') => &text[at + 1..],
        _ => text,
    };
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut scratch = String::new();
    write_array_level(w, element, delimiter, body, bytes, &mut i, &mut scratch)?;
    (i == bytes.len()).then_some(())
}

fn write_array_level(
    w: &mut RowWriter<'_>,
    element: &Encoder,
    delimiter: u8,
    text: &str,
    b: &[u8],
    i: &mut usize,
    scratch: &mut String,
) -> Option<()> {
    if b.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    w.begin_array();
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        w.end_array();
        return Some(());
    }
    loop {
        match b.get(*i)? {
            b'{' => write_array_level(w, element, delimiter, text, b, i, scratch)?,
            b'"' => {
                scratch.clear();
                *i += 1;
                let mut run = *i;
                loop {
                    match b.get(*i)? {
                        b'\\' => {
                            scratch.push_str(&text[run..*i]);
                            *i += 1;
                            run = *i;
                            *i += 1;
                        }
                        b'"' => {
                            scratch.push_str(&text[run..*i]);
                            *i += 1;
                            break;
                        }
                        _ => *i += 1,
                    }
                }
                encode(w, element, Some(scratch.as_str()));
            }
            _ => {
                let start = *i;
                while *i < b.len() && b[*i] != delimiter && b[*i] != b'}' {
                    *i += 1;
                }
                let item = &text[start..*i];
                if item.eq_ignore_ascii_case("NULL") {
                    w.null();
                } else {
                    encode(w, element, Some(item));
                }
            }
        }
        match b.get(*i)? {
            &c if c == delimiter => *i += 1,
            b'}' => {
                *i += 1;
                w.end_array();
                return Some(());
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn cell(ty: &Type, text: Option<&str>) -> serde_json::Value {
        let (_, enc) = encoder_for(ty);
        let mut b = BatchBuilder::new(10);
        b.row(|w| encode(w, &enc, text));
        let v: serde_json::Value = serde_json::from_str(&b.take().json).expect("valid JSON");
        v[0][0].clone()
    }

    #[test]
    fn scalars() {
        use serde_json::json;
        assert_eq!(cell(&Type::BOOL, Some("t")), json!(true));
        assert_eq!(
            cell(&Type::INT4, Some("-2147483648")),
            json!(-2147483648i64)
        );
        assert_eq!(
            cell(&Type::INT8, Some("9223372036854775807")),
            json!("9223372036854775807")
        );
        assert_eq!(cell(&Type::FLOAT8, Some("1e+300")), json!(1e300));
        assert_eq!(cell(&Type::FLOAT8, Some("-Infinity")), json!("-Infinity"));
        assert_eq!(cell(&Type::NUMERIC, Some("NaN")), json!("NaN"));
        assert_eq!(cell(&Type::BYTEA, Some("\\x00ff")), json!("AP8="));
        assert_eq!(cell(&Type::BYTEA, Some("a\\\\\\001")), json!("YVwB"));
        assert_eq!(
            cell(&Type::TIMESTAMP, Some("2024-02-29 13:45:07.5")),
            json!("2024-02-29T13:45:07.5")
        );
        assert_eq!(cell(&Type::TIMESTAMP, Some("infinity")), json!("infinity"));
        assert_eq!(
            cell(&Type::TIMESTAMPTZ, Some("2024-02-29 13:45:07.123456+00")),
            json!("2024-02-29T13:45:07.123456+00:00")
        );
        assert_eq!(
            cell(&Type::TIMESTAMPTZ, Some("2024-02-29 13:45:07-09:30")),
            json!("2024-02-29T13:45:07-09:30")
        );
        assert_eq!(
            cell(&Type::TIMETZ, Some("13:45:07+02")),
            json!("13:45:07+02:00")
        );
        assert_eq!(cell(&Type::INT4, None), json!(null));
    }

    #[test]
    fn arrays() {
        use serde_json::json;
        assert_eq!(
            cell(&Type::INT4_ARRAY, Some("{{1,2},{NULL,4}}")),
            json!([[1, 2], [null, 4]])
        );
        assert_eq!(cell(&Type::INT8_ARRAY, Some("{1}")), json!(["1"]));
        assert_eq!(
            cell(&Type::TEXT_ARRAY, Some(r#"{"a b","c\"d","NULL",NULL,""}"#)),
            json!(["a b", "c\"d", "NULL", null, ""])
        );
        assert_eq!(cell(&Type::TEXT_ARRAY, Some("{}")), json!([]));
        // Regressions found by the fuzz smoke run: array text that breaks
        // off midway is kept whole as a string (the batch stays valid JSON),
        // and a lone `-` is not a number.
        let broken = r#"{{"a b",c},{d,"}a b",c},{d,"""}"#;
        assert_eq!(cell(&Type::TEXT_ARRAY, Some(broken)), json!(broken));
        assert_eq!(cell(&Type::INT4_ARRAY, Some("{-,2}")), json!(["-", 2]));
        assert_eq!(
            cell(&Type::INT4_ARRAY, Some("{02,0,-7}")),
            json!(["02", 0, -7])
        );
        assert_eq!(cell(&Type::INT4_ARRAY, Some("[0:1]={7,8}")), json!([7, 8]));
        assert_eq!(
            cell(&Type::BOX_ARRAY, Some("{(1,1),(0,0);(2,2),(1,1)}")),
            json!(["(1,1),(0,0)", "(2,2),(1,1)"])
        );
        assert_eq!(cell(&Type::BOOL_ARRAY, Some("{t,f}")), json!([true, false]));
        // More digits than an int4 has (a hostile server) stay text.
        let long = format!("1{}", "0".repeat(309));
        assert_eq!(
            cell(&Type::INT4_ARRAY, Some(&format!("{{2147483647,{long}}}"))),
            json!([2147483647, long])
        );
        assert_eq!(cell(&Type::INT4, Some("-2147483648")), json!(-2147483648));
        assert_eq!(cell(&Type::INT4, Some(&long)), json!(long));
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-0", "1.5", "1e+300", "-1.5E-7"] {
            assert!(crate::value::is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "NaN"] {
            assert!(!crate::value::is_json_number(bad), "{bad}");
        }
    }
}

//! Reading back what the connectors produce: a batch is the JSON text of
//! `query.result` (PROTOCOL.md's value table), so an export writes from the
//! same encoding the grid shows. Cells are borrowed slices of that text;
//! only a string with escapes is copied.

use std::borrow::Cow;

use base64::Engine;
use dbbridge_protocol::query::ValueKind;
use serde_json::value::RawValue;

/// One cell of a batch.
#[derive(Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    /// A JSON number, as its text.
    Number(&'a str),
    /// A JSON string, unescaped.
    Text(Cow<'a, str>),
    /// A JSON array (Postgres arrays), as its JSON text.
    Array(&'a str),
}

/// The rows of one batch, each a list of raw cells.
pub fn rows(batch: &str) -> Result<Vec<Vec<&RawValue>>, String> {
    serde_json::from_str(batch).map_err(|e| format!("a batch could not be read back: {e}"))
}

/// Classifies one raw cell.
pub fn cell(raw: &RawValue) -> Cell<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') => Cell::Null,
        Some(b't') => Cell::Bool(true),
        Some(b'f') => Cell::Bool(false),
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                Cell::Text(Cow::Owned(
                    serde_json::from_str::<String>(text).unwrap_or_default(),
                ))
            } else {
                Cell::Text(Cow::Borrowed(inner))
            }
        }
        Some(b'[') => Cell::Array(text),
        _ => Cell::Number(text),
    }
}

/// A string cell's text into `scratch` (reused, no allocation per cell),
/// or `None` when the cell is not a string. The batch was produced by our
/// own encoder and already parsed by serde_json, so its escapes are valid;
/// an escape this does not know falls back to serde_json.
pub fn text_into<'a>(raw: &'a RawValue, scratch: &'a mut String) -> Option<&'a str> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    let Some(first) = inner.find('\\') else {
        return Some(inner);
    };
    scratch.clear();
    scratch.push_str(&inner[..first]);
    let mut rest = &inner[first..];
    while let Some(at) = rest.find('\\') {
        scratch.push_str(&rest[..at]);
        let escaped = &rest[at + 1..];
        let (c, used) = match escaped.as_bytes().first() {
            Some(b'"') => ('"', 1),
            Some(b'\\') => ('\\', 1),
            Some(b'/') => ('/', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            _ => {
                // \uXXXX (and surrogate pairs): serde_json's own decoding.
                *scratch = serde_json::from_str::<String>(text).unwrap_or_default();
                return Some(scratch);
            }
        };
        scratch.push(c);
        rest = &escaped[used..];
    }
    scratch.push_str(rest);
    Some(scratch)
}

/// A `bytes` cell's base64 decoded; `None` if it is not base64 (it always is
/// when it comes from a connector).
pub fn decode_bytes(base64: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()
}

/// Appends `bytes` as lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// Whether a `bigint` or `decimal` text is a plain number that a JSON number
/// or an unquoted SQL literal can carry (not `NaN` or `Infinity`).
pub fn is_plain_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.as_bytes()[0].is_ascii_digit()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

/// Whether the element type of a Postgres array column is `bytea`, whose
/// elements arrive as base64.
pub fn is_bytea_array(db_type: &str) -> bool {
    let t = db_type.trim_start_matches('_');
    t == "bytea" || t.starts_with("bytea[")
}

/// Writes a Postgres array (its JSON form) as Postgres's array text,
/// `{1,NULL,"a b"}`, which `COPY` and a quoted literal read back.
pub fn push_pg_array(out: &mut String, json: &str, bytea: bool) {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(value) => push_pg_array_value(out, &value, bytea),
        Err(_) => out.push_str(json),
    }
}

fn push_pg_array_value(out: &mut String, value: &serde_json::Value, bytea: bool) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_pg_array_value(out, item, bytea);
            }
            out.push('}');
        }
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            out.push('"');
            if bytea && let Some(bytes) = decode_bytes(s) {
                out.push_str("\\\\x");
                push_hex(out, &bytes);
            } else {
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            out.push('"');
        }
        Value::Object(_) => out.push_str(&value.to_string()),
    }
}

/// Whether a column's values are numbers that JSON writes unquoted when the
/// caller asks for numbers (`bigint`, `decimal`).
pub fn is_exact_number(kind: ValueKind) -> bool {
    matches!(kind, ValueKind::Bigint | ValueKind::Decimal)
}

/// Column names made unique for object keys: a repeated name gets `_2`,
/// `_3`, ... (skipping any suffix that is itself a column's name).
pub fn unique_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<&str> = names.into_iter().collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        let mut candidate = name.to_string();
        let mut n = 2;
        while taken.contains(&candidate) || (candidate != *name && names.contains(&&*candidate)) {
            candidate = format!("{name}_{n}");
            n += 1;
        }
        taken.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_a_batch() {
        let batch = r#"[[null,true,false,-12,"1e3","a\"b",[1,null],"x"]]"#;
        let rows = rows(batch).unwrap();
        let cells: Vec<Cell> = rows[0].iter().map(|c| cell(c)).collect();
        assert_eq!(cells[0], Cell::Null);
        assert_eq!(cells[1], Cell::Bool(true));
        assert_eq!(cells[2], Cell::Bool(false));
        assert_eq!(cells[3], Cell::Number("-12"));
        assert_eq!(cells[4], Cell::Text(Cow::Borrowed("1e3")));
        assert_eq!(cells[5], Cell::Text(Cow::Owned("a\"b".into())));
        assert_eq!(cells[6], Cell::Array("[1,null]"));
    }

    #[test]
    fn text_unescapes_into_scratch() {
        let batch = r#"[["plain","a\"b\\c\nd\te\/","\u00e9\ud83d\ude00x",1]]"#;
        let rows = rows(batch).unwrap();
        let mut scratch = String::new();
        assert_eq!(text_into(rows[0][0], &mut scratch), Some("plain"));
        assert_eq!(text_into(rows[0][1], &mut scratch), Some("a\"b\\c\nd\te/"));
        assert_eq!(text_into(rows[0][2], &mut scratch), Some("é😀x"));
        assert_eq!(text_into(rows[0][3], &mut scratch), None);
    }

    #[test]
    fn pg_arrays_and_hex() {
        let mut s = String::new();
        push_pg_array(&mut s, r#"[[1,2],[null,3]]"#, false);
        assert_eq!(s, "{{1,2},{NULL,3}}");
        s.clear();
        push_pg_array(&mut s, r#"["a b","q\"\\",null,true]"#, false);
        assert_eq!(s, r#"{"a b","q\"\\",NULL,t}"#);
        s.clear();
        push_pg_array(&mut s, r#"["AP8="]"#, true);
        assert_eq!(s, r#"{"\\x00ff"}"#);
        s.clear();
        push_hex(&mut s, &[0, 0xab, 0xff]);
        assert_eq!(s, "00abff");
    }

    #[test]
    fn numbers_and_names() {
        assert!(is_plain_number("-12.50"));
        assert!(is_plain_number("99999999999999999999999999999999.12345678"));
        assert!(!is_plain_number("NaN"));
        assert!(!is_plain_number("-Infinity"));
        assert!(!is_plain_number(""));
        assert_eq!(
            unique_names(["id", "id", "x", "id_2", "id"]),
            ["id", "id_3", "x", "id_2", "id_4"]
        );
    }
}

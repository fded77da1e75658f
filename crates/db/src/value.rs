//! Cell encoding: values go from the driver's row straight into the JSON text
//! of the outgoing batch, following the value table of PROTOCOL.md. No
//! `serde_json::Value` is built per cell.

use base64::Engine;

/// Writes one row (a JSON array) into a batch's text.
pub struct RowWriter<'a> {
    buf: &'a mut String,
    first: bool,
}

impl<'a> RowWriter<'a> {
    pub(crate) fn new(buf: &'a mut String) -> Self {
        buf.push('[');
        RowWriter { buf, first: true }
    }

    fn sep(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.buf.push(',');
        }
    }

    pub fn null(&mut self) {
        self.sep();
        self.buf.push_str("null");
    }

    pub fn bool(&mut self, v: bool) {
        self.sep();
        self.buf.push_str(if v { "true" } else { "false" });
    }

    /// `int`: a value that fits in 32 bits, as a JSON number.
    pub fn int(&mut self, v: i32) {
        self.sep();
        self.buf.push_str(itoa::Buffer::new().format(v));
    }

    /// `bigint`: a 64-bit value, as a string of digits.
    pub fn bigint(&mut self, v: i64) {
        self.sep();
        self.buf.push('"');
        self.buf.push_str(itoa::Buffer::new().format(v));
        self.buf.push('"');
    }

    /// `bigint` for unsigned 64-bit values.
    pub fn ubigint(&mut self, v: u64) {
        self.sep();
        self.buf.push('"');
        self.buf.push_str(itoa::Buffer::new().format(v));
        self.buf.push('"');
    }

    /// A number already in JSON form (the caller checked it), written as is.
    pub fn number_text(&mut self, digits: &str) {
        self.sep();
        self.buf.push_str(digits);
    }

    /// `float`: a number; NaN and the infinities as strings.
    pub fn float(&mut self, v: f64) {
        self.sep();
        push_float(self.buf, v);
    }

    /// `float` from a single-precision value: the shortest text that reads
    /// back as the same `f32` (not the longer one of its `f64` widening).
    pub fn float32(&mut self, v: f32) {
        self.sep();
        if v.is_finite() {
            self.buf.push_str(ryu::Buffer::new().format_finite(v));
        } else {
            push_float(self.buf, f64::from(v));
        }
    }

    /// `float` with a fixed number of decimals (a column that declares them).
    pub fn fixed(&mut self, v: f64, decimals: usize) {
        use std::fmt::Write;
        if !v.is_finite() {
            self.float(v);
            return;
        }
        self.sep();
        let _ = write!(self.buf, "{v:.decimals$}");
    }

    /// A string value (`text`, `decimal`, `uuid`, `json`, dates, ...).
    pub fn str(&mut self, s: &str) {
        self.sep();
        push_json_str(self.buf, s);
    }

    /// A string value its writer knows needs no escaping (digits and
    /// separators), written without looking.
    pub fn plain_str(&mut self, s: &str) {
        debug_assert!(!s.bytes().any(|b| NEEDS_ESCAPE[b as usize]), "{s:?}");
        self.sep();
        self.buf.reserve(s.len() + 2);
        self.buf.push('"');
        self.buf.push_str(s);
        self.buf.push('"');
    }

    /// A string value given in parts (written as their concatenation).
    pub fn str_parts(&mut self, parts: &[&str]) {
        self.sep();
        push_json_str_parts(self.buf, parts);
    }

    /// `bytes` from Postgres hex text (`0a1b...`, without the `\\x`): base64,
    /// decoded and encoded in chunks with no intermediate buffer. Returns false
    /// (and writes nothing) if `hex` is not valid hex.
    pub fn bytes_from_hex(&mut self, hex: &[u8]) -> bool {
        if !hex.len().is_multiple_of(2) {
            return false;
        }
        let mark = self.buf.len();
        let first = self.first;
        self.sep();
        self.buf.push('"');
        // 48 bytes a chunk: a multiple of 3, so only the last chunk is padded.
        let mut chunk = [0u8; 48];
        let mut encoded = [0u8; 64];
        for pairs in hex.chunks(96) {
            let n = pairs.len() / 2;
            for (i, pair) in pairs.chunks_exact(2).enumerate() {
                let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
                if hi > 15 || lo > 15 {
                    self.buf.truncate(mark);
                    self.first = first;
                    return false;
                }
                chunk[i] = hi << 4 | lo;
            }
            let len = base64::engine::general_purpose::STANDARD
                .encode_slice(&chunk[..n], &mut encoded)
                .unwrap_or(0);
            // Base64 output is ASCII.
            self.buf
                .push_str(std::str::from_utf8(&encoded[..len]).unwrap_or_default());
        }
        self.buf.push('"');
        true
    }

    /// `bytes`: base64.
    pub fn bytes(&mut self, b: &[u8]) {
        self.sep();
        self.buf.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(b, self.buf);
        self.buf.push('"');
    }

    /// Where the writer is, to [`rewind`](Self::rewind) to when a cell
    /// written in several steps turns out not to be what was expected.
    pub(crate) fn mark(&self) -> (usize, bool) {
        (self.buf.len(), self.first)
    }

    /// Drops everything written since `mark`.
    pub(crate) fn rewind(&mut self, (len, first): (usize, bool)) {
        self.buf.truncate(len);
        self.first = first;
    }

    /// Starts a nested array cell; write its elements, then call `end_array`.
    pub fn begin_array(&mut self) {
        self.sep();
        self.buf.push('[');
        self.first = true;
    }

    pub fn end_array(&mut self) {
        self.buf.push(']');
        self.first = false;
    }

    pub(crate) fn finish(self) {
        self.buf.push(']');
    }
}

/// Appends a float as JSON: shortest round-trip form; NaN and infinities as strings.
pub fn push_float(buf: &mut String, v: f64) {
    if v.is_nan() {
        buf.push_str("\"NaN\"");
    } else if v.is_infinite() {
        buf.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        buf.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// The value of a hex digit, or 255.
const HEX_VALUE: [u8; 256] = {
    let mut table = [255u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Which bytes a JSON string must escape: the quote, the backslash and the control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a JSON string literal.
pub fn push_json_str(buf: &mut String, s: &str) {
    buf.reserve(s.len() + 2);
    buf.push('"');
    push_json_str_body(buf, s);
    buf.push('"');
}

/// Appends the concatenation of `parts` as one JSON string literal.
pub fn push_json_str_parts(buf: &mut String, parts: &[&str]) {
    buf.push('"');
    for part in parts {
        push_json_str_body(buf, part);
    }
    buf.push('"');
}

/// Whether `s` is a JSON number as it stands (the forms Postgres and MySQL
/// print for finite floats: `0.1`, `-2e-07`, `1e+300`).
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > from
    };
    if b.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
        // An exponent past a double's range is valid JSON that readers
        // turn into Infinity or refuse: kept as text (found by libFuzzer).
        if i == b.len() && !s.parse::<f64>().is_ok_and(f64::is_finite) {
            return false;
        }
    }
    i == b.len()
}

/// Byte tests on eight bytes at a time, in a register (the classic "has a
/// zero byte" trick). Each returns the lanes' high bits; a lane can only be
/// flagged wrongly above a truly flagged one, so "any" and "lowest" are exact.
pub(crate) mod word {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// The eight bytes of `bytes` from `from`, little-endian, if there are eight.
    pub(crate) fn at(bytes: &[u8], from: usize) -> Option<u64> {
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes.get(from..from.checked_add(8)?)?);
        Some(u64::from_le_bytes(le))
    }

    /// Lanes holding a byte below `n` (`n` at most 0x80).
    pub(crate) fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
    }

    /// Lanes holding `b`.
    pub(crate) fn equal(word: u64, b: u8) -> u64 {
        below(word ^ (ONES * u64::from(b)), 1)
    }

    /// The index of the lowest flagged lane.
    pub(crate) fn first(flags: u64) -> usize {
        (flags.trailing_zeros() / 8) as usize
    }
}

/// Whether any byte of `word` is a control character, `"` or `\\`.
fn word_needs_escape(word: u64) -> bool {
    word::below(word, 0x20) | word::equal(word, b'"') | word::equal(word, b'\\') != 0
}

/// Appends `s` escaped for the inside of a JSON string.
fn push_json_str_body(buf: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs escaping.
        if let Some(word) = word::at(bytes, i)
            && !word_needs_escape(word)
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        if !NEEDS_ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        buf.push_str(&s[start..i]);
        match b {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.push_str("\\u00");
                buf.push(HEX[(b >> 4) as usize] as char);
                buf.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        i += 1;
        start = i;
    }
    buf.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_test_matches_the_table() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                for fill in [b'a', 0xc3, b'~'] {
                    let mut bytes = [fill; 8];
                    bytes[pos] = b;
                    let word = u64::from_le_bytes(bytes);
                    assert_eq!(
                        word_needs_escape(word),
                        NEEDS_ESCAPE[b as usize],
                        "{b} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_strings_escape_at_every_position() {
        for at in 0..40 {
            for special in ["\"", "\\", "\n", "\u{1}", "é", "\u{7f}"] {
                let s = format!("{}{special}{}", "x".repeat(at), "y".repeat(40 - at));
                let mut buf = String::new();
                push_json_str(&mut buf, &s);
                let back: String = serde_json::from_str(&buf).unwrap();
                assert_eq!(back, s);
            }
        }
    }

    #[test]
    fn strings_round_trip_through_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" and \\ slash",
            "ctl \u{0} \u{1f} \n\t\r",
            "unicode é 漢字 🎉",
            "\u{7f}",
        ] {
            let mut buf = String::new();
            push_json_str(&mut buf, s);
            let back: String = serde_json::from_str(&buf).expect("valid JSON");
            assert_eq!(back, s);
        }
    }

    #[test]
    fn floats() {
        let mut buf = String::new();
        for v in [
            0.0,
            -0.0,
            1.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            f64::MIN_POSITIVE,
        ] {
            buf.clear();
            push_float(&mut buf, v);
            let parsed: serde_json::Value = serde_json::from_str(&buf).expect("valid JSON");
            if v.is_finite() {
                assert_eq!(parsed.as_f64(), Some(v));
                assert_eq!(
                    parsed.as_f64().map(f64::is_sign_negative),
                    Some(v.is_sign_negative())
                );
            } else {
                assert!(parsed.is_string());
            }
        }
    }

    #[test]
    fn a_row_with_every_writer() {
        let mut buf = String::new();
        let mut row = RowWriter::new(&mut buf);
        row.null();
        row.bool(true);
        row.int(-5);
        row.bigint(i64::MAX);
        row.ubigint(u64::MAX);
        row.float(2.5);
        row.str("x");
        row.bytes(b"\x00\xff");
        assert!(!row.bytes_from_hex(b"0g"));
        assert!(row.bytes_from_hex(&b"00ff".repeat(40)));
        row.str_parts(&["a\"", "b"]);
        row.begin_array();
        row.int(1);
        row.null();
        row.end_array();
        row.finish();
        let v: serde_json::Value = serde_json::from_str(&buf).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!([
                null,
                true,
                -5,
                "9223372036854775807",
                "18446744073709551615",
                2.5,
                "x",
                "AP8=",
                base64::engine::general_purpose::STANDARD.encode([0u8, 0xff].repeat(40)),
                "a\"b",
                [1, null]
            ])
        );
    }
}

//! The byte-level pieces of the scan: character classes, and where a
//! comment, a quoted string or identifier, or a number that starts at a
//! given byte ends (as psql's lexer has them).

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

pub(super) fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// The end of a `--` comment starting at `i` (its newline is whitespace).
pub(super) fn line_comment_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |at| i + at)
}

/// The end of a (nested) block comment opening at `i`.
pub(super) fn block_comment_end(bytes: &[u8], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j < bytes.len() {
        if bytes[j] == b'/' && bytes.get(j + 1) == Some(&b'*') {
            depth += 1;
            j += 2;
        } else if bytes[j] == b'*' && bytes.get(j + 1) == Some(&b'/') {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    bytes.len()
}

/// The end of a string literal whose text starts at `j` (after the opening
/// quote). A doubled quote stays inside; with `backslash` (an `E''` string)
/// a backslash escapes the next byte.
pub(super) fn string_end(bytes: &[u8], mut j: usize, backslash: bool) -> usize {
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if backslash => j += 2,
            b'\'' if bytes.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return j + 1,
            _ => j += 1,
        }
    }
    bytes.len()
}

pub(super) fn quoted_ident_end(bytes: &[u8], mut j: usize) -> usize {
    while j < bytes.len() {
        if bytes[j] == b'"' {
            if bytes.get(j + 1) == Some(&b'"') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// The end of a numeric token at `i`: digits, then (as Postgres 16+ lexes
/// `123abc`) any identifier glued to them.
pub(super) fn number_end(bytes: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'_') {
        j += 1;
    }
    if bytes.get(j).is_some_and(|&b| is_ident_start(b)) {
        while j < bytes.len() && is_ident_cont(bytes[j]) {
            j += 1;
        }
    }
    j
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

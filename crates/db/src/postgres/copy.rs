//! Reading rows in the text format of `COPY ... TO STDOUT`.
//!
//! A row is one line: fields separated by tabs, `\N` for NULL, and backslash
//! escapes for a backslash and the control characters `\b \f \n \r \t \v`
//! (what Postgres's `CopyAttributeOutText` writes). Each field is the type's
//! output function text, the same text a `DataRow` in text format carries.

use crate::value::word;

/// Calls `field(i, value)` for each field of `line` (`None` for NULL) and
/// returns how many fields there were. Escaped fields are decoded into
/// `scratch`; the others are handed over as they are.
pub(super) fn each_field(
    line: &str,
    scratch: &mut String,
    mut field: impl FnMut(usize, Option<&str>),
) -> usize {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut count = 0;
    let mut start = 0;
    // The first backslash of the current field, if any.
    let mut escape = None;
    // Tabs inside a value are written `\t`, so every tab ends a field.
    let mut from = 0;
    while let Some(at) = find_tab_or_backslash(line.as_bytes(), from) {
        from = at + 1;
        if line.as_bytes()[at] == b'\t' {
            one_field(&line[start..at], escape.map(|e| e - start), scratch, |v| {
                field(count, v)
            });
            count += 1;
            start = at + 1;
            escape = None;
        } else if escape.is_none() {
            escape = Some(at);
        }
    }
    one_field(&line[start..], escape.map(|e| e - start), scratch, |v| {
        field(count, v)
    });
    count + 1
}

/// The first tab or backslash in `bytes` at or after `from`. Rows are short
/// and fields shorter, so this scans eight bytes at a time in a register
/// rather than calling a vectorised search once per field.
fn find_tab_or_backslash(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(word) = word::at(bytes, from) {
        let hits = word::equal(word, b'\t') | word::equal(word, b'\\');
        if hits != 0 {
            return Some(from + word::first(hits));
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b'\t' || b == b'\\')
        .map(|at| from + at)
}

fn one_field(
    raw: &str,
    escape: Option<usize>,
    scratch: &mut String,
    field: impl FnOnce(Option<&str>),
) {
    match escape {
        None => field(Some(raw)),
        Some(_) if raw == "\\N" => field(None),
        Some(at) => {
            scratch.clear();
            unescape_into(raw, at, scratch);
            field(Some(scratch));
        }
    }
}

/// Decodes `raw`, whose first backslash is at `at`, into `out`.
fn unescape_into(raw: &str, mut at: usize, out: &mut String) {
    let mut rest = raw;
    loop {
        out.push_str(&rest[..at]);
        let mut chars = rest[at + 1..].chars();
        match chars.next() {
            Some(c) => out.push(match c {
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                other => other,
            }),
            // A lone trailing backslash (never written by Postgres): keep it.
            None => out.push('\\'),
        }
        rest = chars.as_str();
        match rest.find('\\') {
            Some(next) => at = next,
            None => {
                out.push_str(rest);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Vec<Option<String>> {
        let mut scratch = String::new();
        let mut out = Vec::new();
        let n = each_field(line, &mut scratch, |i, v| {
            assert_eq!(i, out.len());
            out.push(v.map(str::to_string));
        });
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn splits_nulls_and_empty_fields() {
        assert_eq!(
            fields("1\t\\N\t\tx y\n"),
            vec![
                Some("1".into()),
                None,
                Some(String::new()),
                Some("x y".into())
            ]
        );
        assert_eq!(fields("\n"), vec![Some(String::new())]);
    }

    #[test]
    fn finds_every_tab_and_backslash_at_any_position() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'\t', b'\\'] {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = special;
                    // A byte just above a hit, to catch a borrow into the next lane.
                    if at + 1 < len {
                        bytes[at + 1] = 0x08;
                    }
                    for from in 0..=len {
                        let want = (from <= at).then_some(at);
                        assert_eq!(
                            find_tab_or_backslash(&bytes, from),
                            want,
                            "{len} {at} {from}"
                        );
                    }
                }
            }
            assert_eq!(find_tab_or_backslash(&vec![b'a'; len], 0), None);
        }
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(
            fields("a\\tb\\nc\\\\d\\re\\bf\\fg\\vh\t\\\\x00ff\n"),
            vec![
                Some("a\tb\nc\\d\re\u{8}f\u{c}g\u{b}h".into()),
                Some("\\x00ff".into())
            ]
        );
        // "\\N" is a backslash and an N, not NULL; a lone "\N" is NULL.
        assert_eq!(fields("\\\\N\t\\N\n"), vec![Some("\\N".into()), None]);
        assert_eq!(fields("é\\\\ü\n"), vec![Some("é\\ü".into())]);
    }
}

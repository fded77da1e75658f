//! Reading rows in the text format of `COPY ... TO STDOUT`.
//!
//! A row is one line: fields separated by tabs, `\N` for NULL, and backslash
//! escapes for a backslash and the control characters `\b \f \n \r \t \v`
//! (what Postgres's `CopyAttributeOutText` writes). Each field is the type's
//! output function text, the same text a `DataRow` in text format carries.

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
    for at in memchr::memchr2_iter(b'\t', b'\\', line.as_bytes()) {
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

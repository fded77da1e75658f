//! Splitting a script into statements the way Postgres reads it, and binding
//! the caller's parameters into each statement as escaped literals.
//!
//! The scanner knows standard strings (`'it''s'`), escape strings (`E'\''`),
//! quoted identifiers, dollar quoting (`$$`, `$tag$`), line comments and
//! nested block comments; a `;` outside all of those ends a statement. While
//! scanning it also notes `$n` placeholders and the few keywords that decide
//! how a statement is run.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Byte range in the script (trimmed of surrounding whitespace).
    pub start: usize,
    pub end: usize,
    /// 0-based character offset of `start` in the script, for error positions.
    pub char_offset: usize,
    /// The first keyword, upper-cased (`SELECT`, `WITH`, `BEGIN`, ...).
    pub command: String,
    /// `$n` placeholders: byte range in the script and `n`.
    pub placeholders: Vec<(usize, usize, usize)>,
    /// Holds INTO, INSERT, UPDATE, DELETE or MERGE outside quotes and comments:
    /// a cursor cannot be declared over it.
    pub writes: bool,
    /// Names STDIN or STDOUT (a `COPY` that would need the copy sub-protocol).
    pub copy_stdio: bool,
}

impl Statement {
    /// Whether its rows can be read through `DECLARE ... CURSOR` / `FETCH`.
    pub fn cursor_safe(&self) -> bool {
        matches!(
            self.command.as_str(),
            "SELECT" | "VALUES" | "TABLE" | "WITH"
        ) && !self.writes
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Splits `sql` into its statements; statements holding only whitespace and
/// comments are dropped.
pub fn split(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut current = Fresh::new();
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b';' => {
                current.finish(sql, i, &mut out);
                current = Fresh::new();
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => {
                current.touch(i);
                i = skip_quoted(bytes, i, b'\'', false);
            }
            b'"' => {
                current.touch(i);
                i = skip_quoted(bytes, i, b'"', false);
            }
            b'$' => {
                current.touch(i);
                let preceded_by_ident = i > 0 && is_ident_char(bytes[i - 1]);
                if !preceded_by_ident && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                    let n = sql[i + 1..j].parse().unwrap_or(usize::MAX);
                    current.placeholders.push((i, j, n));
                    i = j;
                } else if let Some(tag_end) =
                    (!preceded_by_ident).then(|| dollar_tag(bytes, i)).flatten()
                {
                    let tag = &bytes[i..tag_end];
                    let mut j = tag_end;
                    i = loop {
                        if j >= bytes.len() {
                            break bytes.len();
                        }
                        if bytes[j..].starts_with(tag) {
                            break j + tag.len();
                        }
                        j += 1;
                    };
                } else {
                    i += 1;
                }
            }
            _ if is_ident_start(b) => {
                current.touch(i);
                let start = i;
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                // E'...' (and e'...') is an escape string: backslashes escape.
                if i == start + 1 && (b == b'e' || b == b'E') && bytes.get(i) == Some(&b'\'') {
                    i = skip_quoted(bytes, i, b'\'', true);
                    continue;
                }
                current.word(&sql[start..i]);
            }
            _ if b.is_ascii_whitespace() => i += 1,
            _ => {
                current.touch(i);
                i += 1;
            }
        }
    }
    current.finish(sql, bytes.len(), &mut out);
    out
}

/// The end of a `$tag$` opening at `i`, if one does.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if bytes.get(j).is_some_and(|&b| is_ident_start(b)) {
        while j < bytes.len() && (is_ident_start(bytes[j]) || bytes[j].is_ascii_digit()) {
            j += 1;
        }
    }
    (bytes.get(j) == Some(&b'$')).then_some(j + 1)
}

/// Skips a quoted run opening at `i`; a doubled quote stays inside. With
/// `backslash`, `\x` escapes any character.
fn skip_quoted(bytes: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < bytes.len() {
        let b = bytes[j];
        if backslash && b == b'\\' {
            j += 2;
        } else if b == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    bytes.len()
}

/// The statement being scanned.
struct Fresh {
    /// Byte offset of the first token, once there is one.
    first: Option<usize>,
    command: String,
    placeholders: Vec<(usize, usize, usize)>,
    writes: bool,
    copy_stdio: bool,
}

impl Fresh {
    fn new() -> Self {
        Fresh {
            first: None,
            command: String::new(),
            placeholders: Vec::new(),
            writes: false,
            copy_stdio: false,
        }
    }

    fn touch(&mut self, at: usize) {
        if self.first.is_none() {
            self.first = Some(at);
        }
    }

    fn word(&mut self, word: &str) {
        if self.command.is_empty() {
            self.command = word.to_ascii_uppercase();
        }
        if word.len() <= 6 {
            let upper = word.to_ascii_uppercase();
            match upper.as_str() {
                "INTO" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" => self.writes = true,
                "STDIN" | "STDOUT" => self.copy_stdio = true,
                _ => {}
            }
        }
    }

    fn finish(self, sql: &str, end: usize, out: &mut Vec<Statement>) {
        let Some(start) = self.first else { return };
        let end = start + sql[start..end].trim_end().len();
        out.push(Statement {
            start,
            end,
            char_offset: sql[..start].chars().count(),
            command: self.command,
            placeholders: self.placeholders,
            writes: self.writes,
            copy_stdio: self.copy_stdio,
        });
    }
}

/// A statement with its parameters written in as literals, and what is needed
/// to map a server error position back to the caller's text.
#[derive(Debug)]
pub struct Bound {
    pub sql: String,
    /// (character offset in `sql`, character offset in the original statement,
    /// length in `sql`, length of the placeholder) of each written-in literal.
    subs: Vec<(usize, usize, usize, usize)>,
    char_offset: usize,
}

impl Bound {
    /// Maps a 1-based character position in `sql` to one in the whole script.
    pub fn script_position(&self, position: u32) -> u32 {
        let p = position.saturating_sub(1) as usize;
        let mut mapped = p;
        for &(new_at, old_at, new_len, old_len) in &self.subs {
            if p < new_at {
                break;
            }
            if p < new_at + new_len {
                // Inside a written-in literal: point at its placeholder.
                mapped = old_at;
                break;
            }
            mapped = p + old_at + old_len - new_at - new_len;
        }
        (self.char_offset + mapped + 1) as u32
    }
}

/// Writes `params` into `stmt` (of `script`) in place of its `$n`
/// placeholders. Strings become escape-string literals (`E'...'`, which mean the
/// same whatever `standard_conforming_strings` says), other values their JSON
/// text as a literal of unknown type, so Postgres infers the type exactly as for
/// a bound parameter.
pub fn bind(script: &str, stmt: &Statement, params: &[serde_json::Value]) -> Result<Bound, String> {
    let text = &script[stmt.start..stmt.end];
    if stmt.placeholders.is_empty() {
        return Ok(Bound {
            sql: text.to_string(),
            subs: Vec::new(),
            char_offset: stmt.char_offset,
        });
    }
    let mut sql = String::with_capacity(text.len() + 16 * stmt.placeholders.len());
    let mut subs = Vec::new();
    let mut copied = stmt.start;
    let mut new_chars = 0usize;
    let mut old_chars = 0usize;
    for &(from, to, n) in &stmt.placeholders {
        let Some(value) = n.checked_sub(1).and_then(|i| params.get(i)) else {
            return Err(format!(
                "the statement uses ${n} but {} parameter(s) were given",
                params.len()
            ));
        };
        let before = &script[copied..from];
        sql.push_str(before);
        let before_chars = before.chars().count();
        new_chars += before_chars;
        old_chars += before_chars;
        let literal = literal(value)?;
        let literal_chars = literal.chars().count();
        subs.push((new_chars, old_chars, literal_chars, to - from));
        sql.push_str(&literal);
        new_chars += literal_chars;
        old_chars += to - from;
        copied = to;
    }
    sql.push_str(&script[copied..stmt.end]);
    Ok(Bound {
        sql,
        subs,
        char_offset: stmt.char_offset,
    })
}

fn literal(value: &serde_json::Value) -> Result<String, String> {
    let text = match value {
        serde_json::Value::Null => return Ok("NULL".to_string()),
        serde_json::Value::Bool(b) => return Ok(if *b { "'true'" } else { "'false'" }.into()),
        serde_json::Value::Number(n) => return Ok(format!("'{n}'")),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains('\0') {
        return Err("a parameter holds a NUL character, which Postgres text cannot store".into());
    }
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str("E'");
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| &sql[s.start..s.end]).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "select 'a;b', \"c;d\", E'it\\'s;' ; -- x;y\n select 2 /* a /* nested; */ still; */ ;; select $$;$$, $fn$ a $$ ; $fn$";
        assert_eq!(
            texts(sql),
            vec![
                "select 'a;b', \"c;d\", E'it\\'s;'",
                "select 2 /* a /* nested; */ still; */",
                "select $$;$$, $fn$ a $$ ; $fn$"
            ]
        );
    }

    #[test]
    fn function_bodies_stay_whole() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  -- it's; fine\n  RETURN 1;\nEND;\n$body$;\nSELECT f();";
        let parts = split(sql);
        assert_eq!(parts.len(), 2);
        assert!(sql[parts[0].start..parts[0].end].ends_with("$body$"));
        assert_eq!(parts[0].command, "CREATE");
        assert_eq!(parts[1].command, "SELECT");
        assert!(parts[1].cursor_safe());
    }

    #[test]
    fn comment_only_statements_are_dropped() {
        assert!(split("  -- nothing\n /* here */ ; ").is_empty());
    }

    #[test]
    fn placeholders_and_dollar_idents() {
        let sql = "select $1, a$1, '$2', $$ $3 $$, $2";
        let s = &split(sql)[0];
        let ns: Vec<usize> = s.placeholders.iter().map(|p| p.2).collect();
        assert_eq!(ns, vec![1, 2]);
    }

    #[test]
    fn classification() {
        let first = |sql: &str| split(sql).remove(0);
        assert!(first("with x as (select 1) select * from x").cursor_safe());
        assert!(!first("with x as (delete from t returning *) select * from x").cursor_safe());
        assert!(!first("select * into t2 from t").cursor_safe());
        assert!(!first("select * from t for update").cursor_safe());
        assert!(first("copy t to stdout").copy_stdio);
        assert!(!first("select 'stdin'").copy_stdio);
    }

    #[test]
    fn binding_escapes_and_maps_positions() {
        let sql = "select $1, $2, $3 + 1, $4 from nowhere";
        let stmt = &split(sql)[0];
        let params = vec![
            serde_json::json!("it's \\ here"),
            serde_json::Value::Null,
            serde_json::json!(41),
            serde_json::json!(true),
        ];
        let bound = bind(sql, stmt, &params).expect("bound");
        assert_eq!(
            bound.sql,
            "select E'it''s \\\\ here', NULL, '41' + 1, 'true' from nowhere"
        );
        // "nowhere" in the bound text maps back to "nowhere" in the script.
        let at = bound.sql.find("nowhere").expect("there") as u32 + 1;
        assert_eq!(at as usize, bound.sql.chars().count() - 6);
        assert_eq!(
            bound.script_position(at) as usize,
            sql.find("nowhere").expect("there") + 1
        );
        assert!(bind(sql, stmt, &params[..2]).is_err());
        assert!(
            bind(
                "select $1",
                &split("select $1")[0],
                &[serde_json::json!("a\0b")]
            )
            .is_err()
        );
    }
}

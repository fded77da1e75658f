//! Binding the caller's `params` into a statement as escaped literals, and
//! mapping the server's error positions back to the caller's text.
//!
//! Which statements `params` bind to (the contract, also in the protocol
//! crate's `QueryRunParams::params`): with no `params`, no statement is ever
//! rewritten, so `$n` reach the server as written. With `params`, every
//! statement of the script that uses `$n` has them replaced by `params[n-1]`,
//! except where the `$n` belong to the server: a `PREPARE` (its own
//! parameters) and a `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (its
//! arguments, in a `BEGIN ATOMIC` or `RETURN` body). A statement that uses a
//! `$n` past the end of `params` is refused before the script runs it.

use super::split::Statement;

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
/// placeholders, where the caller's `params` apply (see the module doc). Strings become escape-string literals (`E'...'`, which mean the
/// same whatever `standard_conforming_strings` says), other values their JSON
/// text as a literal of unknown type, so Postgres infers the type exactly as for
/// a bound parameter.
pub fn bind(script: &str, stmt: &Statement, params: &[serde_json::Value]) -> Result<Bound, String> {
    let text = &script[stmt.start..stmt.end];
    if stmt.placeholders.is_empty() || params.is_empty() || stmt.server_params {
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
    use crate::postgres::split::split;

    fn first(sql: &str) -> Statement {
        split(sql).expect("splits").remove(0)
    }

    #[test]
    fn binding_escapes_and_maps_positions() {
        let sql = "select $1, $2, $3 + 1, $4 from nowhere";
        let stmt = &first(sql);
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
                &first("select $1"),
                &[serde_json::json!("a\0b")]
            )
            .is_err()
        );
    }

    #[test]
    fn scripts_without_params_are_never_rewritten() {
        let sql = "PREPARE p(int) AS SELECT $1 + 1";
        let bound = bind(sql, &first(sql), &[]).expect("untouched");
        assert_eq!(bound.sql, sql);
        let sql = "select $1";
        assert_eq!(bind(sql, &first(sql), &[]).expect("untouched").sql, sql);
    }

    #[test]
    fn server_side_placeholders_are_left_alone_when_params_are_given() {
        let params = [serde_json::json!(5)];
        let sql = "PREPARE p(int) AS SELECT $1 + 1";
        assert_eq!(bind(sql, &first(sql), &params).expect("bound").sql, sql);
        let sql =
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT $1 + 1; END";
        assert_eq!(bind(sql, &first(sql), &params).expect("bound").sql, sql);
        let sql = "EXECUTE p($1)";
        assert_eq!(
            bind(sql, &first(sql), &params).expect("bound").sql,
            "EXECUTE p('5')"
        );
    }
}

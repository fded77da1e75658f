//! Splitting a script into statements the way the `mysql`/`mariadb` client
//! does: quotes (`'...'` and `"..."` with backslash escapes, `` `...` ``
//! identifiers), `#`, `-- ` and `/* */` comments (`/*! */` ones included, kept
//! in the text), and the `DELIMITER` command real scripts put around
//! procedures and triggers. Parameters (`?`) are written in as literals that
//! mean the same whatever the `sql_mode`.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Byte range in the script.
    pub start: usize,
    pub end: usize,
    /// 0-based character offset of `start` in the script.
    pub char_offset: usize,
    /// The first keyword, upper-cased.
    pub command: String,
    /// Byte offsets of `?` placeholders in the script.
    pub placeholders: Vec<usize>,
}

fn word_at(bytes: &[u8], i: usize) -> &[u8] {
    let mut j = i;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    &bytes[i..j]
}

/// Splits `sql`; comment-only statements and `DELIMITER` lines are dropped.
pub fn split(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut delimiter: Vec<u8> = b";".to_vec();
    let mut i = 0;
    let mut first: Option<usize> = None;
    let mut placeholders = Vec::new();
    let finish = |first: &mut Option<usize>,
                  placeholders: &mut Vec<usize>,
                  end: usize,
                  out: &mut Vec<Statement>| {
        if let Some(start) = first.take() {
            let end = start + sql[start..end].trim_end().len();
            let command = String::from_utf8_lossy(word_at(bytes, start)).to_ascii_uppercase();
            out.push(Statement {
                start,
                end,
                char_offset: sql[..start].chars().count(),
                command,
                placeholders: std::mem::take(placeholders),
            });
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        // DELIMITER is a client command, recognised at the start of a statement.
        if first.is_none() && (b == b'd' || b == b'D') {
            let word = word_at(bytes, i);
            if word.eq_ignore_ascii_case(b"DELIMITER")
                && bytes
                    .get(i + word.len())
                    .is_some_and(|c| *c == b' ' || *c == b'\t')
            {
                let line_end = sql[i..].find('\n').map_or(sql.len(), |n| i + n);
                let new = sql[i + word.len()..line_end].trim();
                if !new.is_empty() {
                    delimiter = new.as_bytes().to_vec();
                }
                i = line_end;
                continue;
            }
        }
        if bytes[i..].starts_with(&delimiter) {
            finish(&mut first, &mut placeholders, i, &mut out);
            i += delimiter.len();
            continue;
        }
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // `/*! ... */` is code for the server: it belongs to the statement.
                if bytes.get(i + 2) == Some(&b'!') && first.is_none() {
                    first = Some(i);
                }
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'\'' | b'"' | b'`' => {
                first.get_or_insert(i);
                let quote = b;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' && quote != b'`' {
                        i += 2;
                    } else if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'?' => {
                first.get_or_insert(i);
                placeholders.push(i);
                i += 1;
            }
            _ if b.is_ascii_whitespace() => i += 1,
            _ => {
                first.get_or_insert(i);
                i += 1;
            }
        }
    }
    finish(&mut first, &mut placeholders, bytes.len(), &mut out);
    out
}

/// `stmt` with `params` written in for its placeholders, in order. Strings
/// become `_utf8mb4 X'...'` hex literals, which need no escaping under any
/// `sql_mode`; numbers their JSON digits; booleans TRUE/FALSE.
pub fn bind(
    script: &str,
    stmt: &Statement,
    params: &[serde_json::Value],
) -> Result<String, String> {
    let text = &script[stmt.start..stmt.end];
    if stmt.placeholders.is_empty() {
        return Ok(text.to_string());
    }
    if params.len() < stmt.placeholders.len() {
        return Err(format!(
            "the statement has {} placeholder(s) but {} parameter(s) were given",
            stmt.placeholders.len(),
            params.len()
        ));
    }
    let mut out = String::with_capacity(text.len() + 16 * params.len());
    let mut copied = stmt.start;
    for (at, value) in stmt.placeholders.iter().zip(params) {
        out.push_str(&script[copied..*at]);
        match value {
            serde_json::Value::Null => out.push_str("NULL"),
            serde_json::Value::Bool(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
            serde_json::Value::Number(n) => out.push_str(&n.to_string()),
            serde_json::Value::String(s) => hex_literal(&mut out, s),
            other => hex_literal(&mut out, &other.to_string()),
        }
        copied = at + 1;
    }
    out.push_str(&script[copied..stmt.end]);
    Ok(out)
}

fn hex_literal(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("_utf8mb4 X'");
    for b in s.bytes() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| &sql[s.start..s.end]).collect()
    }

    #[test]
    fn quotes_comments_and_delimiter() {
        let sql = "SELECT 'a;b', \"c\\\";d\", `e;f` # x;y\n; -- z;w\nSELECT 2 /* ; */;\n\
                   DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END//\nDELIMITER ;\nCALL p()";
        assert_eq!(
            texts(sql),
            vec![
                "SELECT 'a;b', \"c\\\";d\", `e;f` # x;y",
                "SELECT 2 /* ; */",
                "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
                "CALL p()",
            ]
        );
        assert_eq!(split(sql)[2].command, "CREATE");
        assert!(split("-- only\n# comments\n/* here */").is_empty());
        // `--` not followed by a space is an operator, not a comment.
        assert_eq!(
            texts("SELECT 1--1; SELECT 2"),
            vec!["SELECT 1--1", "SELECT 2"]
        );
        assert_eq!(
            texts("/*!40101 SET NAMES utf8mb4 */;"),
            vec!["/*!40101 SET NAMES utf8mb4 */"]
        );
    }

    /// Scripts built from random statements (every kind of quote, comment
    /// and `/*! */` block, `DELIMITER` changes between them) split back
    /// into exactly those statements. `DBBRIDGE_SPLIT_SEED` reruns a seed.
    #[test]
    fn generated_scripts_split_back_into_their_statements() {
        let seed: u64 = std::env::var("DBBRIDGE_SPLIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_1234_abcd_ef01);
        let mut state = seed;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        // Pieces that may hold any delimiter inside them.
        let pieces = [
            "'a;b//c$$'",
            "'it''s; \\\\' ",
            "\"q\\\";d//\"",
            "`e;f//`",
            "/* ; // $$ */",
            "/*!40101 x */",
            "1--1",
            "?",
            "'é😀;'",
            "(SELECT 1)",
            "x",
        ];
        let delimiters = [";", "//", "$$", ";;"];
        for round in 0..300 {
            let mut script = String::new();
            let mut expected = Vec::new();
            let mut delimiter = ";";
            for _ in 0..(1 + next(6)) {
                if next(3) == 0 {
                    let d = delimiters[next(delimiters.len())];
                    if d != delimiter {
                        script.push_str(&format!("DELIMITER {d}\n"));
                        delimiter = d;
                    }
                }
                let mut stmt = String::from("SELECT ");
                for k in 0..(1 + next(4)) {
                    if k > 0 {
                        stmt.push_str(", ");
                    }
                    stmt.push_str(pieces[next(pieces.len())]);
                }
                // A line comment after the statement's text, before its end.
                let comment = match next(4) {
                    0 => " # note; // $$\n",
                    1 => " -- note; // $$\n",
                    _ => "",
                };
                script.push_str(&stmt);
                script.push_str(comment);
                script.push_str(delimiter);
                script.push('\n');
                // The splitter keeps a statement's text without trailing blanks.
                expected.push(
                    format!("{stmt}{}", comment.trim_end())
                        .trim_end()
                        .to_string(),
                );
            }
            let got: Vec<String> = texts(&script).into_iter().map(String::from).collect();
            assert_eq!(got, expected, "seed {seed} round {round}:\n{script}");
        }
    }

    #[test]
    fn binding() {
        let sql = "SELECT ?, ?, ?, '?', ?";
        let stmt = &split(sql)[0];
        assert_eq!(stmt.placeholders.len(), 4);
        let bound = bind(
            sql,
            stmt,
            &[
                serde_json::json!("it's \\"),
                serde_json::json!(42),
                serde_json::Value::Null,
                serde_json::json!(true),
            ],
        )
        .unwrap_or_default();
        assert_eq!(
            bound,
            "SELECT _utf8mb4 X'69742773205c', 42, NULL, '?', TRUE"
        );
        assert!(bind(sql, stmt, &[]).is_err());
    }
}

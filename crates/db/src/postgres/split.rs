//! Splitting a script into statements exactly where psql splits it.
//!
//! The scanner follows psql's lexer (`src/fe_utils/psqlscan.l`), token for
//! token where it matters for the end of a statement:
//! - standard strings (`'it''s'`, with `B''`, `X''`, `N''`), escape strings
//!   (`E'\''`) and `U&''` strings. SQL continues a literal over a newline
//!   (`E'a'` newline `'b'`), but psql reads a file line by line and never
//!   sees that newline, so to psql the second part is a string of its own in
//!   standard quoting; the scanner does as psql does;
//! - quoted identifiers (`"a;b"`, `U&"..."`), dollar quoting (`$$`, `$tag$`),
//!   `--` comments and nested `/* */` comments;
//! - parenthesis depth: a `;` inside parentheses does not end a statement
//!   (`CREATE RULE ... DO ALSO (INSERT ...; INSERT ...)`);
//! - psql's `BEGIN ... END` heuristic for SQL-standard routine bodies: in a
//!   statement that starts `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, outside
//!   parentheses, `BEGIN` opens a block, `CASE` opens one inside a block, and
//!   `END` closes one; a `;` inside a block does not end the statement.
//!
//! Beyond psql: a backslash outside quotes (a psql meta-command such as
//! `\connect`) is refused with the line it stands on rather than sent, and a
//! `COPY ... FROM stdin;` takes the lines after it, up to a line `\.`, as its
//! data, the way psql feeds them (plain `pg_dump` files are written so).

use std::ops::Range;

use tokens::{
    block_comment_end, find, is_ident_cont, is_ident_start, is_space, line_comment_end, number_end,
    quoted_ident_end, string_end,
};

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Byte range in the script: from the first token (or a block comment
    /// before it) to the last token, without the terminating `;`.
    pub start: usize,
    pub end: usize,
    /// 0-based character offset of `start` in the script, for error positions.
    pub char_offset: usize,
    /// The first keyword, upper-cased (`SELECT`, `WITH`, `BEGIN`, ...).
    pub command: String,
    /// `$n` placeholders: byte range in the script and `n`.
    pub placeholders: Vec<(usize, usize, usize)>,
    /// Its `$n` belong to the server, never to the caller's `params`: a
    /// `PREPARE`, or a `CREATE [OR REPLACE] FUNCTION|PROCEDURE` whose body
    /// (`BEGIN ATOMIC ...`, `RETURN ...`) refers to its own arguments.
    pub server_params: bool,
    /// Holds INTO, INSERT, UPDATE, DELETE or MERGE outside quotes and comments:
    /// a cursor cannot be declared over it.
    pub writes: bool,
    /// A `COPY ... TO STDOUT`, which needs the copy-out sub-protocol.
    pub copy_to_stdout: bool,
    /// For a `COPY ... FROM STDIN`: the byte range of its inline data (the
    /// lines after the statement, without the closing `\.` line).
    pub copy_data: Option<Range<usize>>,
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

/// Why a script cannot be run as it is. Nothing of it has run.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitError {
    pub message: String,
    /// 1-based character position in the script.
    pub position: u32,
}

/// Splits `sql` into its statements; statements holding only whitespace and
/// comments are dropped.
pub fn split(sql: &str) -> Result<Vec<Statement>, SplitError> {
    let mut scanner = Scanner {
        sql,
        bytes: sql.as_bytes(),
        out: Vec::new(),
        current: Current::default(),
        paren_depth: 0,
        begin_depth: 0,
        identifiers: [0; 4],
        identifier_count: 0,
        std_strings: true,
        counted: (0, 0),
    };
    scanner.run()?;
    Ok(scanner.out)
}

struct Scanner<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    out: Vec<Statement>,
    current: Current,
    // psql's lexer state, under psql's names.
    paren_depth: u32,
    begin_depth: u32,
    identifiers: [u8; 4],
    identifier_count: usize,
    /// `standard_conforming_strings`: psql follows the server's setting, so a
    /// script's own `SET standard_conforming_strings = off` changes how the
    /// statements after it are read.
    std_strings: bool,
    /// (byte offset, characters before it): where character counting got to.
    counted: (usize, usize),
}

impl Scanner<'_> {
    fn run(&mut self) -> Result<(), SplitError> {
        let bytes = self.bytes;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let next = bytes.get(i + 1).copied();
            i = match b {
                _ if is_space(b) => i + 1,
                b'-' if next == Some(b'-') => line_comment_end(bytes, i),
                b'/' if next == Some(b'*') => {
                    self.current.comment(i);
                    block_comment_end(bytes, i)
                }
                b'\'' => {
                    self.current.token(i);
                    string_end(bytes, i + 1, !self.std_strings)
                }
                b'"' => {
                    self.current.token(i);
                    quoted_ident_end(bytes, i + 1)
                }
                b'$' => {
                    self.current.token(i);
                    self.dollar(i)
                }
                b'(' => {
                    self.current.token(i);
                    self.paren_depth += 1;
                    i + 1
                }
                b')' => {
                    self.current.token(i);
                    self.paren_depth = self.paren_depth.saturating_sub(1);
                    i + 1
                }
                b';' if self.paren_depth == 0 && self.begin_depth == 0 => {
                    self.identifier_count = 0;
                    self.finish(i)?
                }
                b'\\' => self.meta_command(i)?,
                b'0'..=b'9' => {
                    self.current.token(i);
                    number_end(bytes, i)
                }
                _ if is_ident_start(b) => {
                    self.current.token(i);
                    self.word_or_prefixed(i)
                }
                _ => {
                    self.current.token(i);
                    i + 1
                }
            };
        }
        self.finish(bytes.len())?;
        Ok(())
    }

    /// A token starting with a letter: a prefixed string (`B''`, `X''`,
    /// `N''`, `E''`, `U&''`, `U&""`) or an identifier/keyword.
    fn word_or_prefixed(&mut self, i: usize) -> usize {
        let bytes = self.bytes;
        let b = bytes[i].to_ascii_lowercase();
        let next = bytes.get(i + 1).copied();
        match (b, next) {
            (b'b' | b'x', Some(b'\'')) => return string_end(bytes, i + 2, false),
            (b'e', Some(b'\'')) => return string_end(bytes, i + 2, true),
            // `N'...'`: psql takes the `n` alone; the quote then opens a string.
            (b'n', Some(b'\'')) => return i + 1,
            (b'u', Some(b'&')) => match bytes.get(i + 2) {
                Some(b'\'') => return string_end(bytes, i + 3, false),
                Some(b'"') => return quoted_ident_end(bytes, i + 3),
                // psql's `xufailed`: the `u` alone, not an identifier.
                _ => return i + 1,
            },
            _ => {}
        }
        let mut end = i + 1;
        while end < bytes.len() && is_ident_cont(bytes[end]) {
            end += 1;
        }
        let word = &self.sql[i..end];
        self.identifier(word);
        self.current.word(word);
        end
    }

    /// psql's identifier rule: tracks `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
    /// and the `BEGIN`/`CASE`/`END` nesting of its body.
    fn identifier(&mut self, word: &str) {
        if self.identifier_count == 0 {
            self.identifiers = [0; 4];
        }
        let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
        if (is("create") || is("function") || is("procedure") || is("or") || is("replace"))
            && self.identifier_count < self.identifiers.len()
        {
            self.identifiers[self.identifier_count] = word.as_bytes()[0].to_ascii_lowercase();
        }
        self.identifier_count += 1;
        if self.creates_routine() && self.paren_depth == 0 {
            if is("begin") {
                self.begin_depth += 1;
            } else if is("case") {
                // CASE also ends with END; it only matters inside a BEGIN.
                if self.begin_depth >= 1 {
                    self.begin_depth += 1;
                }
            } else if is("end") {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }
    }

    /// The statement so far starts `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    fn creates_routine(&self) -> bool {
        let ids = &self.identifiers;
        ids[0] == b'c'
            && (matches!(ids[1], b'f' | b'p')
                || (ids[1] == b'o' && ids[2] == b'r' && matches!(ids[3], b'f' | b'p')))
    }

    /// A `$` at the start of a token: a `$n` placeholder, a dollar-quoted
    /// string, or a lone `$`.
    fn dollar(&mut self, i: usize) -> usize {
        let bytes = self.bytes;
        if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if bytes.get(j).is_some_and(|&b| is_ident_start(b)) {
                // `$1abc`: one junk token the server refuses; not a placeholder.
                return number_end(bytes, j);
            }
            let n = self.sql[i + 1..j].parse().unwrap_or(usize::MAX);
            self.current.placeholders.push((i, j, n));
            return j;
        }
        let mut j = i + 1;
        if bytes.get(j).is_some_and(|&b| is_ident_start(b)) {
            while j < bytes.len() && (is_ident_start(bytes[j]) || bytes[j].is_ascii_digit()) {
                j += 1;
            }
        }
        if bytes.get(j) != Some(&b'$') {
            // psql's `dolqfailed`: the `$` alone; what follows is lexed anew.
            return i + 1;
        }
        let tag = &bytes[i..=j];
        let body = j + 1;
        match find(&bytes[body..], tag) {
            Some(at) => body + at + tag.len(),
            None => bytes.len(),
        }
    }

    /// Ends the statement being scanned at `end` (a `;` or the end of the
    /// script) and returns where scanning goes on.
    fn finish(&mut self, end: usize) -> Result<usize, SplitError> {
        let current = std::mem::take(&mut self.current);
        let resume = end + 1;
        let Some(start) = current.start.filter(|_| current.has_token) else {
            return Ok(resume);
        };
        let text_end = start + self.sql[start..end].trim_end().len();
        let (from, chars) = self.counted;
        let char_offset = chars + self.sql[from..start].chars().count();
        self.counted = (start, char_offset);
        let server_params = current.command == "PREPARE" || self.creates_routine();
        if let Some(on) = sets_standard_strings(&current.command, &self.sql[start..text_end]) {
            self.std_strings = on;
        }
        let mut stmt = Statement {
            start,
            end: text_end,
            char_offset,
            command: current.command,
            placeholders: current.placeholders,
            server_params,
            writes: current.writes,
            copy_to_stdout: current.to_stdout,
            copy_data: None,
        };
        let mut resume = resume;
        if current.from_stdin && stmt.command == "COPY" {
            let (data, after) = self.copy_data(&stmt, end)?;
            stmt.copy_data = Some(data);
            resume = after;
        }
        self.out.push(stmt);
        Ok(resume)
    }

    /// The inline data of a `COPY ... FROM stdin` ending at `end`: the lines
    /// after it up to a line `\.`, and where scanning resumes after that line.
    fn copy_data(&self, stmt: &Statement, end: usize) -> Result<(Range<usize>, usize), SplitError> {
        let bytes = self.bytes;
        let no_data = || SplitError {
            message: format!(
                "line {}: COPY ... FROM stdin needs its data in the script: the lines after the statement, ending with a line \\. (as pg_dump writes them)",
                self.line_of(stmt.start)
            ),
            position: stmt.char_offset as u32 + 1,
        };
        if end >= bytes.len() {
            return Err(no_data());
        }
        // Only whitespace or a comment may follow the `;` on its line.
        let mut i = end + 1;
        while i < bytes.len() && bytes[i] != b'\n' {
            if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'-') {
                i = line_comment_end(bytes, i);
            } else if matches!(bytes[i], b' ' | b'\t' | b'\r' | 0x0c) {
                i += 1;
            } else {
                return Err(SplitError {
                    message: format!(
                        "line {}: the data of COPY ... FROM stdin starts on the next line; nothing else may follow the statement on its line",
                        self.line_of(i)
                    ),
                    position: self.char_position(i),
                });
            }
        }
        let data_start = (i + 1).min(bytes.len());
        let mut line = data_start;
        while line < bytes.len() {
            let line_end = bytes[line..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |at| line + at);
            let text = &bytes[line..line_end];
            if text == b"\\." || text == b"\\.\r" {
                return Ok((data_start..line, line_end + 1));
            }
            line = line_end + 1;
        }
        Err(no_data())
    }

    /// A backslash outside quotes: psql's meta-commands. `\restrict` and
    /// `\unrestrict` (which pg_dump writes around a plain dump) only limit
    /// which meta-commands psql may run, and dbbridge runs none, so their
    /// line is passed over; any other is refused with its line.
    fn meta_command(&self, i: usize) -> Result<usize, SplitError> {
        let bytes = self.bytes;
        let name_end = bytes[i + 1..]
            .iter()
            .position(|&b| is_space(b) || b == b'\\')
            .map_or(bytes.len(), |at| i + 1 + at);
        let name = &self.sql[i..name_end.max(i + 1)];
        let at_line_start = bytes[..i]
            .iter()
            .rev()
            .take_while(|&&b| b != b'\n')
            .all(|&b| is_space(b));
        if at_line_start
            && self.current.start.is_none()
            && matches!(name, "\\restrict" | "\\unrestrict")
        {
            return Ok(line_comment_end(bytes, i));
        }
        Err(SplitError {
            message: format!(
                "line {}: {name} is a psql meta-command, not SQL; dbbridge sends only SQL to the server (remove the line, or run the script with psql)",
                self.line_of(i)
            ),
            position: self.char_position(i),
        })
    }

    fn line_of(&self, at: usize) -> usize {
        1 + self.bytes[..at].iter().filter(|&&b| b == b'\n').count()
    }

    fn char_position(&self, at: usize) -> u32 {
        (self.sql[..at].chars().count() + 1) as u32
    }
}

/// What a `SET`/`RESET` statement does to `standard_conforming_strings`,
/// if it names it (`RESET ALL` puts back the default, on).
fn sets_standard_strings(command: &str, text: &str) -> Option<bool> {
    if command != "SET" && command != "RESET" {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '=' || c == '\'')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["reset", "all"] | ["reset", "standard_conforming_strings"] => Some(true),
        ["set", rest @ ..] => {
            let rest = match rest {
                ["session" | "local", rest @ ..] => rest,
                rest => rest,
            };
            match rest {
                ["standard_conforming_strings", "to", value]
                | ["standard_conforming_strings", value] => match *value {
                    "off" | "false" | "0" | "no" => Some(false),
                    "on" | "true" | "1" | "yes" | "default" => Some(true),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// The statement being scanned.
#[derive(Default)]
struct Current {
    /// Byte offset of the first token or block comment.
    start: Option<usize>,
    /// Whether it holds anything but comments.
    has_token: bool,
    command: String,
    placeholders: Vec<(usize, usize, usize)>,
    writes: bool,
    previous_word: Option<&'static str>,
    from_stdin: bool,
    to_stdout: bool,
}

impl Current {
    fn comment(&mut self, at: usize) {
        self.start.get_or_insert(at);
    }

    fn token(&mut self, at: usize) {
        self.start.get_or_insert(at);
        self.has_token = true;
    }

    fn word(&mut self, word: &str) {
        if self.command.is_empty() {
            self.command = word.to_ascii_uppercase();
        }
        let keyword = [
            "INTO", "INSERT", "UPDATE", "DELETE", "MERGE", "FROM", "TO", "STDIN", "STDOUT",
        ]
        .into_iter()
        .find(|k| word.eq_ignore_ascii_case(k));
        match (self.previous_word, keyword) {
            (_, Some("INTO" | "INSERT" | "UPDATE" | "DELETE" | "MERGE")) => self.writes = true,
            (Some("FROM"), Some("STDIN")) => self.from_stdin = true,
            (Some("TO"), Some("STDOUT")) => self.to_stdout = true,
            _ => {}
        }
        self.previous_word = keyword;
    }
}

#[cfg(test)]
mod tests;
mod tokens;

//! The SQL format: multi-row `INSERT`s in the source engine's dialect, with
//! an optional `CREATE TABLE` first. Identifiers are always quoted, literals
//! always escaped for the engine; binary values are hex literals.
//!
//! The file names the table without its schema (or database), so it loads
//! into whatever database the reader runs it in.

use std::fs::File;

use dbbridge_protocol::connection::EngineKind;
use dbbridge_protocol::metadata::TableDescription;
use dbbridge_protocol::query::{ColumnInfo, ValueKind};
use serde_json::value::RawValue;

use super::cell::{self, Cell};
use super::options::ExportOptions;
use super::text::Counted;
use super::{FormatWriter, WriteResult};

/// An identifier quoted for `engine`: `"a""b"` or `` `a``b` ``.
pub fn quote_ident(engine: EngineKind, name: &str) -> String {
    let q = if engine == EngineKind::Mysql {
        '`'
    } else {
        '"'
    };
    let mut out = String::with_capacity(name.len() + 2);
    out.push(q);
    for c in name.chars() {
        if c == q {
            out.push(q);
        }
        out.push(c);
    }
    out.push(q);
    out
}

/// A string literal for `engine`. Postgres and SQLite double the quote
/// (the file sets `standard_conforming_strings`); MySQL also escapes the
/// backslash and the characters its parser treats specially (the file
/// clears `NO_BACKSLASH_ESCAPES` for itself).
pub fn push_literal(out: &mut String, engine: EngineKind, text: &str) {
    out.push('\'');
    if engine == EngineKind::Mysql {
        for c in text.chars() {
            match c {
                '\'' => out.push_str("\\'"),
                '\\' => out.push_str("\\\\"),
                '\0' => out.push_str("\\0"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\u{1a}' => out.push_str("\\Z"),
                c => out.push(c),
            }
        }
    } else {
        for c in text.chars() {
            if c == '\'' {
                out.push('\'');
            }
            out.push(c);
        }
    }
    out.push('\'');
}

/// The `CREATE TABLE` of a described table: columns with their types and
/// `NOT NULL`, and the primary key. Defaults are left out: they may name
/// sequences or functions the target database does not have.
pub fn create_table(engine: EngineKind, table: &str, description: &TableDescription) -> String {
    let mut out = format!("CREATE TABLE {} (\n", quote_ident(engine, table));
    let mut parts: Vec<String> = description
        .columns
        .iter()
        .map(|c| {
            let mut part = format!("  {}", quote_ident(engine, &c.name));
            if !c.db_type.is_empty() {
                part.push(' ');
                part.push_str(&c.db_type);
            }
            if !c.nullable {
                part.push_str(" NOT NULL");
            }
            part
        })
        .collect();
    if let Some(pk) = &description.primary_key
        && !pk.columns.is_empty()
    {
        let cols: Vec<String> = pk.columns.iter().map(|c| quote_ident(engine, c)).collect();
        parts.push(format!("  PRIMARY KEY ({})", cols.join(", ")));
    }
    out.push_str(&parts.join(",\n"));
    out.push_str("\n)");
    out.push_str(table_suffix(engine));
    out.push_str(";\n");
    out
}

/// After a MySQL `CREATE TABLE`: text columns in utf8mb4, which holds every
/// character whatever the target database's default is.
fn table_suffix(engine: EngineKind) -> &'static str {
    if engine == EngineKind::Mysql {
        " DEFAULT CHARSET=utf8mb4"
    } else {
        ""
    }
}

/// The `CREATE TABLE` of a query's result, from its columns' types
/// (`text` where the engine names none).
fn create_from_columns(engine: EngineKind, table: &str, columns: &[ColumnInfo]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let ty = if c.db_type.is_empty() {
                "text"
            } else {
                &c.db_type
            };
            format!("  {} {ty}", quote_ident(engine, &c.name))
        })
        .collect();
    format!(
        "CREATE TABLE {} (\n{}\n){};\n",
        quote_ident(engine, table),
        parts.join(",\n"),
        table_suffix(engine)
    )
}

pub struct Sql {
    out: Counted,
    engine: EngineKind,
    table: String,
    batch_rows: usize,
    create: Option<Option<TableDescription>>,
    columns: Vec<ColumnInfo>,
    /// `INSERT INTO "t" ("a", "b") VALUES`
    insert: String,
    in_batch: usize,
    text: String,
    scratch: String,
}

impl Sql {
    /// `create`: `None` for no `CREATE TABLE`; `Some(description)` to write
    /// one, from the table's metadata when there is a description, else
    /// from the result's columns.
    pub fn new(
        file: File,
        options: &ExportOptions,
        engine: EngineKind,
        table: String,
        create: Option<Option<TableDescription>>,
    ) -> Sql {
        Sql {
            out: Counted::new(file),
            engine,
            table,
            batch_rows: options.batch_rows,
            create,
            columns: Vec::new(),
            insert: String::new(),
            in_batch: 0,
            text: String::new(),
            scratch: String::new(),
        }
    }

    fn value(&mut self, index: usize, raw: &RawValue) {
        let engine = self.engine;
        let column = &self.columns[index];
        let out = &mut self.text;
        match cell::cell(raw) {
            Cell::Null => out.push_str("NULL"),
            Cell::Bool(b) => out.push_str(match (engine, b) {
                (EngineKind::Sqlite, true) => "1",
                (EngineKind::Sqlite, false) => "0",
                (_, true) => "TRUE",
                (_, false) => "FALSE",
            }),
            Cell::Number(n) => out.push_str(n),
            Cell::Text(t) => match column.kind {
                ValueKind::Bigint | ValueKind::Decimal if cell::is_plain_number(&t) => {
                    out.push_str(&t)
                }
                ValueKind::Float if engine == EngineKind::Sqlite => out.push_str(match &*t {
                    "Infinity" => "9e999",
                    "-Infinity" => "-9e999",
                    _ => "NULL",
                }),
                ValueKind::Bytes => match cell::decode_bytes(&t) {
                    Some(bytes) if engine == EngineKind::Postgres => {
                        out.push_str("'\\x");
                        cell::push_hex(out, &bytes);
                        out.push('\'');
                    }
                    Some(bytes) => {
                        out.push_str("X'");
                        cell::push_hex(out, &bytes);
                        out.push('\'');
                    }
                    None => push_literal(out, engine, &t),
                },
                _ => push_literal(out, engine, &t),
            },
            Cell::Array(json) => {
                self.scratch.clear();
                if engine == EngineKind::Postgres {
                    cell::push_pg_array(
                        &mut self.scratch,
                        json,
                        cell::is_bytea_array(&column.db_type),
                    );
                } else {
                    self.scratch.push_str(json);
                }
                push_literal(out, engine, &self.scratch);
            }
        }
    }
}

impl FormatWriter for Sql {
    fn begin(&mut self, columns: &[ColumnInfo]) -> WriteResult {
        self.columns = columns.to_vec();
        let mut head = String::from("-- Exported by dbbridge\n");
        match self.engine {
            EngineKind::Postgres => {
                head.push_str("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n")
            }
            EngineKind::Mysql => head.push_str(
                "SET NAMES utf8mb4;\nSET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');\n",
            ),
            EngineKind::Sqlite => {}
        }
        match self.create.take() {
            Some(Some(description)) => {
                head.push_str(&create_table(self.engine, &self.table, &description))
            }
            Some(None) => head.push_str(&create_from_columns(self.engine, &self.table, columns)),
            None => {}
        }
        head.push_str("BEGIN;\n");
        self.out.write(head.as_bytes())?;
        let names: Vec<String> = columns
            .iter()
            .map(|c| quote_ident(self.engine, &c.name))
            .collect();
        self.insert = format!(
            "INSERT INTO {} ({}) VALUES\n",
            quote_ident(self.engine, &self.table),
            names.join(", ")
        );
        Ok(())
    }

    fn rows(&mut self, rows: &[Vec<&RawValue>]) -> WriteResult {
        for row in rows {
            self.text.clear();
            if self.in_batch == 0 {
                self.text.push_str(&self.insert);
            } else {
                self.text.push_str(",\n");
            }
            self.text.push('(');
            for (i, raw) in row.iter().enumerate() {
                if i > 0 {
                    self.text.push_str(", ");
                }
                self.value(i, raw);
            }
            self.text.push(')');
            self.in_batch += 1;
            if self.in_batch == self.batch_rows {
                self.text.push_str(";\n");
                self.in_batch = 0;
            }
            self.out.write(self.text.as_bytes())?;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.out.written
    }

    fn finish(mut self: Box<Self>) -> WriteResult {
        if self.in_batch > 0 {
            self.out.write(b";\n")?;
        }
        self.out.write(b"COMMIT;\n")?;
        Ok(self.out.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(EngineKind::Postgres, "a\"b;c"), "\"a\"\"b;c\"");
        assert_eq!(quote_ident(EngineKind::Mysql, "a`b"), "`a``b`");
        let mut s = String::new();
        push_literal(&mut s, EngineKind::Mysql, "it's a \\ \0\n");
        assert_eq!(s, "'it\\'s a \\\\ \\0\\n'");
        s.clear();
        push_literal(&mut s, EngineKind::Postgres, "it's \\");
        assert_eq!(s, "'it''s \\'");
    }
}

//! Running a script on the worker thread: statement by statement (rusqlite's
//! `Batch` does the splitting, so SQLite's own tokenizer decides where a
//! statement ends), each producing one result set streamed in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dbbridge_protocol::query::{ColumnInfo, ResultSummary, ValueKind};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Batch, Statement};
use tokio::sync::mpsc;

use super::map_error;
use super::types::{kind_of_decl, kind_of_value};
use crate::value::RowWriter;
use crate::{BatchBuilder, DbError, QueryOptions, StreamItem};

type Out = mpsc::Sender<Result<StreamItem, DbError>>;

/// Why a statement stopped early.
enum Stop {
    Failed(DbError),
    /// The consumer dropped the stream; nobody is listening.
    ConsumerGone,
}

pub(super) fn run_script(
    conn: &rusqlite::Connection,
    sql: &str,
    options: &QueryOptions,
    out: &Out,
    cancel: &Arc<AtomicBool>,
) {
    let mut statements = Batch::new(conn, sql);
    let mut result_index = 0u32;
    loop {
        if cancel.load(Ordering::SeqCst) {
            let _ = out.blocking_send(Err(DbError::cancelled()));
            return;
        }
        let statement = match statements.next() {
            Ok(Some(statement)) => statement,
            Ok(None) => return,
            Err(error) => {
                let _ = out.blocking_send(Err(cancelled_or(map_error(error, Some(sql)), cancel)));
                return;
            }
        };
        match run_statement(conn, statement, sql, result_index, options, out, cancel) {
            Ok(()) => result_index += 1,
            Err(Stop::Failed(error)) => {
                let _ = out.blocking_send(Err(cancelled_or(error, cancel)));
                return;
            }
            Err(Stop::ConsumerGone) => return,
        }
    }
}

/// An interrupted statement reports whatever error SQLite chose; if a cancel
/// was asked for, it is a cancellation.
fn cancelled_or(error: DbError, cancel: &AtomicBool) -> DbError {
    if cancel.load(Ordering::SeqCst) {
        DbError::cancelled()
    } else {
        error
    }
}

fn send(out: &Out, item: StreamItem) -> Result<(), Stop> {
    out.blocking_send(Ok(item)).map_err(|_| Stop::ConsumerGone)
}

/// Sends the items of one result set.
struct ResultSender<'a> {
    out: &'a Out,
    result_index: u32,
}

impl ResultSender<'_> {
    fn columns(&self, columns: Vec<ColumnInfo>) -> Result<(), Stop> {
        send(
            self.out,
            StreamItem::Columns {
                result_index: self.result_index,
                columns,
            },
        )
    }

    fn rows(&self, builder: &mut BatchBuilder) -> Result<(), Stop> {
        send(
            self.out,
            StreamItem::Rows {
                result_index: self.result_index,
                batch: builder.take(),
            },
        )
    }

    fn done(&self, summary: ResultSummary) -> Result<(), Stop> {
        send(self.out, StreamItem::Done(summary))
    }
}

fn run_statement(
    conn: &rusqlite::Connection,
    mut stmt: Statement<'_>,
    script: &str,
    result_index: u32,
    options: &QueryOptions,
    out: &Out,
    cancel: &AtomicBool,
) -> Result<(), Stop> {
    bind_params(&mut stmt, &options.params).map_err(Stop::Failed)?;
    let sender = ResultSender { out, result_index };
    let column_count = stmt.column_count();
    let command = command_word(&stmt, column_count > 0);

    if column_count == 0 {
        stmt.raw_execute()
            .map_err(|e| Stop::Failed(map_error(e, Some(script))))?;
        let modifies = matches!(command.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE");
        let last_insert_id = matches!(command.as_str(), "INSERT" | "REPLACE")
            .then(|| conn.last_insert_rowid().to_string());
        sender.columns(Vec::new())?;
        return sender.done(ResultSummary {
            result_index,
            command,
            row_count: 0,
            affected_rows: Some(if modifies { conn.changes() } else { 0 }),
            truncated: false,
            last_insert_id,
        });
    }

    let declared: Vec<(String, Option<String>)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
        .collect();
    let mut kinds: Vec<Option<ValueKind>> = declared
        .iter()
        .map(|(_, decl)| kind_of_decl(decl.as_deref()))
        .collect();
    let columns_of = |kinds: &[Option<ValueKind>]| -> Vec<ColumnInfo> {
        declared
            .iter()
            .zip(kinds)
            .map(|((name, decl), kind)| ColumnInfo {
                name: name.clone(),
                db_type: decl.clone().unwrap_or_default(),
                kind: kind.unwrap_or(ValueKind::Other),
            })
            .collect()
    };

    let mut builder = BatchBuilder::new(options.batch_size);
    let mut row_count = 0u64;
    let mut truncated = false;
    let mut columns_sent = false;
    let mut rows = stmt.raw_query();
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Stop::Failed(DbError::cancelled()));
        }
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(error) => return Err(Stop::Failed(map_error(error, Some(script)))),
        };
        if options.max_rows.is_some_and(|max| row_count >= max) {
            truncated = true;
            break;
        }
        if !columns_sent {
            // Expression columns have no declared type: the first value decides.
            for (i, kind) in kinds.iter_mut().enumerate() {
                if kind.is_none() {
                    *kind = Some(kind_of_value(row.get_ref_unwrap(i)));
                }
            }
            sender.columns(columns_of(&kinds))?;
            columns_sent = true;
        }
        builder.row(|w| {
            for (i, kind) in kinds.iter().enumerate() {
                encode(w, row.get_ref_unwrap(i), kind.unwrap_or(ValueKind::Other));
            }
        });
        row_count += 1;
        if builder.is_due() {
            sender.rows(&mut builder)?;
        }
    }
    drop(rows);
    // A result set with no rows still announces its columns; the last partial batch goes out.
    if !columns_sent {
        sender.columns(columns_of(&kinds))?;
    }
    if !builder.is_empty() {
        sender.rows(&mut builder)?;
    }
    sender.done(ResultSummary {
        result_index,
        command,
        row_count,
        affected_rows: None,
        truncated,
        last_insert_id: None,
    })
}

/// One cell, by its storage class. Integers are `bigint` strings (SQLite
/// integers are 64-bit), except 0/1 in a boolean column; reals in a decimal
/// column travel as exact strings of the stored double.
fn encode(w: &mut RowWriter<'_>, value: ValueRef<'_>, kind: ValueKind) {
    match value {
        ValueRef::Null => w.null(),
        ValueRef::Integer(i) if kind == ValueKind::Bool && (i == 0 || i == 1) => w.bool(i == 1),
        ValueRef::Integer(i) => w.bigint(i),
        ValueRef::Real(f) if kind == ValueKind::Decimal && f.is_finite() => {
            w.str(ryu::Buffer::new().format_finite(f))
        }
        ValueRef::Real(f) => w.float(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => w.str(s),
            // SQLite does not enforce UTF-8; show what can be shown.
            Err(_) => w.str(&String::from_utf8_lossy(t)),
        },
        ValueRef::Blob(b) => w.bytes(b),
    }
}

fn bind_params(stmt: &mut Statement<'_>, params: &[serde_json::Value]) -> Result<(), DbError> {
    let wanted = stmt.parameter_count();
    if wanted == 0 {
        return Ok(());
    }
    if params.len() < wanted {
        return Err(DbError::invalid_input(format!(
            "the statement has {wanted} parameter(s) but {} were given",
            params.len()
        )));
    }
    for (i, param) in params.iter().take(wanted).enumerate() {
        let value = match param {
            serde_json::Value::Null => SqlValue::Null,
            serde_json::Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => SqlValue::Integer(i),
                (None, Some(f)) => SqlValue::Real(f),
                (None, None) => SqlValue::Text(n.to_string()),
            },
            serde_json::Value::String(s) => SqlValue::Text(s.clone()),
            other => SqlValue::Text(other.to_string()),
        };
        stmt.raw_bind_parameter(i + 1, value)
            .map_err(|e| map_error(e, None))?;
    }
    Ok(())
}

/// The statement's command word (`SELECT`, `INSERT`, `CREATE`, ...).
fn command_word(stmt: &Statement<'_>, returns_rows: bool) -> String {
    let sql = stmt.expanded_sql().unwrap_or_default();
    let word = first_keyword(&sql).to_ascii_uppercase();
    match word.as_str() {
        "WITH" | "VALUES" if returns_rows => "SELECT".to_string(),
        "" => "UNKNOWN".to_string(),
        _ => word,
    }
}

/// The first word of `sql` after whitespace and comments.
fn first_keyword(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            break;
        }
    }
    let end = sql
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(sql.len());
    &sql[..end]
}

#[cfg(test)]
mod tests {
    use super::first_keyword;

    #[test]
    fn keywords() {
        assert_eq!(first_keyword("  select 1"), "select");
        assert_eq!(first_keyword("-- c\n/* x */ INSERT INTO"), "INSERT");
        assert_eq!(first_keyword(""), "");
    }
}

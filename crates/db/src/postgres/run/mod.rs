//! Running a script on Postgres, statement by statement.
//!
//! Each statement is first described (`Parse`/`Describe`, which gives the
//! column types) and then run with the simple-query protocol, so every value
//! arrives in its text form: lossless for any type, extensions included.
//!
//! - A plain `SELECT` / `VALUES` / `TABLE` / `WITH ... SELECT` without
//!   `maxRows` is read whole through `COPY (...) TO STDOUT` in text format
//!   ([`super::copy`]): the same text per value, no per-row allocation in the
//!   driver and less work for the server; the read pauses when the consumer
//!   does, so memory stays flat on any result.
//! - With `maxRows` it is read through a server-side cursor (`DECLARE ... NO
//!   SCROLL CURSOR`, `FETCH FORWARD n`), inside the caller's transaction when
//!   one is open, otherwise inside a transaction of its own (as psql's
//!   `FETCH_COUNT` does). Each `FETCH` asks for about 2 MiB of rows, and
//!   `maxRows` simply stops fetching.
//! - A windowed query (`query.run`'s `window`, which may pause between pages
//!   for as long as its user likes) also takes the cursor. In a transaction
//!   of its own it lifts `idle_in_transaction_session_timeout` and
//!   `statement_timeout` for that transaction only (`SET LOCAL`), so a pause
//!   survives a role's timeouts; the pause costs the server an open
//!   transaction: its snapshot holds back VACUUM and its locks hold back DDL
//!   on the tables read. In the caller's own transaction nothing is changed.
//! - Anything else (DDL, DML with or without `RETURNING`, `SHOW`, `EXPLAIN`,
//!   `CALL`) is one protocol read, which pauses when the consumer does (the
//!   socket is not read while the stream's channel is full).
//!
//! Cancellation is the protocol's cancel request, sent over a new connection
//! with the session's own TLS settings; the statement then fails with
//! SQLSTATE 57014 and the script reports `Cancelled`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dbbridge_protocol::query::ColumnInfo;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, Client, SimpleQueryMessage};

use super::cancel::PgCancel;
use super::params::{self, Bound};
use super::split::{self, Statement};
use super::values::Encoder;
use super::{Shared, query_error};
use crate::{
    BatchBuilder, CancelHandle, DbError, EngineCancel, QueryOptions, QueryStream, STREAM_QUEUE,
    SentCancel, StreamItem,
};

mod read;

use read::{Sender, write_row};

type Out = mpsc::Sender<Result<StreamItem, DbError>>;

/// Commands that never return rows: run without describing them first.
const NO_ROWS: &[&str] = &[
    "ABORT",
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "CHECKPOINT",
    "CLOSE",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "CREATE",
    "DEALLOCATE",
    "DECLARE",
    "DISCARD",
    "DO",
    "DROP",
    "END",
    "GRANT",
    "LISTEN",
    "LOCK",
    "NOTIFY",
    "PREPARE",
    "REASSIGN",
    "REFRESH",
    "REINDEX",
    "RELEASE",
    "RESET",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SECURITY",
    "SET",
    "START",
    "TRUNCATE",
    "UNLISTEN",
    "VACUUM",
];

pub(super) fn start(
    shared: Arc<Shared>,
    token: CancelToken,
    sql: String,
    options: QueryOptions,
) -> QueryStream {
    let (out, items) = mpsc::channel(STREAM_QUEUE);
    let requested = Arc::new(AtomicBool::new(false));
    let pg_cancel = Arc::new(PgCancel {
        token,
        tls: shared.tls.clone(),
        addr: shared.cancel_addr.clone(),
        sent: SentCancel::default(),
        asked: tokio::sync::Notify::new(),
    });
    let cancel = CancelHandle {
        requested: requested.clone(),
        engine: EngineCancel::Postgres(pg_cancel.clone()),
    };
    let thread = shared.clone();
    // Counted before the task starts, so no liveness probe slips in ahead.
    shared.running.fetch_add(1, Ordering::SeqCst);
    thread.thread.spawn(async move {
        let runner = Runner {
            shared: &shared,
            out: &out,
            options: &options,
            requested: &requested,
            cancel: &pg_cancel,
        };
        // Once a cancel is asked for, the server has ABORT_GRACE to end the
        // statement. One that has not (the network stalled, a proxy stopped
        // forwarding: the cancel itself may never arrive) gives the
        // connection up, so the query ends `cancelled` and the session is
        // reported lost, instead of a read waiting on a silent peer for ever.
        let give_up = async {
            pg_cancel.asked.notified().await;
            tokio::time::sleep(crate::ABORT_GRACE).await;
        };
        tokio::select! {
            () = runner.script(&sql) => {}
            () = give_up => {
                tracing::warn!(
                    "the server did not end a cancelled statement within {:?}: giving the connection up",
                    crate::ABORT_GRACE
                );
                shared.sever.notify_one();
                let _ = out.send(Err(DbError::cancelled())).await;
            }
        }
        pg_cancel.settle().await;
        // Refreshed before the stream ends, so `session.list` after `query.done`
        // is current (once more if a cancel landed on the first try).
        for _ in 0..2 {
            if let Ok(open) = in_transaction_now(&shared.client).await {
                shared
                    .in_transaction
                    .store(u8::from(open), Ordering::SeqCst);
                break;
            }
        }
        shared.running.fetch_sub(1, Ordering::SeqCst);
        drop(out);
    });
    QueryStream { items, cancel }
}

/// Whether a transaction block is open. `now()` is the transaction's start and
/// `statement_timestamp()` this statement's: they differ only inside a block
/// opened by an earlier statement. An aborted block refuses the query (25P02).
async fn in_transaction_now(client: &Client) -> Result<bool, DbError> {
    match client
        .simple_query("SELECT now() <> statement_timestamp()")
        .await
    {
        Ok(messages) => Ok(messages.iter().any(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
            _ => false,
        })),
        Err(error) if error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => Ok(true),
        Err(error) => Err(query_error(error)),
    }
}

/// Why a statement stopped early.
enum Stop {
    Failed(DbError),
    /// The consumer dropped the stream; nobody is listening.
    ConsumerGone,
}

impl From<DbError> for Stop {
    fn from(error: DbError) -> Self {
        Stop::Failed(error)
    }
}

fn failed(error: tokio_postgres::Error) -> Stop {
    Stop::Failed(query_error(error))
}

/// The error of `prefix` + the user's statement, its position moved back
/// into the statement.
fn failed_after(prefix: &str, error: tokio_postgres::Error) -> Stop {
    let mut error = query_error(error);
    let prefix = prefix.chars().count() as u32;
    error.position = error.position.and_then(|p| p.checked_sub(prefix));
    Stop::Failed(error)
}

/// A described column: name, type, type modifier.
struct PgColumn {
    name: String,
    ty: Type,
    typmod: i32,
}

struct Runner<'a> {
    shared: &'a Shared,
    out: &'a Out,
    options: &'a QueryOptions,
    requested: &'a AtomicBool,
    cancel: &'a PgCancel,
}

impl Runner<'_> {
    fn client(&self) -> &Client {
        &self.shared.client
    }

    async fn script(&self, sql: &str) {
        let statements = match split::split(sql) {
            Ok(statements) => statements,
            Err(error) => {
                let mut error_out = DbError::invalid_input(error.message);
                error_out.position = Some(error.position);
                let _ = self.out.send(Err(error_out)).await;
                return;
            }
        };
        let mut result_index = 0u32;
        for stmt in statements {
            if self.requested.load(Ordering::SeqCst) {
                let _ = self.out.send(Err(DbError::cancelled())).await;
                return;
            }
            if stmt.copy_to_stdout && stmt.command == "COPY" {
                let mut error = DbError::invalid_input(
                    "COPY ... TO STDOUT is not run by query.run: select the rows instead (SELECT streams them), or use an export",
                );
                error.position = Some(stmt.char_offset as u32 + 1);
                let _ = self.out.send(Err(error)).await;
                return;
            }
            let bound = match params::bind(sql, &stmt, &self.options.params) {
                Ok(bound) => bound,
                Err(message) => {
                    let _ = self.out.send(Err(DbError::invalid_input(message))).await;
                    return;
                }
            };
            let ran = match &stmt.copy_data {
                Some(data) => {
                    self.copy_in(&stmt, &bound.sql, &sql[data.clone()], result_index)
                        .await
                }
                None => self.statement(&stmt, &bound, result_index).await,
            };
            match ran {
                Ok(()) => result_index += 1,
                Err(Stop::Failed(mut error)) => {
                    if self.requested.load(Ordering::SeqCst) {
                        error = DbError::cancelled();
                    } else if let Some(position) = error.position {
                        error.position = Some(bound.script_position(position));
                    }
                    let _ = self.out.send(Err(error)).await;
                    return;
                }
                Err(Stop::ConsumerGone) => return,
            }
        }
    }

    /// A `COPY ... FROM stdin` fed the data that followed it in the script,
    /// through the copy-in sub-protocol, as psql feeds it.
    async fn copy_in(
        &self,
        stmt: &Statement,
        sql: &str,
        data: &str,
        index: u32,
    ) -> Result<(), Stop> {
        use futures::SinkExt;
        /// Data goes to the server in pieces of this size.
        const PIECE: usize = 256 * 1024;
        let sender = Sender {
            out: self.out,
            index,
            command: command_of(stmt),
        };
        let sink = self
            .client()
            .copy_in::<_, bytes::Bytes>(sql)
            .await
            .map_err(failed)?;
        futures::pin_mut!(sink);
        for piece in data.as_bytes().chunks(PIECE) {
            if self.requested.load(Ordering::SeqCst) {
                // Dropping the sink unfinished aborts the COPY.
                return Err(Stop::Failed(DbError::cancelled()));
            }
            sink.send(bytes::Bytes::copy_from_slice(piece))
                .await
                .map_err(failed)?;
        }
        let copied = sink.as_mut().finish().await.map_err(failed)?;
        sender.columns(&[]).await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        sender.finish(&mut builder, 0, Some(copied), false).await
    }

    async fn statement(&self, stmt: &Statement, bound: &Bound, index: u32) -> Result<(), Stop> {
        let sender = Sender {
            out: self.out,
            index,
            command: command_of(stmt),
        };
        if NO_ROWS.contains(&stmt.command.as_str()) {
            return self.simple(&bound.sql, None, &sender).await;
        }
        let described = self.client().prepare(&bound.sql).await.map_err(failed)?;
        let columns: Vec<PgColumn> = described
            .columns()
            .iter()
            .map(|c| PgColumn {
                name: c.name().to_string(),
                ty: c.type_().clone(),
                typmod: c.type_modifier(),
            })
            .collect();
        drop(described);
        if columns.is_empty() {
            self.simple(&bound.sql, None, &sender).await
        } else if stmt.cursor_safe() && self.options.max_rows.is_none() && !self.options.windowed {
            self.copy(&bound.sql, columns, &sender).await
        } else if stmt.cursor_safe() {
            self.cursor(&bound.sql, columns, &sender).await
        } else {
            self.simple(&bound.sql, Some(columns), &sender).await
        }
    }

    /// One simple-query read of the statement.
    async fn simple(
        &self,
        sql: &str,
        described: Option<Vec<PgColumn>>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        let stream = self.client().simple_query_raw(sql).await.map_err(failed)?;
        futures::pin_mut!(stream);
        let mut columns = match described {
            Some(columns) => Some(self.column_infos(&columns).await),
            None => None,
        };
        let mut columns_sent = false;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut truncated = false;
        let mut affected = 0u64;
        while let Some(message) = stream.next().await {
            match message.map_err(failed)? {
                // Not described (a command thought to return no rows): text columns.
                SimpleQueryMessage::RowDescription(fields) if columns.is_none() => {
                    columns = Some(
                        fields
                            .iter()
                            .map(|f| {
                                let info = ColumnInfo {
                                    name: f.name().to_string(),
                                    db_type: String::new(),
                                    kind: dbbridge_protocol::query::ValueKind::Other,
                                };
                                (info, Encoder::Text)
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::Row(row) => {
                    let Some(columns) = &columns else { continue };
                    if !columns_sent {
                        sender.columns(columns).await?;
                        columns_sent = true;
                    }
                    if truncated {
                        // Past maxRows on a read that cannot stop early: let it drain.
                        continue;
                    }
                    if self.options.max_rows.is_some_and(|max| row_count >= max) {
                        truncated = true;
                        continue;
                    }
                    write_row(&mut builder, columns, &row);
                    row_count += 1;
                    if builder.is_due() {
                        sender.rows(&mut builder).await?;
                    }
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        if !columns_sent {
            sender.columns(columns.as_deref().unwrap_or(&[])).await?;
        }
        let returns_rows = columns.is_some();
        let modifies = matches!(
            sender.command.as_str(),
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY"
        );
        let affected = (modifies || !returns_rows).then_some(affected);
        sender
            .finish(&mut builder, row_count, affected, truncated)
            .await
    }
}

/// The command word reported for a statement.
fn command_of(stmt: &Statement) -> String {
    match stmt.command.as_str() {
        "WITH" | "VALUES" | "TABLE" if !stmt.writes => "SELECT".to_string(),
        "" => "UNKNOWN".to_string(),
        other => other.to_string(),
    }
}

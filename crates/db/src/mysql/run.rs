//! Running a script on MySQL/MariaDB, statement by statement, each read row by
//! row. A query (`SELECT`, `WITH`, `VALUES`, `TABLE`) is prepared and read in
//! the binary protocol: the server sends numbers and temporal values as they
//! are instead of formatting them as text, which is close to half of its work
//! on a large result, and FLOAT keeps its stored digits. Every other statement,
//! and a query the server will not prepare, runs in the text protocol.
//! `maxRows` and cancellation both stop the server
//! with `KILL QUERY` from a second connection (the session's connection and
//! its transaction survive); a cancel is confirmed before anything else runs,
//! so it cannot hit a later statement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbbridge_protocol::query::{ColumnInfo, ResultSummary};
use mysql_common::packets::Column;
use tokio::sync::mpsc;

use super::split;
use super::values::{self, Cell};
use super::wire::{self, Conn, Head, Prepared};
use super::{Shared, lost};
use crate::{
    BatchBuilder, CancelHandle, DbError, DbErrorKind, EngineCancel, QueryOptions, QueryStream,
    STREAM_QUEUE, SentCancel, StreamItem,
};

type Out = mpsc::Sender<Result<StreamItem, DbError>>;

/// `ER_QUERY_INTERRUPTED`: what a statement stopped by `KILL QUERY` ends with.
const INTERRUPTED: u16 = 1317;

/// Sends `KILL QUERY <id>` for the session's connection from a connection of its own.
pub struct MyCancel {
    shared: Arc<Shared>,
    sent: SentCancel,
}

impl MyCancel {
    pub(crate) fn request(&self) {
        let (opts, id) = (self.shared.opts.clone(), self.shared.connection_id);
        self.sent.send(async move {
            let killed = async {
                let mut conn = Conn::connect(&opts).await?;
                conn.query_drop(&format!("KILL QUERY {id}")).await?;
                conn.quit().await;
                Ok::<(), wire::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(10), killed).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "KILL QUERY failed"),
                Err(_) => tracing::warn!("KILL QUERY did not finish within 10 s"),
            }
        });
    }

    /// Waits until a sent `KILL QUERY` has run on the server.
    async fn settle(&self) {
        self.sent.settle(Duration::from_secs(10)).await;
    }
}

pub(super) fn start(shared: Arc<Shared>, sql: String, options: QueryOptions) -> QueryStream {
    let (out, items) = mpsc::channel(STREAM_QUEUE);
    let requested = Arc::new(AtomicBool::new(false));
    let my_cancel = Arc::new(MyCancel {
        shared: shared.clone(),
        sent: SentCancel::default(),
    });
    let cancel = CancelHandle {
        requested: requested.clone(),
        engine: EngineCancel::Mysql(my_cancel.clone()),
    };
    tokio::spawn(async move {
        let mut guard = shared.conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            let _ = out.send(Err(lost())).await;
            return;
        };
        let mut runner = Runner {
            shared: &shared,
            out: &out,
            options: &options,
            requested: &requested,
            cancel: &my_cancel,
        };
        let ended = runner.script(conn, &sql).await;
        my_cancel.settle().await;
        // After an error the last status flags are from before it: a ping's
        // OK packet brings them up to date.
        let broken = match ended {
            Ended::Broken => true,
            Ended::Failed => conn.ping().await.is_err(),
            Ended::Clean | Ended::ConsumerGone => false,
        };
        if broken {
            // The connection is gone; the session learns it through `closed()`.
            guard.take();
            let _ = shared.lost.send(true);
        } else if ended != Ended::ConsumerGone {
            shared
                .in_transaction
                .store(u8::from(conn.in_transaction()), Ordering::SeqCst);
        }
        drop(guard);
        drop(out);
    });
    QueryStream { items, cancel }
}

enum Stop {
    Failed(DbError),
    ConsumerGone,
}

/// How a script ended, for what the connection needs after it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ended {
    Clean,
    /// A statement failed (or was cancelled): the status flags are stale.
    Failed,
    Broken,
    ConsumerGone,
}

struct Runner<'a> {
    shared: &'a Shared,
    out: &'a Out,
    options: &'a QueryOptions,
    requested: &'a AtomicBool,
    cancel: &'a MyCancel,
}

impl Runner<'_> {
    async fn script(&mut self, conn: &mut Conn, sql: &str) -> Ended {
        let mut result_index = 0u32;
        for stmt in split::split(sql) {
            if self.requested.load(Ordering::SeqCst) {
                let _ = self.out.send(Err(DbError::cancelled())).await;
                return Ended::Failed;
            }
            let bound = match split::bind(sql, &stmt, &self.options.params) {
                Ok(bound) => bound,
                Err(message) => {
                    let _ = self.out.send(Err(DbError::invalid_input(message))).await;
                    return Ended::Failed;
                }
            };
            let command = match stmt.command.as_str() {
                "" => "UNKNOWN".to_string(),
                "WITH" | "VALUES" | "TABLE" => "SELECT".to_string(),
                other => other.to_string(),
            };
            match self
                .statement(conn, &bound, &command, &mut result_index)
                .await
            {
                Ok(()) => {}
                Err(Stop::Failed(error)) => {
                    let broken = error.kind == DbErrorKind::Connection;
                    let error = if self.requested.load(Ordering::SeqCst) && !broken {
                        DbError::cancelled()
                    } else {
                        error
                    };
                    let _ = self.out.send(Err(error)).await;
                    return if broken { Ended::Broken } else { Ended::Failed };
                }
                Err(Stop::ConsumerGone) => return Ended::ConsumerGone,
            }
        }
        Ended::Clean
    }

    async fn send(&self, item: StreamItem) -> Result<(), Stop> {
        self.out
            .send(Ok(item))
            .await
            .map_err(|_| Stop::ConsumerGone)
    }

    fn fail(&self, error: wire::Error) -> Stop {
        Stop::Failed(self.shared.fail(error))
    }

    async fn statement(
        &mut self,
        conn: &mut Conn,
        sql: &str,
        command: &str,
        result_index: &mut u32,
    ) -> Result<(), Stop> {
        if command == "SELECT"
            && let Some(stmt) = self.prepare(conn, sql).await?
        {
            let read = match conn.execute(&stmt, &[]).await {
                Ok(head) => self.read(conn, head, true, command, result_index).await,
                Err(e) => Err(self.fail(e)),
            };
            let broken = matches!(&read, Err(Stop::Failed(e)) if e.kind == DbErrorKind::Connection);
            if !broken && !matches!(read, Err(Stop::ConsumerGone)) {
                // Reads off what a stopped read left, then frees the statement.
                if let Err(e) = conn.close(stmt).await {
                    return Err(self.fail(e));
                }
            }
            return read;
        }
        let head = conn.query(sql).await.map_err(|e| self.fail(e))?;
        self.read(conn, head, false, command, result_index).await
    }

    /// Prepares a query for the binary protocol. `None` sends it as text
    /// instead: when it holds `?` placeholders (a query without parameters
    /// must not be given them), and when it fails to prepare (the server
    /// cannot prepare it, `ER_UNSUPPORTED_PS`, or it is wrong), so that its
    /// error is the one the text gives (a one-round-trip cost on errors only).
    async fn prepare(&self, conn: &mut Conn, sql: &str) -> Result<Option<Prepared>, Stop> {
        let prepared = match conn.prepare(sql).await {
            Ok(stmt) if stmt.num_params() == 0 => Some(stmt),
            Ok(stmt) => {
                conn.close(stmt).await.map_err(|e| self.fail(e))?;
                None
            }
            Err(wire::Error::Server(_)) => None,
            Err(e) => return Err(self.fail(e)),
        };
        if self.requested.load(Ordering::SeqCst) {
            // Cancelled while preparing: nothing of the statement runs.
            if let Some(stmt) = prepared {
                let _ = conn.close(stmt).await;
            }
            return Err(Stop::Failed(DbError::cancelled()));
        }
        Ok(prepared)
    }

    /// Reads every result of a statement, in either protocol, starting from
    /// the first one's head.
    async fn read(
        &mut self,
        conn: &mut Conn,
        mut head: Head,
        binary: bool,
        command: &str,
        result_index: &mut u32,
    ) -> Result<(), Stop> {
        loop {
            let index = *result_index;
            *result_index += 1;
            match head {
                Head::Ok(ok) => {
                    // No rows: the OK packet's counts belong to this result.
                    self.send(StreamItem::Columns {
                        result_index: index,
                        columns: Vec::new(),
                    })
                    .await?;
                    self.send(StreamItem::Done(ResultSummary {
                        result_index: index,
                        command: command.to_string(),
                        row_count: 0,
                        affected_rows: Some(ok.affected_rows),
                        truncated: false,
                        last_insert_id: ok
                            .last_insert_id
                            .filter(|id| *id > 0)
                            .map(|id| id.to_string()),
                    }))
                    .await?;
                }
                Head::Columns(columns) if columns.is_empty() => {
                    return Err(self.fail(wire::Error::Protocol("a result with no columns".into())));
                }
                Head::Columns(columns) => {
                    if self.rows(conn, index, &columns, binary, command).await? {
                        // A killed statement ends the whole reply; a kill that
                        // came too late for it leaves the rest to read off.
                        conn.drain().await.map_err(|e| self.fail(e))?;
                        return Ok(());
                    }
                }
            }
            if !conn.more_results() {
                return Ok(());
            }
            head = conn.read_head().await.map_err(|e| self.fail(e))?;
        }
    }

    /// Streams one result set's rows, then its summary; returns whether it
    /// stopped at `maxRows` (the statement was killed).
    async fn rows(
        &mut self,
        conn: &mut Conn,
        index: u32,
        columns: &[Column],
        binary: bool,
        command: &str,
    ) -> Result<bool, Stop> {
        let extended = conn.extended();
        let (infos, cells): (Vec<ColumnInfo>, Vec<Cell>) = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (kind, db_type, encoder) = values::describe_with(c, extended.get(i));
                (
                    ColumnInfo {
                        name: c.name_str().into_owned(),
                        db_type,
                        kind,
                    },
                    Cell::new(c, encoder),
                )
            })
            .unzip();
        self.send(StreamItem::Columns {
            result_index: index,
            columns: infos,
        })
        .await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut truncated = false;
        loop {
            let reads = conn.reads();
            match conn.next_row().await {
                Ok(true) => {}
                Ok(false) => break,
                // Stopped on purpose at maxRows: the kill's error ends the read.
                Err(wire::Error::Server(e)) if truncated && e.code == INTERRUPTED => break,
                Err(e) => return Err(self.fail(e)),
            }
            if truncated {
                continue;
            }
            if self.options.max_rows.is_some_and(|max| row_count >= max) {
                // Stop the server rather than read the rest; the session's
                // transaction is not touched by KILL QUERY.
                truncated = true;
                self.cancel.request();
                continue;
            }
            let row = conn.row();
            let encoded = builder.try_row(|w| {
                if binary {
                    values::encode_binary_row(w, &cells, row)
                } else {
                    values::encode_text_row(w, &cells, row)
                }
                .ok_or(())
            });
            if encoded.is_err() {
                return Err(self.fail(wire::Error::Protocol(
                    "a row packet shorter than its columns".into(),
                )));
            }
            row_count += 1;
            // A row the socket was not read for was already in the buffer.
            if builder.is_due_after(conn.reads() != reads) {
                let batch = builder.take();
                self.send(StreamItem::Rows {
                    result_index: index,
                    batch,
                })
                .await?;
                if self.requested.load(Ordering::SeqCst) {
                    // Cancelled: the kill is on its way; what the server
                    // still sends is read off unencoded.
                    self.cancel.settle().await;
                    return match conn.drain().await {
                        Ok(()) => Err(Stop::Failed(DbError::cancelled())),
                        Err(e) => Err(self.fail(e)),
                    };
                }
            }
        }
        if truncated {
            self.cancel.settle().await;
        }
        if !builder.is_empty() {
            let batch = builder.take();
            self.send(StreamItem::Rows {
                result_index: index,
                batch,
            })
            .await?;
        }
        self.send(StreamItem::Done(ResultSummary {
            result_index: index,
            command: command.to_string(),
            row_count,
            affected_rows: None,
            truncated,
            last_insert_id: None,
        }))
        .await?;
        Ok(truncated)
    }
}

//! Running a script on MySQL/MariaDB, statement by statement, each read row by
//! row. A query (`SELECT`, `WITH`, `VALUES`, `TABLE`) is prepared and read in
//! the binary protocol: the server sends numbers and temporal values as they
//! are instead of formatting them as text, which is close to half of its work
//! on a large result, and FLOAT keeps its stored digits. Every other statement,
//! and a query the server will not prepare, runs in the text protocol.
//! Cancellation, and `maxRows` on a query read in the binary protocol, stop
//! the server with `KILL QUERY` from a second connection (the session's
//! connection and its transaction survive); a cancel is confirmed before
//! anything else runs, so it cannot hit a later statement. `maxRows` on any
//! other statement (a `CALL`, whose later statements must still run) reads
//! the surplus rows off unencoded instead. If the kill fails, or the result
//! has not ended [`ABORT_GRACE`] after the cancel, the connection is closed:
//! the query ends `cancelled` and the session is lost, as go-sql-driver does.

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
use crate::ABORT_GRACE;

/// Sends `KILL QUERY <id>` for the session's connection from a connection of its own.
pub struct MyCancel {
    shared: Arc<Shared>,
    sent: SentCancel,
}

impl MyCancel {
    pub(crate) fn request(&self) {
        let (opts, id) = (self.shared.opts.clone(), self.shared.connection_id);
        let abort = self.shared.abort.clone();
        abort.set(tokio::time::Instant::now() + ABORT_GRACE);
        self.sent.send(async move {
            let killed = async {
                let mut conn = Conn::connect(&opts).await?;
                conn.query_drop(&format!("KILL QUERY {id}")).await?;
                conn.quit().await;
                Ok::<(), wire::Error>(())
            };
            let failed = match tokio::time::timeout(ABORT_GRACE, killed).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {} s", ABORT_GRACE.as_secs()),
            };
            // Nothing will stop the server: the session's connection is
            // given up at its next read.
            tracing::warn!(error = %failed, "KILL QUERY failed; closing the session's connection");
            abort.set(tokio::time::Instant::now());
        });
    }

    /// Waits until a sent `KILL QUERY` has run on the server, or until the
    /// connection's reads would be given up anyway.
    async fn settle(&self) {
        let deadline = self.shared.abort.deadline();
        tokio::select! {
            _ = self.sent.settle(Duration::from_secs(10)) => {}
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
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
    // On the session's own thread (see `MyConnection::open`).
    let on = Arc::clone(&shared);
    on.thread.spawn(async move {
        let mut guard = shared.conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            let _ = out.send(Err(lost())).await;
            return;
        };
        shared.abort.clear();
        let mut runner = Runner {
            shared: &shared,
            out: &out,
            options: &options,
            requested: &requested,
            cancel: &my_cancel,
            killed: false,
        };
        let ended = runner.script(conn, &sql).await;
        let killed = runner.killed;
        my_cancel.settle().await;
        // After an error or a kill the last status flags are from before it:
        // a ping's OK packet brings them up to date.
        let broken = match ended {
            Ended::Broken => true,
            Ended::Failed => conn.ping().await.is_err(),
            Ended::Clean if killed => conn.ping().await.is_err(),
            Ended::Clean | Ended::ConsumerGone => false,
        };
        shared.abort.clear();
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
    /// A `maxRows` stop sent `KILL QUERY`.
    killed: bool,
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
                    // A cancelled query ends `cancelled`, also when the
                    // connection had to be given up for it (the session is
                    // then lost as well).
                    let error = if self.requested.load(Ordering::SeqCst) {
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

    /// A statement that ended while a cancel was on its way counts as
    /// cancelled: MySQL's killed `SLEEP()` returns 1 with no error.
    async fn check_cancelled(&self) -> Result<(), Stop> {
        if self.requested.load(Ordering::SeqCst) {
            self.cancel.settle().await;
            return Err(Stop::Failed(DbError::cancelled()));
        }
        Ok(())
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
                    self.check_cancelled().await?;
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

    /// Streams one result set's rows, then its summary; returns whether the
    /// statement was killed at `maxRows` (only a query read in the binary
    /// protocol is: anything else may have more to do after this result, so
    /// its surplus rows are read off unencoded).
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
        let mut killed = false;
        loop {
            let reads = conn.reads();
            match conn.next_row().await {
                Ok(true) => {}
                Ok(false) => break,
                // Stopped on purpose at maxRows: the kill's error ends the read.
                Err(wire::Error::Server(e)) if killed && e.code == INTERRUPTED => break,
                Err(e) => return Err(self.fail(e)),
            }
            if truncated {
                if self.requested.load(Ordering::SeqCst) {
                    return Err(Stop::Failed(DbError::cancelled()));
                }
                continue;
            }
            if self.options.max_rows.is_some_and(|max| row_count >= max) {
                truncated = true;
                if binary {
                    // A read: stop the server rather than read the rest; the
                    // session's transaction is not touched by KILL QUERY.
                    killed = true;
                    self.killed = true;
                    self.cancel.request();
                }
                continue;
            }
            let row = conn.row();
            let encoded = builder.try_row(|w| {
                if binary {
                    values::encode_binary_row(w, &cells, row)
                } else {
                    values::encode_text_row(w, &cells, row)
                }
            });
            match encoded {
                Ok(()) => {}
                Err(values::RowError::Malformed) => {
                    return Err(self.fail(wire::Error::Protocol(
                        "a row packet that does not match its columns".into(),
                    )));
                }
                Err(values::RowError::Text(column)) => {
                    let name = columns.get(column).map(|c| c.name_str().into_owned());
                    let charset = columns.get(column).map_or(String::new(), |c| {
                        mysql_common::collations::Collation::resolve(c.character_set().into())
                            .charset()
                            .to_string()
                    });
                    return Err(Stop::Failed(DbError::new(
                        DbErrorKind::Query,
                        format!(
                            "a value of column {:?} is not valid {charset} text (it is not replaced: read the column as bytes, e.g. CAST(... AS BINARY), or fix the connection's character set)",
                            name.unwrap_or_default()
                        ),
                    )));
                }
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
        if killed {
            self.cancel.settle().await;
        } else {
            self.check_cancelled().await?;
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
        Ok(killed)
    }
}

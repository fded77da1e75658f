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
use mysql_async::prelude::{Protocol, Queryable};
use mysql_async::{Conn, QueryResult, Statement};
use tokio::sync::mpsc;

use super::split;
use super::values::{self, Encoder};
use super::{Shared, lost};
use crate::{
    BatchBuilder, CancelHandle, DbError, DbErrorKind, EngineCancel, QueryOptions, QueryStream,
    STREAM_QUEUE, SentCancel, StreamItem,
};

type Out = mpsc::Sender<Result<StreamItem, DbError>>;

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
                let mut conn = Conn::new(opts).await?;
                conn.query_drop(format!("KILL QUERY {id}")).await?;
                conn.disconnect().await
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
        let broken = runner.script(conn, &sql).await;
        my_cancel.settle().await;
        if broken {
            // The connection is gone; the session learns it through `closed()`.
            guard.take();
            let _ = shared.lost.send(true);
        } else if shared.mariadb {
            let open: Result<Option<u8>, _> = conn.query_first("SELECT @@in_transaction").await;
            if let Ok(Some(open)) = open {
                shared
                    .in_transaction
                    .store(u8::from(open == 1), Ordering::SeqCst);
            }
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

struct Runner<'a> {
    shared: &'a Shared,
    out: &'a Out,
    options: &'a QueryOptions,
    requested: &'a AtomicBool,
    cancel: &'a MyCancel,
}

impl Runner<'_> {
    /// Runs the script; returns whether the connection broke.
    async fn script(&mut self, conn: &mut Conn, sql: &str) -> bool {
        let mut result_index = 0u32;
        for stmt in split::split(sql) {
            if self.requested.load(Ordering::SeqCst) {
                let _ = self.out.send(Err(DbError::cancelled())).await;
                return false;
            }
            let bound = match split::bind(sql, &stmt, &self.options.params) {
                Ok(bound) => bound,
                Err(message) => {
                    let _ = self.out.send(Err(DbError::invalid_input(message))).await;
                    return false;
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
                    return broken;
                }
                Err(Stop::ConsumerGone) => return false,
            }
        }
        false
    }

    async fn send(&self, item: StreamItem) -> Result<(), Stop> {
        self.out
            .send(Ok(item))
            .await
            .map_err(|_| Stop::ConsumerGone)
    }

    async fn statement(
        &mut self,
        conn: &mut Conn,
        sql: &str,
        command: &str,
        result_index: &mut u32,
    ) -> Result<(), Stop> {
        let shared = self.shared;
        if command == "SELECT"
            && let Some(stmt) = self.prepare(conn, sql).await?
        {
            let read = match conn.exec_iter(&stmt, ()).await {
                Ok(result) => self.read(result, command, result_index).await,
                Err(e) => Err(Stop::Failed(shared.fail(e))),
            };
            let broken = matches!(&read, Err(Stop::Failed(e)) if e.kind == DbErrorKind::Connection);
            if !broken {
                // Drains what a stopped read left, then frees the statement.
                if let Err(e) = conn.close(stmt).await {
                    return Err(Stop::Failed(shared.fail(e)));
                }
            }
            return read;
        }
        let result = conn
            .query_iter(sql)
            .await
            .map_err(|e| Stop::Failed(shared.fail(e)))?;
        self.read(result, command, result_index).await
    }

    /// Prepares a query for the binary protocol. `None` sends it as text
    /// instead: when the server cannot prepare it (`ER_UNSUPPORTED_PS`), when
    /// it holds `?` or `:name` placeholders (the client library's own reading
    /// of the text, which a query without parameters must not be given), and
    /// when it fails to prepare, so that its error is the one the text gives
    /// (a one-round-trip cost on errors only).
    async fn prepare(&self, conn: &mut Conn, sql: &str) -> Result<Option<Statement>, Stop> {
        let prepared = match conn.prep(sql).await {
            Ok(stmt) if stmt.num_params() == 0 => Some(stmt),
            Ok(stmt) => {
                conn.close(stmt)
                    .await
                    .map_err(|e| Stop::Failed(self.shared.fail(e)))?;
                None
            }
            Err(
                mysql_async::Error::Server(_)
                | mysql_async::Error::Driver(mysql_async::DriverError::MixedParams),
            ) => None,
            Err(e) => return Err(Stop::Failed(self.shared.fail(e))),
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

    /// Reads every result of a statement, in either protocol.
    async fn read<P: Protocol>(
        &mut self,
        mut result: QueryResult<'_, 'static, P>,
        command: &str,
        result_index: &mut u32,
    ) -> Result<(), Stop> {
        let shared = self.shared;
        let mut first = true;
        while first || !result.is_empty() {
            first = false;
            let index = *result_index;
            *result_index += 1;
            let columns = result.columns().filter(|c| !c.is_empty());
            let Some(columns) = columns else {
                // No rows: the OK packet's counts belong to this result.
                let affected = result.affected_rows();
                let last_insert_id = result.last_insert_id().filter(|id| *id > 0);
                self.send(StreamItem::Columns {
                    result_index: index,
                    columns: Vec::new(),
                })
                .await?;
                self.send(StreamItem::Done(ResultSummary {
                    result_index: index,
                    command: command.to_string(),
                    row_count: 0,
                    affected_rows: Some(affected),
                    truncated: false,
                    last_insert_id: last_insert_id.map(|id| id.to_string()),
                }))
                .await?;
                // Moves on to the next result set, if any.
                result
                    .next()
                    .await
                    .map_err(|e| Stop::Failed(shared.fail(e)))?;
                continue;
            };
            let described: Vec<(ColumnInfo, Encoder)> = columns
                .iter()
                .map(|c| {
                    let (kind, db_type, encoder) = values::describe(c);
                    (
                        ColumnInfo {
                            name: c.name_str().into_owned(),
                            db_type,
                            kind,
                        },
                        encoder,
                    )
                })
                .collect();
            self.send(StreamItem::Columns {
                result_index: index,
                columns: described.iter().map(|(c, _)| c.clone()).collect(),
            })
            .await?;
            let mut builder = BatchBuilder::new(self.options.batch_size);
            let mut row_count = 0u64;
            let mut truncated = false;
            loop {
                let row = match result.next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    // Stopped on purpose at maxRows: the kill's error ends the read.
                    Err(mysql_async::Error::Server(e)) if truncated && e.code == 1317 => break,
                    Err(e) => return Err(Stop::Failed(shared.fail(e))),
                };
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
                builder.row(|w| {
                    for (i, (_, encoder)) in described.iter().enumerate() {
                        match row.as_ref(i) {
                            Some(value) => values::encode_value(w, *encoder, value),
                            None => w.null(),
                        }
                    }
                });
                row_count += 1;
                if builder.is_due() {
                    let batch = builder.take();
                    self.send(StreamItem::Rows {
                        result_index: index,
                        batch,
                    })
                    .await?;
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
            if truncated {
                // A killed statement ends the whole reply.
                break;
            }
        }
        Ok(())
    }
}

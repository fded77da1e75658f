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
use std::time::Duration;

use dbbridge_protocol::query::{ColumnInfo, ResultSummary};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

use super::copy;
use super::params::{self, Bound};
use super::split::{self, Statement};
use super::values::{self, Encoder};
use super::{Shared, query_error};
use crate::{
    BatchBuilder, CancelHandle, DbError, EngineCancel, QueryOptions, QueryStream, STREAM_QUEUE,
    SentCancel, StreamItem,
};

type Out = mpsc::Sender<Result<StreamItem, DbError>>;

/// Aim for about this much row text per `FETCH`.
const FETCH_BYTES: usize = 2 * 1024 * 1024;
const FIRST_FETCH: usize = 1000;
const MAX_FETCH: usize = 20_000;

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

/// Where a cancel request is sent: the connection's first host and port.
#[derive(Clone, Debug)]
pub(crate) enum CancelAddr {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
}

impl CancelAddr {
    pub(crate) fn of(config: &tokio_postgres::Config) -> Option<CancelAddr> {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(host) => Some(CancelAddr::Tcp(host.clone(), port)),
            tokio_postgres::config::Host::Unix(dir) => {
                Some(CancelAddr::Unix(dir.join(format!(".s.PGSQL.{port}"))))
            }
        }
    }
}

/// Sends the protocol cancel request for the connection's running query.
pub struct PgCancel {
    token: CancelToken,
    tls: Option<rustls::ClientConfig>,
    addr: Option<CancelAddr>,
    sent: SentCancel,
    /// Woken by the first request: the start of the query's `ABORT_GRACE`.
    asked: tokio::sync::Notify,
}

impl PgCancel {
    pub(crate) fn request(&self) {
        self.asked.notify_one();
        let (token, tls, addr) = (self.token.clone(), self.tls.clone(), self.addr.clone());
        self.sent.send(async move {
            if let Err(error) = send_cancel(token, tls, addr).await {
                tracing::warn!(%error, "postgres cancel request failed");
            }
        });
    }

    /// Waits (briefly) until a requested cancel has been acted on by the
    /// server, so it cannot land on a later statement of the session.
    async fn settle(&self) {
        self.sent.settle(Duration::from_secs(2)).await;
    }
}

/// Sends a cancel request. Without TLS the request goes over a socket of our
/// own, read to its end: the server closes it only after it has signalled the
/// backend, so once this returns the cancel cannot arrive later and hit the
/// session's next statement. Over TLS tokio-postgres sends it (same settings
/// as the session) and a short grace period stands in for that wait.
async fn send_cancel(
    token: CancelToken,
    tls: Option<rustls::ClientConfig>,
    addr: Option<CancelAddr>,
) -> Result<(), String> {
    match (tls, addr) {
        (Some(tls), _) => {
            token
                .cancel_query(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (None, Some(CancelAddr::Tcp(host, port))) => {
            let socket = tokio::net::TcpStream::connect((host.as_str(), port)).await;
            cancel_and_wait(&token, socket.map_err(|e| e.to_string())?).await?;
        }
        (None, Some(CancelAddr::Unix(path))) => {
            let socket = tokio::net::UnixStream::connect(&path).await;
            cancel_and_wait(&token, socket.map_err(|e| e.to_string())?).await?;
        }
        (None, None) => token.cancel_query(NoTls).await.map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// Sends the cancel request over `socket`, then reads it to its end.
async fn cancel_and_wait<S>(token: &CancelToken, mut socket: S) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    token
        .cancel_query_raw(&mut socket, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut rest)).await;
    Ok(())
}

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

    /// A row-returning query read whole through `COPY (...) TO STDOUT`: one
    /// protocol read with no per-row allocation, which pauses when the
    /// consumer does (the socket is not read while the stream's channel is
    /// full). The server's own text output, so nothing is lost.
    async fn copy(
        &self,
        sql: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        // Before the COPY: nothing else can run on the connection while it streams.
        let columns = self.column_infos(&described).await;
        // The newline ends a trailing `--` comment.
        const PREFIX: &str = "COPY (\n";
        let copy = format!("{PREFIX}{sql}\n) TO STDOUT");
        let unprefixed = |error| failed_after(PREFIX, error);
        let stream = self
            .client()
            .copy_out(copy.as_str())
            .await
            .map_err(unprefixed)?;
        futures::pin_mut!(stream);
        sender.columns(&columns).await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut scratch = String::new();
        loop {
            // Whether the next row had to be waited for, or was already received.
            let (next, waited) = match stream.next().now_or_never() {
                Some(next) => (next, false),
                None => (stream.next().await, true),
            };
            let Some(data) = next else { break };
            let data = data.map_err(unprefixed)?;
            let line = std::str::from_utf8(&data)
                .map_err(|_| DbError::internal("COPY sent a row that is not UTF-8"))?;
            builder.try_row(|w| {
                let count = copy::each_field(line, &mut scratch, |i, text| {
                    if let Some((_, encoder)) = columns.get(i) {
                        values::encode(w, encoder, text);
                    }
                });
                if count == columns.len() {
                    Ok(())
                } else {
                    Err(DbError::internal(format!(
                        "COPY sent a row of {count} fields for {} columns",
                        columns.len()
                    )))
                }
            })?;
            row_count += 1;
            if builder.is_due_after(waited) {
                // A cancel that reached a server already done sending ends the
                // read here rather than after what is still on its way.
                if self.requested.load(Ordering::SeqCst) {
                    return Err(Stop::Failed(DbError::cancelled()));
                }
                sender.rows(&mut builder).await?;
            }
        }
        sender.finish(&mut builder, row_count, None, false).await
    }

    /// A row-returning query read through a cursor.
    async fn cursor(
        &self,
        sql: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        let own_transaction = !in_transaction_now(self.client()).await?;
        let name = format!(
            "dbbridge_cursor_{}",
            self.shared.cursor_seq.fetch_add(1, Ordering::SeqCst)
        );
        if own_transaction && self.options.windowed {
            // A windowed read may pause for as long as its user looks at the
            // first page. Its own transaction then sits idle, and a FETCH
            // whose rows wait in the socket stays active: the role's
            // idle-in-transaction and statement timeouts would end either.
            // Both are lifted for this transaction only.
            self.client()
                .batch_execute(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0",
                )
                .await
                .map_err(failed)?;
        } else if own_transaction {
            self.client().batch_execute("BEGIN").await.map_err(failed)?;
        }
        let read = self.fetch_all(sql, &name, described, sender).await;
        match read {
            Ok(()) => {
                let end = if own_transaction {
                    format!("CLOSE {name}; COMMIT")
                } else {
                    format!("CLOSE {name}")
                };
                self.client().batch_execute(&end).await.map_err(failed)
            }
            Err(stop) => {
                // A cancel still on its way must not hit the cleanup.
                self.cancel.settle().await;
                let cleanup = if own_transaction {
                    "ROLLBACK".to_string()
                } else {
                    format!("CLOSE {name}")
                };
                // In an aborted block CLOSE fails too; the block's owner rolls back.
                let _ = self.client().batch_execute(&cleanup).await;
                Err(stop)
            }
        }
    }

    async fn fetch_all(
        &self,
        sql: &str,
        name: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR ");
        if let Err(error) = self
            .client()
            .batch_execute(&format!("{declare}{sql}"))
            .await
        {
            return Err(failed_after(&declare, error));
        }
        let columns = self.column_infos(&described).await;
        sender.columns(&columns).await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut truncated = false;
        // How many rows to ask for when `expected` rows will have been read: one
        // past maxRows tells whether there was more.
        let want_for = |fetch: usize, expected: u64| match self.options.max_rows {
            Some(max) => max
                .checked_sub(expected)
                .map_or(0, |left| (fetch as u64).min(left + 1) as usize),
            None => fetch,
        };
        let fetch_more = |want: usize| async move {
            self.client()
                .simple_query_raw(&format!("FETCH FORWARD {want} FROM {name}"))
                .await
                .map(Box::pin)
                .map_err(failed)
        };
        let mut fetch = FIRST_FETCH;
        let mut want = want_for(fetch, 0);
        let mut current = fetch_more(want).await?;
        loop {
            if self.requested.load(Ordering::SeqCst) {
                return Err(Stop::Failed(DbError::cancelled()));
            }
            // The next FETCH is queued before this one is read, so the server
            // produces rows while these are encoded.
            let next_want = want_for(fetch, row_count + want as u64);
            let next = match next_want {
                0 => None,
                n => Some((n, fetch_more(n).await?)),
            };
            let (mut got, mut bytes) = (0usize, 0usize);
            while let Some(message) = current.next().await {
                let SimpleQueryMessage::Row(row) = message.map_err(failed)? else {
                    continue;
                };
                got += 1;
                if self.options.max_rows.is_some_and(|max| row_count >= max) {
                    truncated = true;
                    continue;
                }
                bytes += write_row(&mut builder, &columns, &row);
                row_count += 1;
                if builder.is_due() {
                    sender.rows(&mut builder).await?;
                }
            }
            if got < want || truncated {
                break;
            }
            fetch = (FETCH_BYTES / (bytes / got.max(1)).max(1)).clamp(16, MAX_FETCH);
            match next {
                Some((n, stream)) => (want, current) = (n, stream),
                None => break,
            }
        }
        sender
            .finish(&mut builder, row_count, None, truncated)
            .await
    }

    /// Column descriptions, with `dbType` as Postgres writes it (`format_type`,
    /// asked once per type and modifier on this connection).
    async fn column_infos(&self, columns: &[PgColumn]) -> Vec<(ColumnInfo, Encoder)> {
        let missing: Vec<(u32, i32)> = {
            let cache = self
                .shared
                .type_names
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut missing: Vec<(u32, i32)> = columns
                .iter()
                .map(|c| (c.ty.oid(), c.typmod))
                .filter(|key| !cache.contains_key(key))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            let list: Vec<String> = missing
                .iter()
                .map(|(oid, typmod)| format!("format_type({oid}, {typmod})"))
                .collect();
            if let Ok(messages) = self
                .client()
                .simple_query(&format!("SELECT {}", list.join(", ")))
                .await
            {
                let mut cache = self
                    .shared
                    .type_names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for message in messages {
                    if let SimpleQueryMessage::Row(row) = message {
                        for (i, key) in missing.iter().enumerate() {
                            if let Some(name) = row.get(i) {
                                cache.insert(*key, name.to_string());
                            }
                        }
                    }
                }
            }
        }
        let cache = self
            .shared
            .type_names
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        columns
            .iter()
            .map(|c| {
                let (kind, encoder) = values::encoder_for(&c.ty);
                let db_type = cache
                    .get(&(c.ty.oid(), c.typmod))
                    .cloned()
                    .unwrap_or_else(|| c.ty.name().to_string());
                (
                    ColumnInfo {
                        name: c.name.clone(),
                        db_type,
                        kind,
                    },
                    encoder,
                )
            })
            .collect()
    }
}

/// Encodes one row; returns the bytes of text it held.
fn write_row(
    builder: &mut BatchBuilder,
    columns: &[(ColumnInfo, Encoder)],
    row: &SimpleQueryRow,
) -> usize {
    let mut bytes = 0;
    builder.row(|w| {
        for (i, (_, encoder)) in columns.iter().enumerate() {
            let text = row.try_get(i).unwrap_or(None);
            bytes += text.map_or(0, str::len);
            values::encode(w, encoder, text);
        }
    });
    bytes
}

/// The command word reported for a statement.
fn command_of(stmt: &Statement) -> String {
    match stmt.command.as_str() {
        "WITH" | "VALUES" | "TABLE" if !stmt.writes => "SELECT".to_string(),
        "" => "UNKNOWN".to_string(),
        other => other.to_string(),
    }
}

/// Sends the items of one result set.
struct Sender<'a> {
    out: &'a Out,
    index: u32,
    command: String,
}

impl Sender<'_> {
    async fn send(&self, item: StreamItem) -> Result<(), Stop> {
        self.out
            .send(Ok(item))
            .await
            .map_err(|_| Stop::ConsumerGone)
    }

    async fn columns(&self, columns: &[(ColumnInfo, Encoder)]) -> Result<(), Stop> {
        self.send(StreamItem::Columns {
            result_index: self.index,
            columns: columns.iter().map(|(c, _)| c.clone()).collect(),
        })
        .await
    }

    async fn rows(&self, builder: &mut BatchBuilder) -> Result<(), Stop> {
        self.send(StreamItem::Rows {
            result_index: self.index,
            batch: builder.take(),
        })
        .await
    }

    /// Sends the rows left in `builder`, then the result's summary.
    async fn finish(
        &self,
        builder: &mut BatchBuilder,
        row_count: u64,
        affected_rows: Option<u64>,
        truncated: bool,
    ) -> Result<(), Stop> {
        if !builder.is_empty() {
            self.rows(builder).await?;
        }
        self.send(StreamItem::Done(ResultSummary {
            result_index: self.index,
            command: self.command.clone(),
            row_count,
            affected_rows,
            truncated,
            last_insert_id: None,
        }))
        .await
    }
}

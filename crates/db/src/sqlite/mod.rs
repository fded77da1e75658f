//! SQLite on rusqlite (bundled: the one SQLite library in the build). Each
//! connection lives on its own worker thread fed by commands, so the blocking
//! C API never runs on the async workers. Cancellation goes through SQLite's
//! interrupt handle.

pub mod backup;
mod metadata;
mod run;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use dbbridge_protocol::connection::SqliteConnection as SqliteParams;
use dbbridge_protocol::metadata::{SchemaInfo, TableDescription, TableInfo};
use rusqlite::{OpenFlags, ffi};
use tokio::sync::{mpsc, oneshot};

use crate::{
    CancelHandle, DbError, DbErrorKind, EngineCancel, QueryOptions, QueryStream, STREAM_QUEUE,
};

type Reply<T> = oneshot::Sender<Result<T, DbError>>;

/// What the worker thread is asked to do.
enum Command {
    Run {
        sql: String,
        options: QueryOptions,
        out: mpsc::Sender<Result<crate::StreamItem, DbError>>,
        cancel: Arc<AtomicBool>,
    },
    Ping(Reply<()>),
    ListSchemas(Reply<Vec<SchemaInfo>>),
    ListTables(Option<String>, Reply<Vec<TableInfo>>),
    Describe(String, String, Reply<TableDescription>),
}

/// A SQLite connection owned by a worker thread. Dropping it stops the worker
/// once its current command ends.
pub struct SqliteConnection {
    commands: std_mpsc::Sender<Command>,
    interrupt: Arc<rusqlite::InterruptHandle>,
    in_transaction: Arc<AtomicBool>,
    path: String,
    version: String,
}

impl SqliteConnection {
    /// Opens `params.path` (`:memory:` works). A missing file is `InvalidInput`
    /// unless `create` is set; `readOnly` opens read-only.
    pub async fn open(params: &SqliteParams) -> Result<SqliteConnection, DbError> {
        let path = params.path.clone();
        if path.is_empty() {
            return Err(DbError::invalid_input("path must not be empty"));
        }
        let memory = path == ":memory:";
        if !memory && !params.create && !Path::new(&path).exists() {
            return Err(DbError::invalid_input(format!(
                "no SQLite database at {path} (set create: true to create one)"
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= if params.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else if params.create || memory {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let (commands, receiver) = std_mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let in_transaction = Arc::new(AtomicBool::new(false));
        let worker_tx = in_transaction.clone();
        let worker_path = path.clone();
        std::thread::Builder::new()
            .name("sqlite-worker".into())
            .spawn(move || {
                let conn = match open_connection(&worker_path, flags) {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(Arc::new(conn.get_interrupt_handle())));
                worker(conn, receiver, worker_tx);
            })
            .map_err(|e| DbError::internal(format!("could not start the SQLite worker: {e}")))?;
        let interrupt = ready_rx.await.map_err(|_| DbError::worker_gone())??;
        Ok(SqliteConnection {
            commands,
            interrupt,
            in_transaction,
            path,
            version: rusqlite::version().to_string(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::SeqCst)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DbError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| DbError::worker_gone())?;
        rx.await.map_err(|_| DbError::worker_gone())?
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.ask(Command::Ping).await
    }

    pub fn run(&self, sql: String, options: QueryOptions) -> Result<QueryStream, DbError> {
        let (out, items) = mpsc::channel(STREAM_QUEUE);
        let cancel = Arc::new(AtomicBool::new(false));
        self.commands
            .send(Command::Run {
                sql,
                options,
                out,
                cancel: cancel.clone(),
            })
            .map_err(|_| DbError::worker_gone())?;
        Ok(QueryStream {
            items,
            cancel: CancelHandle {
                requested: cancel,
                engine: EngineCancel::Sqlite(self.interrupt.clone()),
            },
        })
    }

    pub async fn list_schemas(&self) -> Result<Vec<SchemaInfo>, DbError> {
        self.ask(Command::ListSchemas).await
    }

    pub async fn list_tables(&self, schema: Option<String>) -> Result<Vec<TableInfo>, DbError> {
        self.ask(|r| Command::ListTables(schema, r)).await
    }

    pub async fn describe_table(
        &self,
        schema: String,
        table: String,
    ) -> Result<TableDescription, DbError> {
        self.ask(|r| Command::Describe(schema, table, r)).await
    }
}

fn open_connection(path: &str, flags: OpenFlags) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
        let mut err = map_error(e, None);
        err.kind = DbErrorKind::Connection;
        err
    })?;
    // A database client expects declared foreign keys to hold, and a busy
    // database to be waited for briefly rather than failing at once.
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| map_error(e, None))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| map_error(e, None))?;
    // Reading the schema proves the file is a database, not some other file.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(|e| {
            let mut err = map_error(e, None);
            err.kind = DbErrorKind::Connection;
            err
        })?;
    Ok(conn)
}

fn worker(
    conn: rusqlite::Connection,
    commands: std_mpsc::Receiver<Command>,
    in_transaction: Arc<AtomicBool>,
) {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Run {
                sql,
                options,
                out,
                cancel,
            } => {
                run::run_script(&conn, &sql, &options, &out, &cancel);
                // Before the stream ends, so `session.list` after `query.done`
                // is current.
                in_transaction.store(!conn.is_autocommit(), Ordering::SeqCst);
                drop(out);
            }
            Command::Ping(reply) => {
                let _ = reply.send(
                    conn.query_row("SELECT 1", [], |_| Ok(()))
                        .map_err(|e| map_error(e, None)),
                );
            }
            Command::ListSchemas(reply) => {
                let _ = reply.send(metadata::list_schemas(&conn));
            }
            Command::ListTables(schema, reply) => {
                let _ = reply.send(metadata::list_tables(&conn, schema.as_deref()));
            }
            Command::Describe(schema, table, reply) => {
                let _ = reply.send(metadata::describe_table(&conn, &schema, &table));
            }
        }
        in_transaction.store(!conn.is_autocommit(), Ordering::SeqCst);
    }
}

/// Maps a rusqlite error, with the SQLite extended result code in `sqlstate`
/// and `errno` and, for syntax errors, the 1-based character position in
/// `script` (the whole text the statement came from).
pub(crate) fn map_error(error: rusqlite::Error, script: Option<&str>) -> DbError {
    match error {
        rusqlite::Error::SqliteFailure(e, msg) => {
            let kind = if e.extended_code == ffi::SQLITE_INTERRUPT {
                DbErrorKind::Cancelled
            } else {
                DbErrorKind::Query
            };
            let message = msg.unwrap_or_else(|| e.to_string());
            coded(kind, message, e.extended_code)
        }
        rusqlite::Error::SqlInputError {
            error,
            msg,
            sql,
            offset,
        } => {
            let mut err = coded(DbErrorKind::Query, msg, error.extended_code);
            if let Some(script) = script
                && offset >= 0
            {
                // `sql` is the tail of the script the failing statement starts in.
                let start = script.len().saturating_sub(sql.len());
                let byte = (start + offset as usize).min(script.len());
                let chars = script
                    .get(..byte)
                    .map(|s| s.chars().count())
                    .unwrap_or(byte);
                err.position = Some(chars as u32 + 1);
            }
            err
        }
        other => DbError::new(DbErrorKind::Query, other.to_string()),
    }
}

fn coded(kind: DbErrorKind, message: String, code: i32) -> DbError {
    DbError {
        kind,
        message,
        sqlstate: Some(code.to_string()),
        errno: Some(i64::from(code)),
        position: None,
    }
}

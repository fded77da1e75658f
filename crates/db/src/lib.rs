//! dbbridge connectors: one module per engine behind one contract.
//!
//! The set of engines is closed: [`Connection`] is an enum and every operation
//! is a `match`, so nothing on the row path goes through dynamic dispatch. Rows
//! are encoded to JSON text once, inside the engine's read loop, and travel as
//! [`RowBatch`]es through a bounded channel: when the consumer stops reading,
//! the engine's read stops too.
//!
//! This crate knows nothing of JSON-RPC. It uses the protocol crate's data
//! shapes (value kinds, metadata) and nothing else of it.

pub mod batch;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod mysql;
pub mod postgres;
mod session_thread;
pub mod sqlite;
mod tls;
pub mod tools;
pub mod value;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use batch::{BatchBuilder, RowBatch};
pub use dbbridge_protocol::connection::{ConnectionSpec, EngineKind};
use dbbridge_protocol::metadata::{SchemaInfo, TableDescription, TableInfo};
pub use dbbridge_protocol::query::{ColumnInfo, ResultSummary, ValueKind};
pub use error::{DbError, DbErrorKind};
pub use session_thread::goodbyes_said;
use tokio::sync::mpsc;

/// How many encoded batches may wait between an engine and its consumer.
pub const STREAM_QUEUE: usize = 4;

/// How a query is to be run.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Rows per batch (at most; batches are also cut by size and time).
    pub batch_size: usize,
    /// Stop reading each result set after this many rows.
    pub max_rows: Option<u64>,
    /// Positional parameters, bound to every statement that has placeholders.
    pub params: Vec<serde_json::Value>,
    /// The consumer may pause for a long time (a `window`): read so that a
    /// pause holds nothing open on the server that its timeouts end (on
    /// Postgres a cursor, whose transaction does not count as idle).
    pub windowed: bool,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            batch_size: batch::DEFAULT_BATCH_SIZE,
            max_rows: None,
            params: Vec::new(),
            windowed: false,
        }
    }
}

/// What a running query yields, in this order for each result set:
/// `Columns`, any number of `Rows`, `Done`. An `Err` item ends the stream.
#[derive(Debug)]
pub enum StreamItem {
    Columns {
        result_index: u32,
        columns: Vec<ColumnInfo>,
    },
    Rows {
        result_index: u32,
        batch: RowBatch,
    },
    Done(ResultSummary),
}

/// A running query: its items, and the handle that cancels it.
#[derive(Debug)]
pub struct QueryStream {
    pub items: mpsc::Receiver<Result<StreamItem, DbError>>,
    pub cancel: CancelHandle,
}

/// Cancels one running query; clonable and usable from any thread.
#[derive(Clone)]
pub struct CancelHandle {
    requested: Arc<AtomicBool>,
    engine: EngineCancel,
}

#[derive(Clone)]
enum EngineCancel {
    Sqlite(Arc<rusqlite::InterruptHandle>),
    Postgres(Arc<postgres::PgCancel>),
    Mysql(Arc<mysql::MyCancel>),
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle")
            .field("requested", &self.is_requested())
            .finish()
    }
}

impl CancelHandle {
    /// Asks the engine to stop the query. Returns at once; the stream then ends
    /// with [`DbErrorKind::Cancelled`] (or, if the query was just finishing,
    /// normally).
    pub fn cancel(&self) {
        self.requested.store(true, Ordering::SeqCst);
        match &self.engine {
            EngineCancel::Sqlite(interrupt) => interrupt.interrupt(),
            EngineCancel::Postgres(cancel) => cancel.request(),
            EngineCancel::Mysql(cancel) => cancel.request(),
        }
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// TCP keepalive on every server connection: probes after this much quiet...
pub(crate) const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// ...this far apart...
pub(crate) const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// ...and the connection is given up after this many unanswered (about 60 s).
pub(crate) const KEEPALIVE_RETRIES: u32 = 3;

/// An idle server connection (no query running) is probed this often: a
/// round trip that proves the server still answers. TCP keepalive cannot
/// see a network that stalls behind a proxy or a NAT that still answers
/// for the server; this can.
pub(crate) const LIVENESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A probe not answered within this long gives the connection up and the
/// session is reported lost: an idle session on a stalled network is
/// reported within `LIVENESS_EVERY + LIVENESS_TIMEOUT` (15 s).
pub(crate) const LIVENESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a cancelled statement may take to end once its cancel was sent
/// (Postgres' cancel request, MySQL's `KILL QUERY`). A server that has not
/// ended it by then is unreachable (a stalled network, a proxy that stopped
/// forwarding) or ignoring us: the connection is given up and the session
/// reported lost, rather than waiting on it for ever.
pub(crate) const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A cancel sent to the server from a task of its own (Postgres' cancel
/// request, MySQL's `KILL QUERY`), which the query's run loop can wait for
/// before it runs anything else on the connection, so a late cancel never
/// lands on a later statement.
#[derive(Default)]
pub(crate) struct SentCancel {
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SentCancel {
    /// Starts sending; `send` logs its own failures.
    pub(crate) fn send(&self, send: impl std::future::Future<Output = ()> + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("cancel asked for outside the runtime; not sent");
            return;
        };
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(runtime.spawn(send));
    }

    /// Waits, at most `limit`, until a started send has finished.
    pub(crate) async fn settle(&self, limit: std::time::Duration) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(limit, task).await;
        }
    }
}

/// One open database connection, of one of the engines.
pub enum Connection {
    Sqlite(sqlite::SqliteConnection),
    Postgres(postgres::PgConnection),
    Mysql(mysql::MyConnection),
}

impl Connection {
    /// Opens a connection. The password, if any, must already be resolved into
    /// the spec. Fails with `InvalidInput` for a bad spec (a missing SQLite file
    /// without `create`), `Connection` or `Auth` when the server says no.
    pub async fn open(spec: &ConnectionSpec) -> Result<Connection, DbError> {
        match spec {
            ConnectionSpec::Sqlite(params) => Ok(Connection::Sqlite(
                sqlite::SqliteConnection::open(params).await?,
            )),
            ConnectionSpec::Postgres(params) => Ok(Connection::Postgres(
                postgres::PgConnection::open(params).await?,
            )),
            ConnectionSpec::Mysql(params) => {
                Ok(Connection::Mysql(mysql::MyConnection::open(params).await?))
            }
        }
    }

    pub fn kind(&self) -> EngineKind {
        match self {
            Connection::Sqlite(_) => EngineKind::Sqlite,
            Connection::Postgres(_) => EngineKind::Postgres,
            Connection::Mysql(_) => EngineKind::Mysql,
        }
    }

    /// The server's flavour where the engine has several (`mysql` or `mariadb`).
    pub fn flavour(&self) -> Option<&'static str> {
        match self {
            Connection::Mysql(c) => Some(c.flavour()),
            _ => None,
        }
    }

    /// The server's version string (for SQLite, the library's).
    pub fn server_version(&self) -> &str {
        match self {
            Connection::Sqlite(c) => c.version(),
            Connection::Postgres(c) => c.version(),
            Connection::Mysql(c) => c.version(),
        }
    }

    /// The database name, or the file path for SQLite.
    pub fn database(&self) -> &str {
        match self {
            Connection::Sqlite(c) => c.path(),
            Connection::Postgres(c) => c.database(),
            Connection::Mysql(c) => c.database(),
        }
    }

    /// Whether a transaction is open, where the engine tells (`None` when unknown).
    pub fn in_transaction(&self) -> Option<bool> {
        match self {
            Connection::Sqlite(c) => Some(c.in_transaction()),
            Connection::Postgres(c) => Some(c.in_transaction()),
            Connection::Mysql(c) => c.in_transaction(),
        }
    }

    /// Resolves when the connection to the server is lost (never for SQLite).
    pub async fn closed(&self) {
        match self {
            Connection::Sqlite(_) => std::future::pending().await,
            Connection::Postgres(c) => c.closed().await,
            Connection::Mysql(c) => c.closed().await,
        }
    }

    /// Runs a round trip to prove the connection works.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Connection::Sqlite(c) => c.ping().await,
            Connection::Postgres(c) => c.ping().await,
            Connection::Mysql(c) => c.ping().await,
        }
    }

    /// Starts running `sql` (one or more statements). Returns at once; the
    /// results arrive on the stream. One query at a time per connection: the
    /// caller (the session) enforces it.
    pub fn run(&self, sql: String, options: QueryOptions) -> Result<QueryStream, DbError> {
        match self {
            Connection::Sqlite(c) => c.run(sql, options),
            Connection::Postgres(c) => Ok(c.run(sql, options)),
            Connection::Mysql(c) => Ok(c.run(sql, options)),
        }
    }

    /// Schemas (SQLite: `main`, `temp` and attached databases).
    pub async fn list_schemas(&self) -> Result<Vec<SchemaInfo>, DbError> {
        match self {
            Connection::Sqlite(c) => c.list_schemas().await,
            Connection::Postgres(c) => c.list_schemas().await,
            Connection::Mysql(c) => c.list_schemas().await,
        }
    }

    /// Tables and views of one schema, or of every schema.
    pub async fn list_tables(&self, schema: Option<String>) -> Result<Vec<TableInfo>, DbError> {
        match self {
            Connection::Sqlite(c) => c.list_tables(schema).await,
            Connection::Postgres(c) => c.list_tables(schema).await,
            Connection::Mysql(c) => c.list_tables(schema).await,
        }
    }

    /// Columns, keys and indexes of one table or view; `InvalidInput` if it does not exist.
    pub async fn describe_table(
        &self,
        schema: String,
        table: String,
    ) -> Result<TableDescription, DbError> {
        match self {
            Connection::Sqlite(c) => c.describe_table(schema, table).await,
            Connection::Postgres(c) => c.describe_table(schema, table).await,
            Connection::Mysql(c) => c.describe_table(schema, table).await,
        }
    }
}

//! Postgres on tokio-postgres: connections (host/port or a `postgres://` URL,
//! every `sslMode`, `connectTimeoutMs`), scripts split the way Postgres reads
//! them ([`split`]) and run statement by statement with every value in its
//! text form ([`run`], [`values`]), cancellation through the protocol's cancel
//! request over the connection's own TLS settings, and catalog metadata
//! ([`metadata`]).

mod cancel;
mod copy;
pub mod dump;
mod metadata;
mod params;
mod run;
pub mod split;
pub mod values;

/// [`copy::each_field`], for the fuzz targets.
#[doc(hidden)]
pub fn copy_fields(
    line: &str,
    scratch: &mut String,
    field: impl FnMut(usize, Option<&str>),
) -> usize {
    copy::each_field(line, scratch, field)
}

pub use cancel::PgCancel;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbbridge_protocol::connection::{ServerConnection, SslMode};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::session_thread::SessionThread;
use crate::{DbError, DbErrorKind};

/// Used when the caller gives no `connectTimeoutMs`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct PgConnection {
    shared: Arc<Shared>,
    /// Drives the socket; ends when the client is dropped (after writing
    /// Terminate) or the server goes.
    task: JoinHandle<()>,
    version: String,
    database: String,
}

/// What the connection and its running query share.
pub(crate) struct Shared {
    client: Client,
    /// The TLS settings the connection was made with; cancel requests use them too.
    tls: Option<rustls::ClientConfig>,
    /// Where cancel requests go (the server the connection reached).
    cancel_addr: Option<cancel::CancelAddr>,
    /// Transaction state after the last query: 0 idle, 1 in a transaction.
    in_transaction: AtomicU8,
    /// `format_type` of (type oid, typmod) pairs already asked for.
    type_names: Mutex<HashMap<(u32, i32), String>>,
    /// Numbers the cursors this connection declares.
    cursor_seq: AtomicU64,
    /// Ends the socket task: the connection is given up (a cancelled
    /// statement the server did not end within `ABORT_GRACE`, a liveness
    /// probe unanswered).
    sever: Arc<tokio::sync::Notify>,
    /// Queries running (0 or 1): the liveness probe waits while one does,
    /// since its answer would queue behind the rows.
    running: std::sync::atomic::AtomicU32,
    /// Turns true when the socket task has ended (the server went away, or
    /// the connection said goodbye).
    closed: tokio::sync::watch::Receiver<bool>,
    /// Where the socket task and the queries run.
    thread: SessionThread,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // A query still running (one that a cancel did not end) would hold
        // the goodbye behind its rows: the socket is cut. Otherwise
        // `Shared`'s drop says goodbye, once a query task that has just
        // ended lets its hold of `Shared` go too.
        if self
            .shared
            .running
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            self.task.abort();
        }
    }
}

impl Drop for Shared {
    /// The connection says goodbye when the session ends: once the client
    /// (dropped right after this) is gone, tokio-postgres's socket task
    /// writes Terminate and closes the socket. The session thread, which
    /// drives that task, stays up until it has (or `GOODBYE_GRACE` passed);
    /// without Terminate the server counts the session as abandoned.
    fn drop(&mut self) {
        let mut closed = self.closed.clone();
        self.thread.finish(async move {
            let _ = closed.wait_for(|gone| *gone).await;
        });
    }
}

impl PgConnection {
    pub async fn open(params: &ServerConnection) -> Result<PgConnection, DbError> {
        let config = config(params)?;
        let timeout = params
            .connect_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mode = params.ssl_mode.unwrap_or_default();
        let tls = crate::tls::client_config(mode, params.ssl_root_cert.as_deref())?;
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let sever = Arc::new(tokio::sync::Notify::new());
        let drive_sever = sever.clone();
        let thread = SessionThread::start("dbbridge-postgres")
            .await
            .map_err(|e| DbError::internal(format!("could not start the session thread: {e}")))?;
        // Connected on the session thread, whose runtime then drives the socket.
        let (connect_config, connect_tls) = (config.clone(), tls.clone());
        let connect = async move {
            let config = connect_config;
            match connect_tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    Ok::<_, tokio_postgres::Error>((
                        client,
                        tokio::spawn(drive(connection, closed_tx, drive_sever)),
                    ))
                }
                Some(tls) => {
                    let (client, connection) = config
                        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                        .await?;
                    Ok((
                        client,
                        tokio::spawn(drive(connection, closed_tx, drive_sever)),
                    ))
                }
            }
        };
        let connect = thread.spawn(async move {
            tokio::time::timeout(timeout + Duration::from_millis(500), connect).await
        });
        let (client, task) = match connect
            .await
            .map_err(|e| DbError::internal(e.to_string()))?
        {
            Err(_) => {
                return Err(DbError::new(
                    DbErrorKind::Connection,
                    format!("could not connect within {} ms", timeout.as_millis()),
                ));
            }
            Ok(Err(error)) => return Err(connect_error(error)),
            Ok(Ok(pair)) => pair,
        };
        let mut this = PgConnection {
            shared: Arc::new(Shared {
                client,
                tls,
                cancel_addr: cancel::CancelAddr::of(&config),
                in_transaction: AtomicU8::new(0),
                type_names: Mutex::new(HashMap::new()),
                cursor_seq: AtomicU64::new(0),
                sever,
                running: std::sync::atomic::AtomicU32::new(0),
                closed,
                thread,
            }),
            task,
            version: String::new(),
            database: String::new(),
        };
        // Timestamps in ISO form (turned into RFC 3339) and bytea as hex.
        this.shared
            .client
            .batch_execute("SET DateStyle = 'ISO, MDY'; SET bytea_output = 'hex'")
            .await
            .map_err(query_error)?;
        let row = this
            .single_row("SELECT current_setting('server_version'), current_database()")
            .await?;
        this.version = row.first().cloned().unwrap_or_default();
        this.database = row.get(1).cloned().unwrap_or_default();
        Ok(this)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.single_row("SELECT 1").await.map(|_| ())
    }

    /// Whether a transaction block was open when the last query ended.
    pub fn in_transaction(&self) -> bool {
        self.shared
            .in_transaction
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1
    }

    /// Resolves when the connection to the server has gone. While no query
    /// runs, an empty statement probes the server every `LIVENESS_EVERY`
    /// (it is answered even in an aborted transaction, and changes no
    /// state); one not answered within `LIVENESS_TIMEOUT` (a stalled
    /// network, which TCP keepalive does not see behind a proxy) gives the
    /// connection up.
    pub async fn closed(&self) {
        let mut closed = self.shared.closed.clone();
        loop {
            tokio::select! {
                _ = closed.wait_for(|gone| *gone) => return,
                () = tokio::time::sleep(crate::LIVENESS_EVERY) => {}
            }
            if self
                .shared
                .running
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0
            {
                continue;
            }
            let probe = self.shared.client.simple_query("");
            if tokio::time::timeout(crate::LIVENESS_TIMEOUT, probe)
                .await
                .is_err()
            {
                tracing::warn!(
                    "no answer to a probe within {:?}: the postgres connection is given up",
                    crate::LIVENESS_TIMEOUT
                );
                self.shared.sever.notify_one();
            }
        }
    }

    /// Starts running a script; see [`run`].
    pub fn run(&self, sql: String, options: crate::QueryOptions) -> crate::QueryStream {
        run::start(
            self.shared.clone(),
            self.shared.client.cancel_token(),
            sql,
            options,
        )
    }

    pub async fn list_schemas(
        &self,
    ) -> Result<Vec<dbbridge_protocol::metadata::SchemaInfo>, DbError> {
        metadata::list_schemas(&self.shared.client).await
    }

    pub async fn list_tables(
        &self,
        schema: Option<String>,
    ) -> Result<Vec<dbbridge_protocol::metadata::TableInfo>, DbError> {
        metadata::list_tables(&self.shared.client, schema).await
    }

    pub async fn describe_table(
        &self,
        schema: String,
        table: String,
    ) -> Result<dbbridge_protocol::metadata::TableDescription, DbError> {
        metadata::describe_table(&self.shared.client, &schema, &table).await
    }

    /// The text values of the first row of a simple query.
    async fn single_row(&self, sql: &str) -> Result<Vec<String>, DbError> {
        let messages = self
            .shared
            .client
            .simple_query(sql)
            .await
            .map_err(query_error)?;
        for message in messages {
            if let SimpleQueryMessage::Row(row) = message {
                return Ok((0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect());
            }
        }
        Ok(Vec::new())
    }
}

async fn drive<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    closed: tokio::sync::watch::Sender<bool>,
    sever: Arc<tokio::sync::Notify>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::select! {
        ended = connection => {
            if let Err(error) = ended {
                tracing::info!(%error, "postgres connection ended");
            }
        }
        // Dropping the connection fails every request still waiting on it.
        () = sever.notified() => tracing::warn!("postgres connection given up"),
    }
    let _ = closed.send(true);
}

pub(crate) fn config(params: &ServerConnection) -> Result<Config, DbError> {
    let mut config = match &params.url {
        Some(url) => url.parse::<Config>().map_err(|e| {
            DbError::invalid_input(format!("url is not a valid postgres:// URL: {e}"))
        })?,
        None => Config::new(),
    };
    if let Some(host) = &params.host {
        config.host(host);
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if let Some(port) = params.port {
        config.port(port);
    }
    if let Some(database) = &params.database {
        config.dbname(database);
    }
    if let Some(user) = &params.user {
        config.user(user);
    }
    if config.get_user().is_none() {
        return Err(DbError::invalid_input("user is required"));
    }
    if let Some(password) = &params.password {
        config.password(password.expose());
    }
    if let Some(ms) = params.connect_timeout_ms {
        config.connect_timeout(Duration::from_millis(ms));
    }
    config.ssl_mode(match params.ssl_mode.unwrap_or_default() {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    config.application_name("dbbridge");
    // A server or network that dies without a word is noticed within about
    // a minute (30 s idle, then 3 probes 10 s apart), not the system's 2 h.
    config
        .keepalives(true)
        .keepalives_idle(crate::KEEPALIVE_IDLE)
        .keepalives_interval(crate::KEEPALIVE_INTERVAL)
        .keepalives_retries(crate::KEEPALIVE_RETRIES);
    Ok(config)
}

/// A failed connect: the server's refusal of the credentials is `Auth`;
/// anything else (refused, unreachable, TLS) is `Connection`.
fn connect_error(error: tokio_postgres::Error) -> DbError {
    if let Some(db) = error.as_db_error() {
        let kind = if *db.code() == SqlState::INVALID_PASSWORD
            || *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            DbErrorKind::Auth
        } else {
            DbErrorKind::Connection
        };
        let mut err = DbError::new(kind, db.message().to_string());
        err.sqlstate = Some(db.code().code().to_string());
        return err;
    }
    DbError::new(DbErrorKind::Connection, error.to_string())
}

/// A failed statement: the server's message, SQLSTATE and position (in the
/// text that was sent), or a lost connection.
pub(crate) fn query_error(error: tokio_postgres::Error) -> DbError {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            let mut err = DbError::new(DbErrorKind::Query, message);
            err.sqlstate = Some(db.code().code().to_string());
            if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
                err.position = Some(*position);
            }
            err
        }
        None if error.is_closed() => DbError::new(
            DbErrorKind::Connection,
            "the connection to the server was lost",
        ),
        None => DbError::new(DbErrorKind::Connection, error.to_string()),
    }
}

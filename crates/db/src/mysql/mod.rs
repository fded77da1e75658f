//! MySQL and MariaDB on a client connection of our own ([`wire`], on
//! mysql_common's packets): host/port or a `mysql://` URL, `sslMode` over
//! rustls, `connectTimeoutMs`; scripts split the way the command-line client
//! does ([`split`]); results read row by row straight from the socket's
//! buffer (the socket is read only as the consumer takes rows); cancellation
//! with `KILL QUERY` from a short-lived second connection, which leaves the
//! session's connection and transaction alive.

pub mod dump;
mod metadata;
mod run;
pub mod split;
pub(crate) mod values;
mod wire;

/// MariaDB's extended column metadata split off a definition, for the fuzz targets.
pub(crate) fn fuzz_split_extended(data: &[u8]) {
    let _ = wire::split_extended(data);
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use dbbridge_protocol::connection::{ServerConnection, SslMode};
use wire::{Conn, Opts};

use crate::session_thread::SessionThread;
use crate::{DbError, DbErrorKind};

pub use run::MyCancel;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct MyConnection {
    shared: Arc<Shared>,
    version: String,
    database: String,
}

pub(crate) struct Shared {
    /// The session's connection; a running query holds the lock.
    conn: tokio::sync::Mutex<Option<Conn>>,
    /// How to open the second connection that sends `KILL QUERY`.
    opts: Opts,
    /// The server's id of the session's connection, from `CONNECTION_ID()`:
    /// the handshake's is 32 bits where MariaDB's thread ids are 64, and a
    /// proxy (ProxySQL, MaxScale, RDS Proxy) hands out ids of its own, so a
    /// KILL of the handshake's id could hit another session.
    connection_id: u64,
    /// The deadline of the connection's reads after a cancel.
    abort: Arc<wire::Abort>,
    mariadb: bool,
    /// 0 idle, 1 in a transaction, as the server's last status flags said.
    in_transaction: AtomicU8,
    /// Turns true when the connection is found broken.
    lost: tokio::sync::watch::Sender<bool>,
    /// The thread whose runtime drives the connection's socket and runs its
    /// queries (declared last: dropped after the connection).
    thread: SessionThread,
}

impl MyConnection {
    pub async fn open(params: &ServerConnection) -> Result<MyConnection, DbError> {
        let timeout = params
            .connect_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mode = params.ssl_mode.unwrap_or_default();
        let opts = opts(params, mode)?;
        let plain = match mode {
            SslMode::Prefer => Some(self::opts(params, SslMode::Disable)?),
            _ => None,
        };
        // As for Postgres (see `session_thread`): the socket is registered
        // with the session thread's runtime, which then drives it whichever
        // runtime polls it, and the queries run there, so one session's row
        // decoding stays off the workers that answer every other call.
        let thread = SessionThread::start("dbbridge-mysql")
            .await
            .map_err(|e| DbError::internal(format!("could not start the session thread: {e}")))?;
        // `prefer` speaks TLS where the server offers it, and falls back to
        // plain text when the TLS handshake fails, as libpq does.
        let connected = thread.spawn(async move {
            match (connect(&opts, timeout).await, plain) {
                (Err(error), Some(plain)) if error.kind == DbErrorKind::Connection => {
                    tracing::debug!(%error, "TLS failed; sslMode prefer goes on in plain text");
                    Ok((connect(&plain, timeout).await?, plain))
                }
                (other, _) => Ok::<_, DbError>((other?, opts)),
            }
        });
        let (mut conn, opts) = connected
            .await
            .map_err(|e| DbError::internal(e.to_string()))??;
        // A paused client must not get the connection cut after 60 s; values as UTF-8.
        conn.query_drop("SET NAMES utf8mb4, SESSION net_write_timeout = 31536000")
            .await
            .map_err(query_error)?;
        let row: Vec<(String, Option<String>, u64)> = conn
            .query_rows("SELECT VERSION(), DATABASE(), CONNECTION_ID()")
            .await
            .map_err(query_error)?;
        let (version, database, connection_id) = row.into_iter().next().unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let abort = Arc::new(wire::Abort::default());
        conn.set_abort(abort.clone());
        let in_transaction = u8::from(conn.in_transaction());
        Ok(MyConnection {
            shared: Arc::new(Shared {
                conn: tokio::sync::Mutex::new(Some(conn)),
                opts,
                connection_id,
                abort,
                mariadb,
                in_transaction: AtomicU8::new(in_transaction),
                lost: tokio::sync::watch::channel(false).0,
                thread,
            }),
            version,
            database: database.unwrap_or_default(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// `mariadb` or `mysql`.
    pub fn flavour(&self) -> &'static str {
        if self.shared.mariadb {
            "mariadb"
        } else {
            "mysql"
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn in_transaction(&self) -> Option<bool> {
        match self.shared.in_transaction.load(Ordering::SeqCst) {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        let mut guard = self.shared.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(lost)?;
        conn.ping().await.map_err(|e| self.shared.fail(e))
    }

    /// Resolves when the connection is found broken: by a query, or by a
    /// ping every `LIVENESS_EVERY` while the session is idle. A ping not
    /// answered within `LIVENESS_TIMEOUT` (a stalled network) counts as
    /// broken too: the ping holds the connection, so without that bound
    /// every later call of the session would wait behind it for ever.
    pub async fn closed(&self) {
        let mut lost = self.shared.lost.subscribe();
        loop {
            tokio::select! {
                _ = lost.wait_for(|gone| *gone) => return,
                _ = tokio::time::sleep(crate::LIVENESS_EVERY) => {}
            }
            if let Ok(mut guard) = self.shared.conn.try_lock() {
                match guard.as_mut() {
                    Some(conn) => {
                        let answered =
                            tokio::time::timeout(crate::LIVENESS_TIMEOUT, conn.ping()).await;
                        match answered {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => {
                                let _ = self.shared.lost.send(true);
                            }
                            Err(_) => {
                                tracing::warn!(
                                    "no answer to a ping within {:?}: the MySQL connection is given up",
                                    crate::LIVENESS_TIMEOUT
                                );
                                // Half a ping was left on the wire: the
                                // connection cannot be used again.
                                *guard = None;
                                let _ = self.shared.lost.send(true);
                            }
                        }
                    }
                    None => return,
                }
            }
        }
    }

    pub fn run(&self, sql: String, options: crate::QueryOptions) -> crate::QueryStream {
        run::start(self.shared.clone(), sql, options)
    }

    pub async fn list_schemas(
        &self,
    ) -> Result<Vec<dbbridge_protocol::metadata::SchemaInfo>, DbError> {
        let mut guard = self.shared.conn.lock().await;
        metadata::list_schemas(guard.as_mut().ok_or_else(lost)?).await
    }

    pub async fn list_tables(
        &self,
        schema: Option<String>,
    ) -> Result<Vec<dbbridge_protocol::metadata::TableInfo>, DbError> {
        let mut guard = self.shared.conn.lock().await;
        metadata::list_tables(guard.as_mut().ok_or_else(lost)?, schema).await
    }

    pub async fn describe_table(
        &self,
        schema: String,
        table: String,
    ) -> Result<dbbridge_protocol::metadata::TableDescription, DbError> {
        let mut guard = self.shared.conn.lock().await;
        metadata::describe_table(
            guard.as_mut().ok_or_else(lost)?,
            self.shared.mariadb,
            &schema,
            &table,
        )
        .await
    }
}

impl Drop for Shared {
    /// The session's connection says goodbye when the session ends.
    fn drop(&mut self) {
        // On the session thread, which drives the socket and stays up until
        // the goodbye is written.
        if let Some(conn) = self.conn.get_mut().take() {
            self.thread.finish(conn.quit());
        }
    }
}

impl Shared {
    /// Maps a query error; a broken connection is remembered.
    fn fail(&self, error: wire::Error) -> DbError {
        let mapped = query_error(error);
        if mapped.kind == DbErrorKind::Connection {
            let _ = self.lost.send(true);
        }
        mapped
    }
}

fn lost() -> DbError {
    DbError::new(
        DbErrorKind::Connection,
        "the connection to the server was lost",
    )
}

async fn connect(opts: &Opts, timeout: Duration) -> Result<Conn, DbError> {
    match tokio::time::timeout(timeout, Conn::connect(opts)).await {
        Err(_) => Err(DbError::new(
            DbErrorKind::Connection,
            format!("could not connect within {} ms", timeout.as_millis()),
        )),
        Ok(Err(error)) => Err(connect_error(error)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Where to connect: the URL's parts first, then the fields over them.
fn opts(params: &ServerConnection, mode: SslMode) -> Result<Opts, DbError> {
    let mut opts = Opts {
        host: "localhost".to_string(),
        port: 3306,
        user: String::new(),
        password: None,
        database: None,
        tls: None,
    };
    if let Some(url) = &params.url {
        from_url(&mut opts, url)?;
    }
    if let Some(host) = &params.host {
        opts.host = host.clone();
    }
    if let Some(port) = params.port {
        opts.port = port;
    }
    if let Some(user) = &params.user {
        opts.user = user.clone();
    }
    if let Some(password) = &params.password {
        opts.password = Some(password.expose().to_string());
    }
    if let Some(database) = &params.database {
        opts.database = Some(database.clone());
    }
    opts.database = opts.database.filter(|d| !d.is_empty());
    opts.tls = crate::tls::client_config(mode, params.ssl_root_cert.as_deref())?
        .map(|config| (Arc::new(config), mode != SslMode::Prefer));
    Ok(opts)
}

/// `mysql://user:password@host:port/database` (or `mariadb://`), percent-encoded.
fn from_url(opts: &mut Opts, text: &str) -> Result<(), DbError> {
    let bad = |why: &str| DbError::invalid_input(format!("url is not a valid mysql:// URL: {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "mysql" | "mariadb") {
        return Err(bad("the scheme must be mysql:// or mariadb://"));
    }
    if let Some((key, _)) = url.query_pairs().next() {
        return Err(bad(&format!(
            "parameter {key:?} is not supported (use the connection fields, such as sslMode)"
        )));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| bad("not UTF-8 after percent-decoding"))
    };
    if let Some(host) = url.host_str() {
        opts.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
    }
    if let Some(port) = url.port() {
        opts.port = port;
    }
    if !url.username().is_empty() {
        opts.user = decode(url.username())?;
    }
    if let Some(password) = url.password() {
        opts.password = Some(decode(password)?);
    }
    let path = url.path().trim_start_matches('/');
    if !path.is_empty() {
        opts.database = Some(decode(path)?);
    }
    Ok(())
}

/// Access denied (1045, and 1044/1698 for a database or plugin refusal) is
/// `Auth`; anything else while connecting is `Connection`.
fn connect_error(error: wire::Error) -> DbError {
    if let wire::Error::Server(server) = &error {
        let kind = if matches!(server.code, 1044 | 1045 | 1698) {
            DbErrorKind::Auth
        } else {
            DbErrorKind::Connection
        };
        let mut err = DbError::new(kind, server.message.clone());
        err.sqlstate = Some(server.state.clone());
        err.errno = Some(i64::from(server.code));
        return err;
    }
    let kind = match error {
        wire::Error::Auth(_) => DbErrorKind::Auth,
        _ => DbErrorKind::Connection,
    };
    DbError::new(kind, error.to_string())
}

pub(crate) fn query_error(error: wire::Error) -> DbError {
    match error {
        wire::Error::Server(server) => {
            let mut err = DbError::new(DbErrorKind::Query, server.message);
            err.sqlstate = Some(server.state);
            err.errno = Some(i64::from(server.code));
            err
        }
        wire::Error::Convert(message) => DbError::internal(message),
        other => DbError::new(DbErrorKind::Connection, other.to_string()),
    }
}

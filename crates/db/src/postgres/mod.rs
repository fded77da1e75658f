//! Postgres on tokio-postgres. This first part opens connections (host/port
//! or a `postgres://` URL, every `sslMode`, `connectTimeoutMs`), tells
//! authentication failures from unreachable servers, and reports the server
//! version. Streaming queries, cancellation and metadata come next (issue 4);
//! until then those calls answer `NotSupported`.

mod tls;

use std::time::Duration;

use dbbridge_protocol::connection::{ServerConnection, SslMode};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::{DbError, DbErrorKind};

/// Used when the caller gives no `connectTimeoutMs`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct PgConnection {
    client: Client,
    /// Drives the socket; ends when the client is dropped or the server goes.
    task: JoinHandle<()>,
    version: String,
    database: String,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.task.abort();
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
        let tls = tls::client_config(mode, params.ssl_root_cert.as_deref())?;
        let connect = async {
            match tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    Ok::<_, tokio_postgres::Error>((client, tokio::spawn(drive(connection))))
                }
                Some(tls) => {
                    let (client, connection) = config
                        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                        .await?;
                    Ok((client, tokio::spawn(drive(connection))))
                }
            }
        };
        let (client, task) =
            match tokio::time::timeout(timeout + Duration::from_millis(500), connect).await {
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
            client,
            task,
            version: String::new(),
            database: String::new(),
        };
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

    /// The text values of the first row of a simple query.
    async fn single_row(&self, sql: &str) -> Result<Vec<String>, DbError> {
        let messages = self.client.simple_query(sql).await.map_err(query_error)?;
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

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::info!(%error, "postgres connection ended");
    }
}

fn config(params: &ServerConnection) -> Result<Config, DbError> {
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

fn query_error(error: tokio_postgres::Error) -> DbError {
    match error.as_db_error() {
        Some(db) => {
            let mut err = DbError::new(DbErrorKind::Query, db.message().to_string());
            err.sqlstate = Some(db.code().code().to_string());
            err
        }
        None if error.is_closed() => DbError::new(
            DbErrorKind::Connection,
            "the connection to the server was lost",
        ),
        None => DbError::new(DbErrorKind::Connection, error.to_string()),
    }
}

//! The connectors' error: a stable kind plus what the engine said. The bridge
//! maps kinds to protocol error codes; this crate knows no codes.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The server could not be reached, refused, or the connection broke.
    Connection,
    /// The server refused the credentials.
    Auth,
    /// The caller's input is wrong (a missing file, an unknown schema or table).
    InvalidInput,
    /// The engine rejected or failed a statement.
    Query,
    /// The query was cancelled on request.
    Cancelled,
    /// The engine does not offer this.
    NotSupported,
    /// A bug or an impossible state in the connector.
    Internal,
}

/// An error from a connector, with the engine's own codes where it gives them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
    /// Postgres/MySQL SQLSTATE, or the SQLite extended result code.
    pub sqlstate: Option<String>,
    /// MySQL error number, or the SQLite extended result code.
    pub errno: Option<i64>,
    /// 1-based character position in the SQL text the error refers to.
    pub position: Option<u32>,
}

impl DbError {
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
            sqlstate: None,
            errno: None,
            position: None,
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        DbError::new(DbErrorKind::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        DbError::new(DbErrorKind::Internal, message)
    }

    pub fn cancelled() -> Self {
        DbError::new(DbErrorKind::Cancelled, "the query was cancelled")
    }

    /// The worker behind a connection has gone (it panicked or was closed).
    pub fn worker_gone() -> Self {
        DbError::new(
            DbErrorKind::Connection,
            "the connection's worker has stopped",
        )
    }
}

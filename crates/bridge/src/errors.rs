//! Connector errors at the RPC edge: a stable code, the engine's message, and
//! its codes in `details`.

use dbbridge_db::{DbError, DbErrorKind};
use dbbridge_protocol::{ErrorCode, RpcError};
use serde_json::{Map, Value};

pub fn db_error(error: DbError) -> RpcError {
    let code = match error.kind {
        DbErrorKind::Connection => ErrorCode::ConnectionFailed,
        DbErrorKind::Auth => ErrorCode::AuthFailed,
        DbErrorKind::InvalidInput => ErrorCode::InvalidParams,
        DbErrorKind::Query => ErrorCode::QueryFailed,
        DbErrorKind::Cancelled => ErrorCode::QueryCancelled,
        DbErrorKind::NotSupported => ErrorCode::NotSupported,
        DbErrorKind::Internal => ErrorCode::Internal,
    };
    let mut details = Map::new();
    if let Some(sqlstate) = error.sqlstate {
        details.insert("sqlstate".into(), Value::String(sqlstate));
    }
    if let Some(errno) = error.errno {
        details.insert("errno".into(), Value::from(errno));
    }
    if let Some(position) = error.position {
        details.insert("position".into(), Value::from(position));
    }
    let rpc = RpcError::new(code, error.message);
    if details.is_empty() {
        rpc
    } else {
        rpc.with_details(Value::Object(details))
    }
}

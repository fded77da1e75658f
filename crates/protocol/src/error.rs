//! Stable error codes and the error object of the envelope.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Stable machine codes. Front ends switch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    ConnectionFailed,
    AuthFailed,
    SessionNotFound,
    SessionBusy,
    QueryFailed,
    QueryCancelled,
    QueryTimeout,
    NotSupported,
    SecretNotFound,
    SecretStoreUnavailable,
    BackupNotFound,
    BackupFailed,
    RestoreFailed,
    ToolNotFound,
    ToolVersionMismatch,
    // An export job could not write its file (disk, permissions, a format's limit).
    // (A plain comment: a doc comment would split the enum's JSON schema.)
    ExportFailed,
    ShuttingDown,
    Internal,
}

impl ErrorCode {
    /// The JSON-RPC 2.0 numeric code used when the error must be sent as a plain
    /// JSON-RPC error (no recoverable id).
    pub fn jsonrpc_code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            _ => -32603,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::MethodNotFound => "METHOD_NOT_FOUND",
            ErrorCode::InvalidParams => "INVALID_PARAMS",
            ErrorCode::ConnectionFailed => "CONNECTION_FAILED",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionBusy => "SESSION_BUSY",
            ErrorCode::QueryFailed => "QUERY_FAILED",
            ErrorCode::QueryCancelled => "QUERY_CANCELLED",
            ErrorCode::QueryTimeout => "QUERY_TIMEOUT",
            ErrorCode::NotSupported => "NOT_SUPPORTED",
            ErrorCode::SecretNotFound => "SECRET_NOT_FOUND",
            ErrorCode::SecretStoreUnavailable => "SECRET_STORE_UNAVAILABLE",
            ErrorCode::BackupNotFound => "BACKUP_NOT_FOUND",
            ErrorCode::BackupFailed => "BACKUP_FAILED",
            ErrorCode::RestoreFailed => "RESTORE_FAILED",
            ErrorCode::ToolNotFound => "TOOL_NOT_FOUND",
            ErrorCode::ToolVersionMismatch => "TOOL_VERSION_MISMATCH",
            ErrorCode::ExportFailed => "EXPORT_FAILED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` of the envelope: a stable code, a human message, optional details
/// (`sqlstate`, `errno`, `position`, `field`, ...). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub details: Option<serde_json::Value>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_supported(method: &str) -> Self {
        RpcError::new(
            ErrorCode::NotSupported,
            format!("{method} is not implemented by this bridge yet"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        RpcError::new(ErrorCode::Internal, message)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

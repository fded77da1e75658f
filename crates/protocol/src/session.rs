//! The `session.*` methods and the `session.closed` event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::connection::{ConnectionParams, EngineKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOpenParams {
    pub connection: ConnectionParams,
    /// Close the session after this long without activity (default 30 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOpenResult {
    pub session_id: String,
    pub kind: EngineKind,
    pub server_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionIdParams {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub kind: EngineKind,
    /// The database name, or the file path for SQLite.
    pub database: String,
    /// RFC 3339 UTC.
    pub opened_at: String,
    /// RFC 3339 UTC.
    pub last_activity_at: String,
    pub running_query_id: Option<String>,
    /// The running query's state when it has a window: `running`, or
    /// `paused` (waiting for `query.fetch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub query_state: Option<String>,
    /// Rows the running query has sent, when it has a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub rows_sent: Option<u64>,
    /// Whether a transaction is open on the session's connection, where the engine tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub in_transaction: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SessionClosedReason {
    Idle,
    ConnectionLost,
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionClosedEvent {
    pub session_id: String,
    pub reason: SessionClosedReason,
}

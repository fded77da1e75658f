//! The `query.*` methods, their events, and the value model of result cells.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ts_rs::TS;

use crate::RpcError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryRunParams {
    pub session_id: String,
    /// One or more statements; each produces one result set, in order.
    pub sql: String,
    /// Positional parameters. Every statement of the script that has
    /// placeholders takes them from the start of this list: on Postgres `$n`
    /// is `params[n-1]`; on MySQL/MariaDB and SQLite the `?`s take them in
    /// order. Without `params` the script reaches the server untouched. On
    /// Postgres the `$n` of a `PREPARE` and of a `CREATE FUNCTION|PROCEDURE`
    /// body belong to the server and are never bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub params: Option<Vec<serde_json::Value>>,
    /// Rows per `query.result` batch (default 500; batches are also cut at ~1 MiB or 100 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub batch_size: Option<u32>,
    /// Stop reading a result set after this many rows (`truncated: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub max_rows: Option<u64>,
    /// Cancel the query after this long (`status: "timeout"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub timeout_ms: Option<u64>,
    /// The most rows the bridge may send before the client asks for more
    /// with `query.fetch`. At the window's edge the query pauses (one
    /// `query.paused`), its read stopped; without `window` it streams to
    /// the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(type = "number", optional)]
    pub window: Option<u64>,
}

/// `query.fetch`: grant a windowed query `rows` more rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryFetchParams {
    pub session_id: String,
    pub query_id: String,
    #[ts(type = "number")]
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryFetchResult {
    /// Rows the query may now send before it pauses again (this grant and
    /// any left of earlier ones).
    #[ts(type = "number")]
    pub granted: u64,
    /// Rows read from the database and held by the bridge, waiting to be sent.
    #[ts(type = "number")]
    pub buffered: u64,
}

/// `query.paused`: a windowed query used its window up and waits for `query.fetch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryPausedEvent {
    pub session_id: String,
    pub query_id: String,
    /// Rows sent so far, over all result sets.
    #[ts(type = "number")]
    pub rows_sent: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryRunResult {
    pub query_id: String,
}

/// How a column's cells are encoded in JSON (see the value table of PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Bool,
    /// Fits in 32 bits: a JSON number.
    Int,
    /// 64-bit or unsigned 64-bit: a string of digits.
    Bigint,
    /// A number; `"NaN"`, `"Infinity"`, `"-Infinity"` as strings.
    Float,
    /// Exact, as a string.
    Decimal,
    Text,
    Uuid,
    Enum,
    /// Base64.
    Bytes,
    /// The JSON text exactly as stored, as a string.
    Json,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Array,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    pub name: String,
    /// The database's own type name (`int8`, `varchar(20)`, `numeric(12,2)`); empty when it has none.
    pub db_type: String,
    pub kind: ValueKind,
}

/// One batch of rows. `rows` is kept as raw JSON so the bridge can pass the
/// text it encoded straight from the driver without building a value per cell.
#[derive(Debug, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryResultEvent {
    pub session_id: String,
    pub query_id: String,
    pub result_index: u32,
    pub batch_index: u32,
    /// Present on the first batch of each result set, also when it has no rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub columns: Option<Vec<ColumnInfo>>,
    /// Positional rows: an array of arrays of cell values.
    #[ts(type = "Array<Array<CellValue>>")]
    #[schemars(with = "Vec<Vec<serde_json::Value>>")]
    pub rows: Box<RawValue>,
}

/// A cell as it travels: see `ValueKind` for which form each kind takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(untagged)]
pub enum CellValue {
    Null(()),
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<CellValue>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueryStatus {
    Completed,
    Failed,
    Cancelled,
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultSummary {
    pub result_index: u32,
    /// The statement's command word (`SELECT`, `INSERT`, `CREATE`, ...).
    pub command: String,
    /// Rows sent for this result set.
    #[ts(type = "number")]
    pub row_count: u64,
    /// Rows changed by a data-modifying statement; null for statements that return rows.
    #[ts(type = "number | null")]
    pub affected_rows: Option<u64>,
    pub truncated: bool,
    /// The last inserted id, where the engine reports one (MySQL, SQLite), as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_insert_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryDoneEvent {
    pub session_id: String,
    pub query_id: String,
    pub status: QueryStatus,
    pub results: Vec<ResultSummary>,
    #[ts(type = "number")]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<RpcError>,
}

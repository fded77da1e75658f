//! The dbbridge wire contract: the JSON-RPC envelope, stable error codes, and
//! typed params, results and events for every method in `shared/PROTOCOL.md`.
//!
//! This crate is serde types only: it does no I/O. The bridge serves these
//! types, `cargo xtask codegen` turns them into TypeScript and OpenRPC, and the
//! connectors in `dbbridge-db` fill the data shapes (value kinds, metadata).

pub mod apidoc;
pub mod backup;
pub mod bridge;
pub mod codegen;
pub mod connection;
pub mod error;
pub mod export;
#[doc(hidden)]
pub mod fuzz;
pub mod message;
pub mod metadata;
pub mod query;
pub mod secret;
pub mod session;
pub mod surface;

pub use error::{ErrorCode, RpcError};
pub use message::{Envelope, Notification, RequestId};

use serde::{Serialize, de::DeserializeOwned};

/// A request/response method of the contract.
pub trait Method {
    /// The wire name, e.g. `query.run`.
    const NAME: &'static str;
    type Params: DeserializeOwned + Serialize + Send + 'static;
    type Result: DeserializeOwned + Serialize + Send + 'static;
}

/// A server-to-client notification of the contract.
pub trait Event {
    /// The wire name, e.g. `query.result`.
    const NAME: &'static str;
    type Params: Serialize + Send + 'static;
}

/// Declares marker types for methods and events and the one list codegen walks.
macro_rules! contract {
    (
        methods { $( $mty:ident = $mname:literal ($params:ty) -> $result:ty, $mdoc:literal; )* }
        events { $( $ety:ident = $ename:literal ($eparams:ty), $edoc:literal; )* }
    ) => {
        /// Marker types, one per method.
        pub mod methods {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = $mdoc]
                #[derive(Debug)]
                pub enum $mty {}
                impl $crate::Method for $mty {
                    const NAME: &'static str = $mname;
                    type Params = $params;
                    type Result = $result;
                }
            )*
        }
        /// Marker types, one per event.
        pub mod events {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = $edoc]
                #[derive(Debug)]
                pub enum $ety {}
                impl $crate::Event for $ety {
                    const NAME: &'static str = $ename;
                    type Params = $eparams;
                }
            )*
        }
        /// Every method of the contract, in PROTOCOL.md order.
        pub fn method_infos() -> Vec<codegen::MethodInfo> {
            vec![ $( codegen::MethodInfo::of::<methods::$mty>($mdoc), )* ]
        }
        /// Every event of the contract, in PROTOCOL.md order.
        pub fn event_infos() -> Vec<codegen::EventInfo> {
            vec![ $( codegen::EventInfo::of::<events::$ety>($edoc), )* ]
        }
    };
}

use backup::*;
use bridge::*;
use connection::*;
use export::*;
use metadata::*;
use query::*;
use secret::*;
use session::*;

contract! {
    methods {
        ConnectionTest = "connection.test" (ConnectionTestParams) -> ConnectionTestResult, "Open a connection once, report the server version and round-trip latency, close it.";
        ConnectionSave = "connection.save" (ConnectionSaveParams) -> ConnectionSaveResult, "Save a named connection; a plain password moves into the secret store.";
        ConnectionList = "connection.list" (Empty) -> Vec<SavedConnection>, "List saved connections (never a password).";
        ConnectionDelete = "connection.delete" (ConnectionDeleteParams) -> Empty, "Delete a saved connection and its stored password.";
        SessionOpen = "session.open" (SessionOpenParams) -> SessionOpenResult, "Open a session: one dedicated database connection.";
        SessionClose = "session.close" (SessionIdParams) -> Empty, "Close a session, cancelling its running query first.";
        SessionList = "session.list" (Empty) -> Vec<SessionInfo>, "List open sessions.";
        QueryRun = "query.run" (QueryRunParams) -> QueryRunResult, "Start a query; answered at once, results follow as query.result / query.done events.";
        QueryCancel = "query.cancel" (SessionIdParams) -> CancelResult, "Cancel the session's running query.";
        QueryFetch = "query.fetch" (QueryFetchParams) -> QueryFetchResult, "Grant a windowed query more rows; answered at once.";
        MetadataListSchemas = "metadata.listSchemas" (SessionIdParams) -> Vec<SchemaInfo>, "List schemas (SQLite: main and attached databases).";
        MetadataListTables = "metadata.listTables" (ListTablesParams) -> Vec<TableInfo>, "List tables and views, optionally of one schema.";
        MetadataDescribeTable = "metadata.describeTable" (DescribeTableParams) -> TableDescription, "Describe a table: columns, primary key, foreign keys, indexes.";
        SecretStore = "secret.store" (SecretStoreParams) -> SecretStoreResult, "Store a secret value under a key.";
        SecretGet = "secret.get" (SecretKeyParams) -> SecretGetResult, "Read a stored secret value.";
        SecretDelete = "secret.delete" (SecretKeyParams) -> Empty, "Delete a stored secret.";
        SecretList = "secret.list" (Empty) -> Vec<String>, "List the keys of stored secrets.";
        SecretUnlock = "secret.unlock" (SecretUnlockParams) -> Empty, "Unlock the encrypted-file store with its passphrase; on a store that is open, re-encrypt it under the passphrase from now on.";
        BackupStart = "backup.start" (BackupStartParams) -> BackupStartResult, "Start a backup job.";
        BackupList = "backup.list" (BackupListParams) -> Vec<BackupInfo>, "List backups in the catalog.";
        BackupCancel = "backup.cancel" (BackupIdParams) -> CancelResult, "Cancel a running backup.";
        BackupDelete = "backup.delete" (BackupIdParams) -> Empty, "Delete a backup and its file.";
        BackupRestore = "backup.restore" (BackupRestoreParams) -> BackupRestoreResult, "Restore a backup into its source or another target.";
        ExportStart = "export.start" (ExportStartParams) -> ExportStartResult, "Start an export job on its own connection.";
        ExportCancel = "export.cancel" (ExportIdParams) -> CancelResult, "Cancel a running export.";
        HealthPing = "health.ping" (Empty) -> HealthInfo, "Liveness and resource figures of the bridge process.";
        BridgeShutdown = "bridge.shutdown" (Empty) -> Empty, "Answer, then shut down gracefully.";
        RpcDiscover = "rpc.discover" (Empty) -> serde_json::Value, "The OpenRPC document of every method and event.";
    }
    events {
        SessionClosed = "session.closed" (SessionClosedEvent), "A session was closed by the bridge (idle, connection lost, shutdown).";
        QueryResultBatch = "query.result" (QueryResultEvent), "One batch of rows of one result set.";
        QueryDone = "query.done" (QueryDoneEvent), "The last event of a query.";
        QueryPaused = "query.paused" (QueryPausedEvent), "A windowed query used its window up; query.fetch resumes it.";
        BackupProgress = "backup.progress" (BackupProgressEvent), "Progress of a backup job.";
        BackupDone = "backup.done" (BackupDoneEvent), "A backup job finished.";
        RestoreProgress = "backup.restore.progress" (RestoreProgressEvent), "Progress of a restore job.";
        RestoreDone = "backup.restore.done" (RestoreDoneEvent), "A restore job finished.";
        ExportProgress = "export.progress" (ExportProgressEvent), "Progress of an export job.";
        ExportDone = "export.done" (ExportDoneEvent), "An export job finished.";
    }
}

/// `{}`: the params of methods that take none, and the data of methods that return nothing.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    ts_rs::TS,
    schemars::JsonSchema,
)]
pub struct Empty {}

/// `{cancelled}`: whether something was running and is now being cancelled.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema,
)]
pub struct CancelResult {
    pub cancelled: bool,
}

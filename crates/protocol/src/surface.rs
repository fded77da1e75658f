//! What each method may answer besides its data, and the events it starts:
//! the part of the contract that types alone do not say. `openrpc()` puts it
//! under `x-error-codes` / `x-events` of each method, and `docs/api.md` shows it.

use crate::ErrorCode::{self, *};

/// Codes any method may answer: bad params, a bridge shutting down, a bug.
pub const ANY_METHOD: &[ErrorCode] = &[InvalidParams, ShuttingDown, Internal];

const OPEN: &[ErrorCode] = &[
    ConnectionFailed,
    AuthFailed,
    SecretNotFound,
    SecretStoreUnavailable,
];

/// `(events, error codes)` of a method, beyond [`ANY_METHOD`]. Error codes a
/// job or query reports in its `done` event are listed too: a front end
/// handles them in the same switch.
pub fn method_surface(method: &str) -> (&'static [&'static str], Vec<ErrorCode>) {
    let (events, codes): (&[&str], &[ErrorCode]) = match method {
        "connection.test" => (&[], OPEN),
        "connection.save" | "connection.delete" => (&[], &[SecretStoreUnavailable]),
        "session.open" => (&["session.closed"], OPEN),
        "session.close" | "query.cancel" | "metadata.listSchemas" => (&[], &[SessionNotFound]),
        "query.run" => (
            &["query.result", "query.paused", "query.done"],
            &[
                SessionNotFound,
                SessionBusy,
                QueryFailed,
                QueryCancelled,
                QueryTimeout,
            ],
        ),
        "query.fetch" => (&["query.result", "query.paused"], &[SessionNotFound]),
        "metadata.listTables" | "metadata.describeTable" => {
            (&[], &[SessionNotFound, SessionBusy, QueryFailed])
        }
        "secret.store" | "secret.list" => (&[], &[SecretStoreUnavailable]),
        "secret.get" | "secret.delete" => (&[], &[SecretNotFound, SecretStoreUnavailable]),
        "secret.unlock" => (&[], &[AuthFailed, SecretStoreUnavailable]),
        "backup.start" => (
            &["backup.progress", "backup.done"],
            &[
                ConnectionFailed,
                AuthFailed,
                SecretNotFound,
                SecretStoreUnavailable,
                ToolNotFound,
                ToolVersionMismatch,
                BackupFailed,
            ],
        ),
        "backup.delete" => (&[], &[BackupNotFound]),
        "backup.restore" => (
            &["backup.restore.progress", "backup.restore.done"],
            &[
                BackupNotFound,
                ConnectionFailed,
                AuthFailed,
                ToolNotFound,
                ToolVersionMismatch,
                RestoreFailed,
            ],
        ),
        "export.start" => (
            &["export.progress", "export.done"],
            &[
                SessionNotFound,
                ConnectionFailed,
                QueryFailed,
                NotSupported,
                ExportFailed,
            ],
        ),
        _ => (&[], &[]),
    };
    (events, codes.to_vec())
}

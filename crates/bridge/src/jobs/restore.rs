//! The restore job: the backup's checksum is verified before anything is
//! touched, then the backup replaces the target. SQLite restores into a
//! temporary file beside the target and renames it over the target, and is
//! refused while a session has the target open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dbbridge_db::sqlite::backup::{self as sqlite_backup, CopyError, Progress};
use dbbridge_protocol::backup::{JobStatus, RestoreDoneEvent};
use dbbridge_protocol::connection::ConnectionSpec;
use dbbridge_protocol::events::RestoreDone;
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::JobManager;
use super::tool::{self, Reporter};
use crate::catalog::Catalog;
use crate::client::Client;

pub fn backup_not_found(id: &str) -> RpcError {
    RpcError::new(ErrorCode::BackupNotFound, format!("no backup {id:?}"))
        .with_details(serde_json::json!({"field": "backupId"}))
}

/// Checks the request and starts the restore; returns the restore's id.
/// `open_paths` are the SQLite files that sessions have open now.
pub async fn start(
    jobs: &Arc<JobManager>,
    catalog: &Arc<Catalog>,
    client: Client,
    backup_id: &str,
    target: Option<ConnectionSpec>,
    open_paths: Vec<PathBuf>,
    dirs: &super::ToolDirs,
) -> Result<String, RpcError> {
    let row = catalog
        .backup(backup_id)
        .await?
        .ok_or_else(|| backup_not_found(backup_id))?;
    if row.status != "completed" {
        return Err(RpcError::new(
            ErrorCode::RestoreFailed,
            format!("backup {backup_id} is {}, not completed", row.status),
        ));
    }
    let target = match target {
        Some(spec) => spec,
        None => serde_json::from_str(&row.connection).map_err(|e| {
            RpcError::internal(format!("backup {backup_id}'s source is unreadable: {e}"))
        })?,
    };
    let sqlite = match (row.engine.as_str(), target) {
        ("sqlite", ConnectionSpec::Sqlite(sqlite)) => sqlite,
        ("postgres", ConnectionSpec::Postgres(server)) => {
            let file = PathBuf::from(&row.path);
            let tool_version = row.tool_version.clone().unwrap_or_default();
            let sha256 = row.sha256.clone().unwrap_or_default();
            return super::pg_restore::start(
                jobs,
                client,
                backup_id,
                row.format == "custom",
                file,
                sha256,
                &tool_version,
                &server,
                &dirs.postgres,
            )
            .await;
        }
        ("mysql", ConnectionSpec::Mysql(server)) => {
            return super::my_backup::start_restore(
                jobs,
                &dirs.mysql,
                client,
                backup_id,
                PathBuf::from(&row.path),
                row.sha256.clone().unwrap_or_default(),
                &server,
            )
            .await;
        }
        (engine, _) => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("a {engine} backup restores into a {engine} database only"),
            )
            .with_details(serde_json::json!({"field": "target"})));
        }
    };
    let target = PathBuf::from(&sqlite.path);
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if open_paths
        .iter()
        .any(|p| canonical(p) == canonical(&target))
    {
        return Err(RpcError::new(
            ErrorCode::RestoreFailed,
            format!(
                "{} is open in a session; close its sessions before restoring over it",
                target.display()
            ),
        )
        .with_details(serde_json::json!({"reason": "targetInUse"})));
    }
    let id = crate::ids::new_id("r");
    let job = SqliteRestore {
        id: id.clone(),
        backup_id: backup_id.to_string(),
        file: PathBuf::from(&row.path),
        sha256: row.sha256.unwrap_or_default(),
        target,
        client,
        jobs: jobs.clone(),
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct SqliteRestore {
    id: String,
    backup_id: String,
    file: PathBuf,
    sha256: String,
    target: PathBuf,
    client: Client,
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl SqliteRestore {
    async fn run(self, cancel: CancellationToken) {
        run_restore(
            &self.jobs,
            &self.id,
            &self.backup_id,
            &self.client,
            async |reporter| self.restore(&cancel, reporter).await,
        )
        .await;
    }

    /// `Err(None)` when cancelled.
    async fn restore(
        &self,
        cancel: &CancellationToken,
        reporter: &mut Reporter,
    ) -> Result<(), Option<RpcError>> {
        let failed = |what: String| Some(RpcError::new(ErrorCode::RestoreFailed, what));
        tool::verify(&self.file, &self.sha256, reporter).await?;
        let (tx, mut rx) = watch::channel(None::<Progress>);
        let copy = {
            let (file, target, cancel) = (self.file.clone(), self.target.clone(), cancel.clone());
            tokio::task::spawn_blocking(move || {
                sqlite_backup::restore(&file, &target, |p| {
                    tx.send_replace(Some(p));
                    !cancel.is_cancelled()
                })
            })
        };
        tokio::pin!(copy);
        let copied = loop {
            tokio::select! {
                copied = &mut copy => break copied,
                Ok(()) = rx.changed() => {
                    let p = *rx.borrow_and_update();
                    if let Some(p) = p {
                        let percent = 100.0 * p.pages_done as f64 / p.pages_total.max(1) as f64;
                        reporter.progress("restoring", Some(percent), 0, None).await;
                    }
                }
            }
        };
        match copied {
            Ok(Ok(())) => Ok(()),
            Ok(Err(CopyError::Cancelled)) => Err(None),
            Ok(Err(CopyError::Failed(error))) => Err(failed(error.message)),
            Err(join) => Err(failed(format!("the restore task failed: {join}"))),
        }
    }
}

/// A restore's run, the same for every engine: the engine's `restore`,
/// then the last progress and `backup.restore.done`.
pub(super) async fn run_restore(
    jobs: &JobManager,
    id: &str,
    backup_id: &str,
    client: &Client,
    restore: impl AsyncFnOnce(&mut Reporter) -> Result<(), Option<RpcError>>,
) {
    let started = Instant::now();
    let mut reporter = Reporter::restore(id, backup_id, client);
    let result = restore(&mut reporter).await;
    jobs.release(id);
    report_end(client, id, backup_id, result, started, &mut reporter).await;
}

/// Sends a restore's last progress and its one `backup.restore.done`;
/// `Err(None)` is a cancel.
async fn report_end(
    client: &Client,
    id: &str,
    backup_id: &str,
    result: Result<(), Option<RpcError>>,
    started: Instant,
    reporter: &mut Reporter,
) {
    let (status, error) = match result {
        Ok(()) => {
            reporter.finished(0).await;
            (JobStatus::Completed, None)
        }
        Err(None) => (JobStatus::Cancelled, None),
        Err(Some(error)) => (JobStatus::Failed, Some(error)),
    };
    tracing::info!(restore = %id, backup = %backup_id, ?status, "restore finished");
    client
        .notify::<RestoreDone>(&RestoreDoneEvent {
            restore_id: id.to_string(),
            backup_id: backup_id.to_string(),
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        })
        .await;
}

//! The backup job: a snapshot of the source written under a temporary name,
//! checksummed, renamed into place, recorded in the catalog, with progress
//! events to the client that started it and exactly one `backup.done`.
//! SQLite goes through its online backup API (`dbbridge_db::sqlite::backup`);
//! Postgres and MySQL/MariaDB, whose backups are their own tools', are not
//! built yet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dbbridge_db::sqlite::backup::{self as sqlite_backup, CopyError, Progress};
use dbbridge_protocol::backup::{BackupDoneEvent, BackupProgressEvent, JobStatus};
use dbbridge_protocol::connection::ConnectionSpec;
use dbbridge_protocol::events::{BackupDone, BackupProgress};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{JobManager, Throttle};
use crate::catalog::{BackupRow, Catalog};
use crate::client::Client;

/// What `backup.start` asks for, with the connection already resolved.
pub struct BackupRequest {
    pub spec: ConnectionSpec,
    pub connection_id: Option<String>,
    pub destination: Option<String>,
    pub overwrite: bool,
}

/// Checks the request, records the backup as running, and starts its job;
/// returns the backup's id.
pub async fn start(
    jobs: &Arc<JobManager>,
    catalog: &Arc<Catalog>,
    data_dir: &Path,
    client: Client,
    request: BackupRequest,
) -> Result<String, RpcError> {
    let ConnectionSpec::Sqlite(sqlite) = &request.spec else {
        return Err(RpcError::new(
            ErrorCode::NotSupported,
            "backups of Postgres and MySQL/MariaDB are not built yet (SQLite backups are)",
        ));
    };
    let source = PathBuf::from(&sqlite.path);
    if !source.is_file() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("no SQLite database at {}", source.display()),
        )
        .with_details(serde_json::json!({"field": "connection.path"})));
    }
    let id = crate::ids::new_id("b");
    let started = time::OffsetDateTime::now_utc();
    let dest = match &request.destination {
        Some(path) => PathBuf::from(path),
        None => {
            let stem = source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sqlite".into());
            let stamp = started
                .format(time::macros::format_description!(
                    "[year][month][day]T[hour][minute][second]Z"
                ))
                .unwrap_or_default();
            data_dir
                .join("backups")
                .join(format!("{stem}-{stamp}-{}.sqlite", &id[2..10]))
        }
    };
    if dest.exists() && !request.overwrite {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "{} exists; set options.overwrite to replace it",
                dest.display()
            ),
        )
        .with_details(serde_json::json!({"field": "destination"})));
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            RpcError::new(
                ErrorCode::BackupFailed,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
    }
    let summary = serde_json::json!({"kind": "sqlite", "path": sqlite.path});
    catalog
        .insert_backup(BackupRow {
            id: id.clone(),
            engine: "sqlite".into(),
            connection_id: request.connection_id.clone(),
            connection: summary.to_string(),
            database: "main".into(),
            path: dest.to_string_lossy().into_owned(),
            format: "sqlite".into(),
            size_bytes: 0,
            sha256: None,
            status: "running".into(),
            tool_version: Some(format!("SQLite {}", rusqlite::version())),
            server_version: None,
            started_at: started
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            finished_at: None,
            error: None,
        })
        .await?;
    let job = SqliteBackup {
        id: id.clone(),
        source,
        dest,
        catalog: catalog.clone(),
        client,
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct SqliteBackup {
    id: String,
    source: PathBuf,
    dest: PathBuf,
    catalog: Arc<Catalog>,
    client: Client,
}

impl SqliteBackup {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let part = sqlite_backup::sibling(&self.dest, ".part");
        let mut throttle = Throttle::default();
        self.progress(&mut throttle, "preparing", Some(0.0), 0)
            .await;
        let (tx, mut rx) = watch::channel(None::<Progress>);
        let copy = {
            let (source, part, cancel) = (self.source.clone(), part.clone(), cancel.clone());
            let _ = std::fs::remove_file(&part);
            tokio::task::spawn_blocking(move || {
                sqlite_backup::backup(&source, &part, |p| {
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
                        let bytes = std::fs::metadata(&part).map_or(0, |m| m.len());
                        self.progress(&mut throttle, "dumping", Some(percent), bytes).await;
                    }
                }
            }
        };
        let outcome = match copied {
            Ok(Ok(())) => self.finalize(&part, &mut throttle).await,
            Ok(Err(CopyError::Cancelled)) => Err((JobStatus::Cancelled, None)),
            Ok(Err(CopyError::Failed(error))) => Err((
                JobStatus::Failed,
                Some(RpcError::new(ErrorCode::BackupFailed, error.message)),
            )),
            Err(join) => Err((
                JobStatus::Failed,
                Some(RpcError::internal(format!(
                    "the backup task failed: {join}"
                ))),
            )),
        };
        let (status, size, sha256, error) = match outcome {
            Ok((size, sha256)) => (JobStatus::Completed, size, Some(sha256), None),
            Err((status, error)) => {
                let _ = std::fs::remove_file(&part);
                (status, 0, None, error)
            }
        };
        let status_text = match status {
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
            _ => "failed",
        };
        if let Err(e) = self
            .catalog
            .finish_backup(
                &self.id,
                status_text,
                size,
                sha256.clone(),
                error.as_ref().map(|e| e.message.clone()),
            )
            .await
        {
            tracing::error!(error = %e.message, backup = %self.id, "recording a backup's end failed");
        }
        tracing::info!(backup = %self.id, status = status_text, size, "backup finished");
        self.client
            .notify::<BackupDone>(&BackupDoneEvent {
                backup_id: self.id.clone(),
                status,
                path: self.dest.to_string_lossy().into_owned(),
                size_bytes: size,
                sha256,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            })
            .await;
    }

    /// Checksums the finished copy and renames it into place.
    async fn finalize(
        &self,
        part: &Path,
        throttle: &mut Throttle,
    ) -> Result<(u64, String), (JobStatus, Option<RpcError>)> {
        let size = std::fs::metadata(part).map_or(0, |m| m.len());
        self.progress(throttle, "finalizing", Some(99.9), size)
            .await;
        let failed = |what: String| {
            (
                JobStatus::Failed,
                Some(RpcError::new(ErrorCode::BackupFailed, what)),
            )
        };
        let sha256 = super::sha256_file(part.to_path_buf())
            .await
            .map_err(|e| failed(format!("reading the copy back failed: {e}")))?;
        std::fs::rename(part, &self.dest)
            .map_err(|e| failed(format!("could not move the copy into place: {e}")))?;
        let percent = throttle.done();
        self.send_progress("finalizing", Some(percent), size).await;
        Ok((size, sha256))
    }

    async fn progress(
        &self,
        throttle: &mut Throttle,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
    ) {
        if let Some(percent) = throttle.due(phase, percent) {
            self.send_progress(phase, percent, bytes).await;
        }
    }

    async fn send_progress(&self, phase: &str, percent: Option<f64>, bytes: u64) {
        self.client
            .notify::<BackupProgress>(&BackupProgressEvent {
                backup_id: self.id.clone(),
                phase: phase.to_string(),
                percent,
                bytes_written: bytes,
                current_object: None,
            })
            .await;
    }
}

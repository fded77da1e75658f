//! The backup job: a snapshot of the source written under a temporary name,
//! checksummed, renamed into place, recorded in the catalog, with progress
//! events to the client that started it and exactly one `backup.done`.
//! SQLite goes through its online backup API (`dbbridge_db::sqlite::backup`);
//! Postgres (`pg_backup.rs`) and MySQL/MariaDB (`my_backup.rs`) through
//! their own tools.

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
    /// `--pg-bin-dir`.
    pub pg_bin_dirs: Vec<PathBuf>,
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
    let sqlite = match &request.spec {
        ConnectionSpec::Sqlite(sqlite) => sqlite,
        ConnectionSpec::Postgres(server) => {
            return super::pg_backup::start(
                jobs,
                catalog,
                data_dir,
                &request.pg_bin_dirs,
                client,
                server,
                request.connection_id.clone(),
                request.destination.clone(),
                request.overwrite,
            )
            .await;
        }
        ConnectionSpec::Mysql(server) => {
            return super::my_backup::start_backup(
                jobs,
                catalog,
                data_dir,
                client,
                server,
                request.connection_id.clone(),
                request.destination.clone(),
                request.overwrite,
            )
            .await;
        }
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
            default_destination(data_dir, &stem, &id, "sqlite")
        }
    };
    check_destination(&dest, request.overwrite)?;
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
        if outcome.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        record_end(
            &self.catalog,
            &self.client,
            &self.id,
            &self.dest,
            outcome,
            started,
        )
        .await;
    }

    async fn finalize(&self, part: &Path, throttle: &mut Throttle) -> Outcome {
        let size = std::fs::metadata(part).map_or(0, |m| m.len());
        self.progress(throttle, "finalizing", Some(99.9), size)
            .await;
        let done = finalize(part, &self.dest).await?;
        let percent = throttle.done();
        self.send_progress("finalizing", Some(percent), done.0)
            .await;
        Ok(done)
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

/// How a backup ended: its size and checksum, or a status and an error.
pub(super) type Outcome = Result<(u64, String), (JobStatus, Option<RpcError>)>;

/// Checksums a finished copy and renames it into place.
pub(super) async fn finalize(part: &Path, dest: &Path) -> Outcome {
    let failed = |what: String| {
        (
            JobStatus::Failed,
            Some(RpcError::new(ErrorCode::BackupFailed, what)),
        )
    };
    let size = std::fs::metadata(part).map_or(0, |m| m.len());
    let sha256 = super::sha256_file(part.to_path_buf())
        .await
        .map_err(|e| failed(format!("reading the copy back failed: {e}")))?;
    std::fs::rename(part, dest)
        .map_err(|e| failed(format!("could not move the copy into place: {e}")))?;
    Ok((size, sha256))
}

/// Records how a backup ended in the catalog and sends its one `backup.done`.
pub(super) async fn record_end(
    catalog: &Catalog,
    client: &Client,
    id: &str,
    dest: &Path,
    outcome: Outcome,
    started: Instant,
) {
    let (status, size, sha256, error) = match outcome {
        Ok((size, sha256)) => (JobStatus::Completed, size, Some(sha256), None),
        Err((status, error)) => (status, 0, None, error),
    };
    let status_text = match status {
        JobStatus::Completed => "completed",
        JobStatus::Cancelled => "cancelled",
        _ => "failed",
    };
    let message = error.as_ref().map(|e| e.message.clone());
    if let Err(e) = catalog
        .finish_backup(id, status_text, size, sha256.clone(), message)
        .await
    {
        tracing::error!(error = %e.message, backup = %id, "recording a backup's end failed");
    }
    tracing::info!(backup = %id, status = status_text, size, "backup finished");
    client
        .notify::<BackupDone>(&BackupDoneEvent {
            backup_id: id.to_string(),
            status,
            path: dest.to_string_lossy().into_owned(),
            size_bytes: size,
            sha256,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        })
        .await;
}

/// A destination under `<data-dir>/backups/` named after the source.
pub(super) fn default_destination(
    data_dir: &Path,
    stem: &str,
    id: &str,
    extension: &str,
) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    data_dir
        .join("backups")
        .join(format!("{stem}-{stamp}-{}.{extension}", &id[2..10]))
}

/// Refuses an existing destination unless asked to overwrite, and makes its folder.
pub(super) fn check_destination(dest: &Path, overwrite: bool) -> Result<(), RpcError> {
    if dest.exists() && !overwrite {
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
    Ok(())
}

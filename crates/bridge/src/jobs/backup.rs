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
use dbbridge_protocol::backup::{BackupDoneEvent, JobStatus};
use dbbridge_protocol::connection::{ConnectionSpec, ServerConnection};
use dbbridge_protocol::events::BackupDone;
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::JobManager;
use super::tool::Reporter;
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
    /// `--mysql-bin-dir`.
    pub mysql_bin_dirs: Vec<PathBuf>,
    /// Postgres's custom archive instead of plain SQL.
    pub custom: bool,
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
    if request.custom && !matches!(request.spec, ConnectionSpec::Postgres(_)) {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "options.format \"custom\" is Postgres's archive format; other engines' backups are plain",
        )
        .with_details(serde_json::json!({"field": "options.format"})));
    }
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
                request.custom,
            )
            .await;
        }
        ConnectionSpec::Mysql(server) => {
            return super::my_backup::start_backup(
                jobs,
                catalog,
                data_dir,
                &request.mysql_bin_dirs,
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
            connection_id: request.connection_id.clone(),
            connection: summary.to_string(),
            format: "sqlite".into(),
            tool_version: Some(format!("SQLite {}", rusqlite::version())),
            ..BackupRow::running(&id, "sqlite", "main", &dest)
        })
        .await?;
    let job = SqliteBackup {
        id: id.clone(),
        source,
        dest,
        catalog: catalog.clone(),
        client,
        jobs: jobs.clone(),
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
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl SqliteBackup {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let part = sqlite_backup::sibling(&self.dest, ".part");
        let mut reporter = Reporter::backup(&self.id, &self.client);
        reporter.progress("preparing", Some(0.0), 0, None).await;
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
                        reporter.progress("dumping", Some(percent), bytes, None).await;
                    }
                }
            }
        };
        let outcome = match copied {
            Ok(Ok(())) => finish_copy(&part, &self.dest, &mut reporter).await,
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
        self.jobs.release(&self.id);
        end(
            &self.catalog,
            &self.client,
            &self.id,
            &self.dest,
            &part,
            outcome,
            started,
        )
        .await;
    }
}

/// A tool backup's run, the same for every engine: the `.part` file,
/// `preparing`, the engine's `dump` into it, then the checksum, the rename,
/// the catalog and `backup.done`.
pub(super) async fn run_dump(
    jobs: &JobManager,
    id: &str,
    dest: &Path,
    catalog: &Catalog,
    client: &Client,
    dump: impl AsyncFnOnce(&Path, &mut Reporter) -> Result<(), (JobStatus, Option<RpcError>)>,
) {
    let started = Instant::now();
    let part = sqlite_backup::sibling(dest, ".part");
    let _ = std::fs::remove_file(&part);
    let mut reporter = Reporter::backup(id, client);
    reporter.progress("preparing", Some(0.0), 0, None).await;
    let outcome = match dump(&part, &mut reporter).await {
        Ok(()) => finish_copy(&part, dest, &mut reporter).await,
        Err(failed) => Err(failed),
    };
    jobs.release(id);
    end(catalog, client, id, dest, &part, outcome, started).await;
}

/// The end of a finished copy: checksummed, renamed into place, reported.
pub(super) async fn finish_copy(part: &Path, dest: &Path, reporter: &mut Reporter) -> Outcome {
    let size = std::fs::metadata(part).map_or(0, |m| m.len());
    reporter
        .progress("finalizing", Some(99.9), size, None)
        .await;
    let done = finalize(part, dest).await?;
    reporter.finished(done.0).await;
    Ok(done)
}

/// Removes what a failed backup left, records its end, sends `backup.done`
/// (the caller has released the job: a ping after the done counts it no more).
pub(super) async fn end(
    catalog: &Catalog,
    client: &Client,
    id: &str,
    dest: &Path,
    part: &Path,
    outcome: Outcome,
    started: Instant,
) {
    if outcome.is_err() {
        remove_partial(part);
    }
    record_end(catalog, client, id, dest, outcome, started).await;
}

/// Removes a partial copy and what SQLite may have left beside it (a
/// failed write, a full disk, leaves its rollback journal).
pub(super) fn remove_partial(part: &Path) {
    let _ = std::fs::remove_file(part);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut side = part.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
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

/// A server connection as the catalog keeps it: without its password, in a
/// field or in a URL.
pub(super) fn summary(server: &ServerConnection, kind: &str) -> String {
    let mut clean = server.clone();
    clean.password = None;
    if let Some(url) = &clean.url
        && let Ok(mut parsed) = url::Url::parse(url)
    {
        let _ = parsed.set_password(None);
        clean.url = Some(parsed.to_string());
    }
    let mut value = serde_json::to_value(&clean).unwrap_or_default();
    value["kind"] = serde_json::json!(kind);
    value.to_string()
}

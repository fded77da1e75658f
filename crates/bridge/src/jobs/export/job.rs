//! The export job's run: the connector's stream pumped into the format
//! writer on a blocking thread, progress, the file moved into place (or
//! removed), and exactly one `export.done`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dbbridge_db::{Connection, DbErrorKind, QueryOptions, StreamItem};
use dbbridge_protocol::backup::JobStatus;
use dbbridge_protocol::events::{ExportDone, ExportProgress};
use dbbridge_protocol::export::{ExportDoneEvent, ExportProgressEvent};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio_util::sync::CancellationToken;

use super::{EXPORT_BATCH_ROWS, FormatWriter, WriteError, cell, invalid};
use crate::client::Client;
use crate::errors::db_error;
use crate::jobs::{JobManager, Throttle};

pub(super) struct ExportJob {
    pub(super) id: String,
    pub(super) connection: Connection,
    pub(super) select: String,
    pub(super) estimate: Option<u64>,
    pub(super) writer: Box<dyn FormatWriter>,
    pub(super) part: PathBuf,
    pub(super) dest: PathBuf,
    pub(super) overwrite: bool,
    pub(super) client: Client,
}

/// How the writing ended short of completion.
enum Stopped {
    Cancelled,
    Failed(RpcError),
}

impl From<RpcError> for Stopped {
    fn from(e: RpcError) -> Self {
        Stopped::Failed(e)
    }
}

impl From<WriteError> for Stopped {
    fn from(e: WriteError) -> Self {
        Stopped::Failed(e.0)
    }
}

impl ExportJob {
    pub(super) async fn run(self, cancel: CancellationToken, jobs: Arc<JobManager>) {
        let started = Instant::now();
        let ExportJob {
            id,
            connection,
            select,
            estimate,
            writer,
            part,
            dest,
            overwrite,
            client,
        } = self;
        let options = QueryOptions {
            batch_size: EXPORT_BATCH_ROWS,
            ..QueryOptions::default()
        };
        let written = match connection.run(select, options) {
            Err(e) => Err(Stopped::Failed(db_error(e))),
            Ok(stream) => {
                let engine_cancel = stream.cancel.clone();
                let finished = CancellationToken::new();
                let watch = {
                    let (cancel, finished) = (cancel.clone(), finished.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => engine_cancel.cancel(),
                            _ = finished.cancelled() => {}
                        }
                    })
                };
                let progress = Progress {
                    id: id.clone(),
                    client: client.clone(),
                    estimate,
                    throttle: Throttle::default(),
                    runtime: tokio::runtime::Handle::current(),
                };
                let token = cancel.clone();
                let pumped = tokio::task::spawn_blocking(move || {
                    pump(stream.items, writer, progress, &token)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Stopped::Failed(RpcError::internal(format!(
                        "the export's writer stopped: {e}"
                    ))))
                });
                finished.cancel();
                let _ = watch.await;
                pumped
            }
        };
        drop(connection);
        let outcome = match written {
            Ok(rows) => place(&part, &dest, overwrite).map(|size| (rows, size)),
            Err(stopped) => Err(stopped),
        };
        let (status, rows, size, error) = match outcome {
            Ok((rows, size)) => (JobStatus::Completed, rows, size, None),
            Err(stopped) => {
                let _ = std::fs::remove_file(&part);
                match stopped {
                    Stopped::Cancelled => (JobStatus::Cancelled, 0, 0, None),
                    Stopped::Failed(e) => (JobStatus::Failed, 0, 0, Some(e)),
                }
            }
        };
        tracing::info!(export = %id, ?status, rows, size, "export finished");
        jobs.release(&id);
        client
            .notify::<ExportDone>(&ExportDoneEvent {
                export_id: id,
                status,
                path: dest.to_string_lossy().into_owned(),
                rows_written: rows,
                size_bytes: size,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            })
            .await;
    }
}

/// Moves the finished file into place; its size.
fn place(part: &Path, dest: &Path, overwrite: bool) -> Result<u64, Stopped> {
    if !overwrite && dest.exists() {
        return Err(Stopped::Failed(RpcError::new(
            ErrorCode::ExportFailed,
            format!(
                "{} appeared while the export ran; set options.overwrite to replace it",
                dest.display()
            ),
        )));
    }
    std::fs::rename(part, dest).map_err(|e| {
        Stopped::Failed(RpcError::new(
            ErrorCode::ExportFailed,
            format!("could not move the file into place: {e}"),
        ))
    })?;
    Ok(std::fs::metadata(dest).map_or(0, |m| m.len()))
}

/// `export.progress`, at most about ten a second.
struct Progress {
    id: String,
    client: Client,
    estimate: Option<u64>,
    throttle: Throttle,
    runtime: tokio::runtime::Handle,
}

impl Progress {
    fn report(&mut self, rows: u64, bytes: u64) {
        let percent = self
            .estimate
            .filter(|&n| n > 0)
            .map(|n| rows as f64 * 100.0 / n as f64);
        if let Some(percent) = self.throttle.due("exporting", percent) {
            let event = ExportProgressEvent {
                export_id: self.id.clone(),
                rows_written: rows,
                bytes_written: bytes,
                percent,
            };
            self.runtime
                .block_on(self.client.notify::<ExportProgress>(&event));
        }
    }
}

/// Writes the stream's rows until it ends; the number of rows.
fn pump(
    mut items: tokio::sync::mpsc::Receiver<Result<StreamItem, dbbridge_db::DbError>>,
    mut writer: Box<dyn FormatWriter>,
    mut progress: Progress,
    cancel: &CancellationToken,
) -> Result<u64, Stopped> {
    let mut rows: u64 = 0;
    let mut began = false;
    while let Some(item) = items.blocking_recv() {
        if cancel.is_cancelled() {
            return Err(Stopped::Cancelled);
        }
        match item {
            Ok(StreamItem::Columns { columns, .. }) => {
                if began {
                    return Err(Stopped::Failed(invalid(
                        "source.sql",
                        "the export's SQL gave more than one result set; export one query at a time"
                            .into(),
                    )));
                }
                writer.begin(&columns)?;
                began = true;
            }
            Ok(StreamItem::Rows { batch, .. }) => {
                {
                    let parsed = cell::rows(&batch.json).map_err(RpcError::internal)?;
                    writer.rows(&parsed)?;
                }
                rows += batch.rows as u64;
                dbbridge_db::batch::recycle(batch.json);
                progress.report(rows, writer.bytes_written());
            }
            Ok(StreamItem::Done(_)) => {}
            Err(e) if e.kind == DbErrorKind::Cancelled => return Err(Stopped::Cancelled),
            Err(e) => return Err(Stopped::Failed(db_error(e))),
        }
    }
    if cancel.is_cancelled() {
        return Err(Stopped::Cancelled);
    }
    if !began {
        return Err(Stopped::Failed(invalid(
            "source.sql",
            "the export's SQL gave no rows to export (it must be a query)".into(),
        )));
    }
    writer.finish()?;
    Ok(rows)
}

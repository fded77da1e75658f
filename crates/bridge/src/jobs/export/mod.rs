//! The export job: a table or a query written to a file in one of five
//! formats, on a connection of its own (opened from the session's
//! parameters, read-only, in one snapshot), so the session stays free.
//!
//! Rows come through the connector's own stream, the same bounded pipeline
//! and value encoding as `query.run`; the format writers (`text.rs`,
//! `sql.rs`, `xlsx.rs`) read those batches back. Writing happens on a
//! blocking thread; when it stops, the engine's read stops too. The file is
//! written under a hidden temporary name beside the destination and renamed
//! into place when complete; a cancel or a failure removes it.

mod cell;
mod options;
mod sql;
mod text;
mod xlsx;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dbbridge_db::{Connection, DbErrorKind, QueryOptions, StreamItem};
use dbbridge_protocol::backup::JobStatus;
use dbbridge_protocol::connection::{ConnectionSpec, EngineKind};
use dbbridge_protocol::events::{ExportDone, ExportProgress};
use dbbridge_protocol::export::{
    ExportDoneEvent, ExportFormat, ExportProgressEvent, ExportSource, ExportStartParams,
};
use dbbridge_protocol::metadata::TableDescription;
use dbbridge_protocol::query::ColumnInfo;
use dbbridge_protocol::{ErrorCode, RpcError};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{JobManager, Throttle};
use crate::client::Client;
use crate::errors::db_error;
use crate::session::Session;

pub use options::ExportOptions;

/// Why a format writer stopped: the file could not be written, or the
/// format cannot hold the data (XLSX's sheet and cell limits).
pub struct WriteError(pub RpcError);

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError(io_failed(e))
    }
}

impl From<RpcError> for WriteError {
    fn from(e: RpcError) -> Self {
        WriteError(e)
    }
}

/// What a format writer returns.
pub type WriteResult = Result<(), WriteError>;

fn io_failed(e: std::io::Error) -> RpcError {
    RpcError::new(
        ErrorCode::ExportFailed,
        format!("writing the file failed: {e}"),
    )
}

/// One output format: the columns once, then batches of rows, then the end.
pub trait FormatWriter: Send {
    fn begin(&mut self, columns: &[ColumnInfo]) -> WriteResult;
    fn rows(&mut self, rows: &[Vec<&RawValue>]) -> WriteResult;
    /// Bytes written to the file so far.
    fn bytes_written(&self) -> u64;
    /// Completes the file and syncs it to disk.
    fn finish(self: Box<Self>) -> WriteResult;
}

/// Rows per batch read for an export: larger than a grid's, fewer hops.
const EXPORT_BATCH_ROWS: usize = 2000;

fn invalid(field: &str, message: String) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message)
        .with_details(serde_json::json!({"field": field}))
}

/// Checks the destination and claims the temporary file beside it, so a
/// missing folder or one without write permission fails before any row
/// is read.
fn claim_destination(dest: &Path, overwrite: bool, id: &str) -> Result<PathBuf, RpcError> {
    if !dest.is_absolute() {
        return Err(invalid(
            "destination",
            format!(
                "destination must be an absolute path, not {}",
                dest.display()
            ),
        ));
    }
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(invalid(
            "destination",
            format!("{} names no file", dest.display()),
        ));
    };
    if dest.is_dir() {
        return Err(invalid(
            "destination",
            format!("{} is a folder; name a file", dest.display()),
        ));
    }
    if dest.exists() && !overwrite {
        return Err(invalid(
            "destination",
            format!(
                "{} exists; set options.overwrite to replace it",
                dest.display()
            ),
        ));
    }
    if !dir.is_dir() {
        return Err(invalid(
            "destination",
            format!("the folder {} does not exist", dir.display()),
        ));
    }
    let part = dir.join(format!(".{}.{id}.part", name.to_string_lossy()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .map_err(|e| {
            RpcError::new(
                ErrorCode::ExportFailed,
                format!("cannot write in {}: {e}", dir.display()),
            )
            .with_details(serde_json::json!({"field": "destination"}))
        })?;
    Ok(part)
}

/// The connection the export reads on: the session's parameters, and for
/// SQLite the file opened read-only.
fn export_spec(spec: &ConnectionSpec) -> ConnectionSpec {
    let mut spec = spec.clone();
    if let ConnectionSpec::Sqlite(sqlite) = &mut spec {
        sqlite.read_only = true;
        sqlite.create = false;
    }
    spec
}

/// Runs a statement and reads its result to the end; the first cell of the
/// first row, if any.
async fn scalar(connection: &Connection, sql: &str) -> Result<Option<String>, RpcError> {
    let mut stream = connection
        .run(sql.to_string(), QueryOptions::default())
        .map_err(db_error)?;
    let mut first = None;
    while let Some(item) = stream.items.recv().await {
        match item.map_err(db_error)? {
            StreamItem::Rows { batch, .. } if first.is_none() => {
                let rows = cell::rows(&batch.json).map_err(RpcError::internal)?;
                first = rows
                    .first()
                    .and_then(|r| r.first())
                    .map(|raw| match cell::cell(raw) {
                        cell::Cell::Number(n) => n.to_string(),
                        cell::Cell::Text(t) => t.into_owned(),
                        _ => String::new(),
                    });
            }
            _ => {}
        }
    }
    Ok(first)
}

/// Opens the snapshot every row of the export is read in.
async fn begin_snapshot(connection: &Connection) -> Result<(), RpcError> {
    let statements: &[&str] = match connection.kind() {
        EngineKind::Postgres => &["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"],
        EngineKind::Mysql => &[
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ],
        // A deferred transaction: its read snapshot starts with the first
        // read and holds to the end.
        EngineKind::Sqlite => &["BEGIN"],
    };
    for sql in statements {
        scalar(connection, sql).await?;
    }
    Ok(())
}

/// The source table: its `SELECT`, its description and its row estimate.
struct TableSource {
    select: String,
    description: TableDescription,
    estimate: Option<u64>,
}

async fn table_source(
    connection: &Connection,
    schema: &str,
    table: &str,
) -> Result<TableSource, RpcError> {
    let engine = connection.kind();
    let description = connection
        .describe_table(schema.to_string(), table.to_string())
        .await
        .map_err(db_error)?;
    let qualified = format!(
        "{}.{}",
        sql::quote_ident(engine, schema),
        sql::quote_ident(engine, table)
    );
    let estimate = match engine {
        // SQLite keeps no estimate; counting is cheap next to the export.
        EngineKind::Sqlite => scalar(connection, &format!("SELECT count(*) FROM {qualified}"))
            .await?
            .and_then(|n| n.parse().ok()),
        _ => connection
            .list_tables(Some(schema.to_string()))
            .await
            .map_err(db_error)?
            .into_iter()
            .find(|t| t.name == table)
            .and_then(|t| t.row_estimate),
    };
    Ok(TableSource {
        select: format!("SELECT * FROM {qualified}"),
        description,
        estimate,
    })
}

/// Checks the request, opens the export's connection and snapshot, claims
/// the file, and starts the job; returns the export's id.
pub async fn start(
    jobs: &Arc<JobManager>,
    session: &Session,
    client: Client,
    params: ExportStartParams,
) -> Result<String, RpcError> {
    let options = options::parse(params.options.as_ref(), params.format)?;
    if let ExportSource::Sql { sql } = &params.source
        && sql.trim().is_empty()
    {
        return Err(invalid("source.sql", "source.sql is empty".into()));
    }
    if let ConnectionSpec::Sqlite(sqlite) = &session.spec
        && (sqlite.path.is_empty() || sqlite.path.contains(":memory:"))
    {
        return Err(RpcError::new(
            ErrorCode::NotSupported,
            "an in-memory SQLite database cannot be exported: a second connection would see another, empty database",
        ));
    }
    let engine = session.kind();
    let dest = PathBuf::from(&params.destination);
    let id = crate::ids::new_id("e");
    let part = claim_destination(&dest, options.overwrite, &id)?;
    let prepared = async {
        let connection = Connection::open(&export_spec(&session.spec))
            .await
            .map_err(db_error)?;
        begin_snapshot(&connection).await?;
        let (select, description, estimate) = match &params.source {
            ExportSource::Sql { sql } => (sql.clone(), None, None),
            ExportSource::Table { schema, table } => {
                let source = table_source(&connection, schema, table).await?;
                (source.select, Some(source.description), source.estimate)
            }
        };
        let writer = writer(&part, &params, &options, engine, description)?;
        Ok::<_, RpcError>((connection, select, estimate, writer))
    }
    .await;
    let (connection, select, estimate, writer) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
    };
    let job = ExportJob {
        id: id.clone(),
        connection,
        select,
        estimate,
        writer,
        part,
        dest,
        overwrite: options.overwrite,
        client,
    };
    tracing::info!(export = %id, session = %session.id, "export started");
    let registry = jobs.clone();
    jobs.spawn(id.clone(), move |cancel| job.run(cancel, registry));
    Ok(id)
}

/// The writer for the request's format, writing to `part`.
fn writer(
    part: &Path,
    params: &ExportStartParams,
    options: &ExportOptions,
    engine: EngineKind,
    description: Option<TableDescription>,
) -> Result<Box<dyn FormatWriter>, RpcError> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(part)
            .map_err(io_failed)
    };
    Ok(match params.format {
        ExportFormat::Csv => Box::new(text::Csv::new(open()?, options.clone(), engine)),
        ExportFormat::Jsonl => Box::new(text::Json::new(open()?, options, true)),
        ExportFormat::Json => Box::new(text::Json::new(open()?, options, false)),
        ExportFormat::Sql => {
            let table = match (&options.table_name, &params.source) {
                (Some(name), _) => name.clone(),
                (None, ExportSource::Table { table, .. }) => table.clone(),
                (None, ExportSource::Sql { .. }) => "query_result".to_string(),
            };
            let create = options.create_table.then_some(description);
            Box::new(sql::Sql::new(open()?, options, engine, table, create))
        }
        ExportFormat::Xlsx => Box::new(xlsx::Xlsx::new(part.to_path_buf(), options, engine)?),
    })
}

struct ExportJob {
    id: String,
    connection: Connection,
    select: String,
    estimate: Option<u64>,
    writer: Box<dyn FormatWriter>,
    part: PathBuf,
    dest: PathBuf,
    overwrite: bool,
    client: Client,
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
    async fn run(self, cancel: CancellationToken, jobs: Arc<JobManager>) {
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

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
mod job;
mod options;
mod sql;
mod text;
mod xlsx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbbridge_db::{Connection, QueryOptions, StreamItem};
use dbbridge_protocol::connection::{ConnectionSpec, EngineKind};
use dbbridge_protocol::export::{ExportFormat, ExportSource, ExportStartParams};
use dbbridge_protocol::metadata::TableDescription;
use dbbridge_protocol::query::ColumnInfo;
use dbbridge_protocol::{ErrorCode, RpcError};
use serde_json::value::RawValue;

use super::JobManager;
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
    let job = job::ExportJob {
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

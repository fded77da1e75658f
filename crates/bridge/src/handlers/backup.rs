//! `backup.start`, `backup.list`, `backup.cancel`, `backup.delete`,
//! `backup.restore`: thin over `jobs::backup` and `jobs::restore`.

use dbbridge_protocol::backup::{
    BackupFormat, BackupIdParams, BackupInfo, BackupListParams, BackupRestoreParams,
    BackupRestoreResult, BackupStartParams, BackupStartResult, JobStatus,
};
use dbbridge_protocol::connection::{ConnectionParams, EngineKind};
use dbbridge_protocol::methods::{
    BackupCancel, BackupDelete, BackupList, BackupRestore, BackupStart,
};
use dbbridge_protocol::{CancelResult, Empty, ErrorCode, RpcError};

use crate::catalog::BackupRow;
use crate::connections::resolve;
use crate::jobs::{backup, restore};
use crate::router::{RequestCtx, Router};

pub fn register(router: &mut Router) {
    router
        .add::<BackupStart, _, _>(start)
        .add::<BackupList, _, _>(list)
        .add::<BackupCancel, _, _>(cancel)
        .add::<BackupDelete, _, _>(delete)
        .add::<BackupRestore, _, _>(restore_backup);
}

async fn start(ctx: RequestCtx, params: BackupStartParams) -> Result<BackupStartResult, RpcError> {
    let connection_id = match &params.connection {
        ConnectionParams::Saved(saved) => Some(saved.connection_id.clone()),
        ConnectionParams::Spec(_) => None,
    };
    let spec = resolve(&ctx.bridge.catalog, &ctx.bridge.secrets, params.connection).await?;
    let request = backup::BackupRequest {
        spec,
        connection_id,
        destination: params.destination,
        overwrite: params
            .options
            .as_ref()
            .and_then(|o| o.overwrite)
            .unwrap_or(false),
        custom: params.options.as_ref().and_then(|o| o.format) == Some(BackupFormat::Custom),
        pg_bin_dirs: ctx.bridge.pg_bin_dirs.clone(),
        mysql_bin_dirs: ctx.bridge.mysql_bin_dirs.clone(),
    };
    let bridge = &ctx.bridge;
    let backup_id = backup::start(
        &bridge.jobs,
        &bridge.catalog,
        &bridge.data_dir,
        ctx.client.clone(),
        request,
    )
    .await?;
    Ok(BackupStartResult { backup_id })
}

fn info(row: BackupRow) -> BackupInfo {
    let kind = match row.engine.as_str() {
        "postgres" => EngineKind::Postgres,
        "mysql" => EngineKind::Mysql,
        _ => EngineKind::Sqlite,
    };
    let status = match row.status.as_str() {
        "running" => JobStatus::Running,
        "completed" => JobStatus::Completed,
        "cancelled" => JobStatus::Cancelled,
        _ => JobStatus::Failed,
    };
    BackupInfo {
        file_exists: std::path::Path::new(&row.path).is_file(),
        backup_id: row.id,
        kind,
        database: row.database,
        path: row.path,
        size_bytes: row.size_bytes,
        sha256: row.sha256,
        status,
        started_at: row.started_at,
        finished_at: row.finished_at,
        tool_version: row.tool_version,
        server_version: row.server_version,
        error: row.error,
    }
}

async fn list(ctx: RequestCtx, params: BackupListParams) -> Result<Vec<BackupInfo>, RpcError> {
    let rows = ctx.bridge.catalog.backups(params.connection_id).await?;
    Ok(rows.into_iter().map(info).collect())
}

async fn cancel(ctx: RequestCtx, params: BackupIdParams) -> Result<CancelResult, RpcError> {
    Ok(CancelResult {
        cancelled: ctx.bridge.jobs.cancel(&params.backup_id),
    })
}

async fn delete(ctx: RequestCtx, params: BackupIdParams) -> Result<Empty, RpcError> {
    let catalog = &ctx.bridge.catalog;
    let row = catalog
        .backup(&params.backup_id)
        .await?
        .ok_or_else(|| restore::backup_not_found(&params.backup_id))?;
    if row.status == "running" {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("backup {} is running; cancel it first", row.id),
        ));
    }
    match std::fs::remove_file(&row.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(RpcError::new(
                ErrorCode::BackupFailed,
                format!("cannot delete {}: {e}", row.path),
            ));
        }
    }
    catalog.delete_backup(&row.id).await?;
    Ok(Empty {})
}

async fn restore_backup(
    ctx: RequestCtx,
    params: BackupRestoreParams,
) -> Result<BackupRestoreResult, RpcError> {
    let bridge = &ctx.bridge;
    // The default target is the source: a saved connection is resolved
    // again (its password from the secret store); otherwise the catalog's
    // summary, which holds no password, is used as it is.
    let saved = match &params.target {
        Some(_) => None,
        None => bridge
            .catalog
            .backup(&params.backup_id)
            .await?
            .and_then(|row| row.connection_id),
    };
    let target = match (params.target, saved) {
        (Some(target), _) => Some(resolve(&bridge.catalog, &bridge.secrets, target).await?),
        (None, Some(connection_id)) => {
            let saved =
                serde_json::from_value(serde_json::json!({ "connectionId": connection_id }))
                    .map_err(|e| RpcError::internal(e.to_string()))?;
            Some(resolve(&bridge.catalog, &bridge.secrets, saved).await?)
        }
        (None, None) => None,
    };
    let restore_id = restore::start(
        &bridge.jobs,
        &bridge.catalog,
        ctx.client.clone(),
        &params.backup_id,
        target,
        bridge.sessions.sqlite_paths(),
        &crate::jobs::ToolDirs {
            postgres: bridge.pg_bin_dirs.clone(),
            mysql: bridge.mysql_bin_dirs.clone(),
        },
    )
    .await?;
    Ok(BackupRestoreResult { restore_id })
}

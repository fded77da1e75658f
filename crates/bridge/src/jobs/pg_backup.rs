//! The Postgres backup job: `pg_dump` (plain SQL by default, which `psql`
//! restores; `custom` for `pg_restore`), the lowest installed major at least
//! the server's, found and checked before anything starts. The password
//! reaches it only through a `0600` `PGPASSFILE` in a private folder that is
//! removed afterwards: never argv, never the bridge's environment. Progress
//! comes from `pg_dump --verbose` (the table it dumps) weighed by the
//! tables' sizes read beforehand, and from the bytes written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbbridge_db::postgres::PgConnection;
use dbbridge_db::postgres::dump::{self, DumpPlan, Target};
use dbbridge_db::tools::{self, Tool, ToolError};
use dbbridge_protocol::backup::JobStatus;
use dbbridge_protocol::connection::ServerConnection;
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio_util::sync::CancellationToken;

use super::JobManager;
use super::backup::{check_destination, default_destination, run_dump, summary};
use super::tool::{self, PassFile, Reporter};
use crate::catalog::{BackupRow, Catalog};
use crate::client::Client;

/// The RPC error for a tool that will not do, naming what was found and
/// what is needed.
pub fn tool_error(error: ToolError) -> RpcError {
    let message = error.to_string();
    match error {
        ToolError::NotFound { tool, searched } => RpcError::new(ErrorCode::ToolNotFound, message)
            .with_details(serde_json::json!({
                "tool": tool,
                "searched": searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })),
        ToolError::TooOld {
            tool,
            found,
            needed_major,
        } => RpcError::new(ErrorCode::ToolVersionMismatch, message).with_details(serde_json::json!({
            "tool": tool,
            "neededMajor": needed_major,
            "found": found.iter().map(|t| serde_json::json!({"path": t.path.display().to_string(), "version": t.version, "major": t.major})).collect::<Vec<_>>(),
        })),
    }
}

/// Finds `tool` for a server of `major`.
pub fn find_tool(tool: &str, bin_dirs: &[PathBuf], major: u32) -> Result<Tool, RpcError> {
    let candidates = tools::candidates(tool, bin_dirs, &tools::postgres_dirs());
    tools::pick(tool, &candidates, major).map_err(tool_error)
}

#[allow(clippy::too_many_arguments)]
pub async fn start(
    jobs: &Arc<JobManager>,
    catalog: &Arc<Catalog>,
    data_dir: &Path,
    bin_dirs: &[PathBuf],
    client: Client,
    server: &ServerConnection,
    connection_id: Option<String>,
    destination: Option<String>,
    overwrite: bool,
    custom: bool,
) -> Result<String, RpcError> {
    let connection = PgConnection::open(server)
        .await
        .map_err(crate::errors::db_error)?;
    let plan = connection
        .dump_plan()
        .await
        .map_err(crate::errors::db_error)?;
    drop(connection);
    let tool = find_tool("pg_dump", bin_dirs, plan.server_major)?;
    let target = dump::target(server, None).map_err(crate::errors::db_error)?;
    let id = crate::ids::new_id("b");
    let dest = match destination {
        Some(path) => PathBuf::from(path),
        None => default_destination(
            data_dir,
            &plan.database,
            &id,
            if custom { "dump" } else { "sql" },
        ),
    };
    check_destination(&dest, overwrite)?;
    catalog
        .insert_backup(BackupRow {
            connection_id,
            connection: summary(server, "postgres"),
            tool_version: Some(tool.version.clone()),
            server_version: Some(plan.server_version.clone()),
            format: if custom { "custom" } else { "plain" }.into(),
            ..BackupRow::running(&id, "postgres", &plan.database, &dest)
        })
        .await?;
    let job = PgBackup {
        custom,
        id: id.clone(),
        tool,
        target,
        plan,
        dest,
        catalog: catalog.clone(),
        client,
        jobs: jobs.clone(),
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct PgBackup {
    custom: bool,
    id: String,
    tool: Tool,
    target: Target,
    plan: DumpPlan,
    dest: PathBuf,
    catalog: Arc<Catalog>,
    client: Client,
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl PgBackup {
    async fn run(self, cancel: CancellationToken) {
        run_dump(
            &self.jobs,
            &self.id,
            &self.dest,
            &self.catalog,
            &self.client,
            async |part, reporter| self.dump(part, &cancel, reporter).await,
        )
        .await;
    }

    async fn dump(
        &self,
        part: &Path,
        cancel: &CancellationToken,
        reporter: &mut Reporter,
    ) -> Result<(), (JobStatus, Option<RpcError>)> {
        let line = self
            .target
            .password
            .as_deref()
            .map(dump::pgpass_line)
            .unwrap_or_default();
        let pass = PassFile::new("pgpass", &line).map_err(|e| {
            (
                JobStatus::Failed,
                Some(RpcError::new(
                    ErrorCode::BackupFailed,
                    format!("could not write the password file: {e}"),
                )),
            )
        })?;
        if let Some(password) = &self.target.password {
            crate::redact::remember(password);
        }
        let command = tool::command(
            dump::dump_command(&self.tool.path, &self.target, part, self.custom),
            &pass,
            Some("PGPASSFILE"),
        );
        tool::dump(
            command,
            "pg_dump",
            part,
            &self.plan.tables,
            dump::dumping_table,
            cancel,
            reporter,
        )
        .await
    }
}

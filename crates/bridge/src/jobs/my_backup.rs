//! MySQL/MariaDB backups and restores with the servers' own tools:
//! `mariadb-dump` (or `mysqldump`) with `--single-transaction --routines
//! --triggers --events`, and the `mariadb` (or `mysql`) client fed the dump.
//! The login goes in a `0600` option file (`--defaults-extra-file`) in a
//! private folder removed afterwards. A restore goes into a fresh database
//! that the caller names and the bridge creates; if it fails or is
//! cancelled midway, that database is dropped again (the server's DDL is not
//! transactional, so nothing else could undo a half-run dump).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbbridge_db::Connection;
use dbbridge_db::mysql::MyConnection;
use dbbridge_db::mysql::dump::{self, DumpPlan, Login};
use dbbridge_db::tools::{self, Tool, ToolError};
use dbbridge_protocol::backup::JobStatus;
use dbbridge_protocol::connection::{ConnectionSpec, ServerConnection};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio_util::sync::CancellationToken;

use super::JobManager;
use super::backup::{check_destination, default_destination, run_dump, summary};
use super::pg_backup::tool_error;
use super::restore::run_restore;
use super::tool::{self, PassFile, Reporter};
use crate::catalog::{BackupRow, Catalog};
use crate::client::Client;

/// The first of `names` found (in `bin_dirs`, on PATH, in the usual
/// folders) that answers `--version`.
fn find_tool(names: &[&str], bin_dirs: &[PathBuf]) -> Result<Tool, RpcError> {
    let mut searched = Vec::new();
    for name in names {
        let candidates = tools::candidates(name, bin_dirs, &tools::mysql_dirs());
        if let Some(tool) = candidates.iter().find_map(|p| tools::version_of(p)) {
            return Ok(tool);
        }
        searched.extend(candidates);
    }
    Err(tool_error(ToolError::NotFound {
        tool: names.join(" or "),
        searched,
    }))
}

fn option_file(login: &Login) -> std::io::Result<PassFile> {
    let text = dump::option_file(
        &login.host,
        login.port,
        &login.user,
        login.password.as_deref(),
    );
    PassFile::new("my.cnf", &text)
}

#[allow(clippy::too_many_arguments)]
pub async fn start_backup(
    jobs: &Arc<JobManager>,
    catalog: &Arc<Catalog>,
    data_dir: &Path,
    bin_dirs: &[PathBuf],
    client: Client,
    server: &ServerConnection,
    connection_id: Option<String>,
    destination: Option<String>,
    overwrite: bool,
) -> Result<String, RpcError> {
    let connection = MyConnection::open(server)
        .await
        .map_err(crate::errors::db_error)?;
    let plan = connection
        .dump_plan()
        .await
        .map_err(crate::errors::db_error)?;
    drop(connection);
    if plan.database.is_empty() {
        return Err(
            RpcError::new(ErrorCode::InvalidParams, "name the database to back up")
                .with_details(serde_json::json!({"field": "connection.database"})),
        );
    }
    let tool = find_tool(&["mariadb-dump", "mysqldump"], bin_dirs)?;
    let login = dump::login(server).map_err(crate::errors::db_error)?;
    let id = crate::ids::new_id("b");
    let dest = match destination {
        Some(path) => PathBuf::from(path),
        None => default_destination(data_dir, &plan.database, &id, "sql"),
    };
    check_destination(&dest, overwrite)?;
    catalog
        .insert_backup(BackupRow {
            connection_id,
            connection: summary(server, "mysql"),
            tool_version: Some(tool.version.clone()),
            server_version: Some(plan.server_version.clone()),
            ..BackupRow::running(&id, "mysql", &plan.database, &dest)
        })
        .await?;
    let job = MyBackup {
        id: id.clone(),
        tool,
        login,
        plan,
        dest,
        catalog: catalog.clone(),
        client,
        jobs: jobs.clone(),
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct MyBackup {
    id: String,
    tool: Tool,
    login: Login,
    plan: DumpPlan,
    dest: PathBuf,
    catalog: Arc<Catalog>,
    client: Client,
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl MyBackup {
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
        let options = option_file(&self.login).map_err(|e| {
            (
                JobStatus::Failed,
                Some(RpcError::new(
                    ErrorCode::BackupFailed,
                    format!("could not write the option file: {e}"),
                )),
            )
        })?;
        if let Some(password) = &self.login.password {
            crate::redact::remember(password);
        }
        let command =
            dump::dump_command(&self.tool.path, &options.path(), &self.plan.database, part);
        let command = tool::command(command, &options, None);
        let name = self.tool.path.display().to_string();
        tool::dump(
            command,
            &name,
            part,
            &self.plan.tables,
            dump::dumping_table,
            cancel,
            reporter,
        )
        .await
    }
}

/// Restores into the fresh database the caller names in `server`.
pub async fn start_restore(
    jobs: &Arc<JobManager>,
    bin_dirs: &[PathBuf],
    client: Client,
    backup_id: &str,
    file: PathBuf,
    sha256: String,
    server: &ServerConnection,
) -> Result<String, RpcError> {
    let login = dump::login(server).map_err(crate::errors::db_error)?;
    let Some(database) = login.database.clone() else {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "a MySQL/MariaDB backup is restored into a fresh database: name it in target.database",
        )
        .with_details(serde_json::json!({"field": "target.database"})));
    };
    let tool = find_tool(&["mariadb", "mysql"], bin_dirs)?;
    // The database must not exist yet; the bridge creates it.
    let mut admin = server.clone();
    admin.database = None;
    admin.url = None;
    admin.host = Some(login.host.clone());
    admin.port = Some(login.port);
    admin.user = Some(login.user.clone());
    let admin_spec = ConnectionSpec::Mysql(admin);
    let name = database.replace('`', "``");
    run_admin(&admin_spec, &format!("CREATE DATABASE `{name}`"))
        .await
        .map_err(|e| {
            RpcError::new(
                ErrorCode::RestoreFailed,
                format!(
                    "could not create the fresh database {database:?} to restore into: {}",
                    e.message
                ),
            )
        })?;
    let id = crate::ids::new_id("r");
    let job = MyRestore {
        id: id.clone(),
        backup_id: backup_id.to_string(),
        file,
        sha256,
        tool,
        login,
        database,
        admin: admin_spec,
        client,
        jobs: jobs.clone(),
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

/// Runs one statement on a connection of its own.
async fn run_admin(spec: &ConnectionSpec, sql: &str) -> Result<(), RpcError> {
    let connection = Connection::open(spec)
        .await
        .map_err(crate::errors::db_error)?;
    let mut stream = connection
        .run(sql.to_string(), Default::default())
        .map_err(crate::errors::db_error)?;
    while let Some(item) = stream.items.recv().await {
        item.map_err(crate::errors::db_error)?;
    }
    Ok(())
}

struct MyRestore {
    id: String,
    backup_id: String,
    file: PathBuf,
    sha256: String,
    tool: Tool,
    login: Login,
    database: String,
    admin: ConnectionSpec,
    client: Client,
    /// Released before the done event, so a ping after it counts the job no more.
    jobs: Arc<JobManager>,
}

impl MyRestore {
    async fn run(self, cancel: CancellationToken) {
        run_restore(&self.jobs, &self.id, &self.backup_id, &self.client, async |reporter| {
            let result = self.restore(&cancel, reporter).await;
            if result.is_err() {
                // The fresh database this restore created goes again.
                let name = self.database.replace('`', "``");
                if let Err(e) = run_admin(&self.admin, &format!("DROP DATABASE `{name}`")).await {
                    tracing::warn!(error = %e.message, "dropping the half-restored database failed");
                }
            }
            result
        })
        .await;
    }

    async fn restore(
        &self,
        cancel: &CancellationToken,
        reporter: &mut Reporter,
    ) -> Result<(), Option<RpcError>> {
        tool::verify(&self.file, &self.sha256, reporter).await?;
        let options = option_file(&self.login).map_err(|e| {
            Some(RpcError::new(
                ErrorCode::RestoreFailed,
                format!("could not write the option file: {e}"),
            ))
        })?;
        if let Some(password) = &self.login.password {
            crate::redact::remember(password);
        }
        let command = dump::restore_command(&self.tool.path, &options.path(), &self.database);
        let command = tool::command(command, &options, None);
        let name = self.tool.path.display().to_string();
        tool::feed(
            command,
            &name,
            &self.file,
            cancel,
            reporter,
            "the fresh database was dropped",
        )
        .await
    }
}

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
use std::time::{Duration, Instant};

use dbbridge_db::Connection;
use dbbridge_db::mysql::MyConnection;
use dbbridge_db::mysql::dump::{self, DumpPlan, Login};
use dbbridge_db::tools::{self, Tool, ToolError};
use dbbridge_protocol::backup::{
    BackupProgressEvent, JobStatus, RestoreDoneEvent, RestoreProgressEvent,
};
use dbbridge_protocol::connection::{ConnectionSpec, ServerConnection};
use dbbridge_protocol::events::{BackupProgress, RestoreDone, RestoreProgress};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::backup::{check_destination, default_destination, finalize, record_end};
use super::pg_backup::{PassFile, kill_group, tool_command, tool_error};
use super::{JobManager, Throttle};
use crate::catalog::{BackupRow, Catalog};
use crate::client::Client;

/// The first of `names` found in the usual places that answers `--version`.
fn find_tool(names: &[&str]) -> Result<Tool, RpcError> {
    let mut searched = Vec::new();
    for name in names {
        let candidates = tools::candidates(name, &[], &tools::mysql_dirs());
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
    PassFile::with("my.cnf", &text)
}

fn summary(server: &ServerConnection) -> String {
    let mut clean = server.clone();
    clean.password = None;
    if let Some(url) = &clean.url
        && let Ok(mut parsed) = url::Url::parse(url)
    {
        let _ = parsed.set_password(None);
        clean.url = Some(parsed.to_string());
    }
    let mut value = serde_json::to_value(&clean).unwrap_or_default();
    value["kind"] = serde_json::json!("mysql");
    value.to_string()
}

#[allow(clippy::too_many_arguments)]
pub async fn start_backup(
    jobs: &Arc<JobManager>,
    catalog: &Arc<Catalog>,
    data_dir: &Path,
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
    let tool = find_tool(&["mariadb-dump", "mysqldump"])?;
    let login = dump::login(server).map_err(crate::errors::db_error)?;
    let id = crate::ids::new_id("b");
    let dest = match destination {
        Some(path) => PathBuf::from(path),
        None => default_destination(data_dir, &plan.database, &id, "sql"),
    };
    check_destination(&dest, overwrite)?;
    catalog
        .insert_backup(BackupRow {
            id: id.clone(),
            engine: "mysql".into(),
            connection_id,
            connection: summary(server),
            database: plan.database.clone(),
            path: dest.to_string_lossy().into_owned(),
            format: "plain".into(),
            size_bytes: 0,
            sha256: None,
            status: "running".into(),
            tool_version: Some(tool.version.clone()),
            server_version: Some(plan.server_version.clone()),
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            finished_at: None,
            error: None,
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
}

impl MyBackup {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let part = dbbridge_db::sqlite::backup::sibling(&self.dest, ".part");
        let _ = std::fs::remove_file(&part);
        let mut throttle = Throttle::default();
        self.progress(&mut throttle, "preparing", Some(0.0), 0, None)
            .await;
        let outcome = match self.dump(&part, &cancel, &mut throttle).await {
            Ok(()) => {
                let size = std::fs::metadata(&part).map_or(0, |m| m.len());
                self.progress(&mut throttle, "finalizing", Some(99.9), size, None)
                    .await;
                let done = finalize(&part, &self.dest).await;
                if let Ok((size, _)) = &done {
                    let percent = throttle.done();
                    self.send_progress("finalizing", Some(percent), *size, None)
                        .await;
                }
                done
            }
            Err(failed) => Err(failed),
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

    async fn dump(
        &self,
        part: &Path,
        cancel: &CancellationToken,
        throttle: &mut Throttle,
    ) -> Result<(), (JobStatus, Option<RpcError>)> {
        let failed = |what: String| {
            (
                JobStatus::Failed,
                Some(RpcError::new(ErrorCode::BackupFailed, what)),
            )
        };
        let options = option_file(&self.login)
            .map_err(|e| failed(format!("could not write the option file: {e}")))?;
        if let Some(password) = &self.login.password {
            crate::redact::remember(password);
        }
        let command =
            dump::dump_command(&self.tool.path, &options.path(), &self.plan.database, part);
        let mut child = tool_command(command, &options)
            .env_remove("MYSQL_PWD")
            .spawn()
            .map_err(|e| failed(format!("could not start {}: {e}", self.tool.path.display())))?;
        let mut lines = child
            .stderr
            .take()
            .map(|s| tokio::io::BufReader::new(s).lines());
        let mut tail: std::collections::VecDeque<String> = Default::default();
        let total: u64 = self.plan.tables.iter().map(|t| t.1).sum::<u64>().max(1);
        let (mut done_bytes, mut current): (u64, Option<String>) = (0, None);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let status = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    kill_group(&mut child);
                    let _ = child.wait().await;
                    return Err((JobStatus::Cancelled, None));
                }
                line = async {
                    match lines.as_mut() {
                        Some(lines) => lines.next_line().await,
                        None => std::future::pending().await,
                    }
                } => match line {
                    Ok(Some(line)) => {
                        if let Some(table) = dump::dumping_table(&line) {
                            if let Some(previous) = &current {
                                done_bytes += self.plan.tables.iter().find(|t| &t.0 == previous).map_or(0, |t| t.1);
                            }
                            current = Some(table.to_string());
                        }
                        if tail.len() == 12 {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                    _ => lines = None,
                },
                _ = tick.tick() => {}
                status = child.wait(), if lines.is_none() => break status,
            }
            let percent = 100.0 * done_bytes as f64 / total as f64;
            let bytes = std::fs::metadata(part).map_or(0, |m| m.len());
            self.progress(throttle, "dumping", Some(percent), bytes, current.clone())
                .await;
        };
        drop(options);
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let said: Vec<String> = tail
                    .iter()
                    .map(|l| crate::redact::scrub(l).into_owned())
                    .collect();
                Err(failed(format!(
                    "{} ended with {status}: {}",
                    self.tool.path.display(),
                    said.join("\n")
                )))
            }
            Err(e) => Err(failed(format!("waiting for the dump tool failed: {e}"))),
        }
    }

    async fn progress(
        &self,
        throttle: &mut Throttle,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
        current: Option<String>,
    ) {
        if let Some(percent) = throttle.due(phase, percent) {
            self.send_progress(phase, percent, bytes, current).await;
        }
    }

    async fn send_progress(
        &self,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
        current: Option<String>,
    ) {
        self.client
            .notify::<BackupProgress>(&BackupProgressEvent {
                backup_id: self.id.clone(),
                phase: phase.to_string(),
                percent,
                bytes_written: bytes,
                current_object: current,
            })
            .await;
    }
}

/// Restores into the fresh database the caller names in `server`.
pub async fn start_restore(
    jobs: &Arc<JobManager>,
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
    let tool = find_tool(&["mariadb", "mysql"])?;
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
}

impl MyRestore {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let mut throttle = Throttle::default();
        let result = self.restore(&cancel, &mut throttle).await;
        if result.is_err() {
            let name = self.database.replace('`', "``");
            if let Err(e) = run_admin(&self.admin, &format!("DROP DATABASE `{name}`")).await {
                tracing::warn!(error = %e.message, "dropping the half-restored database failed");
            }
        }
        let (status, error) = match result {
            Ok(()) => {
                let percent = throttle.done();
                self.send_progress("finalizing", Some(percent)).await;
                (JobStatus::Completed, None)
            }
            Err(None) => (JobStatus::Cancelled, None),
            Err(Some(error)) => (JobStatus::Failed, Some(error)),
        };
        self.client
            .notify::<RestoreDone>(&RestoreDoneEvent {
                restore_id: self.id.clone(),
                backup_id: self.backup_id.clone(),
                status,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            })
            .await;
    }

    async fn restore(
        &self,
        cancel: &CancellationToken,
        throttle: &mut Throttle,
    ) -> Result<(), Option<RpcError>> {
        let failed = |what: String| Some(RpcError::new(ErrorCode::RestoreFailed, what));
        if let Some(p) = throttle.due("verifying", Some(0.0)) {
            self.send_progress("verifying", p).await;
        }
        let actual = super::sha256_file(self.file.clone()).await.map_err(|e| {
            failed(format!(
                "cannot read the backup file {}: {e}",
                self.file.display()
            ))
        })?;
        if actual != self.sha256 {
            return Err(failed(format!(
                "the backup file {} does not match its checksum; nothing was restored",
                self.file.display()
            )));
        }
        let options = option_file(&self.login)
            .map_err(|e| failed(format!("could not write the option file: {e}")))?;
        if let Some(password) = &self.login.password {
            crate::redact::remember(password);
        }
        let mut command = tool_command(
            dump::restore_command(&self.tool.path, &options.path(), &self.database),
            &options,
        );
        command
            .stdin(std::process::Stdio::piped())
            .env_remove("MYSQL_PWD");
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("could not start the client: {e}")))?;
        let mut stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let said = tokio::spawn(async move {
            let mut tail = std::collections::VecDeque::new();
            if let Some(stderr) = stderr {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tail.len() == 12 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
            tail
        });
        let mut file = tokio::fs::File::open(&self.file)
            .await
            .map_err(|e| failed(format!("cannot open {}: {e}", self.file.display())))?;
        let total = file.metadata().await.map_or(1, |m| m.len().max(1));
        let (mut fed, mut buf) = (0u64, vec![0u8; 256 * 1024]);
        loop {
            if cancel.is_cancelled() {
                kill_group(&mut child);
                let _ = child.wait().await;
                return Err(None);
            }
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| failed(format!("reading the backup failed: {e}")))?;
            let Some(pipe) = stdin.as_mut() else { break };
            if n == 0 || pipe.write_all(&buf[..n]).await.is_err() {
                break;
            }
            fed += n as u64;
            if let Some(percent) =
                throttle.due("restoring", Some(100.0 * fed as f64 / total as f64))
            {
                self.send_progress("restoring", percent).await;
            }
        }
        drop(stdin);
        let status = child.wait().await;
        drop(options);
        let tail = said.await.unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let lines: Vec<String> = tail
                    .iter()
                    .map(|l| crate::redact::scrub(l).into_owned())
                    .collect();
                Err(failed(format!(
                    "the client ended with {status}; the fresh database was dropped: {}",
                    lines.join("\n")
                )))
            }
            Err(e) => Err(failed(format!("waiting for the client failed: {e}"))),
        }
    }

    async fn send_progress(&self, phase: &str, percent: Option<f64>) {
        self.client
            .notify::<RestoreProgress>(&RestoreProgressEvent {
                restore_id: self.id.clone(),
                backup_id: self.backup_id.clone(),
                phase: phase.to_string(),
                percent,
                current_object: None,
            })
            .await;
    }
}

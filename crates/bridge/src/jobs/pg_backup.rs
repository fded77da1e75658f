//! The Postgres backup job: `pg_dump` (plain SQL by default, which `psql`
//! restores; `custom` for `pg_restore`), the lowest installed major at least
//! the server's, found and checked before anything starts. The password
//! reaches it only through a `0600` `PGPASSFILE` in a private folder that is
//! removed afterwards: never argv, never the bridge's environment. Progress
//! comes from `pg_dump --verbose` (the table it dumps) weighed by the
//! tables' sizes read beforehand, and from the bytes written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbbridge_db::postgres::PgConnection;
use dbbridge_db::postgres::dump::{self, DumpPlan, Target};
use dbbridge_db::tools::{self, Tool, ToolError};
use dbbridge_protocol::backup::{BackupProgressEvent, JobStatus};
use dbbridge_protocol::connection::ServerConnection;
use dbbridge_protocol::events::BackupProgress;
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::backup::{check_destination, default_destination, finalize, record_end};
use super::{JobManager, Throttle};
use crate::catalog::{BackupRow, Catalog};
use crate::client::Client;

/// Lines of the tool's stderr kept for an error message.
const STDERR_TAIL: usize = 12;

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

/// The source without any password, for the catalog.
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
    value["kind"] = serde_json::json!("postgres");
    value.to_string()
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
        None => default_destination(data_dir, &plan.database, &id, "sql"),
    };
    check_destination(&dest, overwrite)?;
    catalog
        .insert_backup(BackupRow {
            id: id.clone(),
            engine: "postgres".into(),
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
    let job = PgBackup {
        id: id.clone(),
        tool,
        target,
        plan,
        dest,
        catalog: catalog.clone(),
        client,
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct PgBackup {
    id: String,
    tool: Tool,
    target: Target,
    plan: DumpPlan,
    dest: PathBuf,
    catalog: Arc<Catalog>,
    client: Client,
}

/// A private folder holding one `0600` file with a tool's login (a
/// `PGPASSFILE`, a MySQL option file) for one run; both go when it is dropped.
pub struct PassFile {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl PassFile {
    /// A `PGPASSFILE` giving `password` to the tool.
    pub fn new(password: Option<&str>) -> std::io::Result<PassFile> {
        let line = password.map(dump::pgpass_line).unwrap_or_default();
        PassFile::with("pgpass", &line)
    }

    /// A file named `name` holding `contents`.
    pub fn with(name: &'static str, contents: &str) -> std::io::Result<PassFile> {
        let dir = tempfile::Builder::new()
            .prefix("dbbridge-tool-")
            .tempdir()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(dir.path().join(name))?;
        file.write_all(contents.as_bytes())?;
        Ok(PassFile { dir, name })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(self.name)
    }
}

/// Prepares a tool's command: the password file, no inherited password,
/// its own process group (so a cancel stops everything it started).
pub fn tool_command(command: std::process::Command, pass: &PassFile) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(command);
    command
        .env("PGPASSFILE", pass.path())
        .env_remove("PGPASSWORD")
        .env_remove("DBBRIDGE_SECRET_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    command
}

/// Stops a tool and everything in its process group.
pub fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(target_os = "linux")]
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.start_kill();
}

impl PgBackup {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let part = dbbridge_db::sqlite::backup::sibling(&self.dest, ".part");
        let _ = std::fs::remove_file(&part);
        let mut throttle = Throttle::default();
        self.progress(&mut throttle, "preparing", Some(0.0), 0, None)
            .await;
        let outcome = self.dump(&part, &cancel, &mut throttle).await;
        let outcome = match outcome {
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

    /// Runs pg_dump to its end, a cancel, or a failure.
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
        let pass = PassFile::new(self.target.password.as_deref())
            .map_err(|e| failed(format!("could not write the password file: {e}")))?;
        if let Some(password) = &self.target.password {
            crate::redact::remember(password);
        }
        let command = dump::dump_command(&self.tool.path, &self.target, part, false);
        let mut child = tool_command(command, &pass)
            .spawn()
            .map_err(|e| failed(format!("could not start {}: {e}", self.tool.path.display())))?;
        let stderr = child.stderr.take().map(tokio::io::BufReader::new);
        let mut lines = stderr.map(|s| s.lines());
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
                } => {
                    match line {
                        Ok(Some(line)) => {
                            if let Some(table) = dump::dumping_table(&line) {
                                if let Some(previous) = &current {
                                    done_bytes += self.size_of(previous);
                                }
                                current = Some(table.to_string());
                            }
                            if tail.len() == STDERR_TAIL {
                                tail.pop_front();
                            }
                            tail.push_back(line);
                        }
                        _ => lines = None,
                    }
                }
                _ = tick.tick() => {}
                status = child.wait(), if lines.is_none() => break status,
            }
            let percent = 100.0 * done_bytes as f64 / total as f64;
            let bytes = std::fs::metadata(part).map_or(0, |m| m.len());
            self.progress(throttle, "dumping", Some(percent), bytes, current.clone())
                .await;
        };
        drop(pass);
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let said: Vec<String> = tail
                    .iter()
                    .map(|l| crate::redact::scrub(l).into_owned())
                    .collect();
                Err(failed(format!(
                    "pg_dump ended with {status}: {}",
                    said.join("\n")
                )))
            }
            Err(e) => Err(failed(format!("waiting for pg_dump failed: {e}"))),
        }
    }

    fn size_of(&self, table: &str) -> u64 {
        self.plan
            .tables
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |t| t.1)
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

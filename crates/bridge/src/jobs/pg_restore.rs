//! Restoring a plain Postgres dump: the checksum is verified and the dump's
//! `pg_dump` major checked against the target server before anything runs
//! (a dump by a newer `pg_dump` may set what an older server does not know,
//! such as `transaction_timeout`); then `psql --single-transaction -v
//! ON_ERROR_STOP=1` is fed the file on stdin, so a failure midway leaves the
//! target exactly as it was. Progress is the bytes fed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dbbridge_db::postgres::PgConnection;
use dbbridge_db::postgres::dump::{self, Target};
use dbbridge_db::tools::{self, Tool};
use dbbridge_protocol::backup::{JobStatus, RestoreDoneEvent, RestoreProgressEvent};
use dbbridge_protocol::connection::ServerConnection;
use dbbridge_protocol::events::{RestoreDone, RestoreProgress};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::pg_backup::{PassFile, find_tool, kill_group, tool_command};
use super::{JobManager, Throttle};
use crate::client::Client;

#[allow(clippy::too_many_arguments)]
pub async fn start(
    jobs: &Arc<JobManager>,
    client: Client,
    backup_id: &str,
    file: PathBuf,
    sha256: String,
    tool_version: &str,
    server: &ServerConnection,
    bin_dirs: &[PathBuf],
) -> Result<String, RpcError> {
    let connection = PgConnection::open(server)
        .await
        .map_err(crate::errors::db_error)?;
    let server_version = connection.version().to_string();
    drop(connection);
    let server_major = dump::major(&server_version)
        .ok_or_else(|| RpcError::internal(format!("server version {server_version:?}")))?;
    if let Some(dumped_by) = tools::major_of(tool_version)
        && dumped_by > server_major
    {
        return Err(RpcError::new(
            ErrorCode::ToolVersionMismatch,
            format!(
                "this backup was made by pg_dump {dumped_by}, newer than the target server ({server_major}); restore it into a Postgres {dumped_by} or newer"
            ),
        )
        .with_details(serde_json::json!({
            "dumpedBy": tool_version,
            "serverVersion": server_version,
        })));
    }
    let psql = find_tool("psql", bin_dirs, server_major)?;
    let target = dump::target(server, None).map_err(crate::errors::db_error)?;
    let id = crate::ids::new_id("r");
    let job = PgRestore {
        id: id.clone(),
        backup_id: backup_id.to_string(),
        file,
        sha256,
        psql,
        target,
        client,
    };
    jobs.spawn(id.clone(), move |cancel| job.run(cancel));
    Ok(id)
}

struct PgRestore {
    id: String,
    backup_id: String,
    file: PathBuf,
    sha256: String,
    psql: Tool,
    target: Target,
    client: Client,
}

impl PgRestore {
    async fn run(self, cancel: CancellationToken) {
        let started = Instant::now();
        let mut throttle = Throttle::default();
        let (status, error) = match self.restore(&cancel, &mut throttle).await {
            Ok(()) => {
                let percent = throttle.done();
                self.send_progress("finalizing", Some(percent)).await;
                (JobStatus::Completed, None)
            }
            Err(None) => (JobStatus::Cancelled, None),
            Err(Some(error)) => (JobStatus::Failed, Some(error)),
        };
        tracing::info!(restore = %self.id, backup = %self.backup_id, ?status, "restore finished");
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

    /// `Err(None)` when cancelled.
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
        let pass = PassFile::new(self.target.password.as_deref())
            .map_err(|e| failed(format!("could not write the password file: {e}")))?;
        if let Some(password) = &self.target.password {
            crate::redact::remember(password);
        }
        let mut command = tool_command(dump::restore_command(&self.psql.path, &self.target), &pass);
        command.stdin(std::process::Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("could not start psql: {e}")))?;
        let mut stdin = child.stdin.take();
        let stderr = child.stderr.take();
        // What psql says, kept for the error (its last lines).
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
        let mut fed = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
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
            if n == 0 {
                break;
            }
            let Some(pipe) = stdin.as_mut() else { break };
            tokio::select! {
                written = pipe.write_all(&buf[..n]) => {
                    // psql stopped reading: it failed; its exit says why.
                    if written.is_err() {
                        break;
                    }
                }
                _ = cancel.cancelled() => continue,
            }
            fed += n as u64;
            let percent = 100.0 * fed as f64 / total as f64;
            if let Some(percent) = throttle.due("restoring", Some(percent)) {
                self.send_progress("restoring", percent).await;
            }
        }
        drop(stdin);
        let status = tokio::select! {
            status = child.wait() => status,
            _ = cancel.cancelled() => {
                kill_group(&mut child);
                let _ = child.wait().await;
                return Err(None);
            }
        };
        drop(pass);
        let tail = said.await.unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let lines: Vec<String> = tail
                    .iter()
                    .map(|l| crate::redact::scrub(l).into_owned())
                    .collect();
                Err(failed(format!(
                    "psql ended with {status}; the target is unchanged (one transaction): {}",
                    lines.join("\n")
                )))
            }
            Err(e) => Err(failed(format!("waiting for psql failed: {e}"))),
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

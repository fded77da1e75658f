//! Running a database's own tool as a job's work, one way for every engine:
//! the login in a private `0600` file (never argv, never the environment),
//! the tool in its own process group (a cancel kills all of it), its stderr
//! read for progress and kept (scrubbed) for the error, and its progress
//! reported through the job's [`Reporter`].

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbbridge_protocol::backup::{BackupProgressEvent, JobStatus, RestoreProgressEvent};
use dbbridge_protocol::events::{BackupProgress, RestoreProgress};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::Throttle;
use crate::client::Client;

/// Lines of a tool's stderr kept for its error message.
const STDERR_TAIL: usize = 12;

/// A private folder holding one `0600` file with a tool's login (a
/// `PGPASSFILE`, a MySQL option file) for one run; both go when it is dropped.
pub struct PassFile {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl PassFile {
    /// A file named `name` holding `contents`.
    pub fn new(name: &'static str, contents: &str) -> std::io::Result<PassFile> {
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

/// Prepares a tool's command: the login file named in `pass_env` where the
/// tool takes it from the environment (`PGPASSFILE`; MySQL's tools take
/// theirs as their first argument), no password inherited from the bridge's
/// own environment, stderr read, its own process group.
pub fn command(
    command: std::process::Command,
    pass: &PassFile,
    pass_env: Option<&str>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(command);
    if let Some(name) = pass_env {
        command.env(name, pass.path());
    }
    command
        .env_remove("PGPASSWORD")
        .env_remove("MYSQL_PWD")
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

/// Where a job's progress goes: `backup.progress` or `backup.restore.progress`.
pub struct Reporter {
    to: Job,
    client: Client,
    throttle: Throttle,
    /// The object (table) the last event sent named.
    named: Option<String>,
}

/// The job a [`Reporter`] speaks for.
enum Job {
    Backup { id: String },
    Restore { id: String, backup_id: String },
}

impl Reporter {
    pub fn backup(id: &str, client: &Client) -> Reporter {
        Reporter::new(Job::Backup { id: id.to_string() }, client)
    }

    pub fn restore(id: &str, backup_id: &str, client: &Client) -> Reporter {
        let to = Job::Restore {
            id: id.to_string(),
            backup_id: backup_id.to_string(),
        };
        Reporter::new(to, client)
    }

    fn new(to: Job, client: &Client) -> Reporter {
        Reporter {
            to,
            client: client.clone(),
            throttle: Throttle::default(),
            named: None,
        }
    }

    /// Sends progress if it is due (throttled, never backwards).
    pub async fn progress(
        &mut self,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
        current: Option<String>,
    ) {
        if let Some(percent) = self.throttle.due(phase, percent) {
            self.send(phase, percent, bytes, current).await;
        }
    }

    /// Names `current` past the throttle (never backwards) unless the last
    /// event already named it: for the last table a tool reported, which
    /// the throttle may have swallowed just before the tool ended.
    pub async fn name_last(
        &mut self,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
        current: Option<String>,
    ) {
        if current.is_some() && current != self.named {
            let percent = self.throttle.now(phase, percent);
            self.send(phase, percent, bytes, current).await;
        }
    }

    /// The last progress event of a finished job: 100%.
    pub async fn finished(&mut self, bytes: u64) {
        let percent = self.throttle.done();
        self.send("finalizing", Some(percent), bytes, None).await;
    }

    async fn send(
        &mut self,
        phase: &str,
        percent: Option<f64>,
        bytes: u64,
        current: Option<String>,
    ) {
        self.named.clone_from(&current);
        match &self.to {
            Job::Backup { id } => {
                self.client
                    .notify::<BackupProgress>(&BackupProgressEvent {
                        backup_id: id.clone(),
                        phase: phase.to_string(),
                        percent,
                        bytes_written: bytes,
                        current_object: current,
                    })
                    .await;
            }
            Job::Restore { id, backup_id } => {
                self.client
                    .notify::<RestoreProgress>(&RestoreProgressEvent {
                        restore_id: id.clone(),
                        backup_id: backup_id.clone(),
                        phase: phase.to_string(),
                        percent,
                        current_object: current,
                    })
                    .await;
            }
        }
    }
}

/// Runs a dump tool writing `part`, reporting the table its stderr says it
/// is on (`table_of`), weighed by `tables`' sizes, and the bytes written.
pub async fn dump(
    mut command: tokio::process::Command,
    name: &str,
    part: &Path,
    tables: &[(String, u64)],
    table_of: fn(&str) -> Option<&str>,
    cancel: &CancellationToken,
    reporter: &mut Reporter,
) -> Result<(), (JobStatus, Option<RpcError>)> {
    let failed = |what: String| {
        (
            JobStatus::Failed,
            Some(RpcError::new(ErrorCode::BackupFailed, what)),
        )
    };
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("could not start {name}: {e}")))?;
    let mut lines = child
        .stderr
        .take()
        .map(|s| tokio::io::BufReader::new(s).lines());
    let mut tail = VecDeque::new();
    let total: u64 = tables.iter().map(|t| t.1).sum::<u64>().max(1);
    let size_of = |table: &str| tables.iter().find(|t| t.0 == table).map_or(0, |t| t.1);
    // The percent done (the tables before the current one, by size) and the
    // bytes written so far.
    let at = |done_bytes: u64| {
        let bytes = std::fs::metadata(part).map_or(0, |m| m.len());
        (100.0 * done_bytes as f64 / total as f64, bytes)
    };
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
                    if let Some(table) = table_of(&line) {
                        if let Some(previous) = &current {
                            done_bytes += size_of(previous);
                        }
                        current = Some(table.to_string());
                    }
                    keep(&mut tail, line);
                }
                _ => lines = None,
            },
            _ = tick.tick() => {}
            status = child.wait(), if lines.is_none() => break status,
        }
        let (percent, bytes) = at(done_bytes);
        reporter
            .progress("dumping", Some(percent), bytes, current.clone())
            .await;
    };
    match status {
        Ok(status) if status.success() => {
            // The last table is named even when the throttle swallowed it.
            let (percent, bytes) = at(done_bytes);
            reporter
                .name_last("dumping", Some(percent), bytes, current)
                .await;
            Ok(())
        }
        Ok(status) => Err(failed(format!(
            "{name} ended with {status}: {}",
            said(&tail)
        ))),
        Err(e) => Err(failed(format!("waiting for {name} failed: {e}"))),
    }
}

/// Runs a client tool fed `file` on stdin, reporting the bytes fed.
/// `Err(None)` when cancelled.
pub async fn feed(
    mut command: tokio::process::Command,
    name: &str,
    file: &Path,
    cancel: &CancellationToken,
    reporter: &mut Reporter,
    on_failure: &str,
) -> Result<(), Option<RpcError>> {
    let failed = |what: String| Some(RpcError::new(ErrorCode::RestoreFailed, what));
    command.stdin(std::process::Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("could not start {name}: {e}")))?;
    let mut stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let reading = tokio::spawn(async move {
        let mut tail = VecDeque::new();
        if let Some(stderr) = stderr {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&mut tail, line);
            }
        }
        tail
    });
    let mut source = tokio::fs::File::open(file)
        .await
        .map_err(|e| failed(format!("cannot open {}: {e}", file.display())))?;
    let total = source.metadata().await.map_or(1, |m| m.len().max(1));
    let (mut fed, mut buf) = (0u64, vec![0u8; 256 * 1024]);
    loop {
        if cancel.is_cancelled() {
            kill_group(&mut child);
            let _ = child.wait().await;
            return Err(None);
        }
        let n = source
            .read(&mut buf)
            .await
            .map_err(|e| failed(format!("reading the backup failed: {e}")))?;
        let Some(pipe) = stdin.as_mut() else { break };
        // A client that stopped reading has failed; its exit says why.
        if n == 0 || pipe.write_all(&buf[..n]).await.is_err() {
            break;
        }
        fed += n as u64;
        reporter
            .progress(
                "restoring",
                Some(100.0 * fed as f64 / total as f64),
                fed,
                None,
            )
            .await;
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
    let tail = reading.await.unwrap_or_default();
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(failed(format!(
            "{name} ended with {status}; {on_failure}: {}",
            said(&tail)
        ))),
        Err(e) => Err(failed(format!("waiting for {name} failed: {e}"))),
    }
}

/// Checks a backup file against the checksum the catalog recorded.
pub async fn verify(
    file: &Path,
    sha256: &str,
    reporter: &mut Reporter,
) -> Result<(), Option<RpcError>> {
    let failed = |what: String| Some(RpcError::new(ErrorCode::RestoreFailed, what));
    reporter.progress("verifying", Some(0.0), 0, None).await;
    let actual = super::sha256_file(file.to_path_buf()).await.map_err(|e| {
        failed(format!(
            "cannot read the backup file {}: {e}",
            file.display()
        ))
    })?;
    if actual != sha256 {
        return Err(failed(format!(
            "the backup file {} does not match its checksum (sha256 {actual}, {sha256} recorded); nothing was restored",
            file.display()
        )));
    }
    Ok(())
}

fn keep(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == STDERR_TAIL {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// A tool's last lines, scrubbed of every remembered secret.
fn said(tail: &VecDeque<String>) -> String {
    let said = tail
        .iter()
        .map(|l| crate::redact::scrub(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    if said.trim().is_empty() {
        // Killed from outside, say: it wrote nothing before it died.
        "it wrote nothing on stderr".to_string()
    } else {
        said
    }
}

//! Jobs: long tasks (backups, restores, exports) that run off the
//! request path. One place for what every job needs: an opaque id, an owner,
//! a cancel token that is a child of the shutdown root (so shutdown cancels
//! every job), a task the shutdown tracker waits for, throttled progress and
//! the count `health.ping` reports. What a job does lives in its own file.

pub mod backup;
pub mod export;
mod my_backup;
pub mod pg_backup;
mod pg_restore;
mod progress;
pub mod restore;
mod tool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::shutdown::Shutdown;

pub use progress::Throttle;

/// Where to look for the databases' tools before PATH and the usual folders
/// (`--pg-bin-dir`, `--mysql-bin-dir`).
#[derive(Debug, Clone, Default)]
pub struct ToolDirs {
    pub postgres: Vec<std::path::PathBuf>,
    pub mysql: Vec<std::path::PathBuf>,
}

/// The registry of running jobs.
pub struct JobManager {
    jobs: Mutex<HashMap<String, CancellationToken>>,
    shutdown: Shutdown,
}

impl JobManager {
    pub fn new(shutdown: Shutdown) -> JobManager {
        JobManager {
            jobs: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Registers a job under `id` and runs `work` as a tracked task; the job
    /// is unregistered when `work` ends, whatever way it ends.
    pub fn spawn<F, Fut>(self: &Arc<Self>, id: String, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let cancel = self.shutdown.token.child_token();
        self.lock().insert(id.clone(), cancel.clone());
        let running = work(cancel);
        let manager = self.clone();
        self.shutdown.tracker.spawn(async move {
            running.await;
            manager.lock().remove(&id);
        });
    }

    /// Asks the job `id` to stop; false when no such job is running.
    pub fn cancel(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Unregisters a job that is about to report its end, so a cancel that
    /// arrives after its done event answers `false`.
    pub fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn running(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The SHA-256 of a file, as lowercase hex, read on a blocking thread.
pub async fn sha256_file(path: std::path::PathBuf) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    })
    .await
    .map_err(std::io::Error::other)?
}

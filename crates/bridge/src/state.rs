//! The state every client of one bridge process shares: sessions, the
//! catalog, the secret store, the shutdown root, process sampling. It sits
//! below the router and the handlers and imports neither.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::catalog::Catalog;
use crate::health::ProcessSampler;
use crate::jobs::JobManager;
use crate::secrets::SecretStore;
use crate::session::SessionManager;
use crate::shutdown::Shutdown;

/// Settings fixed at start.
pub struct BridgeConfig {
    /// Holds `bridge.db`, `backups/`, `logs/` and the secret file.
    pub data_dir: PathBuf,
    /// Registers `debug.*` methods used by the test suite.
    pub test_hooks: bool,
    pub secret_backend: crate::secrets::BackendChoice,
    /// `DBBRIDGE_SECRET_KEY`, for the encrypted-file store.
    pub secret_key: Option<secrecy::SecretString>,
    /// `--pg-bin-dir`: where to look for Postgres's tools first.
    pub pg_bin_dirs: Vec<PathBuf>,
    /// `--mysql-bin-dir`: where to look for MySQL's and MariaDB's tools first.
    pub mysql_bin_dirs: Vec<PathBuf>,
}

/// Everything shared by all clients of one bridge process.
pub struct Bridge {
    pub started: Instant,
    pub shutdown: Shutdown,
    pub sessions: Arc<SessionManager>,
    pub process: ProcessSampler,
    pub catalog: Arc<Catalog>,
    pub secrets: SecretStore,
    pub jobs: Arc<JobManager>,
    /// Holds `bridge.db`, `backups/`, `logs/` and the secret file.
    pub data_dir: PathBuf,
    pub pg_bin_dirs: Vec<PathBuf>,
    pub mysql_bin_dirs: Vec<PathBuf>,
    next_client_id: AtomicU64,
}

impl Bridge {
    /// Opens `bridge.db` and the secret store.
    pub async fn start(config: BridgeConfig) -> anyhow::Result<Arc<Bridge>> {
        let shutdown = Shutdown::new();
        let catalog = Arc::new(Catalog::open(&config.data_dir)?);
        // After a crash: backups left running failed; their partial files go.
        for path in catalog.fail_interrupted_backups()? {
            let part = dbbridge_db::sqlite::backup::sibling(std::path::Path::new(&path), ".part");
            if std::fs::remove_file(&part).is_ok() {
                tracing::info!(path = %part.display(), "removed an interrupted backup's partial file");
            }
        }
        let secrets = SecretStore::open(
            config.secret_backend,
            &config.data_dir,
            catalog.clone(),
            config.secret_key,
        )
        .await;
        tracing::info!(
            data_dir = %config.data_dir.display(),
            secret_backend = ?secrets.backend(),
            secret_key_source = secrets.key_source().map(|s| s.as_str()),
            "bridge state ready"
        );
        Ok(Arc::new(Bridge {
            sessions: Arc::new(SessionManager::new(shutdown.clone())),
            jobs: Arc::new(JobManager::new(shutdown.clone())),
            data_dir: config.data_dir.clone(),
            pg_bin_dirs: config.pg_bin_dirs.clone(),
            mysql_bin_dirs: config.mysql_bin_dirs.clone(),
            started: Instant::now(),
            shutdown,
            process: ProcessSampler::new(),
            catalog,
            secrets,
            next_client_id: AtomicU64::new(1),
        }))
    }

    /// A new id for a connecting client.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Graceful stop: cancel running queries, close sessions (each client gets
    /// its `session.closed`, each server its goodbye), then wait for every
    /// tracked task.
    pub async fn stop(&self) {
        self.shutdown.trigger("stop");
        self.sessions
            .close_all(dbbridge_protocol::session::SessionClosedReason::Shutdown)
            .await;
        self.shutdown.tracker.close();
        if tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.shutdown.tracker.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!("some tasks did not finish within 10 s of shutdown");
        }
        // The closed connections' goodbyes are written on their own threads,
        // which the process's exit would cut short (each is bounded). A
        // connection is dropped with the last task holding its session (its
        // idle watch, say), so this comes after the tasks.
        if tokio::time::timeout(
            std::time::Duration::from_secs(3),
            dbbridge_db::goodbyes_said(),
        )
        .await
        .is_err()
        {
            tracing::warn!("some connections' goodbyes were not written within 3 s of shutdown");
        }
    }
}

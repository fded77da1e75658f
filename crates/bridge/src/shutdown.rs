//! The one shutdown root: a `CancellationToken` every loop selects on, and a
//! `TaskTracker` every spawned task is tracked by, so shutdown can wait for them.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every loop to stop. Idempotent.
    pub fn trigger(&self, why: &str) {
        if !self.token.is_cancelled() {
            tracing::info!(why, "shutting down");
            self.token.cancel();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
    pub async fn signal() -> &'static str {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c().await,
            };
            tokio::select! {
                why = ctrl_c() => why,
                _ = term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            ctrl_c().await
        }
    }
}

async fn ctrl_c() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "SIGINT",
        // Without a signal handler, never resolve rather than shut down at once.
        Err(_) => std::future::pending().await,
    }
}

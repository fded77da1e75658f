//! Sessions: one dedicated database connection each, at most one running query.

use dbbridge_protocol::session::SessionClosedReason;

use crate::shutdown::Shutdown;

pub struct SessionManager {
    _shutdown: Shutdown,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SessionCounts {
    pub sessions: u32,
    pub running_queries: u32,
}

impl SessionManager {
    pub fn new(shutdown: Shutdown) -> Self {
        SessionManager {
            _shutdown: shutdown,
        }
    }

    pub fn counts(&self) -> SessionCounts {
        SessionCounts::default()
    }

    pub async fn close_all(&self, _reason: SessionClosedReason) {}

    pub async fn close_for_client(&self, _client: u64) {}
}

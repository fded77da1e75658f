//! Sessions: one dedicated database connection each, so transactions span
//! calls, with at most one running query. Sessions belong to the client that
//! opened them, close after an idle timeout, and are all closed (queries
//! cancelled first) on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbbridge_db::Connection;
use dbbridge_protocol::connection::{ConnectionSpec, EngineKind};
use dbbridge_protocol::events::SessionClosed;
use dbbridge_protocol::session::{SessionClosedEvent, SessionClosedReason, SessionInfo};
use dbbridge_protocol::{ErrorCode, RpcError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::shutdown::Shutdown;

/// Sessions close after this long without activity unless the client says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct SessionManager {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shutdown: Shutdown,
    running_queries: AtomicU32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SessionCounts {
    pub sessions: u32,
    pub running_queries: u32,
}

pub struct Session {
    pub id: String,
    pub connection: Connection,
    /// What the connection was opened with (password resolved), for jobs
    /// that open a connection of their own to the same database (exports).
    pub spec: ConnectionSpec,
    pub client: Client,
    opened_at: OffsetDateTime,
    /// Milliseconds since `started` of the last activity.
    last_activity_ms: AtomicU64,
    started: Instant,
    idle_timeout: Duration,
    running: Mutex<Option<Arc<QueryControl>>>,
    /// Cancelled when the session is closed, for whatever reason.
    pub closed: CancellationToken,
}

impl Session {
    pub fn kind(&self) -> EngineKind {
        self.connection.kind()
    }

    /// Marks the session as used now (resets its idle timer).
    pub fn touch(&self) {
        self.last_activity_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn running(&self) -> Option<Arc<QueryControl>> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Claims the session for a query; `SESSION_BUSY` if one is running.
    pub fn claim(&self, query: Arc<QueryControl>) -> Result<(), RpcError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.is_cancelled() {
            return Err(not_found(&self.id));
        }
        if let Some(current) = running.as_ref() {
            return Err(RpcError::new(
                ErrorCode::SessionBusy,
                format!("session {} is running query {}", self.id, current.query_id),
            )
            .with_details(serde_json::json!({ "runningQueryId": current.query_id })));
        }
        *running = Some(query);
        Ok(())
    }

    /// Releases the session after `query_id` ended.
    pub fn release(&self, query_id: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.as_ref().is_some_and(|q| q.query_id == query_id) {
            *running = None;
        }
        drop(running);
        self.touch();
    }

    /// Fails with `SESSION_BUSY` while a query runs (the connection is in use).
    pub fn ensure_idle(&self) -> Result<(), RpcError> {
        match self.running() {
            Some(q) => Err(RpcError::new(
                ErrorCode::SessionBusy,
                format!("session {} is running query {}", self.id, q.query_id),
            )),
            None => Ok(()),
        }
    }

    fn info(&self) -> SessionInfo {
        let running = self.running();
        let window = running
            .as_ref()
            .and_then(|q| q.window.as_ref())
            .map(Window::state);
        let last =
            self.opened_at + Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst));
        SessionInfo {
            session_id: self.id.clone(),
            kind: self.kind(),
            database: self.connection.database().to_string(),
            opened_at: self.opened_at.format(&Rfc3339).unwrap_or_default(),
            last_activity_at: last.format(&Rfc3339).unwrap_or_default(),
            running_query_id: running.as_ref().map(|q| q.query_id.clone()),
            query_state: window
                .map(|(paused, _)| if paused { "paused" } else { "running" }.to_string()),
            rows_sent: window.map(|(_, sent)| sent),
            in_transaction: self.connection.in_transaction(),
        }
    }
}

pub fn not_found(session_id: &str) -> RpcError {
    RpcError::new(
        ErrorCode::SessionNotFound,
        format!("no open session {session_id:?}"),
    )
}

impl SessionManager {
    pub fn new(shutdown: Shutdown) -> Self {
        SessionManager {
            sessions: Mutex::new(HashMap::new()),
            shutdown,
            running_queries: AtomicU32::new(0),
        }
    }

    pub fn counts(&self) -> SessionCounts {
        SessionCounts {
            sessions: self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u32,
            running_queries: self.running_queries.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn query_started(&self) {
        self.running_queries.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn query_ended(&self) {
        self.running_queries.fetch_sub(1, Ordering::SeqCst);
    }

    /// Registers a newly opened connection as a session of `client`.
    pub fn add(
        self: &Arc<Self>,
        connection: Connection,
        spec: ConnectionSpec,
        client: Client,
        idle_timeout: Option<Duration>,
    ) -> Result<Arc<Session>, RpcError> {
        let session = Arc::new(Session {
            id: crate::ids::new_id("s"),
            connection,
            spec,
            client,
            opened_at: OffsetDateTime::now_utc(),
            last_activity_ms: AtomicU64::new(0),
            started: Instant::now(),
            idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            running: Mutex::new(None),
            closed: CancellationToken::new(),
        });
        {
            // The shutdown check and the insert under one lock: `close_all`
            // runs after the trigger and takes this lock for its snapshot,
            // so a session is either refused or closed by it, never missed.
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if self.shutdown.is_triggered() {
                return Err(RpcError::new(
                    ErrorCode::ShuttingDown,
                    "the bridge is shutting down",
                ));
            }
            sessions.insert(session.id.clone(), session.clone());
        }
        tracing::info!(sessionId = %session.id, kind = session.kind().as_str(), "session opened");
        let (manager, watched) = (self.clone(), session.clone());
        self.shutdown
            .tracker
            .spawn(async move { manager.watch_idle(watched).await });
        Ok(session)
    }

    /// The session `id` if it exists and belongs to `client`.
    /// The SQLite files that sessions (of any client) have open.
    pub fn sqlite_paths(&self) -> Vec<std::path::PathBuf> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|s| match &s.connection {
                dbbridge_db::Connection::Sqlite(c) => Some(std::path::PathBuf::from(c.path())),
                _ => None,
            })
            .collect()
    }

    pub fn get(&self, id: &str, client: &Client) -> Result<Arc<Session>, RpcError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(id) {
            Some(s) if s.client.id == client.id => Ok(s.clone()),
            _ => Err(not_found(id)),
        }
    }

    pub fn list(&self, client: &Client) -> Vec<SessionInfo> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = sessions
            .values()
            .filter(|s| s.client.id == client.id)
            .map(|s| s.info())
            .collect();
        out.sort_by(|a, b| {
            a.opened_at
                .cmp(&b.opened_at)
                .then(a.session_id.cmp(&b.session_id))
        });
        out
    }

    /// Closes a session: cancels its running query and waits for that query's
    /// `query.done`, then drops the connection. With a reason, the client is
    /// told by a `session.closed` event.
    pub async fn close(&self, id: &str, reason: Option<SessionClosedReason>) -> bool {
        let Some(session) = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        else {
            return false;
        };
        session.closed.cancel();
        if let Some(query) = session.running() {
            query.cancel();
            if tokio::time::timeout(Duration::from_secs(10), query.finished.cancelled())
                .await
                .is_err()
            {
                tracing::warn!(sessionId = %session.id, "the running query did not end within 10 s of closing");
            }
        }
        tracing::info!(sessionId = %session.id, reason = ?reason, "session closed");
        if let Some(reason) = reason {
            let event = SessionClosedEvent {
                session_id: session.id.clone(),
                reason,
            };
            // A client that stopped reading must not hold up a close (or a shutdown).
            let notify = session.client.notify::<SessionClosed>(&event);
            if tokio::time::timeout(Duration::from_secs(1), notify)
                .await
                .is_err()
            {
                tracing::warn!(sessionId = %session.id, "session.closed not delivered: the client is not reading");
            }
        }
        true
    }

    /// Closes every session on shutdown, telling each client why.
    pub async fn close_all(&self, reason: SessionClosedReason) {
        self.close_where(|_| true, Some(reason)).await;
    }

    /// Closes the sessions of a client that has gone (nobody left to tell).
    pub async fn close_for_client(&self, client: u64) {
        self.close_where(|s| s.client.id == client, None).await;
    }

    async fn close_where(
        &self,
        which: impl Fn(&Session) -> bool,
        reason: Option<SessionClosedReason>,
    ) {
        let ids: Vec<String> = {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions
                .values()
                .filter(|s| which(s))
                .map(|s| s.id.clone())
                .collect()
        };
        futures::future::join_all(ids.iter().map(|id| self.close(id, reason))).await;
    }

    /// Closes the session when it has been idle too long or its connection is lost.
    async fn watch_idle(&self, session: Arc<Session>) {
        loop {
            let wait = session
                .idle_timeout
                .saturating_sub(session.idle_for())
                .max(Duration::from_millis(10));
            tokio::select! {
                _ = session.closed.cancelled() => return,
                _ = self.shutdown.token.cancelled() => return,
                _ = session.connection.closed() => {
                    // The server went away. A running query ends `failed` on its
                    // own; let its `query.done` go first, then say why the session closed.
                    if let Some(query) = session.running() {
                        let _ = tokio::time::timeout(Duration::from_secs(5), query.finished.cancelled()).await;
                    }
                    tracing::warn!(sessionId = %session.id, "the connection to the server was lost");
                    self.close(&session.id, Some(SessionClosedReason::ConnectionLost)).await;
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            // A running query is activity; a paused one is not (its pause
            // touched the session when it began).
            let busy = session
                .running()
                .is_some_and(|q| q.window.as_ref().is_none_or(|w| !w.state().0));
            if !busy && session.idle_for() >= session.idle_timeout {
                self.close(&session.id, Some(SessionClosedReason::Idle))
                    .await;
                return;
            }
            if busy {
                // Look again after a full period.
                session.touch();
            }
        }
    }
}

/// A windowed query's credit: rows it may still send before it pauses.
pub struct Window {
    state: Mutex<WindowState>,
    granted: tokio::sync::Notify,
}

#[derive(Default, Clone, Copy)]
struct WindowState {
    credit: u64,
    rows_sent: u64,
    /// Rows read and held in the bridge while paused.
    buffered: u64,
    paused: bool,
}

impl Window {
    pub fn new(rows: u64) -> Window {
        Window {
            state: Mutex::new(WindowState {
                credit: rows,
                ..WindowState::default()
            }),
            granted: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to `want` rows of credit (counted as sent); how many.
    pub fn take(&self, want: u64) -> u64 {
        let mut state = self.lock();
        let n = want.min(state.credit);
        state.credit -= n;
        state.rows_sent += n;
        n
    }

    /// Adds `rows` of credit; the credit now and the rows buffered.
    pub fn grant(&self, rows: u64) -> (u64, u64) {
        let (credit, buffered) = {
            let mut state = self.lock();
            state.credit = state.credit.saturating_add(rows);
            (state.credit, state.buffered)
        };
        self.granted.notify_one();
        (credit, buffered)
    }

    /// Marks the query paused with `buffered` rows held, or running again.
    pub fn set_paused(&self, paused: bool, buffered: u64) {
        let mut state = self.lock();
        state.paused = paused;
        state.buffered = buffered;
    }

    /// Waits until there is credit.
    pub async fn credit(&self) {
        loop {
            let granted = self.granted.notified();
            if self.lock().credit > 0 {
                return;
            }
            granted.await;
        }
    }

    /// (paused, rows sent).
    pub fn state(&self) -> (bool, u64) {
        let state = self.lock();
        (state.paused, state.rows_sent)
    }
}

/// The control surface of one running query.
pub struct QueryControl {
    pub query_id: String,
    /// The query's stream on its client's data lane.
    pub stream: u64,
    /// The query's flow control, when it was started with a `window`.
    pub window: Option<Window>,
    cancel_requested: CancellationToken,
    /// Cancelled once `query.done` has been queued.
    pub finished: CancellationToken,
}

impl QueryControl {
    pub fn new(query_id: String, window: Option<u64>) -> QueryControl {
        static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);
        QueryControl {
            query_id,
            stream: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
            window: window.map(Window::new),
            cancel_requested: CancellationToken::new(),
            finished: CancellationToken::new(),
        }
    }

    /// Resolves once a cancel was asked for.
    pub async fn cancel_requested(&self) {
        self.cancel_requested.cancelled().await
    }

    /// Asks the query to stop; it ends with status `cancelled`.
    pub fn cancel(&self) {
        self.cancel_requested.cancel();
    }
}

//! The bridge's shared state and the loop that serves one client: frames in,
//! requests dispatched concurrently through the router, answers and events out
//! through the client's one bounded queue.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dbbridge_protocol::message::{ErrorResponse, Response};
use dbbridge_protocol::{Envelope, ErrorCode, Event, Notification, RequestId, RpcError};
use futures::FutureExt;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use crate::catalog::Catalog;
use crate::health::ProcessSampler;
use crate::redact;
use crate::router::{Route, Router};
use crate::secrets::SecretStore;
use crate::session::SessionManager;
use crate::shutdown::Shutdown;
use crate::transport::{Connection, Inbound, Outbound};

/// Requests of one client being served at once; past this the loop stops
/// reading, which pushes back on the client.
const MAX_IN_FLIGHT: usize = 256;

/// Settings fixed at start.
pub struct BridgeConfig {
    /// Holds `bridge.db`, `backups/`, `logs/` and the secret file.
    pub data_dir: PathBuf,
    /// Registers `debug.*` methods used by the test suite.
    pub test_hooks: bool,
    pub secret_backend: crate::secrets::BackendChoice,
    /// `DBBRIDGE_SECRET_KEY`, for the encrypted-file store.
    pub secret_key: Option<secrecy::SecretString>,
}

/// Everything shared by all clients of one bridge process.
pub struct Bridge {
    pub started: Instant,
    pub shutdown: Shutdown,
    pub router: Router,
    pub sessions: Arc<SessionManager>,
    pub process: ProcessSampler,
    pub catalog: Arc<Catalog>,
    pub secrets: SecretStore,
    next_client_id: AtomicU64,
}

impl Bridge {
    /// Opens `bridge.db` and the secret store, and builds the router.
    pub async fn start(config: BridgeConfig) -> anyhow::Result<Arc<Bridge>> {
        let shutdown = Shutdown::new();
        let router = crate::handlers::router(config.test_hooks);
        let catalog = Arc::new(Catalog::open(&config.data_dir)?);
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
            started: Instant::now(),
            shutdown,
            router,
            process: ProcessSampler::new(),
            catalog,
            secrets,
            next_client_id: AtomicU64::new(1),
        }))
    }

    /// Graceful stop: cancel running queries, close sessions (each client gets
    /// its `session.closed`), then wait for every tracked task.
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
    }
}

/// One connected client: where its answers and events go.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    outbound: mpsc::Sender<Outbound>,
}

impl Client {
    /// Queues one message; waits while the queue is full. False once the client is gone.
    pub async fn send(&self, text: impl Into<Outbound>) -> bool {
        self.outbound.send(text.into()).await.is_ok()
    }

    /// Sends an event of the contract.
    pub async fn notify<E: Event>(&self, params: &E::Params) -> bool {
        match serde_json::to_string(&Notification::new(E::NAME, params)) {
            Ok(text) => self.send(text).await,
            Err(error) => {
                tracing::error!(%error, event = E::NAME, "encoding an event failed");
                true
            }
        }
    }
}

/// What a handler is given besides its params.
#[derive(Clone)]
pub struct RequestCtx {
    pub bridge: Arc<Bridge>,
    pub client: Client,
    replied: Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>>,
}

impl RequestCtx {
    /// Resolves once this request's answer has been queued to the client, so
    /// that work started by a handler (a query's events, a shutdown) comes after it.
    pub fn on_reply(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.replied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

/// Serves one client until it goes away or the bridge shuts down. Its
/// sessions are closed when it leaves.
pub async fn serve_connection(bridge: Arc<Bridge>, connection: Connection) {
    let Connection {
        mut receiver,
        sender,
    } = connection;
    let client = Client {
        id: bridge.next_client_id.fetch_add(1, Ordering::Relaxed),
        outbound: sender,
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tracing::info!(client = client.id, "client connected");
    loop {
        let frame = tokio::select! {
            _ = bridge.shutdown.token.cancelled() => break,
            frame = receiver.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        match frame {
            Inbound::TooLarge { limit } => {
                let error = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("message exceeds the {limit}-byte limit"),
                )
                .with_details(serde_json::json!({ "limit": limit }));
                client.send(plain_error(error)).await;
            }
            Inbound::Text(text) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (bridge2, client2) = (bridge.clone(), client.clone());
                bridge.shutdown.tracker.spawn(async move {
                    handle_message(bridge2, client2, text).await;
                    drop(permit);
                });
            }
        }
    }
    tracing::info!(client = client.id, "client disconnected");
    if !bridge.shutdown.is_triggered() {
        bridge.sessions.close_for_client(client.id).await;
    }
}

async fn handle_message(bridge: Arc<Bridge>, client: Client, text: String) {
    let message: Value = match serde_json::from_str(&text) {
        Ok(message) => message,
        Err(error) => {
            client
                .send(plain_error(RpcError::new(
                    ErrorCode::ParseError,
                    format!("invalid JSON: {error}"),
                )))
                .await;
            return;
        }
    };
    let Value::Object(mut message) = message else {
        let error = RpcError::new(
            ErrorCode::InvalidRequest,
            "a message must be a JSON object (batches are not supported)",
        );
        client.send(plain_error(error)).await;
        return;
    };
    let id = match message.get("id") {
        None => None,
        Some(id) => match serde_json::from_value::<RequestId>(id.clone()) {
            Ok(id) => Some(id),
            Err(_) => {
                let error =
                    RpcError::new(ErrorCode::InvalidRequest, "id must be a number or a string");
                client.send(plain_error(error)).await;
                return;
            }
        },
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let params = message.remove("params").unwrap_or(Value::Null);
    let Some(id) = id else {
        // A client notification: nothing of the contract takes one, and it gets no answer.
        tracing::debug!(
            method = method.as_deref().unwrap_or(""),
            "ignored a notification from the client"
        );
        return;
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        let error = RpcError::new(ErrorCode::InvalidRequest, "jsonrpc must be \"2.0\"");
        client.send(response(&id, Err(error))).await;
        return;
    }
    let Some(method) = method else {
        let error = RpcError::new(ErrorCode::InvalidRequest, "method must be a string");
        client.send(response(&id, Err(error))).await;
        return;
    };
    redact::remember_in_params(&method, &params);

    let span = tracing::info_span!("request", %id, method = %method);
    let result = async {
        let started = Instant::now();
        let result = match bridge.router.route(&method) {
            Route::NotFound => Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!("unknown method {method:?}"),
            )),
            Route::NotSupported => Err(RpcError::not_supported(&method)),
            Route::Handler(handler) => {
                let ctx = RequestCtx {
                    bridge: bridge.clone(),
                    client: client.clone(),
                    replied: Default::default(),
                };
                let replied = ctx.replied.clone();
                let result = AssertUnwindSafe(handler(ctx, params))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(panic = %redact::scrub(&what), "handler panicked");
                        Err(RpcError::internal("internal error: the handler panicked"))
                    });
                let waiting =
                    std::mem::take(&mut *replied.lock().unwrap_or_else(|e| e.into_inner()));
                if !waiting.is_empty() {
                    client.send(response(&id, result)).await;
                    waiting.into_iter().for_each(|tx| {
                        let _ = tx.send(());
                    });
                    return None;
                }
                result
            }
        };
        match &result {
            Ok(_) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request served"
            ),
            Err(e) => tracing::info!(code = %e.code, error = %e.message, "request failed"),
        }
        Some(result)
    }
    .instrument(span)
    .await;
    if let Some(result) = result {
        client.send(response(&id, result)).await;
    }
}

/// The response text for a request: the envelope, with secrets scrubbed from any error.
fn response(id: &RequestId, result: Result<Box<RawValue>, RpcError>) -> String {
    let envelope = match result {
        Ok(data) => Envelope::ok(data),
        Err(error) => Envelope::err(scrub_error(error)),
    };
    serde_json::to_string(&Response {
        jsonrpc: "2.0",
        id,
        result: envelope,
    })
    .unwrap_or_else(|e| {
        plain_error(RpcError::internal(format!(
            "encoding a response failed: {e}"
        )))
    })
}

/// A JSON-RPC error with id null, for messages whose id cannot be recovered.
fn plain_error(error: RpcError) -> String {
    let error = scrub_error(error);
    serde_json::to_string(&ErrorResponse::new(error)).unwrap_or_default()
}

/// Scrubs every remembered secret out of an error's message and details.
pub fn scrub_error(mut error: RpcError) -> RpcError {
    error.message = redact::scrub(&error.message).into_owned();
    if let Some(details) = error.details.take() {
        let text = details.to_string();
        let scrubbed = redact::scrub(&text);
        // Details that cannot be scrubbed and re-read are dropped rather than sent as they were.
        error.details = if scrubbed == text {
            Some(details)
        } else {
            serde_json::from_str(&scrubbed).ok()
        };
    }
    error
}

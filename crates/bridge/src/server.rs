//! The loop that serves one client: frames in, requests dispatched
//! concurrently through the router (each under `catch_unwind`), answers and
//! events out through the client's one bounded queue.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use dbbridge_protocol::{ErrorCode, RequestId, RpcError};
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::client::Client;
use crate::redact;
use crate::router::{RequestCtx, Route, Router};
use crate::rpc::{plain_error, response};
use crate::state::Bridge;
use crate::transport::{Connection, Inbound};

/// Requests of one client being served at once; past this the loop stops
/// reading, which pushes back on the client.
const MAX_IN_FLIGHT: usize = 256;

/// Serves one client until it goes away or the bridge shuts down. Its
/// sessions are closed when it leaves.
pub async fn serve_connection(bridge: Arc<Bridge>, router: Arc<Router>, connection: Connection) {
    let Connection {
        mut receiver,
        sender,
    } = connection;
    let client = Client::new(
        bridge.next_client_id(),
        sender,
        bridge.shutdown.token.clone(),
    );
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
                // Waits for a free slot, but never past shutdown.
                let permit = tokio::select! {
                    permit = in_flight.clone().acquire_owned() => permit,
                    _ = bridge.shutdown.token.cancelled() => break,
                };
                let Ok(permit) = permit else {
                    break;
                };
                let (bridge2, router2, client2) = (bridge.clone(), router.clone(), client.clone());
                bridge.shutdown.tracker.spawn(async move {
                    handle_message(bridge2, &router2, client2, text).await;
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

async fn handle_message(bridge: Arc<Bridge>, router: &Router, client: Client, text: String) {
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
        let result = match router.route(&method) {
            Route::NotFound => Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!("unknown method {method:?}"),
            )),
            Route::NotSupported => Err(RpcError::not_supported(&method)),
            Route::Handler(handler) => {
                let ctx = RequestCtx::new(bridge.clone(), client.clone());
                let replied = ctx.replied();
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

//! WebSocket transport (axum): one JSON message per text frame, for front ends
//! in development. Loopback by default; the Host header must name the
//! loopback (or an `--allow-host` name: a DNS-rebinding guard, checked first),
//! every client must present the launch token, and browser Origins must be
//! on the allow-list, all checked before the upgrade.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Connection, INBOUND_QUEUE, Inbound, outbound};

/// The kernel send buffer asked for each client's socket (Linux doubles
/// it). A control message (a ping's answer, a `query.done`) overtakes the
/// batches waiting in the bridge's lanes, but not what the kernel already
/// holds; left to autotuning, that grew to megabytes per client, and a
/// parsing client read all of it first. Measured with 10 WebSocket clients
/// of 10 streaming sessions each (`cargo xtask bench load --rows 200000
/// --servers-cgroup`): ping p50 / p99 30 / 480 ms with autotuning, 28 / 317
/// at 64 KiB, 7 / 87 at 32 KiB, 8 / 55 at 16 KiB; throughput -10% at 32 KiB
/// and -35% at 16 KiB. The same reasoning sized the stdio pipe.
const SEND_BUFFER: usize = 32 * 1024;

/// Called once per accepted client with its connection; it serves it.
pub type OnConnection = Arc<dyn Fn(Connection) + Send + Sync>;

#[derive(Clone)]
pub struct WsOptions {
    pub token: String,
    pub allowed_origins: Vec<String>,
    /// Host names allowed besides the loopback ones.
    pub allowed_hosts: Vec<String>,
    pub max_message_bytes: usize,
}

struct WsState {
    options: WsOptions,
    on_connection: OnConnection,
    /// Each socket's tasks run under the shutdown tracker and end with `stop`.
    tracker: TaskTracker,
    stop: CancellationToken,
}

/// Binds the listener; returns the bound address and the future that serves
/// until `stop` is cancelled.
pub async fn bind(
    addr: SocketAddr,
    options: WsOptions,
    on_connection: OnConnection,
    stop: CancellationToken,
    tracker: TaskTracker,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = Arc::new(WsState {
        options,
        on_connection,
        tracker,
        stop: stop.clone(),
    });
    let app = Router::new()
        .route("/", axum::routing::get(upgrade))
        .with_state(state);
    let serve = async move {
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER) {
                tracing::debug!(%error, "the websocket keeps the system's send buffer");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    };
    Ok((local, serve))
}

async fn upgrade(
    State(state): State<Arc<WsState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err((status, reason)) = authorize(&state.options, &query, &headers) {
        tracing::warn!(%status, reason, "websocket client refused");
        return (status, reason).into_response();
    }
    let cap = state.options.max_message_bytes;
    // tungstenite's own limit sits above ours so an oversized message can be
    // answered with an error; only a far larger one closes the socket.
    ws.max_message_size(cap.saturating_mul(2))
        .max_frame_size(cap.saturating_mul(2))
        .on_upgrade(move |socket| {
            let tracker = state.tracker.clone();
            tracker.track_future(serve_socket(socket, state))
        })
}

fn authorize(
    options: &WsOptions,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, &'static str)> {
    // DNS rebinding: a page on evil.example that resolves its name to
    // 127.0.0.1 reaches this port with `Host: evil.example`.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, &options.allowed_hosts) {
        return Err((StatusCode::FORBIDDEN, "host not allowed"));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let presented = query.get("token").map(String::as_str).or(bearer);
    let Some(presented) = presented else {
        return Err((StatusCode::UNAUTHORIZED, "missing token"));
    };
    if !bool::from(presented.as_bytes().ct_eq(options.token.as_bytes())) {
        return Err((StatusCode::UNAUTHORIZED, "wrong token"));
    }
    // Non-browser clients send no Origin; browsers always do, and only the
    // allow-listed ones may talk to the bridge.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !options.allowed_origins.iter().any(|o| o == origin) {
            return Err((StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    Ok(())
}

/// Whether a Host header (`name[:port]`, `[v6][:port]`) names the
/// loopback or an allowed name.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => return v6 == "::1",
            _ => return false,
        }
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "127.0.0.1" | "localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

async fn serve_socket(socket: WebSocket, state: Arc<WsState>) {
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, mut out_rx) = outbound::channel();
    (state.on_connection)(Connection {
        receiver: in_rx,
        sender: out_tx,
    });
    let cap = state.options.max_message_bytes;
    let (mut sink, mut stream) = socket.split();

    let writer = state.tracker.spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink
                .send(Message::Text(text.into_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        // A client that sends nothing does not keep the socket's task past shutdown.
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = state.stop.cancelled() => None,
        };
        let Some(frame) = frame else { break };
        let inbound = match frame {
            Ok(Message::Text(text)) if text.len() > cap => Inbound::TooLarge { limit: cap },
            Ok(Message::Text(text)) => Inbound::Text(text.to_string()),
            Ok(Message::Binary(bytes)) if bytes.len() > cap => Inbound::TooLarge { limit: cap },
            Ok(Message::Binary(bytes)) => {
                Inbound::Text(String::from_utf8_lossy(&bytes).into_owned())
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(error) => {
                tracing::info!(%error, "websocket client read failed");
                break;
            }
        };
        if in_tx.send(inbound).await.is_err() {
            break;
        }
    }
    drop(in_tx);
    // Let queued answers go out (a shutdown reply, say), but do not wait on
    // sessions that still hold a sender for a client that has gone.
    let abort = writer.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(1), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn only_loopback_hosts_and_allowed_names() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "[::1]",
            "[::1]:9",
        ] {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:80",
            "127.0.0.1.evil.example",
            "[::2]:1",
            "[::1]x",
            "localhost.evil",
        ] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        assert!(host_allowed("dev.box:3000", &["dev.box".to_string()]));
    }
}

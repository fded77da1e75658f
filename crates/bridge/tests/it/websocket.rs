//! The WebSocket transport: token and Origin checks before the upgrade.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::BIN;

pub struct WsBridge {
    child: Child,
    pub url: String,
    pub token: String,
    _dir: tempfile::TempDir,
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(extra: &[&str]) -> WsBridge {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--ws", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let first: Value = serde_json::from_str(&line).expect("first stdout line is JSON");
    let url = first["listening"].as_str().unwrap().to_string();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    WsBridge {
        child,
        url,
        token: first["token"].as_str().unwrap().to_string(),
        _dir: dir,
    }
}

fn status_of(result: Result<impl Sized, WsError>) -> u16 {
    match result {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("connection was accepted"),
    }
}

async fn ping(url: &str, request: impl IntoClientRequest + Unpin) -> Value {
    let _ = url;
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":1,"method":"health.ping"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_str(reply.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn refused_without_token_with_wrong_token_and_with_foreign_origin() {
    let b = start(&["--allow-origin", "http://localhost:1420"]);
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(b.url.clone()).await),
        401
    );
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(format!("{}/?token=wrong", b.url)).await),
        401
    );
    let mut req = format!("{}/?token={}", b.url, b.token)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    assert_eq!(status_of(tokio_tungstenite::connect_async(req).await), 403);
}

#[tokio::test]
async fn a_host_that_is_not_the_loopback_is_refused_before_the_token() {
    let b = start(&["--allow-host", "dev.box"]);
    // DNS rebinding: the right port under a foreign name. Refused even
    // without a token (the Host is checked first).
    for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example"] {
        let mut req = b.url.clone().into_client_request().unwrap();
        req.headers_mut().insert("Host", host.parse().unwrap());
        assert_eq!(
            status_of(tokio_tungstenite::connect_async(req).await),
            403,
            "{host}"
        );
    }
    for host in ["localhost:1", "dev.box:3000"] {
        let mut req = format!("{}/?token={}", b.url, b.token)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Host", host.parse().unwrap());
        let reply = ping(&b.url, req).await;
        assert_eq!(reply["result"]["ok"], true, "{host}: {reply}");
    }
}

#[tokio::test]
async fn served_with_the_right_token_by_query_or_bearer_and_allowed_origin() {
    let b = start(&[
        "--allow-origin",
        "http://localhost:1420",
        "--token",
        "fixed-token-123",
    ]);
    assert_eq!(b.token, "fixed-token-123");
    let reply = ping(&b.url, format!("{}/?token={}", b.url, b.token)).await;
    assert_eq!(reply["result"]["ok"], true, "{reply}");
    let mut req = b.url.clone().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", b.token).parse().unwrap(),
    );
    req.headers_mut()
        .insert("Origin", "http://localhost:1420".parse().unwrap());
    let reply = ping(&b.url, req).await;
    assert_eq!(
        reply["result"]["data"]["version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[tokio::test]
async fn oversized_message_gets_an_error_and_the_socket_keeps_serving() {
    let b = start(&["--max-message-bytes", "1024"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/?token={}", b.url, b.token))
        .await
        .unwrap();
    let big =
        json!({"jsonrpc":"2.0","id":1,"method":"health.ping","params":{"pad":"x".repeat(1500)}});
    ws.send(Message::Text(big.to_string().into()))
        .await
        .unwrap();
    let reply: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(reply["error"]["data"]["code"], "INVALID_REQUEST", "{reply}");
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":2,"method":"health.ping"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(reply["result"]["ok"], true);
}

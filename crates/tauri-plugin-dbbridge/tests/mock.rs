//! The plugin under Tauri's mock runtime (`tauri::test`, no webview): a
//! command round trip, and a query's batches arriving through the Channel,
//! against the real bridge and a real SQLite file.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody, InvokeResponseBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::utils::acl::ExecutionContext;
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// The id the guest side would give its Channel (`__CHANNEL__:<id>`).
const CHANNEL: u32 = 4242;
const T: Duration = Duration::from_secs(30);

struct Harness {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    /// What the plugin sent on the Channel, parsed.
    messages: mpsc::Receiver<Value>,
    _dir: tempfile::TempDir,
}

fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut context = mock_context(noop_assets());
    // A mock app has no capability files; a real app grants `dbbridge:default`
    // (permissions/default.toml), which allows these three.
    for command in ["connect", "send", "disconnect"] {
        context.runtime_authority_mut().__allow_command(
            format!("plugin:dbbridge|{command}"),
            ExecutionContext::Local,
        );
    }
    let (tx, messages) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let app = mock_builder()
        // The mock webview runs no JavaScript: take the Channel's messages here.
        .channel_interceptor(move |_webview, callback, _index, body| {
            if callback.0 != CHANNEL {
                return false;
            }
            let value = match body {
                InvokeResponseBody::Json(text) => serde_json::from_str(text).unwrap(),
                InvokeResponseBody::Raw(bytes) => serde_json::from_slice(bytes).unwrap(),
            };
            tx.lock().unwrap().send(value).unwrap();
            true
        })
        .plugin(tauri_plugin_dbbridge::init_with(
            tauri_plugin_dbbridge::Config {
                data_dir: Some(dir.path().join("data")),
                ..Default::default()
            },
        ))
        .build(context)
        .unwrap();
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    Harness {
        _app: app,
        webview,
        messages,
        _dir: dir,
    }
}

impl Harness {
    fn invoke(&self, command: &str, body: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
            InvokeRequest {
                cmd: format!("plugin:dbbridge|{command}"),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(body),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().unwrap())
    }

    fn send(&self, connection: u64, message: Value) {
        let sent = self.invoke(
            "send",
            json!({"connection": connection, "message": message.to_string()}),
        );
        assert_eq!(sent, Ok(Value::Null), "{message}");
    }

    fn next(&self) -> Value {
        self.messages
            .recv_timeout(T)
            .expect("a message on the Channel")
    }

    /// The answer to request `id` (events before it are returned too).
    fn answer(&self, id: i64) -> (Value, Vec<Value>) {
        let mut events = Vec::new();
        loop {
            let m = self.next();
            if m["id"] == id {
                return (m, events);
            }
            events.push(m);
        }
    }
}

#[test]
fn a_command_round_trip_and_a_querys_batches_through_the_channel() {
    let h = start();
    let connection = h
        .invoke(
            "connect",
            json!({"onMessage": format!("__CHANNEL__:{CHANNEL}")}),
        )
        .unwrap()
        .as_u64()
        .unwrap();

    // Round trip: a request in through `send`, its answer out on the Channel.
    h.send(
        connection,
        json!({"jsonrpc": "2.0", "id": 1, "method": "health.ping"}),
    );
    let (ping, _) = h.answer(1);
    assert_eq!(ping["result"]["ok"], true, "{ping}");
    assert_eq!(
        ping["result"]["data"]["pid"],
        std::process::id(),
        "in process: {ping}"
    );

    // A query's batches, in order, then its one query.done.
    let db = h._dir.path().join("plugin.db");
    h.send(
        connection,
        json!({"jsonrpc": "2.0", "id": 2, "method": "session.open",
               "params": {"connection": {"kind": "sqlite", "path": db, "create": true}}}),
    );
    let (opened, _) = h.answer(2);
    let session = opened["result"]["data"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    h.send(
        connection,
        json!({"jsonrpc": "2.0", "id": 3, "method": "query.run", "params": {"sessionId": session, "batchSize": 500,
               "sql": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3000) SELECT n FROM c"}}),
    );
    let (run, mut events) = h.answer(3);
    assert_eq!(run["result"]["ok"], true, "{run}");
    while events
        .last()
        .map(|e| e["method"] != "query.done")
        .unwrap_or(true)
    {
        events.push(h.next());
    }
    let batches: Vec<&Value> = events
        .iter()
        .filter(|e| e["method"] == "query.result")
        .collect();
    assert!(
        batches.len() >= 6,
        "3000 rows in batches of 500: {}",
        batches.len()
    );
    let rows: Vec<i64> = batches
        .iter()
        .flat_map(|b| b["params"]["rows"].as_array().unwrap())
        .map(|r| r[0].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rows, (1..=3000).collect::<Vec<_>>());
    let done = events.last().unwrap();
    assert_eq!(done["params"]["status"], "completed", "{done}");
    assert_eq!(done["params"]["results"][0]["rowCount"], 3000);

    // Bad input is answered on the Channel, and the connection keeps serving.
    let sent = h.invoke(
        "send",
        json!({"connection": connection, "message": "{\"jsonrpc\":\"2.0\",\"id\":"}),
    );
    assert_eq!(sent, Ok(Value::Null));
    let parse_error = h.next();
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    h.send(
        connection,
        json!({"jsonrpc": "2.0", "id": 4, "method": "no.such"}),
    );
    let (unknown, _) = h.answer(4);
    assert_eq!(unknown["result"]["error"]["code"], "METHOD_NOT_FOUND");

    // Disconnect: the id is gone, and a send on it is refused.
    assert_eq!(
        h.invoke("disconnect", json!({"connection": connection})),
        Ok(json!(true))
    );
    let refused = h.invoke("send", json!({"connection": connection, "message": "{}"}));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no connection")),
        "{refused:?}"
    );
}

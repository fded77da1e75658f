//! dbbridge as a Tauri v2 plugin, in the app's own process.
//!
//! The same state and router as `dbbridge serve` ([`dbbridge::embed`]),
//! reached through three commands:
//! - `plugin:dbbridge|connect {onMessage: Channel}` opens one client
//!   connection and returns its id; everything the bridge sends on it
//!   (answers and events, control before rows) arrives on the Channel. Tauri's
//!   docs say its event system is not meant for high throughput; Channels are.
//! - `plugin:dbbridge|send {connection, message}` hands one JSON-RPC message
//!   (text) to the bridge; it answers on the Channel.
//! - `plugin:dbbridge|disconnect {connection}` closes it (its sessions close).
//!
//! Each message goes out as an `InvokeResponseBody::Json` of the text the
//! bridge encoded, so Tauri passes it on without encoding it a second time.
//! The guest side is `@dbbridge/client/tauri` (`connectTauriPlugin`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use dbbridge::embed::{EmbedConfig, Embedded, EmbeddedSender};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Manager, RunEvent, Runtime, State};

/// What the app may set; by default the data dir is the app's data dir +
/// `dbbridge`, and secrets go to the OS keychain when one answers.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub pg_bin_dirs: Vec<PathBuf>,
    pub mysql_bin_dirs: Vec<PathBuf>,
}

/// The plugin's state: the bridge and the open connections.
struct Dbbridge {
    bridge: Embedded,
    connections: Mutex<HashMap<u32, EmbeddedSender>>,
    next: AtomicU32,
}

/// The plugin with the default [`Config`].
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    init_with(Config::default())
}

pub fn init_with<R: Runtime>(config: Config) -> TauriPlugin<R> {
    Builder::new("dbbridge")
        .invoke_handler(tauri::generate_handler![connect, send, disconnect])
        .setup(move |app, _api| {
            let data_dir = match config.data_dir.clone() {
                Some(dir) => dir,
                None => app.path().app_data_dir()?.join("dbbridge"),
            };
            let mut embed = EmbedConfig::new(data_dir);
            embed.pg_bin_dirs = config.pg_bin_dirs.clone();
            embed.mysql_bin_dirs = config.mysql_bin_dirs.clone();
            let bridge = tauri::async_runtime::block_on(Embedded::start(embed))
                .map_err(|e| format!("starting dbbridge: {e:#}"))?;
            app.manage(Dbbridge {
                bridge,
                connections: Mutex::new(HashMap::new()),
                next: AtomicU32::new(1),
            });
            Ok(())
        })
        .on_event(|app, event| {
            if let RunEvent::Exit = event
                && let Some(state) = app.try_state::<Dbbridge>()
            {
                // Cancel queries and jobs, close sessions, before the process goes.
                tauri::async_runtime::block_on(state.bridge.stop());
            }
        })
        .build()
}

#[tauri::command]
async fn connect(
    state: State<'_, Dbbridge>,
    on_message: Channel<InvokeResponseBody>,
) -> Result<u32, String> {
    let connection = state.bridge.connect();
    let id = state.next.fetch_add(1, Ordering::Relaxed);
    let mut receiver = connection.receiver;
    tauri::async_runtime::spawn(async move {
        while let Some(text) = receiver.recv().await {
            if on_message.send(InvokeResponseBody::Json(text)).is_err() {
                break; // The webview went away: dropping the receiver ends the connection.
            }
        }
    });
    state
        .connections
        .lock()
        .map_err(|_| "dbbridge: state poisoned".to_owned())?
        .insert(id, connection.sender);
    Ok(id)
}

#[tauri::command]
async fn send(state: State<'_, Dbbridge>, connection: u32, message: String) -> Result<(), String> {
    let sender = state
        .connections
        .lock()
        .map_err(|_| "dbbridge: state poisoned".to_owned())?
        .get(&connection)
        .cloned()
        .ok_or_else(|| format!("dbbridge: no connection {connection}"))?;
    sender.send(message).await.map_err(|e| e.to_string())
}

#[tauri::command]
async fn disconnect(state: State<'_, Dbbridge>, connection: u32) -> Result<bool, String> {
    Ok(state
        .connections
        .lock()
        .map_err(|_| "dbbridge: state poisoned".to_owned())?
        .remove(&connection)
        .is_some())
}

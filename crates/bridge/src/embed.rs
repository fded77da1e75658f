//! Embedding: the bridge inside another process (the Tauri plugin), with the
//! same state and router as `dbbridge serve`, over in-memory connections.
//! Each connection is one client, exactly as one stdio pipe or one
//! WebSocket is: JSON-RPC text in, answers and events out, the two-lane
//! outbound path (control before rows) included.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::handlers;
use crate::router::Router;
use crate::secrets::BackendChoice;
use crate::state::{Bridge, BridgeConfig};
use crate::transport::{DEFAULT_MAX_MESSAGE_BYTES, Inbound, OutboundReceiver, memory};

/// What an embedding app decides.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// Where saved connections, backups, logs and the secret file live
    /// (an app passes its own data dir).
    pub data_dir: PathBuf,
    /// The OS keychain when one answers, else the encrypted file.
    pub secret_backend: BackendChoice,
    /// Where to look first for pg_dump/psql and mariadb-dump/mariadb.
    pub pg_bin_dirs: Vec<PathBuf>,
    pub mysql_bin_dirs: Vec<PathBuf>,
}

impl EmbedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbedConfig {
            data_dir: data_dir.into(),
            secret_backend: BackendChoice::Auto,
            pg_bin_dirs: Vec::new(),
            mysql_bin_dirs: Vec::new(),
        }
    }
}

/// A running bridge inside this process. Must be started, used and stopped
/// on a tokio runtime.
pub struct Embedded {
    bridge: Arc<Bridge>,
    router: Arc<Router>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("data_dir", &self.bridge.data_dir)
            .finish()
    }
}

impl Embedded {
    pub async fn start(config: EmbedConfig) -> anyhow::Result<Embedded> {
        std::fs::create_dir_all(&config.data_dir)?;
        let bridge = Bridge::start(BridgeConfig {
            data_dir: config.data_dir,
            test_hooks: false,
            secret_backend: config.secret_backend,
            secret_key: None,
            pg_bin_dirs: config.pg_bin_dirs,
            mysql_bin_dirs: config.mysql_bin_dirs,
        })
        .await?;
        Ok(Embedded {
            bridge,
            router: Arc::new(handlers::router(false)),
        })
    }

    /// A new client connection, served until it is dropped or the bridge stops.
    pub fn connect(&self) -> EmbeddedConnection {
        let (connection, client) = memory::pair();
        self.bridge
            .shutdown
            .tracker
            .spawn(crate::server::serve_connection(
                self.bridge.clone(),
                self.router.clone(),
                connection,
            ));
        EmbeddedConnection {
            sender: EmbeddedSender {
                sender: client.sender,
            },
            receiver: EmbeddedReceiver {
                receiver: client.receiver,
            },
        }
    }

    /// Cancels queries and jobs, closes sessions, waits for the work to end.
    pub async fn stop(&self) {
        self.bridge.stop().await;
    }
}

/// One client of an embedded bridge.
#[derive(Debug)]
pub struct EmbeddedConnection {
    pub sender: EmbeddedSender,
    pub receiver: EmbeddedReceiver,
}

/// Sends JSON-RPC messages (text) to the bridge.
#[derive(Debug, Clone)]
pub struct EmbeddedSender {
    sender: mpsc::Sender<Inbound>,
}

/// The connection was closed (the bridge stopped, or the receiver was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bridge connection is closed")
    }
}

impl std::error::Error for Closed {}

impl EmbeddedSender {
    /// Sends one message; waits while the bridge's inbound queue is full.
    /// A message over the protocol's cap is answered with an error, as on
    /// every transport.
    pub async fn send(&self, message: String) -> Result<(), Closed> {
        let frame = if message.len() > DEFAULT_MAX_MESSAGE_BYTES {
            Inbound::TooLarge {
                limit: DEFAULT_MAX_MESSAGE_BYTES,
            }
        } else {
            Inbound::Text(message)
        };
        self.sender.send(frame).await.map_err(|_| Closed)
    }
}

/// Receives what the bridge sends: answers first, then rows, one text each.
#[derive(Debug)]
pub struct EmbeddedReceiver {
    receiver: OutboundReceiver,
}

impl EmbeddedReceiver {
    /// The next message, or `None` once the connection is over.
    pub async fn recv(&mut self) -> Option<String> {
        self.receiver.recv().await.map(|m| m.into_string())
    }
}

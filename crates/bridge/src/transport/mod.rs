//! Transports. Every transport yields the same [`Connection`]: a bounded
//! channel of inbound frames and a bounded channel of outbound JSON texts
//! ([`Outbound`]), so the server loop never knows whether it talks over stdio,
//! WebSocket or memory.

pub mod memory;
pub mod stdio;
pub mod ws;

use tokio::sync::mpsc;

/// Default cap on one inbound message (PROTOCOL.md: 16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How many outbound messages may wait for a slow client. Small on purpose:
/// when the client stops reading, query streams stop at this queue, and the
/// database read pauses behind them.
pub const OUTBOUND_QUEUE: usize = 16;

/// How many inbound frames may wait for the server loop.
pub const INBOUND_QUEUE: usize = 64;

/// One frame from the client.
#[derive(Debug)]
pub enum Inbound {
    /// One JSON-RPC message as text (not yet parsed).
    Text(String),
    /// A message over the size cap; its bytes were discarded.
    TooLarge { limit: usize },
}

/// The server's end of one client: what it receives and where it sends.
#[derive(Debug)]
pub struct Connection {
    pub receiver: mpsc::Receiver<Inbound>,
    pub sender: mpsc::Sender<Outbound>,
}

/// One outbound JSON text, held as the parts it was built from: a query
/// batch travels as its envelope's head, the rows exactly as the connector
/// encoded them, and the closing braces, so a megabyte of rows is not copied
/// into the envelope. stdio writes the parts as they are; other transports
/// join them.
#[derive(Debug)]
pub struct Outbound {
    pub head: String,
    pub body: String,
    pub tail: &'static str,
}

impl Outbound {
    /// The parts, in order.
    pub fn parts(&self) -> [&str; 3] {
        [&self.head, &self.body, self.tail]
    }

    /// The whole text (no copy for a message built in one piece).
    pub fn into_string(self) -> String {
        if self.body.is_empty() && self.tail.is_empty() {
            return self.head;
        }
        let mut text = self.head;
        text.reserve_exact(self.body.len() + self.tail.len());
        text.push_str(&self.body);
        text.push_str(self.tail);
        text
    }
}

impl From<String> for Outbound {
    fn from(head: String) -> Self {
        Outbound {
            head,
            body: String::new(),
            tail: "",
        }
    }
}

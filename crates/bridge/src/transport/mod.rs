//! Transports. Every transport yields the same [`Connection`]: a bounded
//! channel of inbound frames and the two-lane outbound queue of
//! `outbound.rs` ([`Outbound`] texts), so the server loop never knows whether
//! it talks over stdio, WebSocket or memory.

pub mod memory;
pub mod outbound;
pub mod stdio;
pub mod ws;

use tokio::sync::mpsc;

pub use outbound::{Outbound, OutboundReceiver, OutboundSender};

/// Default cap on one inbound message (PROTOCOL.md: 16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

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
    pub sender: OutboundSender,
}

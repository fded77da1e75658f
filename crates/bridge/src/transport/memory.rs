//! In-memory transport: used by `dbbridge demo` and by unit tests to drive the
//! real router without a process boundary.

use tokio::sync::mpsc;

use super::{Connection, INBOUND_QUEUE, Inbound, OutboundReceiver, outbound};

/// The client's end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryClient {
    pub sender: mpsc::Sender<Inbound>,
    pub receiver: OutboundReceiver,
}

/// A connected pair: the server's end and the client's end.
pub fn pair() -> (Connection, MemoryClient) {
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = outbound::channel();
    (
        Connection {
            receiver: in_rx,
            sender: out_tx,
        },
        MemoryClient {
            sender: in_tx,
            receiver: out_rx,
        },
    )
}

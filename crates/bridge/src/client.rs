//! One connected client's outbound handle: answers and events on the
//! control lane, query batches on the data lane (`transport/outbound.rs`).

use dbbridge_protocol::{Event, Notification};
use tokio_util::sync::CancellationToken;

use crate::transport::{Outbound, OutboundSender};

/// One connected client: where its answers and events go.
///
/// Every wait on the client is bounded by `stop` (the shutdown root): once
/// the bridge shuts down, a message that would have to wait for a client
/// that does not read is dropped instead, so no task parks on it.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    outbound: OutboundSender,
    stop: CancellationToken,
}

impl Client {
    pub fn new(id: u64, outbound: OutboundSender, stop: CancellationToken) -> Client {
        Client { id, outbound, stop }
    }

    /// Queues one message on the control lane; waits only while that lane is
    /// full. False once the client is gone, or when it would wait during
    /// shutdown.
    pub async fn send(&self, text: impl Into<Outbound>) -> bool {
        tokio::select! {
            biased;
            queued = self.outbound.send_control(text.into()) => queued,
            _ = self.stop.cancelled() => false,
        }
    }

    /// Sends an event of the contract on the control lane.
    pub async fn notify<E: Event>(&self, params: &E::Params) -> bool {
        match serde_json::to_string(&Notification::new(E::NAME, params)) {
            Ok(text) => self.send(text).await,
            Err(error) => {
                tracing::error!(%error, event = E::NAME, "encoding an event failed");
                true
            }
        }
    }

    /// Queues a batch of the query stream `stream` on the data lane; waits
    /// while that stream (or the lane) is full.
    pub async fn send_rows(&self, stream: u64, batch: Outbound) -> bool {
        tokio::select! {
            biased;
            queued = self.outbound.send_data(stream, batch) => queued,
            _ = self.stop.cancelled() => false,
        }
    }

    /// Waits until every batch of `stream` is in the transport's hands: a
    /// message sent after this never overtakes them.
    pub async fn rows_flushed(&self, stream: u64) {
        tokio::select! {
            biased;
            () = self.outbound.flushed(stream) => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Drops the batches of `stream` not yet handed to the transport.
    pub fn discard_rows(&self, stream: u64) -> usize {
        self.outbound.discard(stream)
    }
}

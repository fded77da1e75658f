//! One connected client's outbound handle: answers and events go to its
//! bounded queue, in order.

use dbbridge_protocol::{Event, Notification};
use tokio::sync::mpsc;

use crate::transport::Outbound;

/// One connected client: where its answers and events go.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    outbound: mpsc::Sender<Outbound>,
}

impl Client {
    pub fn new(id: u64, outbound: mpsc::Sender<Outbound>) -> Client {
        Client { id, outbound }
    }

    /// Queues one message; waits while the queue is full. False once the client is gone.
    pub async fn send(&self, text: impl Into<Outbound>) -> bool {
        self.outbound.send(text.into()).await.is_ok()
    }

    /// Sends an event of the contract.
    pub async fn notify<E: Event>(&self, params: &E::Params) -> bool {
        match serde_json::to_string(&Notification::new(E::NAME, params)) {
            Ok(text) => self.send(text).await,
            Err(error) => {
                tracing::error!(%error, event = E::NAME, "encoding an event failed");
                true
            }
        }
    }
}

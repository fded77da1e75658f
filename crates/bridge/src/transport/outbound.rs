//! The outbound path every transport shares: one client's messages in two
//! lanes, and the one receive that drains them.
//!
//! - **Control:** responses, `query.done`, `query.paused`, `session.closed`,
//!   job events. Always taken first.
//! - **Data:** `query.result` batches, one queue per query stream, taken in
//!   turn so one query's flood never starves another.
//!
//! The transport takes one message at a time, so a control message waits
//! behind at most what the transport already holds (the message being
//! written, the pipe or socket buffer). Both lanes are bounded: a control
//! sender waits when `CONTROL_QUEUE` messages are waiting; a data sender
//! waits when its own stream holds `STREAM_QUEUE` batches or all streams
//! together hold `DATA_QUEUE`. A stalled client therefore stops each query's
//! stream at its queue, and the engine's read behind it.
//!
//! Ordering: messages of one lane keep their order. A query's `query.done`
//! goes on the control lane only once its stream has been drained
//! ([`OutboundSender::flushed`]), so it never overtakes that query's batches.
//! The wait on a `Notify` is runtime-agnostic, so the stdio writer thread
//! blocks on the same receive.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Control messages that may wait before a sender waits.
pub const CONTROL_QUEUE: usize = 256;
/// Batches one query stream may have waiting.
pub const STREAM_QUEUE: usize = 2;
/// Batches all of a client's streams may have waiting together.
pub const DATA_QUEUE: usize = 16;

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

#[derive(Default)]
struct Lanes {
    control: VecDeque<Outbound>,
    /// Each stream's waiting batches.
    streams: HashMap<u64, VecDeque<Outbound>>,
    /// Streams with batches waiting, in the order they get their turn.
    turns: VecDeque<u64>,
    data_len: usize,
    senders: usize,
    receiver_gone: bool,
}

struct Shared {
    lanes: Mutex<Lanes>,
    /// Something to receive (one receiver: a stored permit never gets lost).
    readable: Notify,
    /// Room freed, or a stream drained, or the receiver gone (many waiters).
    writable: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new pair of ends.
pub fn channel() -> (OutboundSender, OutboundReceiver) {
    let shared = Arc::new(Shared {
        lanes: Mutex::new(Lanes {
            senders: 1,
            ..Lanes::default()
        }),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (
        OutboundSender {
            shared: shared.clone(),
        },
        OutboundReceiver { shared },
    )
}

/// The server's end: clonable; the receiver ends once every sender is gone.
pub struct OutboundSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OutboundSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboundSender")
    }
}

impl Clone for OutboundSender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        OutboundSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for OutboundSender {
    fn drop(&mut self) {
        let last = {
            let mut lanes = self.shared.lock();
            lanes.senders -= 1;
            lanes.senders == 0
        };
        if last {
            self.shared.readable.notify_one();
        }
    }
}

impl OutboundSender {
    /// Waits until `ready` holds for the lanes (re-checked whenever room is
    /// freed), then runs `then` under the same lock. `None` once the
    /// receiver is gone.
    async fn when<T>(
        &self,
        ready: impl Fn(&Lanes) -> bool,
        then: impl FnOnce(&mut Lanes) -> T,
    ) -> Option<T> {
        let mut then = Some(then);
        loop {
            let notified = self.shared.writable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut lanes = self.shared.lock();
                if lanes.receiver_gone {
                    return None;
                }
                if ready(&lanes) {
                    let then = then.take()?;
                    return Some(then(&mut lanes));
                }
            }
            notified.await;
        }
    }

    /// Queues a control message. False once the client is gone.
    pub async fn send_control(&self, message: Outbound) -> bool {
        let queued = self
            .when(
                |lanes| lanes.control.len() < CONTROL_QUEUE,
                |lanes| lanes.control.push_back(message),
            )
            .await;
        if queued.is_some() {
            self.shared.readable.notify_one();
        }
        queued.is_some()
    }

    /// Queues a batch of `stream` on the data lane. False once the client is gone.
    pub async fn send_data(&self, stream: u64, message: Outbound) -> bool {
        let queued = self
            .when(
                |lanes| {
                    lanes.data_len < DATA_QUEUE
                        && lanes.streams.get(&stream).map_or(0, VecDeque::len) < STREAM_QUEUE
                },
                |lanes| {
                    let queue = lanes.streams.entry(stream).or_default();
                    if queue.is_empty() {
                        lanes.turns.push_back(stream);
                    }
                    queue.push_back(message);
                    lanes.data_len += 1;
                },
            )
            .await;
        if queued.is_some() {
            self.shared.readable.notify_one();
        }
        queued.is_some()
    }

    /// Waits until every batch of `stream` has been taken by the transport
    /// (at once when the client is gone).
    pub async fn flushed(&self, stream: u64) {
        let _ = self
            .when(|lanes| !lanes.streams.contains_key(&stream), |_| ())
            .await;
    }

    /// Drops the batches of `stream` still waiting (a cancelled query's);
    /// their texts go back to the batch pool.
    pub fn discard(&self, stream: u64) -> usize {
        let dropped = {
            let mut lanes = self.shared.lock();
            let Some(queue) = lanes.streams.remove(&stream) else {
                return 0;
            };
            lanes.turns.retain(|s| *s != stream);
            lanes.data_len -= queue.len();
            queue
        };
        self.shared.writable.notify_waiters();
        let n = dropped.len();
        for message in dropped {
            dbbridge_db::batch::recycle(message.body);
        }
        n
    }
}

/// The transport's end: control first, then the streams in turn.
pub struct OutboundReceiver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OutboundReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboundReceiver")
    }
}

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.writable.notify_waiters();
    }
}

impl OutboundReceiver {
    /// The next message at once, if there is one.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let taken = {
            let mut lanes = self.shared.lock();
            if let Some(message) = lanes.control.pop_front() {
                Some(message)
            } else if let Some(stream) = lanes.turns.pop_front() {
                let lanes = &mut *lanes;
                let queue = lanes.streams.get_mut(&stream)?;
                let message = queue.pop_front();
                if queue.is_empty() {
                    lanes.streams.remove(&stream);
                } else {
                    lanes.turns.push_back(stream);
                }
                lanes.data_len -= 1;
                message
            } else {
                None
            }
        };
        if taken.is_some() {
            self.shared.writable.notify_waiters();
        }
        taken
    }

    /// The next message; `None` once every sender is gone and nothing waits.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(message) = self.try_recv() {
                return Some(message);
            }
            if self.shared.lock().senders == 0 {
                return self.try_recv();
            }
            self.shared.readable.notified().await;
        }
    }

    /// [`recv`](Self::recv) for a thread outside the runtime.
    pub fn blocking_recv(&mut self) -> Option<Outbound> {
        futures::executor::block_on(self.recv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Outbound {
        Outbound::from(s.to_string())
    }

    fn next(rx: &mut OutboundReceiver) -> String {
        rx.try_recv().map(Outbound::into_string).unwrap_or_default()
    }

    #[tokio::test]
    async fn control_first_and_streams_in_turn() {
        let (tx, mut rx) = channel();
        assert!(tx.send_data(1, text("a1")).await);
        assert!(tx.send_data(1, text("a2")).await);
        assert!(tx.send_data(2, text("b1")).await);
        assert!(tx.send_control(text("c1")).await);
        assert_eq!(next(&mut rx), "c1");
        assert_eq!(next(&mut rx), "a1");
        assert_eq!(next(&mut rx), "b1");
        assert!(tx.send_control(text("c2")).await);
        assert_eq!(next(&mut rx), "c2");
        assert_eq!(next(&mut rx), "a2");
        assert!(rx.try_recv().is_none());
        tx.flushed(1).await;
        drop(tx);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_full_stream_waits_and_discard_frees_it() {
        let (tx, mut rx) = channel();
        for i in 0..STREAM_QUEUE {
            assert!(tx.send_data(7, text(&format!("{i}"))).await);
        }
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send_data(7, text("more")),
        )
        .await;
        assert!(blocked.is_err(), "a full stream waits");
        // Another stream still gets in.
        assert!(tx.send_data(8, text("other")).await);
        assert_eq!(tx.discard(7), STREAM_QUEUE);
        assert!(tx.send_data(7, text("after")).await);
        assert_eq!(next(&mut rx), "other");
        assert_eq!(next(&mut rx), "after");
        drop(rx);
        assert!(!tx.send_control(text("gone")).await);
    }
}

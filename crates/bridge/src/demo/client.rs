//! The demo's front end: a minimal JSON-RPC client on the in-memory
//! transport that calls methods and waits for a query's or a job's events.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::transport::memory::MemoryClient;
use crate::transport::{Inbound, OutboundReceiver};

/// A minimal front end on the in-memory transport.
pub struct DemoClient {
    tx: mpsc::Sender<Inbound>,
    rx: OutboundReceiver,
    next_id: i64,
    events: VecDeque<Value>,
}

impl DemoClient {
    pub fn new(client: MemoryClient) -> Self {
        DemoClient {
            tx: client.sender,
            rx: client.receiver,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    async fn recv(&mut self) -> Result<Value> {
        let text = self
            .rx
            .recv()
            .await
            .context("the bridge closed the connection")?;
        Ok(serde_json::from_str(&text.into_string())?)
    }

    /// Sends a request and returns `data`, or fails with the error's code.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.tx
            .send(Inbound::Text(msg.to_string()))
            .await
            .context("the bridge is gone")?;
        loop {
            let msg = self.recv().await?;
            if msg["id"] == id {
                let result = &msg["result"];
                if result["ok"] == true {
                    return Ok(result["data"].clone());
                }
                bail!(
                    "{method}: {} {}",
                    result["error"]["code"],
                    result["error"]["message"]
                );
            }
            if msg.get("id").is_none() {
                self.events.push_back(msg);
            }
        }
    }

    /// Waits for a job's done event, handing each progress event to `on_progress`.
    pub async fn job(
        &mut self,
        id_field: &str,
        id: &str,
        progress: &str,
        done: &str,
        mut on_progress: impl FnMut(&Value),
    ) -> Result<Value> {
        loop {
            let ev = match self.events.pop_front() {
                Some(ev) => ev,
                None => self.recv().await?,
            };
            if ev["params"][id_field] != id {
                continue;
            }
            if ev["method"] == progress {
                on_progress(&ev["params"]);
            } else if ev["method"] == done {
                return Ok(ev["params"].clone());
            }
        }
    }

    pub async fn start(&mut self, session: &str, sql: &str) -> Result<String> {
        let data = self
            .call("query.run", json!({"sessionId": session, "sql": sql}))
            .await?;
        Ok(data["queryId"].as_str().context("query id")?.to_string())
    }

    /// Waits for the query's `query.done`, handing each `query.result` to `on_batch`.
    pub async fn wait_done(&mut self, query: &str, on_batch: impl FnMut(&Value)) -> Result<Value> {
        let done = self.until(query, on_batch, &["query.done"]).await?;
        Ok(done["params"].clone())
    }

    /// Waits for one of the query's events named in `ends` (the whole
    /// event), handing each `query.result` before it to `on_batch`.
    pub async fn until(
        &mut self,
        query: &str,
        mut on_batch: impl FnMut(&Value),
        ends: &[&str],
    ) -> Result<Value> {
        loop {
            let ev = match self.events.pop_front() {
                Some(ev) => ev,
                None => self.recv().await?,
            };
            if ev["params"]["queryId"] != query {
                continue;
            }
            match ev["method"].as_str() {
                Some("query.result") => on_batch(&ev["params"]),
                Some(method) if ends.contains(&method) => return Ok(ev),
                _ => {}
            }
        }
    }

    pub async fn run_to_end(
        &mut self,
        session: &str,
        sql: &str,
        on_batch: impl FnMut(&Value),
    ) -> Result<Value> {
        let q = self.start(session, sql).await?;
        self.wait_done(&q, on_batch).await
    }
}

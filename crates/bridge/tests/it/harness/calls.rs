//! What the tests ask of a bridge in more than one message: opening a
//! session, running a query and gathering its events into a `QueryOutcome`,
//! a query left unread, a job's events.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Bridge, rss_bytes, stalling_proxy};

/// What one query produced, gathered from its events.
#[derive(Debug, Default)]
pub struct QueryOutcome {
    pub query_id: String,
    /// One entry per result set: its columns and all its rows.
    pub results: Vec<ResultSet>,
    pub batches: usize,
    pub done: Value,
}

#[derive(Debug, Default, Clone)]
pub struct ResultSet {
    pub columns: Vec<Value>,
    pub rows: Vec<Value>,
}

impl QueryOutcome {
    pub fn status(&self) -> &str {
        self.done["status"].as_str().unwrap_or_default()
    }

    pub fn rows(&self, result: usize) -> &[Value] {
        &self.results[result].rows
    }
}

impl Bridge {
    /// Opens a SQLite session on `path` (created if missing); returns its id.
    pub fn open_sqlite(&mut self, path: &str) -> String {
        let data = self.ok(
            "session.open",
            json!({"connection": {"kind": "sqlite", "path": path, "create": true}}),
        );
        data["sessionId"].as_str().unwrap().to_string()
    }

    /// Opens a session on `connection` through a [`stalling_proxy`], starts
    /// `sql`, waits for its first batch, then stalls the network (both
    /// sockets open, nothing forwarded). Returns the session and query ids.
    pub fn stalled_mid_stream(&mut self, connection: &Value, sql: &str) -> (String, String) {
        let upstream = (
            connection["host"].as_str().unwrap().to_string(),
            connection["port"].as_u64().unwrap() as u16,
        );
        let (port, stalled) = stalling_proxy(upstream);
        let mut proxied = connection.clone();
        proxied["host"] = json!("127.0.0.1");
        proxied["port"] = json!(port);
        let s = self.open_session(&proxied);
        let q = self.start_query(&s, sql, json!({}));
        // Mid-result: some batches arrived, then the network goes silent.
        self.event_where(Duration::from_secs(30), |e| {
            e["method"] == "query.result" && e["params"]["queryId"] == q
        });
        stalled.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        (s, q)
    }

    /// Opens a session on `connection` (any engine); returns its id.
    pub fn open_session(&mut self, connection: &Value) -> String {
        let data = self.ok("session.open", json!({"connection": connection}));
        data["sessionId"].as_str().unwrap().to_string()
    }

    /// Runs `sql` while not reading stdout for 3 s, sampling the bridge's RSS,
    /// then reads everything. Returns the outcome and the peak RSS while stalled.
    pub fn stream_while_stalled(&mut self, session: &str, sql: &str) -> (QueryOutcome, u64) {
        self.pause_reading();
        let q = self.start_query_unread(session, sql);
        let mut peak = 0;
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(rss_bytes(self.pid()));
        }
        self.resume_reading();
        (self.collect(&q, Duration::from_secs(300)), peak)
    }

    /// Starts a query; returns its id.
    pub fn start_query(&mut self, session: &str, sql: &str, extra: Value) -> String {
        let mut params = json!({"sessionId": session, "sql": sql});
        if let Value::Object(extra) = extra {
            params.as_object_mut().unwrap().extend(extra);
        }
        let data = self.ok("query.run", params);
        data["queryId"].as_str().unwrap().to_string()
    }

    /// Collects every event of `query_id` up to its `query.done`, checking the
    /// order the protocol promises (batch indexes, columns on first batches).
    pub fn collect(&mut self, query_id: &str, timeout: Duration) -> QueryOutcome {
        let mut out = QueryOutcome {
            query_id: query_id.to_string(),
            ..Default::default()
        };
        let deadline = Instant::now() + timeout;
        let mut next_batch: HashMap<u64, u64> = HashMap::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.event_where(left, |e| e["params"]["queryId"] == query_id);
            match ev["method"].as_str().unwrap() {
                "query.result" => {
                    let p = &ev["params"];
                    let ri = p["resultIndex"].as_u64().unwrap();
                    let bi = p["batchIndex"].as_u64().unwrap();
                    let expected = next_batch.entry(ri).or_insert(0);
                    assert_eq!(bi, *expected, "batches out of order: {ev}");
                    *expected += 1;
                    if bi == 0 {
                        assert_eq!(ri as usize, out.results.len(), "result sets out of order");
                        let columns = p["columns"]
                            .as_array()
                            .expect("columns on the first batch")
                            .clone();
                        out.results.push(ResultSet {
                            columns,
                            rows: Vec::new(),
                        });
                    } else {
                        assert!(
                            p.get("columns").is_none(),
                            "columns only on the first batch"
                        );
                    }
                    let set = out.results.last_mut().unwrap();
                    set.rows
                        .extend(p["rows"].as_array().unwrap().iter().cloned());
                    out.batches += 1;
                }
                "query.done" => {
                    out.done = ev["params"].clone();
                    return out;
                }
                other => panic!("unexpected event {other}"),
            }
        }
    }

    /// Starts a query while stdout is not being read: the answer is fetched
    /// after reading resumes, by `collect`.
    pub fn start_query_unread(&mut self, session: &str, sql: &str) -> String {
        let id = self.send("query.run", json!({"sessionId": session, "sql": sql}));
        self.resume_reading();
        let resp = self.response(&json!(id), Duration::from_secs(30));
        self.pause_reading();
        resp["result"]["data"]["queryId"]
            .as_str()
            .expect("query id")
            .to_string()
    }

    /// Keeps reading for `how_long` as a front end that keeps up would,
    /// dropping the row batches it reads (other events stay queued).
    pub fn consume_for(&mut self, how_long: Duration) {
        let deadline = Instant::now() + how_long;
        while self.pump(deadline) {
            self.events.retain(|e| e["method"] != "query.result");
        }
        self.events.retain(|e| e["method"] != "query.result");
    }

    /// Waits for `query_id`'s `query.done`, dropping its row batches.
    pub fn wait_done(&mut self, query_id: &str, timeout: Duration) -> Value {
        loop {
            let ev = self.event_where(timeout, |e| e["params"]["queryId"] == query_id);
            if ev["method"] == "query.done" {
                return ev["params"].clone();
            }
        }
    }

    /// A job's events (whole) up to the one named `done`, and that one's
    /// params; the events are those whose `params[id_field]` is `id`.
    pub fn job_events(&mut self, id_field: &str, id: &str, done: &str) -> (Vec<Value>, Value) {
        let mut events = Vec::new();
        loop {
            let ev = self.event_where(Duration::from_secs(120), |e| e["params"][id_field] == id);
            if ev["method"] == done {
                return (events, ev["params"].clone());
            }
            events.push(ev);
        }
    }

    /// Runs a query to its end.
    pub fn query(&mut self, session: &str, sql: &str, extra: Value) -> QueryOutcome {
        let id = self.start_query(session, sql, extra);
        self.collect(&id, Duration::from_secs(120))
    }
}

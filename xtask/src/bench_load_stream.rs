//! `bench load`'s clients at work: each client's [`Tally`] of its queries
//! and pings, driven either by a thread of the client's own
//! ([`stream_all`]) or, for WebSocket clients, by one thread serving every
//! socket in turn ([`stream_multiplexed`]), as one front end's event loop
//! serves all its connections.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench_client::Rpc;
use crate::bench_measure::{Ping, Streamed, thread_sched};

/// How often every client sends `health.ping`.
pub const PING_EVERY: Duration = Duration::from_millis(20);

/// What one session streams: its id, its SQL, and its slice of ids (each
/// session sums its own slice, so a row in the wrong query shows).
pub struct Run {
    pub session: String,
    pub sql: String,
    pub slice: u64,
}

/// One client's queries in flight: what each should deliver, what it did,
/// the pings out and answered, and, with a window, the grants owed.
struct Tally {
    rows: u64,
    window: Option<u64>,
    started: Instant,
    queries: usize,
    run_ids: HashMap<u64, u64>,
    expected: HashMap<String, (u64, u64)>,
    seen: HashMap<String, (u64, u64)>,
    pings_out: HashMap<u64, Instant>,
    pings: Vec<Ping>,
    // With a window: rows taken since the last `query.fetch`, per query,
    // granted back once half a window has been parsed (so a query pauses
    // only when this client falls behind), and the fetches' ids.
    parsed: HashMap<String, u64>,
    fetches: HashSet<u64>,
    next_ping: Instant,
    done: usize,
}

impl Tally {
    /// Starts every run of `runs` on `client`.
    fn start(
        client: &mut impl Rpc,
        runs: &[Run],
        rows: u64,
        window: Option<u64>,
        started: Instant,
    ) -> Result<Self> {
        let mut run_ids = HashMap::new();
        for run in runs {
            let mut params = json!({"sessionId": run.session, "sql": run.sql});
            if let Some(window) = window {
                params["window"] = json!(window);
            }
            run_ids.insert(client.send("query.run", params)?, run.slice);
        }
        Ok(Self {
            rows,
            window,
            started,
            queries: runs.len(),
            run_ids,
            expected: HashMap::new(),
            seen: HashMap::new(),
            pings_out: HashMap::new(),
            pings: Vec::new(),
            parsed: HashMap::new(),
            fetches: HashSet::new(),
            next_ping: started,
            done: 0,
        })
    }

    fn finished(&self) -> bool {
        self.done >= self.queries
    }

    /// Sends a ping when 20 ms have passed since the last one.
    fn ping_if_due(&mut self, client: &mut impl Rpc) -> Result<()> {
        if self.started.elapsed() > Duration::from_secs(600) {
            bail!(
                "the load did not finish in 10 minutes ({} queries done)",
                self.done
            );
        }
        let now = Instant::now();
        if now >= self.next_ping {
            self.pings_out
                .insert(client.send("health.ping", json!({}))?, now);
            self.next_ping = now + PING_EVERY;
        }
        Ok(())
    }

    /// Takes one message, parsed at `at`.
    fn take(&mut self, client: &mut impl Rpc, msg: &Value, at: Instant) -> Result<()> {
        if let Some(id) = msg["id"].as_u64() {
            if self.fetches.remove(&id) {
                // Granted, or INVALID_PARAMS when the query had sent its
                // last row before the grant came: both fine. A grant that
                // went missing leaves a query paused, caught by the
                // 10-minute bound.
            } else if let Some(sent) = self.pings_out.remove(&id) {
                self.pings.push((sent - self.started, at - sent));
            } else if let Some(slice) = self.run_ids.remove(&id) {
                let q = msg["result"]["data"]["queryId"]
                    .as_str()
                    .with_context(|| format!("query.run failed: {msg}"))?;
                let rows = self.rows;
                let sum = (1..=rows).map(|n| n + slice * rows).sum();
                self.expected.insert(q.to_string(), (rows, sum));
            }
            return Ok(());
        }
        let q = msg["params"]["queryId"].as_str().unwrap_or_default();
        match msg["method"].as_str() {
            Some("query.result") => {
                let tally = self.seen.entry(q.to_string()).or_default();
                let batch = msg["params"]["rows"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice);
                for row in batch {
                    tally.0 += 1;
                    tally.1 += cell(&row[0])?;
                }
                if let Some(window) = self.window {
                    let taken = self.parsed.entry(q.to_string()).or_default();
                    *taken += batch.len() as u64;
                    if *taken >= (window / 2).max(1) {
                        let params = json!({
                            "sessionId": msg["params"]["sessionId"],
                            "queryId": q,
                            "rows": *taken,
                        });
                        self.fetches.insert(client.send("query.fetch", params)?);
                        *taken = 0;
                    }
                }
            }
            Some("query.done") => {
                if msg["params"]["status"] != "completed" {
                    bail!("a query did not complete: {msg}");
                }
                self.done += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks each query's count and sum; the pings.
    fn check(self) -> Result<Vec<Ping>> {
        if self.expected.len() != self.queries {
            bail!(
                "{} of {} queries started",
                self.expected.len(),
                self.queries
            );
        }
        for (q, want) in &self.expected {
            if self.seen.get(q) != Some(want) {
                bail!(
                    "query {q}: expected (count, sum) {want:?}, got {:?}",
                    self.seen.get(q)
                );
            }
        }
        Ok(self.pings)
    }
}

/// Starts every run at once, then parses every message until all are done,
/// sending a ping whenever 20 ms have passed. Checks each query's count and
/// sum; returns the pings and what the calling thread spent.
pub fn stream_all(
    client: &mut impl Rpc,
    runs: &[Run],
    rows: u64,
    window: Option<u64>,
) -> Result<Streamed> {
    let started = Instant::now();
    let sched = thread_sched();
    let mut tally = Tally::start(client, runs, rows, window, started)?;
    while !tally.finished() {
        tally.ping_if_due(client)?;
        let msg = client.next()?;
        tally.take(client, &msg, Instant::now())?;
    }
    let pings = tally.check()?;
    let (cpu, waited) = thread_sched();
    Ok(Streamed {
        pings,
        cpu: cpu - sched.0,
        waited: waited - sched.1,
    })
}

/// A client the multiplexed loop can ask for a message without blocking.
pub trait TryRpc: Rpc {
    /// The next whole message, if one has arrived.
    fn try_next(&mut self) -> Result<Option<Value>>;
    /// Writes what `send` queued, as far as the socket takes it.
    fn push(&mut self) -> Result<()>;
}

/// [`stream_all`] for every client at once on this one thread: each pass
/// visits every client, sends its ping when due and takes at most one
/// message from it, so no socket's backlog starves another's; a pass that
/// finds nothing sleeps 50 µs.
pub fn stream_multiplexed<C: TryRpc>(
    clients: &mut [(C, Vec<Run>)],
    rows: u64,
    window: Option<u64>,
) -> Result<Streamed> {
    let started = Instant::now();
    let sched = thread_sched();
    let mut tallies = Vec::new();
    for (client, runs) in clients.iter_mut() {
        tallies.push(Tally::start(client, runs, rows, window, started)?);
    }
    while tallies.iter().any(|t| !t.finished()) {
        let mut idle = true;
        for ((client, _), tally) in clients.iter_mut().zip(&mut tallies) {
            if tally.finished() {
                continue;
            }
            tally.ping_if_due(client)?;
            client.push()?;
            if let Some(msg) = client.try_next()? {
                idle = false;
                tally.take(client, &msg, Instant::now())?;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let mut pings = Vec::new();
    for tally in tallies {
        pings.extend(tally.check()?);
    }
    let (cpu, waited) = thread_sched();
    Ok(Streamed {
        pings,
        cpu: cpu - sched.0,
        waited: waited - sched.1,
    })
}

/// An integer cell: a JSON number, or a string where the engine's type is
/// wider than a double holds exactly.
fn cell(v: &Value) -> Result<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .with_context(|| format!("{v} is not an integer cell"))
}

//! `cargo xtask bench lanes [--rows N]`: per-query flow control and the
//! two outbound lanes, on the SQLite benchmark table (N rows, default 1M),
//! through the release binary and a client that parses every line:
//!
//! - throughput with a window large enough never to pause, against no
//!   window, alternating fresh bridges, best of three (target: within 3%);
//! - control under load: four sessions stream the table at full speed while
//!   `health.ping` goes every 20 ms (target p99 <= 25 ms); one query is
//!   cancelled a second in (target: answer and `query.done` within 50 ms);
//! - `query.fetch` round trips on a paused query (p50, p99).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{best_of, build_release, create_sqlite_table, ms, percentile};
use crate::bench_client::{BenchClient, Rpc};

const RUNS: usize = 3;
const SQL: &str = "SELECT * FROM t";

pub fn lanes(root: &Path, rows: u64) -> Result<()> {
    let bin = build_release(root)?;
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-lanes-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    create_sqlite_table(&db, rows)?;
    let connection = json!({"kind": "sqlite", "path": db, "readOnly": true});
    let data = dir.join("data");

    // Windowed (never pausing) against unwindowed, alternating.
    let (mut plain, mut windowed) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (times, extra) in [
            (&mut plain, json!({})),
            (&mut windowed, json!({"window": rows * 10})),
        ] {
            let mut client = BenchClient::start(&bin, &data)?;
            let session = client.open(&connection)?;
            times.push(client.stream_with(&session, SQL, rows, extra)?.wall);
            client.finish();
        }
    }
    let (p, w) = (best_of(&plain), best_of(&windowed));

    // Control under load.
    let mut client = BenchClient::start(&bin, &data)?;
    let sessions: Vec<String> = (0..4)
        .map(|_| client.open(&connection))
        .collect::<Result<_>>()?;
    let mut queries: HashMap<String, usize> = HashMap::new();
    let mut run_ids = HashMap::new();
    for (i, s) in sessions.iter().enumerate() {
        run_ids.insert(
            client.send("query.run", json!({"sessionId": s, "sql": SQL}))?,
            i,
        );
    }
    let started = Instant::now();
    let mut next_ping = started;
    let mut pings_out: HashMap<u64, Instant> = HashMap::new();
    let mut pings = Vec::new();
    let mut cancel: Option<(u64, Instant)> = None;
    let (mut cancel_answered, mut cancel_done) = (None, None);
    let mut done = 0;
    while done < sessions.len() {
        let now = Instant::now();
        if now >= next_ping {
            pings_out.insert(client.send("health.ping", json!({}))?, now);
            next_ping += Duration::from_millis(20);
        }
        if cancel.is_none() && now - started > Duration::from_secs(1) {
            let id = client.send("query.cancel", json!({"sessionId": sessions[0]}))?;
            cancel = Some((id, now));
        }
        let msg = client.next()?;
        let at = Instant::now();
        if let Some(id) = msg["id"].as_u64() {
            if let Some(sent) = pings_out.remove(&id) {
                pings.push(at - sent);
            } else if let Some(i) = run_ids.remove(&id) {
                let q = msg["result"]["data"]["queryId"]
                    .as_str()
                    .with_context(|| format!("query.run failed: {msg}"))?;
                queries.insert(q.to_string(), i);
            } else if cancel.is_some_and(|(c, _)| c == id) {
                cancel_answered = cancel.map(|(_, t)| at - t);
            }
        } else if msg["method"] == "query.done" {
            done += 1;
            let q = msg["params"]["queryId"].as_str().unwrap_or_default();
            if queries.get(q) == Some(&0) {
                cancel_done = cancel.map(|(_, t)| at - t);
            }
        }
    }
    client.finish();
    pings.sort();
    if pings.is_empty() {
        bail!("no pings answered");
    }

    // query.fetch round trips on a paused query.
    let mut client = BenchClient::start(&bin, &data)?;
    let session = client.open(&connection)?;
    client.send(
        "query.run",
        json!({"sessionId": session, "sql": SQL, "window": 1000}),
    )?;
    let mut fetches = Vec::new();
    let query = loop {
        let msg = client.next()?;
        if msg["method"] == "query.paused" {
            break msg["params"]["queryId"]
                .as_str()
                .map(String::from)
                .context("query.paused without a queryId")?;
        }
    };
    for _ in 0..200 {
        let sent = Instant::now();
        let id = client.send(
            "query.fetch",
            json!({"sessionId": session, "queryId": query, "rows": 1000}),
        )?;
        let mut answered = false;
        let mut paused = false;
        while !(answered && paused) {
            let msg = client.next()?;
            if msg["id"].as_u64() == Some(id) {
                fetches.push(sent.elapsed());
                answered = true;
            } else if msg["method"] == "query.paused" {
                paused = true;
            } else if msg["method"] == "query.done" {
                bail!("the query ended before 200 fetches: {msg}");
            }
        }
    }
    client.send("query.cancel", json!({"sessionId": session}))?;
    client.finish();
    fetches.sort();
    let _ = std::fs::remove_dir_all(&dir);

    println!("lanes bench: SQLite {rows} rows x 10 columns, parsed client, release build");
    println!(
        "  no window                          {:>8.0} ms (best of {RUNS})",
        ms(p)
    );
    println!(
        "  window never reached               {:>8.0} ms: {:+.1}% (target within 3%)",
        ms(w),
        100.0 * (ms(w) - ms(p)) / ms(p)
    );
    println!(
        "  4 streams at full speed, ping/20ms: {} pings, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 25 ms)",
        pings.len(),
        ms(percentile(&pings, 50)),
        ms(percentile(&pings, 99)),
        ms(*pings.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "  query.cancel answered in {:.1} ms, its query.done after {:.1} ms (target <= 50 ms)",
        cancel_answered.map_or(f64::NAN, ms),
        cancel_done.map_or(f64::NAN, ms)
    );
    println!(
        "  query.fetch round trip, 200 fetches of 1000: p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&fetches, 50)),
        ms(percentile(&fetches, 99))
    );
    Ok(())
}

//! `cargo xtask bench load [--rows N] [--window N] [--servers-cgroup] [--sqlite-cache-kib N]`:
//! issue 19's load, in the release
//! build, on the throwaway Postgres and MariaDB servers the tests start.
//! 100 sessions (34 SQLite, 33 Postgres, 33 MariaDB) each stream N rows
//! (default 20,000) at once, into clients that parse every message and
//! count and sum every row per query, while each client sends
//! `health.ping` every 20 ms:
//!
//! - over one stdio pipe (one client, 100 sessions), against the same pings
//!   with the 100 sessions open and idle (the baseline, in the same run);
//! - over 10 WebSocket clients of 10 sessions each (4 SQLite, 3 Postgres,
//!   3 MariaDB clients), each on a thread of its own, and an 11th
//!   WebSocket client that only pings: the bridge's own answer time, with
//!   no backlog of rows ahead of the answer in that client's socket.
//!
//! `--window N` starts every query with a window of N rows, granted back
//! with `query.fetch` as the client parses them: the flow control a front
//! end that buffers eagerly (a browser's WebSocket) uses to keep its own
//! backlog, and so its answers' wait, bounded.
//!
//! `--sqlite-cache-kib N` runs each SQLite query after `PRAGMA cache_size
//! = -N` on its session: how much of the bridge's peak RSS is SQLite's page
//! cache (2000 KiB a connection by default).
//!
//! Printed: ping p50/p99/max (target p99 <= 50 ms) and the bridge's peak
//! RSS for each. `--servers-cgroup` runs the servers and the bench in CPU
//! cgroups of their own first (see [`crate::bench_cgroup`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{build_release, ms, percentile};
use crate::bench_cgroup::CpuGroups;
use crate::bench_client::{BenchClient, Rpc, cpu_of, peak_rss_of};
use crate::bench_measure::{Phase, Ping, Streamed, print_pings, thread_sched};
use crate::servers::shared;

const SESSIONS: u64 = 100;
const WS_CLIENTS: u64 = 10;
const PING_EVERY: Duration = Duration::from_millis(20);

/// A WebSocket client (tungstenite's blocking one: one thread a client).
struct WsRpc {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl Rpc for WsRpc {
    fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(text.to_string()))?;
        Ok(id)
    }
    fn next(&mut self) -> Result<Value> {
        loop {
            match self.socket.read()? {
                tungstenite::Message::Text(text) => return Ok(serde_json::from_str(&text)?),
                tungstenite::Message::Close(_) => bail!("the bridge closed the socket"),
                _ => {}
            }
        }
    }
}

/// What one session streams: its id, its SQL, and its slice of ids (each
/// session sums its own slice, so a row in the wrong query shows).
struct Run {
    session: String,
    sql: String,
    slice: u64,
}

/// How `bench load` runs.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Rows each session streams.
    pub rows: u64,
    /// Every query windowed with this many rows.
    pub window: Option<u64>,
    /// The servers and the bench in CPU cgroups of their own.
    pub servers_cgroup: bool,
    /// SQLite's page cache per session, in KiB, instead of its default.
    pub sqlite_cache_kib: Option<u64>,
}

/// The SQL and connection of session `i` of the mix.
fn session_of(
    i: u64,
    kind: u64,
    options: &LoadOptions,
    connections: &[Value; 3],
) -> (Value, String) {
    let rows = options.rows;
    let offset = i * rows;
    let sql = match (kind, options.sqlite_cache_kib) {
        (0, Some(kib)) => format!("PRAGMA cache_size = -{kib}; SELECT id + {offset} FROM t"),
        (0, None) => format!("SELECT id + {offset} FROM t"),
        (1, _) => format!("SELECT id + {offset} FROM t"),
        _ => format!("SELECT seq + {offset} FROM seq_1_to_{rows}"),
    };
    (connections[kind as usize].clone(), sql)
}

/// Starts every run at once, then parses every message until all are done,
/// sending a ping whenever 20 ms have passed. Checks each query's count and
/// sum; returns the pings and what the calling thread spent.
fn stream_all(
    client: &mut impl Rpc,
    runs: &[Run],
    rows: u64,
    window: Option<u64>,
) -> Result<Streamed> {
    let started = Instant::now();
    let sched = thread_sched();
    let mut run_ids = HashMap::new();
    for run in runs {
        let mut params = json!({"sessionId": run.session, "sql": run.sql});
        if let Some(window) = window {
            params["window"] = json!(window);
        }
        run_ids.insert(client.send("query.run", params)?, run.slice);
    }
    let mut expected: HashMap<String, (u64, u64)> = HashMap::new();
    let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
    let mut pings_out: HashMap<u64, Instant> = HashMap::new();
    let mut pings = Vec::new();
    // With a window: rows taken since the last `query.fetch`, per query,
    // granted back once half a window has been parsed (so a query pauses
    // only when this client falls behind), and the fetches' ids.
    let mut parsed: HashMap<String, u64> = HashMap::new();
    let mut fetches = std::collections::HashSet::new();
    let mut next_ping = started;
    let mut done = 0;
    while done < runs.len() {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the load did not finish in 10 minutes ({done} queries done)");
        }
        let now = Instant::now();
        if now >= next_ping {
            pings_out.insert(client.send("health.ping", json!({}))?, now);
            next_ping = now + PING_EVERY;
        }
        let msg = client.next()?;
        let at = Instant::now();
        if let Some(id) = msg["id"].as_u64() {
            if fetches.remove(&id) {
                // Granted, or INVALID_PARAMS when the query had sent its
                // last row before the grant came: both fine. A grant that
                // went missing leaves a query paused, caught by the
                // 10-minute bound above.
            } else if let Some(sent) = pings_out.remove(&id) {
                pings.push((sent - started, at - sent));
            } else if let Some(slice) = run_ids.remove(&id) {
                let q = msg["result"]["data"]["queryId"]
                    .as_str()
                    .with_context(|| format!("query.run failed: {msg}"))?;
                let sum = (1..=rows).map(|n| n + slice * rows).sum();
                expected.insert(q.to_string(), (rows, sum));
            }
            continue;
        }
        let q = msg["params"]["queryId"].as_str().unwrap_or_default();
        match msg["method"].as_str() {
            Some("query.result") => {
                let tally = seen.entry(q.to_string()).or_default();
                let batch = msg["params"]["rows"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice);
                for row in batch {
                    tally.0 += 1;
                    tally.1 += cell(&row[0])?;
                }
                if let Some(window) = window {
                    let taken = parsed.entry(q.to_string()).or_default();
                    *taken += batch.len() as u64;
                    if *taken >= (window / 2).max(1) {
                        let params = json!({
                            "sessionId": msg["params"]["sessionId"],
                            "queryId": q,
                            "rows": *taken,
                        });
                        fetches.insert(client.send("query.fetch", params)?);
                        *taken = 0;
                    }
                }
            }
            Some("query.done") => {
                if msg["params"]["status"] != "completed" {
                    bail!("a query did not complete: {msg}");
                }
                done += 1;
            }
            _ => {}
        }
    }
    if expected.len() != runs.len() {
        bail!("{} of {} queries started", expected.len(), runs.len());
    }
    for (q, want) in &expected {
        if seen.get(q) != Some(want) {
            bail!(
                "query {q}: expected (count, sum) {want:?}, got {:?}",
                seen.get(q)
            );
        }
    }
    let (cpu, waited) = thread_sched();
    Ok(Streamed {
        pings,
        cpu: cpu - sched.0,
        waited: waited - sched.1,
    })
}

pub fn load(root: &Path, options: LoadOptions) -> Result<()> {
    let LoadOptions {
        rows,
        window,
        servers_cgroup,
        sqlite_cache_kib,
    } = options;
    let bin = build_release(root)?;
    let pg = shared::postgres().context("no Postgres server could be started")?;
    let my = shared::mysql().context("no MariaDB server could be started")?;
    let groups = if servers_cgroup {
        Some(CpuGroups::split(&[pg.port, my.port])?)
    } else {
        None
    };
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let lite = dir.join("load.db");
    let made = Command::new("sqlite3")
        .arg(&lite)
        .arg(format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY);
             WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < {rows})
             INSERT INTO t SELECT v FROM g;"
        ))
        .status()
        .context("sqlite3")?;
    if !made.success() {
        bail!("sqlite3 could not make the table");
    }
    // Postgres reads a table: `generate_series` would make each of the 33
    // backends build its whole result before sending a row, a burst of
    // server CPU on the same 2 cores rather than the bridge's work (with it,
    // pings waited up to 2 s while the backends ran).
    let pg_db = pg.create_database();
    let out = pg.psql(
        &pg_db,
        &format!("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, {rows}) g"),
    );
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let connections = [
        json!({"kind": "sqlite", "path": lite, "readOnly": true}),
        pg.connection(&pg_db),
        my.connection(&my.create_database()),
    ];

    // One stdio pipe: 34 SQLite, 33 Postgres, 33 MariaDB sessions.
    let mut client = BenchClient::start(&bin, &dir.join("data"))?;
    let mut runs = Vec::new();
    for i in 0..SESSIONS {
        let (connection, sql) = session_of(i, i % 3, &options, &connections);
        let session = client.open(&connection)?;
        runs.push(Run {
            session,
            sql,
            slice: i,
        });
    }
    let mut idle = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let sent = Instant::now();
        let id = client.send("health.ping", json!({}))?;
        while client.next()?["id"] != id {}
        idle.push(sent.elapsed());
        std::thread::sleep(PING_EVERY);
    }
    idle.sort();
    let started = Instant::now();
    let bridge_cpu = client.cpu();
    let clients = stream_all(&mut client, &runs, rows, window)?;
    let stdio = Phase {
        clients,
        bridge_cpu: client.cpu() - bridge_cpu,
        wall: started.elapsed(),
        peak: client.peak_rss(),
    };
    client.finish();

    // Ten WebSocket clients of ten sessions each.
    let (ws, ws_pinger) = over_websocket(&bin, &dir, options, &connections)?;
    let _ = std::fs::remove_dir_all(&dir);

    drop(groups);
    println!(
        "load bench: {SESSIONS} sessions (34 SQLite, 33 Postgres, 33 MariaDB) x {rows} rows at once, clients parsing every message, release build; the database servers on the same cores, {}",
        if servers_cgroup {
            "in a CPU cgroup of their own, the bench in another (--servers-cgroup)"
        } else {
            "as started (each Postgres backend an autogroup of its own)"
        }
    );
    if let Some(kib) = sqlite_cache_kib {
        println!("  each SQLite session's page cache {kib} KiB (--sqlite-cache-kib)");
    }
    if let Some(window) = window {
        println!(
            "  every query windowed (--window {window}): the client grants back with query.fetch each half window it has parsed"
        );
    }
    println!(
        "  ping, the 100 sessions open and idle (baseline): {} pings, p50 {:.2} ms, p99 {:.2} ms",
        idle.len(),
        ms(percentile(&idle, 50)),
        ms(percentile(&idle, 99))
    );
    let base = ms(percentile(&idle, 99)).max(0.001);
    for (name, phase) in [("one stdio pipe", &stdio), ("10 WebSocket clients", &ws)] {
        println!(
            "  {name}: all {} rows accounted for (count and sum per query) in {:.0} ms; bridge peak RSS {:.1} MiB",
            SESSIONS * rows,
            ms(phase.wall),
            phase.peak as f64 / 1048576.0
        );
        println!(
            "    CPU: the bridge {:.2} s; the parsing client threads {:.2} s, and {:.2} s runnable but waiting for a core",
            phase.bridge_cpu.as_secs_f64(),
            phase.clients.cpu.as_secs_f64(),
            phase.clients.waited.as_secs_f64(),
        );
        print_pings("ping every 20 ms", &phase.clients.pings, base);
    }
    print_pings(
        "an 11th WebSocket client that only pings, every 20 ms",
        &ws_pinger,
        base,
    );
    Ok(())
}

/// The WebSocket half: a bridge on `--ws 127.0.0.1:0`, ten client threads
/// (4 SQLite, 3 Postgres, 3 MariaDB) of ten sessions each. Returns every
/// clients' run, and the pings of an 11th client that only pings.
fn over_websocket(
    bin: &Path,
    dir: &Path,
    options: LoadOptions,
    connections: &[Value; 3],
) -> Result<(Phase, Vec<Ping>)> {
    let mut child = KillOnDrop(
        Command::new(bin)
            .arg("--data-dir")
            .arg(dir.join("data-ws"))
            .args(["serve", "--ws", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().context("stdout")?).read_line(&mut line)?;
    let first: Value = serde_json::from_str(&line).context("the bridge's first line")?;
    let url = format!(
        "{}/?token={}",
        first["listening"]
            .as_str()
            .context("no listening address")?,
        first["token"].as_str().context("no token")?
    );
    let pid = child.0.id();
    let ready = Arc::new(std::sync::Barrier::new(WS_CLIENTS as usize + 1));
    let mut threads = Vec::new();
    for c in 0..WS_CLIENTS {
        let kind = match c {
            0..=3 => 0,
            4..=6 => 1,
            _ => 2,
        };
        let (url, ready) = (url.clone(), ready.clone());
        let connections = connections.clone();
        threads.push(std::thread::spawn(move || -> Result<Streamed> {
            let opened = (|| -> Result<(WsRpc, Vec<Run>)> {
                let (socket, _) = tungstenite::connect(url.as_str())?;
                let mut client = WsRpc { socket, next_id: 1 };
                let mut runs = Vec::new();
                for s in 0..SESSIONS / WS_CLIENTS {
                    let slice = c * (SESSIONS / WS_CLIENTS) + s;
                    let (connection, sql) = session_of(slice, kind, &options, &connections);
                    let session = client.open(&connection)?;
                    runs.push(Run {
                        session,
                        sql,
                        slice,
                    });
                }
                Ok((client, runs))
            })();
            // Every client's sessions open before any query starts (a
            // client that failed still arrives, so no one waits for ever).
            ready.wait();
            let (mut client, runs) = opened?;
            stream_all(&mut client, &runs, options.rows, options.window)
        }));
    }
    // An eleventh client that only pings: the bridge's answer to a client
    // with no backlog of rows ahead of it in its socket.
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let (url, stop) = (url.clone(), stop.clone());
        let (socket, _) = tungstenite::connect(url.as_str())?;
        let mut client = WsRpc { socket, next_id: 1 };
        std::thread::spawn(move || -> Result<Vec<Ping>> {
            let started = Instant::now();
            let mut pings = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let id = client.send("health.ping", json!({}))?;
                while client.next()?["id"] != id {}
                pings.push((sent - started, sent.elapsed()));
                std::thread::sleep(PING_EVERY.saturating_sub(sent.elapsed()));
            }
            Ok(pings)
        })
    };
    ready.wait();
    let started = Instant::now();
    let bridge_cpu = cpu_of(&pid.to_string());
    let mut clients = Streamed::default();
    for t in threads {
        let one = t
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        clients.pings.extend(one.pings);
        clients.cpu += one.cpu;
        clients.waited += one.waited;
    }
    let wall = started.elapsed();
    let bridge_cpu = cpu_of(&pid.to_string()) - bridge_cpu;
    stop.store(true, Ordering::Relaxed);
    let idle_client = pinger
        .join()
        .map_err(|_| anyhow::anyhow!("the pinger panicked"))??;
    let phase = Phase {
        clients,
        bridge_cpu,
        wall,
        peak: peak_rss_of(pid),
    };
    Ok((phase, idle_client))
}

/// The WebSocket bridge, killed however the bench ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An integer cell: a JSON number, or a string where the engine's type is
/// wider than a double holds exactly.
fn cell(v: &Value) -> Result<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .with_context(|| format!("{v} is not an integer cell"))
}

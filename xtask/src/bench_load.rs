//! `cargo xtask bench load [--rows N] [--window N] [--servers-cgroup] [--sqlite-cache-kib N] [--client-rcvbuf-kib N] [--ws-one-thread]`:
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
//! `--client-rcvbuf-kib N` gives each WebSocket client socket a receive
//! buffer of N KiB (`SO_RCVBUF`, set before it connects) instead of the
//! kernel's autotuned one (megabytes): what a native client that keeps its
//! own backlog small does, where a browser cannot.
//!
//! `--ws-one-thread` serves the ten loaded WebSocket clients from one
//! thread, each in turn, as one front end's event loop serves all its
//! connections (a browser's or Electron's renderer), instead of ten
//! threads competing for the cores.
//!
//! `--sqlite-cache-kib N` runs each SQLite query after `PRAGMA cache_size
//! = -N` on its session: how much of the bridge's peak RSS is SQLite's page
//! cache (2000 KiB a connection by default).
//!
//! Printed: ping p50/p99/max (target p99 <= 50 ms) and the bridge's peak
//! RSS for each. `--servers-cgroup` runs the servers and the bench in CPU
//! cgroups of their own first (see [`crate::bench_cgroup`]).

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
use crate::bench_load_stream::{PING_EVERY, Run, TryRpc, stream_all, stream_multiplexed};
use crate::bench_measure::{Phase, Ping, Streamed, print_pings};
use crate::servers::shared;

const SESSIONS: u64 = 100;
const WS_CLIENTS: u64 = 10;

/// A WebSocket client (tungstenite's blocking one: one thread a client).
type WsSocket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

struct WsRpc {
    socket: WsSocket,
    next_id: u64,
}

impl Rpc for WsRpc {
    fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        match self
            .socket
            .send(tungstenite::Message::text(text.to_string()))
        {
            // Non-blocking (the multiplexed clients): queued, written by
            // a later `push`.
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            sent => sent?,
        }
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

/// Opens a WebSocket client, with a receive buffer of `rcvbuf_kib` KiB
/// when given. socket2 because the buffer must be set before `connect`:
/// the window scale the peers agree on follows it.
fn connect(
    url: &str,
    rcvbuf_kib: Option<u64>,
) -> Result<(WsSocket, tungstenite::handshake::client::Response)> {
    let Some(kib) = rcvbuf_kib else {
        return Ok(tungstenite::connect(url)?);
    };
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .context("the bridge's address")?
        .parse()?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_recv_buffer_size(kib as usize * 1024)?;
    socket.connect(&addr.into())?;
    socket.set_tcp_nodelay(true)?;
    let stream = tungstenite::stream::MaybeTlsStream::Plain(std::net::TcpStream::from(socket));
    tungstenite::client(url, stream).map_err(|e| anyhow::anyhow!("WebSocket handshake: {e}"))
}

impl TryRpc for WsRpc {
    fn try_next(&mut self) -> Result<Option<Value>> {
        match self.socket.read() {
            Ok(tungstenite::Message::Text(text)) => Ok(Some(serde_json::from_str(&text)?)),
            Ok(tungstenite::Message::Close(_)) => bail!("the bridge closed the socket"),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
    fn push(&mut self) -> Result<()> {
        match self.socket.flush() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            flushed => Ok(flushed?),
        }
    }
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
    /// Each WebSocket client's socket receive buffer, in KiB, instead of
    /// the kernel's autotuned one.
    pub client_rcvbuf_kib: Option<u64>,
    /// The ten loaded WebSocket clients served by one thread in turn, as
    /// one front end's event loop serves its connections, instead of a
    /// thread each.
    pub ws_one_thread: bool,
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

pub fn load(root: &Path, options: LoadOptions) -> Result<()> {
    let LoadOptions {
        rows,
        window,
        servers_cgroup,
        sqlite_cache_kib,
        client_rcvbuf_kib,
        ws_one_thread,
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
    if ws_one_thread {
        println!(
            "  the ten loaded WebSocket clients served by one thread in turn, as one front end's event loop (--ws-one-thread)"
        );
    }
    if let Some(kib) = client_rcvbuf_kib {
        println!("  each WebSocket client's receive buffer {kib} KiB (--client-rcvbuf-kib)");
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
    let drivers = if options.ws_one_thread { 1 } else { WS_CLIENTS };
    let ready = Arc::new(std::sync::Barrier::new(drivers as usize + 1));
    let open = {
        let url = url.clone();
        let connections = connections.clone();
        move |c: u64| -> Result<(WsRpc, Vec<Run>)> {
            let kind = match c {
                0..=3 => 0,
                4..=6 => 1,
                _ => 2,
            };
            let (socket, _) = connect(&url, options.client_rcvbuf_kib)?;
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
        }
    };
    let mut threads = Vec::new();
    if options.ws_one_thread {
        let ready = ready.clone();
        threads.push(std::thread::spawn(move || -> Result<Streamed> {
            let opened = (0..WS_CLIENTS)
                .map(|c| {
                    let (mut client, runs) = open(c)?;
                    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = client.socket.get_mut()
                    {
                        tcp.set_nonblocking(true)?;
                    }
                    Ok((client, runs))
                })
                .collect::<Result<Vec<_>>>();
            ready.wait();
            stream_multiplexed(&mut opened?, options.rows, options.window)
        }));
    } else {
        for c in 0..WS_CLIENTS {
            let (open, ready) = (open.clone(), ready.clone());
            threads.push(std::thread::spawn(move || -> Result<Streamed> {
                let opened = open(c);
                // Every client's sessions open before any query starts (a
                // client that failed still arrives, so no one waits for
                // ever).
                ready.wait();
                let (mut client, runs) = opened?;
                stream_all(&mut client, &runs, options.rows, options.window)
            }));
        }
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

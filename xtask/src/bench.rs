//! Benchmarks of the release `dbbridge` binary over stdio, each against a
//! baseline measured in the same run. The client parses every message, as a
//! front end would.
//!
//! - `cargo xtask bench sqlite [--rows N]`: an N-row (default 1M), 10-column
//!   SQLite table, against the `sqlite3` CLI printing it to /dev/null.
//! - `cargo xtask bench postgres [--rows N] [--url URL]`: an N-row table of
//!   int4, int8, numeric, text, timestamptz, bool, jsonb, bytea, uuid and
//!   float8 columns, against `psql -At` with `FETCH_COUNT 1000` and against
//!   `COPY ... TO STDOUT`; also cancel-to-`query.done` over 20 tries. The
//!   server is `--url`, else `DBBRIDGE_BENCH_POSTGRES_URL`, else the local
//!   server on 127.0.0.1:5432 as user postgres.
//! - `cargo xtask bench mysql [--rows N] [--url URL]`: the same shape of table
//!   on MySQL/MariaDB against `mariadb --quick`, and cancel-to-`query.done`.
//!   The server is `--url`, else `DBBRIDGE_BENCH_MYSQL_URL`, else
//!   `mysql://root@127.0.0.1:3306/test`.
//! - `cargo xtask bench backup` and `cargo xtask bench export`: jobs on the
//!   databases the two benches above leave behind (see their files).
//! - `cargo xtask bench lanes` and `cargo xtask bench load`: control
//!   traffic under streaming load (see their files).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo xtask bench sqlite [--rows N] | postgres [--rows N] [--url URL] | mysql [--rows N] [--url URL] | backup | export | lanes [--rows N] | load [--rows N] [--window N] [--servers-cgroup]";

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let (engine, mut rest) = args.split_first().context(USAGE)?;
    // Rows per table: 1M by default; per session for `load`, 20,000.
    let mut rows = None;
    let mut servers_cgroup = false;
    let mut window = None;
    let mut url = match *engine {
        "mysql" => std::env::var("DBBRIDGE_BENCH_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string()),
        _ => std::env::var("DBBRIDGE_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string()),
    };
    loop {
        rest = match rest {
            [] => break,
            ["--rows", value, tail @ ..] => {
                rows = Some(value.parse().context("--rows takes a number")?);
                tail
            }
            ["--url", value, tail @ ..] => {
                url = value.to_string();
                tail
            }
            ["--window", value, tail @ ..] if *engine == "load" => {
                window = Some(value.parse().context("--window takes a number")?);
                tail
            }
            ["--servers-cgroup", tail @ ..] if *engine == "load" => {
                servers_cgroup = true;
                tail
            }
            _ => bail!(USAGE),
        };
    }
    let table_rows = rows.unwrap_or(1_000_000);
    match *engine {
        "sqlite" => sqlite(root, table_rows),
        "postgres" => crate::bench_pg::postgres(root, table_rows, &url),
        "mysql" => crate::bench_my::mysql(root, table_rows, &url),
        "backup" => crate::bench_backup::backup(root),
        "lanes" => crate::bench_lanes::lanes(root, table_rows),
        "load" => crate::bench_load::load(root, rows.unwrap_or(20_000), window, servers_cgroup),
        "export" => crate::bench_export::export(root),
        _ => bail!(USAGE),
    }
}

pub fn build_release(root: &Path) -> Result<std::path::PathBuf> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "dbbridge"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    Ok(root.join("target/release/dbbridge"))
}

const RUNS: usize = 3;

fn sqlite(root: &Path, rows: u64) -> Result<()> {
    let bin = build_release(root)?;
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    create_sqlite_table(&db, rows)?;
    let sql = "SELECT * FROM t";

    let mut cli = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let status = Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("sqlite3 SELECT failed");
        }
        cli.push(t.elapsed());
    }

    let connection = json!({"kind": "sqlite", "path": db, "readOnly": true});
    let Streams {
        best,
        peak_rss,
        first_batch,
    } = parsed_streams(&bin, &dir.join("data"), &connection, sql, rows, RUNS)?;
    let cli_best = best_of(&cli);
    let ratio = best.wall.as_secs_f64() / cli_best.as_secs_f64();

    println!("sqlite bench: {rows} rows x 10 columns, best of {RUNS}");
    println!(
        "  sqlite3 CLI  > /dev/null     {:>8.0} ms  ({:.0} rows/s)",
        ms(cli_best),
        rows as f64 / cli_best.as_secs_f64()
    );
    println!(
        "  dbbridge stdio, parsed JSON  {:>8.0} ms  ({:.0} rows/s), {} batches",
        ms(best.wall),
        rows as f64 / best.wall.as_secs_f64(),
        best.batches
    );
    println!("  ratio bridge / sqlite3       {ratio:>8.2}x   (target <= 1.5x)");
    println!(
        "  bridge peak RSS              {:>8.1} MiB (target < 32 MiB)",
        peak_rss as f64 / 1048576.0
    );
    println!(
        "  first batch after query.run  {:>8.1} ms  (target < 20 ms)",
        first_batch.as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The SQLite benchmark table `t`: `rows` rows of 10 columns, afresh.
pub fn create_sqlite_table(db: &Path, rows: u64) -> Result<()> {
    let _ = std::fs::remove_file(db);
    eprintln!("creating {rows} rows x 10 columns in {}", db.display());
    let create = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER, price REAL, name TEXT, note TEXT, big INTEGER, ratio REAL, tag BLOB, day DATE, flag BOOLEAN);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO t SELECT i, i % 1000, i * 0.25, 'name-' || i, 'a somewhat longer note for row ' || i,
             i * 1000003, 1.0 / i, randomblob(8), date('2020-01-01', '+' || (i % 3000) || ' days'), i % 2 FROM n;"
    );
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(&create)
        .output()
        .context("running sqlite3 (apt-get install sqlite3)")?;
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The best (shortest) of some timings.
pub fn best_of(times: &[Duration]) -> Duration {
    times.iter().min().copied().unwrap_or_default()
}

/// The parsed-client side of a benchmark, over `runs` runs.
pub struct Streams {
    /// The fastest run.
    pub best: BridgeRun,
    /// The highest peak RSS of any run.
    pub peak_rss: u64,
    /// The quickest first batch of any run.
    pub first_batch: Duration,
}

/// Streams `sql` `runs` times, each on a fresh bridge, into the parsing client.
pub fn parsed_streams(
    bin: &Path,
    data_dir: &Path,
    connection: &Value,
    sql: &str,
    rows: u64,
    runs: usize,
) -> Result<Streams> {
    let mut all = Vec::new();
    for _ in 0..runs {
        let mut client = BenchClient::start(bin, data_dir)?;
        let session = client.open(connection)?;
        all.push(client.stream(&session, sql, rows)?);
        client.finish();
    }
    Ok(Streams {
        best: *all.iter().min_by_key(|r| r.wall).context("no runs")?,
        peak_rss: all.iter().map(|r| r.peak_rss).max().unwrap_or(0),
        first_batch: all.iter().map(|r| r.first_batch).min().unwrap_or_default(),
    })
}

/// On one bridge: the best of `runs` streams into a reader that does not
/// parse, then `tries` cancels after the first batch (sorted, for p50 and max).
pub fn unparsed_and_cancels(
    bin: &Path,
    data_dir: &Path,
    connection: &Value,
    sql: &str,
    rows: u64,
    runs: usize,
    tries: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let mut client = BenchClient::start(bin, data_dir)?;
    let session = client.open(connection)?;
    let mut unparsed = Vec::new();
    for _ in 0..runs {
        unparsed.push(client.stream_unparsed(&session, sql, rows)?);
    }
    let mut cancels = Vec::new();
    for _ in 0..tries {
        cancels.push(client.cancel_after_first_batch(&session, sql)?);
    }
    client.finish();
    cancels.sort();
    if cancels.is_empty() {
        bail!("no cancels");
    }
    Ok((best_of(&unparsed), cancels))
}

/// Process `pid`'s peak resident set size so far (VmHWM), in bytes.
pub fn peak_rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The `p`th percentile of `sorted`.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy)]
pub struct BridgeRun {
    pub wall: Duration,
    /// CPU time the bridge process spent (user + system) during the run.
    pub bridge_cpu: Duration,
    /// CPU time this client spent reading and parsing during the run.
    pub client_cpu: Duration,
    pub first_batch: Duration,
    pub peak_rss: u64,
    pub batches: u64,
}

/// CPU time (user + system) of process `pid` (or `self`) so far.
pub fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // Linux counts clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}

/// A JSON-RPC connection to the bridge: stdio ([`BenchClient`]) or
/// WebSocket (`bench load`'s clients).
pub trait Rpc {
    fn send(&mut self, method: &str, params: Value) -> Result<u64>;
    /// The next message, parsed.
    fn next(&mut self) -> Result<Value>;

    /// `session.open`; the session id.
    fn open(&mut self, connection: &Value) -> Result<String> {
        let id = self.send("session.open", json!({"connection": connection}))?;
        loop {
            let msg = self.next()?;
            if msg["id"] == id {
                return msg["result"]["data"]["sessionId"]
                    .as_str()
                    .map(String::from)
                    .with_context(|| format!("session.open failed: {msg}"));
            }
        }
    }
}

impl Rpc for BenchClient {
    fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        BenchClient::send(self, method, params)
    }
    fn next(&mut self) -> Result<Value> {
        BenchClient::next(self)
    }
}

/// The release bridge over stdio, with a client that parses every message.
pub struct BenchClient {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    line: String,
    next_id: u64,
}

impl BenchClient {
    pub fn start(bin: &Path, data_dir: &Path) -> Result<BenchClient> {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().context("stdout")?);
        Ok(BenchClient {
            child,
            stdin: Some(stdin),
            stdout,
            line: String::new(),
            next_id: 1,
        })
    }

    pub(crate) fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(
            stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )?;
        stdin.flush()?;
        Ok(id)
    }

    /// The next message, parsed.
    pub(crate) fn next(&mut self) -> Result<Value> {
        self.line.clear();
        if self.stdout.read_line(&mut self.line)? == 0 {
            bail!("the bridge closed stdout");
        }
        Ok(serde_json::from_str(&self.line)?)
    }

    /// Streams `sql` to its end; checks the row count.
    pub fn stream(&mut self, session: &str, sql: &str, rows: u64) -> Result<BridgeRun> {
        self.stream_with(session, sql, rows, json!({}))
    }

    /// [`stream`](Self::stream) with more `query.run` params (a `window`).
    pub fn stream_with(
        &mut self,
        session: &str,
        sql: &str,
        rows: u64,
        extra: Value,
    ) -> Result<BridgeRun> {
        let cpu_before = self.cpu();
        let own_before = cpu_of("self");
        let started = Instant::now();
        let mut params = json!({"sessionId": session, "sql": sql});
        if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.send("query.run", params)?;
        let mut first_batch = None;
        let mut seen = 0u64;
        let mut batches = 0u64;
        loop {
            let msg = self.next()?;
            match msg["method"].as_str() {
                Some("query.result") => {
                    first_batch.get_or_insert_with(|| started.elapsed());
                    seen += msg["params"]["rows"].as_array().map(Vec::len).unwrap_or(0) as u64;
                    batches += 1;
                }
                Some("query.done") => {
                    if msg["params"]["status"] != "completed" {
                        bail!("query failed: {}", msg["params"]);
                    }
                    break;
                }
                _ => {}
            }
        }
        let wall = started.elapsed();
        if seen != rows {
            bail!("expected {rows} rows, got {seen}");
        }
        Ok(BridgeRun {
            wall,
            bridge_cpu: self.cpu().saturating_sub(cpu_before),
            client_cpu: cpu_of("self").saturating_sub(own_before),
            first_batch: first_batch.unwrap_or_default(),
            peak_rss: self.peak_rss(),
            batches,
        })
    }

    /// Streams `sql` into a reader that does not parse the row batches (only
    /// the final `query.done`, for the row count): what the bridge delivers
    /// when it does not share the cores with a parsing client.
    pub fn stream_unparsed(&mut self, session: &str, sql: &str, rows: u64) -> Result<Duration> {
        let started = Instant::now();
        self.send("query.run", json!({"sessionId": session, "sql": sql}))?;
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line)? == 0 {
                bail!("the bridge closed stdout");
            }
            if self
                .line
                .starts_with(r#"{"jsonrpc":"2.0","method":"query.done""#)
            {
                let done: Value = serde_json::from_str(&self.line)?;
                let seen = done["params"]["results"][0]["rowCount"]
                    .as_u64()
                    .unwrap_or(0);
                if done["params"]["status"] != "completed" || seen != rows {
                    bail!("unexpected end: {}", done["params"]);
                }
                return Ok(started.elapsed());
            }
        }
    }

    /// Starts `sql`, waits for its first batch, cancels it, and times
    /// `query.cancel` to `query.done`.
    pub fn cancel_after_first_batch(&mut self, session: &str, sql: &str) -> Result<Duration> {
        self.send("query.run", json!({"sessionId": session, "sql": sql}))?;
        loop {
            let msg = self.next()?;
            match msg["method"].as_str() {
                Some("query.result") => break,
                Some("query.done") => bail!("the query ended before its first batch: {msg}"),
                _ => {}
            }
        }
        let asked = Instant::now();
        self.send("query.cancel", json!({"sessionId": session}))?;
        loop {
            let msg = self.next()?;
            if msg["method"] == "query.done" {
                if msg["params"]["status"] != "cancelled" {
                    bail!("expected cancelled: {}", msg["params"]);
                }
                return Ok(asked.elapsed());
            }
        }
    }

    /// CPU time (user + system) of the bridge process so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&self.child.id().to_string())
    }

    /// The process's peak resident set size so far (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        peak_rss_of(self.child.id())
    }

    /// Runs a backup job to its `backup.done`: the time it took, the
    /// progress events, and the most of them in any one second.
    pub fn backup(&mut self, connection: &Value) -> Result<(Duration, usize, usize)> {
        let started = Instant::now();
        let id = self.send("backup.start", json!({"connection": connection}))?;
        let mut backup = None;
        let mut progress: Vec<Instant> = Vec::new();
        loop {
            let msg = self.next()?;
            if msg["id"] == id {
                backup = Some(
                    msg["result"]["data"]["backupId"]
                        .as_str()
                        .with_context(|| format!("backup.start failed: {msg}"))?
                        .to_string(),
                );
                continue;
            }
            match msg["method"].as_str() {
                Some("backup.progress") => progress.push(Instant::now()),
                Some("backup.done") if backup.as_deref() == msg["params"]["backupId"].as_str() => {
                    if msg["params"]["status"] != "completed" {
                        bail!("the backup failed: {msg}");
                    }
                    let took = started.elapsed();
                    let _ = std::fs::remove_file(msg["params"]["path"].as_str().unwrap_or(""));
                    let per_second = progress
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            progress[i..]
                                .iter()
                                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                                .count()
                        })
                        .max()
                        .unwrap_or(0);
                    return Ok((took, progress.len(), per_second));
                }
                _ => {}
            }
        }
    }

    /// Runs an export job to its `export.done`: the time from `export.start`
    /// to done, the rows written and the file's size.
    pub fn export(
        &mut self,
        session: &str,
        sql: &str,
        format: &str,
        dest: &Path,
    ) -> Result<(Duration, u64, u64)> {
        let started = Instant::now();
        let id = self.send(
            "export.start",
            json!({"sessionId": session, "source": {"sql": sql}, "format": format,
                   "destination": dest, "options": {"overwrite": true}}),
        )?;
        let mut export = None;
        loop {
            let msg = self.next()?;
            if msg["id"] == id {
                export = Some(
                    msg["result"]["data"]["exportId"]
                        .as_str()
                        .with_context(|| format!("export.start failed: {msg}"))?
                        .to_string(),
                );
                continue;
            }
            if msg["method"] == "export.done"
                && export.as_deref() == msg["params"]["exportId"].as_str()
            {
                if msg["params"]["status"] != "completed" {
                    bail!("the export failed: {msg}");
                }
                let p = &msg["params"];
                return Ok((
                    started.elapsed(),
                    p["rowsWritten"].as_u64().unwrap_or(0),
                    p["sizeBytes"].as_u64().unwrap_or(0),
                ));
            }
        }
    }

    /// EOF on stdin shuts the bridge down.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

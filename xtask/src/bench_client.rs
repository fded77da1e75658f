//! The benches' client side: the release bridge over stdio with a client
//! that parses every message ([`BenchClient`]), the [`Rpc`] calls it shares
//! with `bench load`'s WebSocket clients, and what a run measured of the
//! bridge process ([`BridgeRun`], [`cpu_of`], [`peak_rss_of`]).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

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

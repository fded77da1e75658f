//! `cargo xtask bench sqlite [--rows N]`: streams an N-row (default 1M),
//! 10-column SQLite table through the release `dbbridge` binary over stdio
//! into a client that parses every line, and in the same run times the
//! `sqlite3` CLI printing the same table to /dev/null. Prints the ratio, the
//! bridge's peak RSS and its first-batch latency.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    match args {
        ["sqlite", rest @ ..] => {
            let rows = match rest {
                [] => 1_000_000,
                ["--rows", n] => n.parse().context("--rows takes a number")?,
                _ => bail!("usage: cargo xtask bench sqlite [--rows N]"),
            };
            sqlite(root, rows)
        }
        _ => bail!("usage: cargo xtask bench sqlite [--rows N]"),
    }
}

const RUNS: usize = 3;

fn sqlite(root: &Path, rows: u64) -> Result<()> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "dbbridge"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let bin = root.join("target/release/dbbridge");
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    let _ = std::fs::remove_file(&db);
    eprintln!("creating {rows} rows x 10 columns in {}", db.display());
    let create = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER, price REAL, name TEXT, note TEXT, big INTEGER, ratio REAL, tag BLOB, day DATE, flag BOOLEAN);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO t SELECT i, i % 1000, i * 0.25, 'name-' || i, 'a somewhat longer note for row ' || i,
             i * 1000003, 1.0 / i, randomblob(8), date('2020-01-01', '+' || (i % 3000) || ' days'), i % 2 FROM n;"
    );
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(&create)
        .output()
        .context("running sqlite3 (apt-get install sqlite3)")?;
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
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

    let mut bridge = Vec::new();
    for _ in 0..RUNS {
        bridge.push(bridge_run(&bin, &dir, &db, sql, rows)?);
    }
    let cli_best = cli.iter().min().copied().unwrap_or_default();
    let best = bridge.iter().min_by_key(|r| r.wall).context("no runs")?;
    let peak_rss = bridge.iter().map(|r| r.peak_rss).max().unwrap_or(0);
    let first_batch = bridge
        .iter()
        .map(|r| r.first_batch)
        .min()
        .unwrap_or_default();
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct BridgeRun {
    wall: Duration,
    first_batch: Duration,
    peak_rss: u64,
    batches: u64,
}

fn bridge_run(bin: &Path, dir: &Path, db: &Path, sql: &str, rows: u64) -> Result<BridgeRun> {
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = BufReader::with_capacity(1 << 16, child.stdout.take().context("stdout")?);
    let mut line = String::new();
    let send = |stdin: &mut std::process::ChildStdin, msg: Value| -> Result<()> {
        writeln!(stdin, "{msg}")?;
        Ok(stdin.flush()?)
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "session.open", "params": {"connection": {"kind": "sqlite", "path": db, "readOnly": true}}}),
    )?;
    stdout.read_line(&mut line)?;
    let opened: Value = serde_json::from_str(&line)?;
    let session = opened["result"]["data"]["sessionId"]
        .as_str()
        .context("session.open failed")?
        .to_string();

    let started = Instant::now();
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "query.run", "params": {"sessionId": session, "sql": sql}}),
    )?;
    let mut first_batch = None;
    let mut seen = 0u64;
    let mut batches = 0u64;
    loop {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            bail!("the bridge closed stdout");
        }
        // The client parses every message, as a front end would.
        let msg: Value = serde_json::from_str(&line)?;
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
    // VmHWM is the process's peak resident set size.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    // EOF on stdin shuts the bridge down.
    drop(stdin);
    let _ = child.wait();
    Ok(BridgeRun {
        wall,
        first_batch: first_batch.unwrap_or_default(),
        peak_rss,
        batches,
    })
}

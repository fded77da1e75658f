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

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench_client::{BenchClient, BridgeRun, Rpc};

const USAGE: &str = "usage: cargo xtask bench sqlite [--rows N] | postgres [--rows N] [--url URL] | mysql [--rows N] [--url URL] | backup | export | lanes [--rows N] | load [--rows N] [--window N] [--servers-cgroup] [--sqlite-cache-kib N] [--client-rcvbuf-kib N] [--ws-one-thread]";

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let (engine, mut rest) = args.split_first().context(USAGE)?;
    // Rows per table: 1M by default; per session for `load`, 20,000.
    let mut rows = None;
    let mut servers_cgroup = false;
    let mut window = None;
    let mut sqlite_cache_kib = None;
    let mut client_rcvbuf_kib = None;
    let mut ws_one_thread = false;
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
            ["--sqlite-cache-kib", value, tail @ ..] if *engine == "load" => {
                sqlite_cache_kib =
                    Some(value.parse().context("--sqlite-cache-kib takes a number")?);
                tail
            }
            ["--client-rcvbuf-kib", value, tail @ ..] if *engine == "load" => {
                client_rcvbuf_kib = Some(
                    value
                        .parse()
                        .context("--client-rcvbuf-kib takes a number")?,
                );
                tail
            }
            ["--ws-one-thread", tail @ ..] if *engine == "load" => {
                ws_one_thread = true;
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
        "load" => crate::bench_load::load(
            root,
            crate::bench_load::LoadOptions {
                rows: rows.unwrap_or(20_000),
                window,
                servers_cgroup,
                sqlite_cache_kib,
                client_rcvbuf_kib,
                ws_one_thread,
            },
        ),
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

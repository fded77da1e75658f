//! `cargo xtask bench mysql`: see `bench.rs` for what is measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{Streams, best_of, build_release, ms, parsed_streams, unparsed_and_cancels};
use crate::bench_client::cpu_of;

const RUNS: usize = 3;
const CANCEL_TRIES: usize = 20;
const DB: &str = "dbbridge_bench";

/// host, port, user, password of a `mysql://` URL.
fn parse(url: &str) -> Result<(String, u16, String, Option<String>)> {
    let rest = url.split_once("://").context("--url is not a URL")?.1;
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .context("--url needs user@host")?;
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (userinfo.to_string(), None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().context("port")?),
        None => (hostport.to_string(), 3306),
    };
    Ok((host, port, user, password))
}

/// The `mariadb` client for the server of a URL's parts.
fn client_for(host: &str, port: u16, user: &str, password: Option<&str>, db: &str) -> Command {
    let mut c = Command::new("mariadb");
    c.args([
        "--no-defaults",
        "--protocol=TCP",
        "-h",
        host,
        "-P",
        &port.to_string(),
        "-u",
        user,
    ]);
    if !db.is_empty() {
        c.args(["-D", db]);
    }
    if let Some(p) = password {
        c.env("MYSQL_PWD", p);
    }
    c
}

/// Makes the benchmark database `dbbridge_bench` afresh on the server of
/// `url`, with its `rows`-row table `bench`.
pub fn create_bench_table(url: &str, rows: u64) -> Result<()> {
    let (host, port, user, password) = parse(url)?;
    eprintln!("creating {rows} rows x 10 columns in database {DB}");
    let out = client_for(&host, port, &user, password.as_deref(), "")
        .arg("-e")
        .arg(format!(
            "DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}; USE {DB}; \
             CREATE TABLE bench ENGINE=InnoDB AS SELECT CAST(seq AS SIGNED) AS i4, seq * 1000003 AS i8, \
             CAST(seq * 1.25 AS DECIMAL(14,2)) AS num, CONCAT('name-', seq) AS txt, \
             TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq SECOND AS ts, seq % 2 = 0 AS flag, \
             JSON_OBJECT('id', seq, 'tag', CONCAT('x', seq % 10)) AS doc, UNHEX(MD5(seq)) AS bin, \
             UUID() AS id, seq / 7.0e0 AS f8 FROM seq_1_to_{rows}"
        ))
        .output()?;
    if !out.status.success() {
        bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub fn mysql(root: &Path, rows: u64, url: &str) -> Result<()> {
    let bin = build_release(root)?;
    let (host, port, user, password) = parse(url)?;
    let client = |db: &str| client_for(&host, port, &user, password.as_deref(), db);
    create_bench_table(url, rows)?;
    let sql = "SELECT * FROM bench";
    let mut cli = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let status = client(DB)
            .args(["--quick", "-e", sql])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("mariadb --quick failed");
        }
        cli.push(t.elapsed());
    }

    let mut connection =
        json!({"kind": "mysql", "host": host, "port": port, "user": user, "database": DB});
    if let Some(p) = &password {
        connection["password"] = json!(p);
    }
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-my-{}", std::process::id()));
    // The server's own CPU over the parsed runs, where its pid file can be read.
    let server_pid = client("")
        .args(["-N", "-e", "SELECT @@pid_file"])
        .output()
        .ok()
        .and_then(|out| std::fs::read_to_string(String::from_utf8_lossy(&out.stdout).trim()).ok())
        .map(|pid| pid.trim().to_string());
    let server_before = server_pid.as_deref().map(cpu_of);
    let Streams {
        best,
        peak_rss,
        first_batch,
    } = parsed_streams(&bin, &dir, &connection, sql, rows, RUNS)?;
    let server_cpu = server_pid
        .as_deref()
        .zip(server_before)
        .map(|(pid, before)| cpu_of(pid).saturating_sub(before) / RUNS as u32);
    let (unparsed_best, cancels) =
        unparsed_and_cancels(&bin, &dir, &connection, sql, rows, RUNS, CANCEL_TRIES)?;
    let _ = std::fs::remove_dir_all(&dir);
    let cli_best = best_of(&cli);
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("mysql bench: {rows} rows x 10 columns, best of {RUNS}");
    println!(
        "  mariadb --quick > /dev/null             {:>8.0} ms  ({:.0} rows/s)",
        ms(cli_best),
        rate(cli_best)
    );
    println!(
        "  dbbridge stdio, parsed JSON             {:>8.0} ms  ({:.0} rows/s), {} batches",
        ms(best.wall),
        rate(best.wall),
        best.batches
    );
    println!(
        "  dbbridge stdio, reader that does not parse {:>5.0} ms  ({:.0} rows/s): {:.2}x the CLI",
        ms(unparsed_best),
        rate(unparsed_best),
        cli_best.as_secs_f64() / unparsed_best.as_secs_f64()
    );
    println!(
        "  CPU in the parsed run: bridge {:.0} ms, client parsing {:.0} ms, server {}",
        ms(best.bridge_cpu),
        ms(best.client_cpu),
        server_cpu.map_or("unknown (no readable pid file)".to_string(), |d| format!(
            "{:.0} ms (mean of the {RUNS} runs)",
            ms(d)
        ))
    );
    println!(
        "  rows/s bridge / mariadb CLI             {:>8.2}x   (target >= 1.0x)",
        cli_best.as_secs_f64() / best.wall.as_secs_f64()
    );
    println!(
        "  bridge peak RSS                         {:>8.1} MiB (target < 32 MiB)",
        peak_rss as f64 / 1048576.0
    );
    println!(
        "  first batch after query.run             {:>8.1} ms",
        ms(first_batch)
    );
    println!(
        "  cancel to query.done, {CANCEL_TRIES} tries          p50 {:.1} ms, max {:.1} ms (target p50 < 100 ms)",
        ms(cancels[cancels.len() / 2]),
        ms(cancels[cancels.len() - 1])
    );
    Ok(())
}

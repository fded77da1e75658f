//! `cargo xtask bench export`: the 1M-row benchmark tables (made afresh as
//! `cargo xtask bench postgres` and `cargo xtask bench mysql` make them) exported to
//! CSV through the bridge's export job, against `psql -c "\copy (SELECT ...)
//! TO 'file' CSV"` and `mariadb --quick -B > file` in the same run, best of
//! three, alternating; then JSON Lines, SQL and XLSX once each. Every export
//! runs in a fresh bridge, so its peak RSS (VmHWM) is the format's own.
//! Targets: CSV throughput ≥ 1.0x the tool's, peak RSS < 32 MiB for CSV,
//! JSON Lines and SQL, < 64 MiB for XLSX.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{best_of, build_release, ms};
use crate::bench_client::{BenchClient, Rpc};

const RUNS: usize = 3;
const DB: &str = "dbbridge_bench";
const SQL: &str = "SELECT * FROM bench";
const ROWS: u64 = 1_000_000;

/// One export in a fresh bridge: time, rows, size, peak RSS.
fn bridged(
    bin: &Path,
    dir: &Path,
    connection: &Value,
    format: &str,
) -> Result<(Duration, u64, u64, u64)> {
    let data = dir.join("bridge-data");
    let dest = dir.join(format!("bridge.{format}"));
    let mut client = BenchClient::start(bin, &data)?;
    let session = client.open(connection)?;
    let (took, rows, size) = client.export(&session, SQL, format, &dest)?;
    let peak = client.peak_rss();
    client.finish();
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&dest);
    Ok((took, rows, size, peak))
}

pub fn export(root: &Path) -> Result<()> {
    let bin = build_release(root)?;
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let direct_file = dir.join("direct.csv");
    let pg_url = std::env::var("DBBRIDGE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let my_url = std::env::var("DBBRIDGE_BENCH_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string());
    crate::bench_pg::create_bench_table(&pg_url, ROWS)?;
    crate::bench_my::create_bench_table(&my_url, ROWS)?;
    let pg_db_url = match pg_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{DB}"),
        None => pg_url.clone(),
    };
    let psql = {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg_db_url, "-c"])
            .arg(format!("\\copy ({SQL}) TO '{}' CSV", direct_file.display()));
        c
    };
    let mariadb = {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -u root --quick -B -e '{SQL}' {DB} > '{}'",
            direct_file.display()
        ));
        c
    };
    let engines = [
        (
            "postgres",
            "psql \\copy (SELECT ...) TO file CSV",
            psql,
            json!({"kind": "postgres", "url": pg_url, "database": DB, "sslMode": "disable"}),
        ),
        (
            "mysql",
            "mariadb --quick -B > file",
            mariadb,
            json!({"kind": "mysql", "host": "127.0.0.1", "port": 3306, "user": "root", "database": DB, "sslMode": "disable"}),
        ),
    ];
    for (engine, tool, mut command, connection) in engines {
        let mut direct = Vec::new();
        let mut through = Vec::new();
        let (mut rows, mut size, mut direct_size, mut csv_peak) = (0, 0, 0, 0);
        for _ in 0..RUNS {
            let started = Instant::now();
            let status = command
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status()
                .with_context(|| format!("running {tool}"))?;
            if !status.success() {
                bail!("{tool} failed");
            }
            direct.push(started.elapsed());
            direct_size = std::fs::metadata(&direct_file).map_or(0, |m| m.len());
            let _ = std::fs::remove_file(&direct_file);
            let (took, n, bytes, peak) = bridged(&bin, &dir, &connection, "csv")?;
            through.push(took);
            (rows, size) = (n, bytes);
            csv_peak = csv_peak.max(peak);
            eprintln!(
                "  {engine}: {:.0} ms {tool}, {:.0} ms bridge CSV export",
                ms(*direct.last().unwrap_or(&Duration::ZERO)),
                ms(took)
            );
        }
        let (d, b) = (best_of(&direct), best_of(&through));
        println!("export bench: {engine} {DB}.bench, {rows} rows x 10 columns, best of {RUNS}");
        println!(
            "  {tool:<38} {:>8.0} ms  ({:.1} MiB)",
            ms(d),
            direct_size as f64 / 1048576.0
        );
        println!(
            "  bridge export.start csv                {:>8.0} ms  ({:.1} MiB)",
            ms(b),
            size as f64 / 1048576.0
        );
        println!(
            "  throughput bridge / tool               {:>8.2}x   (target >= 1.0x)",
            d.as_secs_f64() / b.as_secs_f64()
        );
        println!(
            "  peak RSS csv                           {:>8.1} MiB (target < 32 MiB)",
            csv_peak as f64 / 1048576.0
        );
        for (format, target) in [("jsonl", 32), ("sql", 32), ("json", 32), ("xlsx", 64)] {
            let (took, _, bytes, peak) = bridged(&bin, &dir, &connection, format)?;
            println!(
                "  {format:<5} {:>8.0} ms, {:>7.1} MiB file, peak RSS {:>5.1} MiB (target < {target} MiB)",
                ms(took),
                bytes as f64 / 1048576.0,
                peak as f64 / 1048576.0
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

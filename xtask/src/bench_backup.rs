//! `cargo xtask bench backup`: the 1M-row benchmark databases (made by
//! `cargo xtask bench postgres` and `cargo xtask bench mysql`) backed up
//! through the bridge, against `pg_dump` and `mariadb-dump` run directly with
//! the same options, in the same run, best of three, alternating. Prints
//! the overhead (target ≤ 3% of wall time), the bridge's peak RSS (< 32 MiB)
//! and the most progress events in one second (≤ 10).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{best_of, build_release, ms};
use crate::bench_client::BenchClient;

const RUNS: usize = 3;
const DB: &str = "dbbridge_bench";

pub fn backup(root: &Path) -> Result<()> {
    let bin = build_release(root)?;
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("direct.sql");
    let pg_url = std::env::var("DBBRIDGE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let engines: [(&str, Vec<String>, serde_json::Value); 2] = [
        (
            "pg_dump",
            vec![
                "pg_dump".into(),
                "--verbose".into(),
                "--no-password".into(),
                "--format=plain".into(),
                "--file".into(),
                out.display().to_string(),
                "--dbname".into(),
                format!("host=127.0.0.1 port=5432 user=postgres dbname={DB} sslmode=disable"),
            ],
            json!({"kind": "postgres", "url": pg_url, "database": DB, "sslMode": "disable"}),
        ),
        (
            "mariadb-dump",
            vec![
                "mariadb-dump".into(),
                "--no-defaults".into(),
                "--protocol=TCP".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-u".into(),
                "root".into(),
                "--single-transaction".into(),
                "--routines".into(),
                "--triggers".into(),
                "--events".into(),
                "--verbose".into(),
                format!("--result-file={}", out.display()),
                DB.into(),
            ],
            json!({"kind": "mysql", "host": "127.0.0.1", "port": 3306, "user": "root", "database": DB, "sslMode": "disable"}),
        ),
    ];
    for (name, args, connection) in engines {
        let mut direct = Vec::new();
        let mut bridged = Vec::new();
        let (mut events, mut per_second, mut peak) = (0, 0, 0);
        for _ in 0..RUNS {
            let started = Instant::now();
            let status = Command::new(&args[0])
                .args(&args[1..])
                .stderr(std::process::Stdio::null())
                .status()
                .with_context(|| format!("running {name}"))?;
            if !status.success() {
                bail!(
                    "{name} failed (run `cargo xtask bench postgres` / `mysql` first to make {DB})"
                );
            }
            direct.push(started.elapsed());
            let size = std::fs::metadata(&out).map_or(0, |m| m.len());
            let _ = std::fs::remove_file(&out);
            let data = dir.join("bridge-data");
            let mut client = BenchClient::start(&bin, &data)?;
            let (took, n, most) = client.backup(&connection)?;
            peak = peak.max(client.peak_rss());
            client.finish();
            let _ = std::fs::remove_dir_all(&data);
            bridged.push(took);
            events = n;
            per_second = per_second.max(most);
            eprintln!(
                "  {name}: {:.0} ms direct, {:.0} ms through the bridge ({} MiB dump)",
                ms(*direct.last().unwrap_or(&Duration::ZERO)),
                ms(took),
                size / 1048576
            );
        }
        let (d, b) = (best_of(&direct), best_of(&bridged));
        println!("backup bench: {name} of {DB}, best of {RUNS}");
        println!("  {name} directly                 {:>8.0} ms", ms(d));
        println!("  through the bridge (backup job)  {:>8.0} ms", ms(b));
        println!(
            "  overhead                         {:>+7.1}%   (target <= 3%)",
            100.0 * (ms(b) - ms(d)) / ms(d)
        );
        println!(
            "  bridge peak RSS                  {:>8.1} MiB (target < 32 MiB)",
            peak as f64 / 1048576.0
        );
        println!(
            "  progress events                  {events} in the last run, at most {per_second} in one second (target <= 10)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

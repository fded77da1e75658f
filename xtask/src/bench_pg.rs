//! `cargo xtask bench postgres`: see `bench.rs` for what is measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{Streams, best_of, build_release, ms, parsed_streams, unparsed_and_cancels};

const RUNS: usize = 3;
const CANCEL_TRIES: usize = 20;
const DB: &str = "dbbridge_bench";

/// A server to run psql against: the URL without its password, which goes by
/// environment (never on a command line).
struct Server {
    url_without_password: String,
    password: Option<String>,
}

impl Server {
    fn parse(url: &str) -> Result<Server> {
        let (scheme, rest) = url.split_once("://").context("--url is not a URL")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host) = authority
            .rsplit_once('@')
            .context("--url needs user@host")?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p.to_string())),
            None => (userinfo, None),
        };
        let _ = path;
        Ok(Server {
            url_without_password: format!("{scheme}://{user}@{host}"),
            password,
        })
    }

    fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.url_without_password)
    }

    fn psql(&self, db: &str) -> Command {
        let mut c = Command::new("psql");
        c.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db)]);
        if let Some(p) = &self.password {
            c.env("PGPASSWORD", p);
        }
        c
    }

    fn run(&self, db: &str, sql: &str) -> Result<()> {
        let out = self.psql(db).args(["-q", "-c", sql]).output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn time(&self, args: &[&str]) -> Result<Duration> {
        let t = Instant::now();
        let status = self.psql(DB).args(args).stdout(Stdio::null()).status()?;
        if !status.success() {
            bail!("psql {args:?} failed");
        }
        Ok(t.elapsed())
    }
}

/// Makes the benchmark database `dbbridge_bench` afresh on the server of
/// `url`, with its `rows`-row table `bench`.
pub fn create_bench_table(url: &str, rows: u64) -> Result<()> {
    let server = Server::parse(url)?;
    let admin_db = url
        .split_once("://")
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(_, db)| db.split('?').next().unwrap_or("postgres").to_string())
        .unwrap_or_else(|| "postgres".into());
    eprintln!("creating {rows} rows x 10 columns in database {DB}");
    server.run(&admin_db, &format!("DROP DATABASE IF EXISTS {DB}"))?;
    server.run(&admin_db, &format!("CREATE DATABASE {DB}"))?;
    server.run(
        DB,
        &format!(
            "CREATE TABLE bench AS SELECT g::int4 AS i4, g::int8 * 1000003 AS i8, \
             (g * 1.25)::numeric(14,2) AS num, 'name-' || g AS txt, \
             timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' AS ts, g % 2 = 0 AS flag, \
             jsonb_build_object('id', g, 'tag', 'x' || g % 10) AS doc, decode(md5(g::text), 'hex') AS bin, \
             md5(g::text)::uuid AS id, g / 7.0::float8 AS f8 \
             FROM generate_series(1, {rows}) g"
        ),
    )?;
    server.run(DB, "VACUUM ANALYZE bench")
}

pub fn postgres(root: &Path, rows: u64, url: &str) -> Result<()> {
    let bin = build_release(root)?;
    let server = Server::parse(url)?;
    create_bench_table(url, rows)?;
    let sql = "SELECT * FROM bench";

    let mut psql = Vec::new();
    let mut copy = Vec::new();
    for _ in 0..RUNS {
        psql.push(server.time(&["-At", "-c", "\\set FETCH_COUNT 1000", "-c", sql])?);
        copy.push(server.time(&["-c", &format!("COPY ({sql}) TO STDOUT")])?);
    }

    let connection = json!({"kind": "postgres", "url": url, "database": DB, "sslMode": "disable"});
    let dir = std::env::temp_dir().join(format!("dbbridge-bench-pg-{}", std::process::id()));
    let Streams {
        best,
        peak_rss,
        first_batch,
    } = parsed_streams(&bin, &dir, &connection, sql, rows, RUNS)?;
    let (unparsed_best, cancels) =
        unparsed_and_cancels(&bin, &dir, &connection, sql, rows, RUNS, CANCEL_TRIES)?;
    let _ = std::fs::remove_dir_all(&dir);
    let (psql_best, copy_best) = (best_of(&psql), best_of(&copy));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();

    println!("postgres bench: {rows} rows x 10 columns, best of {RUNS}");
    println!(
        "  psql -At, FETCH_COUNT 1000 > /dev/null  {:>8.0} ms  ({:.0} rows/s)",
        ms(psql_best),
        rate(psql_best)
    );
    println!(
        "  psql COPY TO STDOUT > /dev/null         {:>8.0} ms  ({:.0} rows/s)",
        ms(copy_best),
        rate(copy_best)
    );
    println!(
        "  dbbridge stdio, parsed JSON             {:>8.0} ms  ({:.0} rows/s), {} batches",
        ms(best.wall),
        rate(best.wall),
        best.batches
    );
    println!(
        "  dbbridge stdio, reader that does not parse {:>5.0} ms  ({:.0} rows/s): {:.2}x psql, {:.2}x COPY",
        ms(unparsed_best),
        rate(unparsed_best),
        psql_best.as_secs_f64() / unparsed_best.as_secs_f64(),
        copy_best.as_secs_f64() / unparsed_best.as_secs_f64()
    );
    println!(
        "  CPU in the parsed run: bridge {:.0} ms, client parsing {:.0} ms ({} cores here)",
        ms(best.bridge_cpu),
        ms(best.client_cpu),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  rows/s bridge / psql                    {:>8.2}x   (target >= 1.25x)",
        psql_best.as_secs_f64() / best.wall.as_secs_f64()
    );
    println!(
        "  rows/s bridge / COPY                    {:>8.2}x   (target >= 0.8x)",
        copy_best.as_secs_f64() / best.wall.as_secs_f64()
    );
    println!(
        "  bridge peak RSS                         {:>8.1} MiB (target < 32 MiB)",
        peak_rss as f64 / 1048576.0
    );
    println!(
        "  first batch after query.run             {:>8.1} ms  (target < 20 ms)",
        ms(first_batch)
    );
    println!(
        "  cancel to query.done, {CANCEL_TRIES} tries          p50 {:.1} ms, max {:.1} ms (target p50 < 50 ms)",
        ms(cancels[cancels.len() / 2]),
        ms(cancels[cancels.len() - 1])
    );
    Ok(())
}

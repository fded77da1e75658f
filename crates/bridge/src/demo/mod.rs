//! `dbbridge demo`: a whole session against a built-in SQLite sample, driven
//! through the real router over the in-memory transport, printed as a front
//! end would see it. This is CLI output, not the protocol: it may print.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::state::{Bridge, BridgeConfig};
use crate::transport::memory;

mod client;
mod jobs;
use client::DemoClient;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Rebuild the sample database even if it exists.
    #[arg(long)]
    pub fresh: bool,
}

const CUSTOMERS: u32 = 20_000;
const ORDERS: u32 = 100_000;
const LINE_ITEMS: u32 = 300_000;

pub async fn run(args: DemoArgs, config: BridgeConfig) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let started = Instant::now();
    let db = data_dir.join("demo").join("store.db");
    std::fs::create_dir_all(db.parent().context("demo dir")?)?;
    if args.fresh && db.exists() {
        std::fs::remove_file(&db)?;
    }
    let fresh = !db.exists();

    let router = std::sync::Arc::new(crate::handlers::router(config.test_hooks));
    let bridge = Bridge::start(config).await?;
    let (connection, client) = memory::pair();
    let server = tokio::spawn(crate::server::serve_connection(
        bridge.clone(),
        router,
        connection,
    ));
    let mut c = DemoClient::new(client);

    println!("dbbridge demo: a session against a SQLite sample store, as a front end sees it\n");
    let health = c.call("health.ping", json!({})).await?;
    println!(
        "health.ping      version {}  pid {}  rss {:.1} MiB  sessions {}",
        health["version"].as_str().unwrap_or("?"),
        health["pid"],
        health["memoryRssBytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        health["sessions"]
    );

    let path = db.to_string_lossy().into_owned();
    let opened = c
        .call(
            "session.open",
            json!({"connection": {"kind": "sqlite", "path": path, "create": true}}),
        )
        .await?;
    let session = opened["sessionId"]
        .as_str()
        .context("session id")?
        .to_string();
    println!(
        "session.open     {session}  SQLite {}  {}",
        opened["serverVersion"].as_str().unwrap_or("?"),
        db.display()
    );

    if fresh {
        let t = Instant::now();
        let done = c.run_to_end(&session, &build_script(), |_| {}).await?;
        if done["status"] != "completed" {
            bail!("building the sample failed: {}", done["error"]);
        }
        println!(
            "sample built     {} customers, {} orders, {} line items in {:.1} s",
            CUSTOMERS,
            ORDERS,
            LINE_ITEMS,
            t.elapsed().as_secs_f64()
        );
    }

    println!("\nschema tree");
    for schema in c
        .call("metadata.listSchemas", json!({"sessionId": session}))
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = schema["name"].as_str().unwrap_or_default().to_string();
        println!(
            "  {name}{}",
            if schema["isSystem"] == true {
                " (system)"
            } else {
                ""
            }
        );
        let tables = c
            .call(
                "metadata.listTables",
                json!({"sessionId": session, "schema": name}),
            )
            .await?;
        for table in tables.as_array().cloned().unwrap_or_default() {
            let tname = table["name"].as_str().unwrap_or_default();
            let d = c
                .call(
                    "metadata.describeTable",
                    json!({"sessionId": session, "schema": name, "table": tname}),
                )
                .await?;
            println!(
                "  ├─ {} {tname}",
                table["type"].as_str().unwrap_or_default()
            );
            for col in d["columns"].as_array().cloned().unwrap_or_default() {
                let mut flags = Vec::new();
                if d["primaryKey"]["columns"]
                    .as_array()
                    .is_some_and(|pk| pk.contains(&col["name"]))
                {
                    flags.push("pk".to_string());
                }
                if col["autoIncrement"] == true {
                    flags.push("auto".into());
                }
                if col["nullable"] == false {
                    flags.push("not null".into());
                }
                println!(
                    "  │    {:<14} {:<14} {:<10} {}",
                    col["name"].as_str().unwrap_or_default(),
                    col["dbType"].as_str().unwrap_or_default(),
                    col["kind"].as_str().unwrap_or_default(),
                    flags.join(", ")
                );
            }
            for fk in d["foreignKeys"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  │    fk ({}) → {}({}) on delete {}",
                    join(&fk["columns"]),
                    fk["referencedTable"].as_str().unwrap_or_default(),
                    join(&fk["referencedColumns"]),
                    fk["onDelete"].as_str().unwrap_or_default()
                );
            }
            for ix in d["indexes"].as_array().cloned().unwrap_or_default() {
                let predicate = ix["predicate"]
                    .as_str()
                    .map(|p| format!(" where {p}"))
                    .unwrap_or_default();
                println!(
                    "  │    index {} ({}){}{predicate}",
                    ix["name"].as_str().unwrap_or_default(),
                    join(&ix["columns"]),
                    if ix["unique"] == true { " unique" } else { "" }
                );
            }
        }
    }

    println!("\nquery.run        every line item with its order and customer, streamed in batches");
    let sql = "SELECT li.id, li.order_id, o.ordered_at, c.name AS customer, li.product, li.quantity, li.unit_price, \
               li.quantity * li.unit_price AS total FROM line_items li JOIN orders o ON o.id = li.order_id \
               JOIN customers c ON c.id = o.customer_id ORDER BY li.id";
    let t = Instant::now();
    let mut first: Option<Value> = None;
    let mut rows = 0u64;
    let mut last_draw = Instant::now();
    let done = c
        .run_to_end(&session, sql, |ev| {
            let batch = ev["rows"].as_array().map(Vec::len).unwrap_or(0) as u64;
            rows += batch;
            if first.is_none() {
                first = ev["rows"].get(0).cloned();
            }
            if last_draw.elapsed() > Duration::from_millis(80) || rows == u64::from(LINE_ITEMS) {
                last_draw = Instant::now();
                draw_progress(rows, u64::from(LINE_ITEMS), t.elapsed());
            }
        })
        .await?;
    draw_progress(rows, u64::from(LINE_ITEMS), t.elapsed());
    println!();
    println!(
        "query.done       {}  {} rows in {} ms ({:.0} rows/s)",
        done["status"].as_str().unwrap_or_default(),
        done["results"][0]["rowCount"],
        done["durationMs"],
        rows as f64 / t.elapsed().as_secs_f64().max(1e-9)
    );
    if let Some(first) = first {
        println!("first row        {first}");
    }

    jobs::paging(&mut c, &session, sql).await?;

    println!("\nquery.run        an endless recursive query, cancelled after 400 ms");
    let q = c.start(&session, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n").await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = Instant::now();
    let cancelled = c
        .call("query.cancel", json!({"sessionId": session}))
        .await?;
    let done = c.wait_done(&q, |_| {}).await?;
    println!(
        "query.cancel     {}  → query.done {} ({}) {} ms after the cancel",
        cancelled,
        done["status"].as_str().unwrap_or_default(),
        done["error"]["code"].as_str().unwrap_or_default(),
        asked.elapsed().as_millis()
    );

    println!("\nquery.run        a query with a mistake in it");
    let done = c
        .run_to_end(&session, "SELECT name, emali FROM customers", |_| {})
        .await?;
    println!(
        "query.done       {}  {}: {}  details {}",
        done["status"].as_str().unwrap_or_default(),
        done["error"]["code"].as_str().unwrap_or_default(),
        done["error"]["message"].as_str().unwrap_or_default(),
        done["error"]["details"]
    );

    jobs::export_csv(&mut c, &session, sql, &db, u64::from(LINE_ITEMS)).await?;
    c.call("session.close", json!({"sessionId": session}))
        .await?;
    jobs::backup_and_restore(&mut c, &db).await?;
    let health = c.call("health.ping", json!({})).await?;
    println!(
        "\nhealth.ping      rss {:.1} MiB  cpu {}%  sessions {}",
        health["memoryRssBytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        health["cpuPercent"],
        health["sessions"]
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    drop(c);
    let _ = server.await;
    bridge.stop().await;
    Ok(())
}

fn draw_percent(phase: &str, percent: Option<f64>) {
    let width = 32;
    let percent = percent.unwrap_or(0.0);
    let filled = ((percent / 100.0) * width as f64).round() as usize;
    print!(
        "\r  [{}{}] {:>5.1}%  {:<10}",
        "#".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width)),
        percent,
        phase
    );
    let _ = std::io::stdout().flush();
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn draw_progress(rows: u64, total: u64, elapsed: Duration) {
    let width = 32;
    let filled = ((rows as f64 / total.max(1) as f64) * width as f64).round() as usize;
    print!(
        "\r  [{}{}] {:>7} rows  {:>9.0} rows/s",
        "#".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width)),
        rows,
        rows as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let _ = std::io::stdout().flush();
}

/// The sample store: customers, orders, line items, with foreign keys,
/// indexes (one partial, one on an expression) and a view.
fn build_script() -> String {
    format!(
        "BEGIN;
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE,
            country TEXT NOT NULL,
            created_at DATETIME NOT NULL
        );
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
            ordered_at DATETIME NOT NULL,
            status TEXT NOT NULL DEFAULT 'paid'
        );
        CREATE TABLE line_items (
            id INTEGER PRIMARY KEY,
            order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
            product TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            unit_price NUMERIC(10,2) NOT NULL
        );
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CUSTOMERS})
        INSERT INTO customers SELECT i, 'Customer ' || i, 'customer' || i || '@example.com',
            substr('DEFRUSGBITESNLSEJP', 1 + (i % 9) * 2, 2), datetime('2020-01-01', '+' || (i % 1500) || ' days')
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ORDERS})
        INSERT INTO orders SELECT i, 1 + (i * 7919) % {CUSTOMERS}, datetime('2021-01-01', '+' || (i % 1000) || ' days', '+' || (i % 86400) || ' seconds'),
            CASE WHEN i % 20 = 0 THEN 'refunded' ELSE 'paid' END
        FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LINE_ITEMS})
        INSERT INTO line_items SELECT i, 1 + (i - 1) / 3, 'product-' || (i * 31 % 500), 1 + i % 5, round(1 + (i * 37 % 10000) / 100.0, 2)
        FROM n;
        CREATE INDEX orders_customer ON orders (customer_id);
        CREATE INDEX orders_refunded ON orders (ordered_at) WHERE status = 'refunded';
        CREATE INDEX customers_email_domain ON customers (lower(substr(email, instr(email, '@') + 1)));
        CREATE INDEX line_items_order ON line_items (order_id);
        CREATE VIEW order_totals AS
            SELECT o.id AS order_id, c.name AS customer, sum(li.quantity * li.unit_price) AS total
            FROM orders o JOIN customers c ON c.id = o.customer_id JOIN line_items li ON li.order_id = o.id
            GROUP BY o.id;
        COMMIT;"
    )
}

//! The demo's longer steps: paging through the big join with a window, an
//! export of it to CSV, a backup of the store and its restore into a copy,
//! each job with its progress drawn.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client::DemoClient;
use super::{draw_percent, draw_progress};

/// Pages through `sql` as a grid would: a window of 100 rows, one
/// `query.fetch` of 100 more, then a cancel.
pub async fn paging(c: &mut DemoClient, session: &str, sql: &str) -> Result<()> {
    println!("\nquery.run        the same join with window 100, as a grid shows its first page");
    let started = c
        .call(
            "query.run",
            json!({"sessionId": session, "sql": sql, "window": 100}),
        )
        .await?;
    let query = started["queryId"].as_str().context("query id")?.to_string();
    let mut rows = 0usize;
    let mut count = |batch: &Value| rows += batch["rows"].as_array().map_or(0, Vec::len);
    let paused = c
        .until(&query, &mut count, &["query.paused", "query.done"])
        .await?;
    println!(
        "{:<16} after {} rows (the read waits, holding nothing)",
        paused["method"].as_str().unwrap_or(""),
        paused["params"]["rowsSent"]
    );
    let granted = c
        .call(
            "query.fetch",
            json!({"sessionId": session, "queryId": query, "rows": 100}),
        )
        .await?;
    let paused = c
        .until(&query, &mut count, &["query.paused", "query.done"])
        .await?;
    println!(
        "query.fetch      100 more (granted {}) → {} after {} rows",
        granted["granted"],
        paused["method"].as_str().unwrap_or(""),
        paused["params"]["rowsSent"]
    );
    c.call("query.cancel", json!({"sessionId": session}))
        .await?;
    let done = c.wait_done(&query, &mut count).await?;
    println!(
        "query.cancel     → query.done {}; {rows} rows shown in all",
        done["status"].as_str().unwrap_or("")
    );
    Ok(())
}

/// Exports `sql` to CSV beside the store as a job on its own connection,
/// drawing its progress, prints the file's size, then removes the file.
pub async fn export_csv(
    c: &mut DemoClient,
    session: &str,
    sql: &str,
    db: &std::path::Path,
    total: u64,
) -> Result<()> {
    let dest = db.with_file_name("line_items.csv");
    println!("\nexport.start     the same join to CSV, as a job on its own read-only connection");
    let started = c
        .call(
            "export.start",
            json!({"sessionId": session, "source": {"sql": sql}, "format": "csv",
                   "destination": dest, "options": {"overwrite": true}}),
        )
        .await?;
    let export = started["exportId"]
        .as_str()
        .context("export id")?
        .to_string();
    let t = Instant::now();
    let done = c
        .job("exportId", &export, "export.progress", "export.done", |p| {
            draw_progress(p["rowsWritten"].as_u64().unwrap_or(0), total, t.elapsed())
        })
        .await?;
    if done["status"] != "completed" {
        println!();
        bail!("the export failed: {}", done["error"]);
    }
    draw_progress(
        done["rowsWritten"].as_u64().unwrap_or(0),
        total,
        t.elapsed(),
    );
    println!();
    println!(
        "export.done      completed  {} rows  {:.1} MiB  in {} ms  {}",
        done["rowsWritten"],
        done["sizeBytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        done["durationMs"],
        done["path"].as_str().unwrap_or("")
    );
    let _ = std::fs::remove_file(&dest);
    Ok(())
}

/// Backs the store up as a job, restores the backup into a copy, checks
/// the copy, then deletes both: what a user sees of the job system.
pub async fn backup_and_restore(c: &mut DemoClient, db: &std::path::Path) -> Result<()> {
    println!("\nbackup.start     the store, through SQLite's online backup API");
    let started = c
        .call(
            "backup.start",
            json!({"connection": {"kind": "sqlite", "path": db}}),
        )
        .await?;
    let backup = started["backupId"]
        .as_str()
        .context("backup id")?
        .to_string();
    let done = c
        .job("backupId", &backup, "backup.progress", "backup.done", |p| {
            draw_percent(p["phase"].as_str().unwrap_or(""), p["percent"].as_f64())
        })
        .await?;
    println!();
    if done["status"] != "completed" {
        bail!("the backup failed: {}", done["error"]);
    }
    println!(
        "backup.done      completed  {:.1} MiB  sha256 {}…  {}",
        done["sizeBytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        &done["sha256"].as_str().unwrap_or("")[..12],
        done["path"].as_str().unwrap_or("")
    );
    let copy = db.with_file_name("store-restored.db");
    println!("backup.restore   into {}", copy.display());
    let restore = c
        .call(
            "backup.restore",
            json!({"backupId": backup, "target": {"kind": "sqlite", "path": copy, "create": true}}),
        )
        .await?;
    let restore = restore["restoreId"]
        .as_str()
        .context("restore id")?
        .to_string();
    let done = c
        .job(
            "restoreId",
            &restore,
            "backup.restore.progress",
            "backup.restore.done",
            |p| draw_percent(p["phase"].as_str().unwrap_or(""), p["percent"].as_f64()),
        )
        .await?;
    println!();
    if done["status"] != "completed" {
        bail!("the restore failed: {}", done["error"]);
    }
    let opened = c
        .call(
            "session.open",
            json!({"connection": {"kind": "sqlite", "path": copy}}),
        )
        .await?;
    let session = opened["sessionId"]
        .as_str()
        .context("session id")?
        .to_string();
    let mut items = Value::Null;
    let counted = c
        .run_to_end(&session, "SELECT count(*) FROM line_items", |batch| {
            items = batch["rows"][0][0].clone();
        })
        .await?;
    if counted["status"] != "completed" {
        bail!("reading the restored copy failed: {}", counted["error"]);
    }
    c.call("session.close", json!({"sessionId": session}))
        .await?;
    // count(*) is a bigint: a string of digits on the wire.
    let items = items
        .as_str()
        .map_or_else(|| items.to_string(), String::from);
    println!(
        "backup.restore.done  completed in {} ms; the copy holds {items} line items",
        done["durationMs"]
    );
    c.call("backup.delete", json!({"backupId": backup})).await?;
    let _ = std::fs::remove_file(&copy);
    println!("backup.delete    the backup and its file (the demo leaves nothing behind)");
    Ok(())
}

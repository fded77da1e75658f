//! Backups and restores of SQLite databases as jobs: the round trip, live
//! progress, cancel, checksums, a backup taken under concurrent writes, and
//! restores refused over an open file. The real binary, real files, SQLite's
//! own online backup API. The catalog is in `backup_sqlite_catalog.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Bridge, Options};

/// A fixture: tables with a foreign key, a view, a trigger, and `rows` rows
/// (each about `pad` bytes of text), written with SQLite directly.
pub(crate) fn fixture(path: &Path, rows: u64, pad: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customer(id), total REAL, note TEXT, raw BLOB);
         CREATE TABLE audit (order_id INTEGER, at TEXT);
         CREATE TRIGGER orders_audit AFTER INSERT ON orders WHEN NEW.id % 1000 = 0 BEGIN INSERT INTO audit VALUES (NEW.id, 'x'); END;
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
         WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM g WHERE value < 100)
         INSERT INTO customer SELECT value, 'customer ' || value FROM g;
         WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM g WHERE value < {rows})
         INSERT INTO orders SELECT value, 1 + value % 100, value * 0.25, printf('%.{pad}c', 'n'), randomblob(16) FROM g;"
    ))
    .unwrap();
}

/// Every table's row count and an FNV hash of its values, and the schema.
pub(crate) fn digest(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = String::new();
    for table in ["customer", "orders", "audit"] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut count = 0u64;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        while let Some(row) = rows.next().unwrap() {
            count += 1;
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                for b in format!("{v:?}").bytes() {
                    hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        out.push_str(&format!("{table}: {count} rows, fnv {hash:016x}\n"));
    }
    let schema: String = conn
        .query_row(
            "SELECT group_concat(type || name || coalesce(sql, ''), char(10)) FROM (SELECT * FROM sqlite_master ORDER BY name)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    out + &schema
}

/// A job's progress events (which must be all it sends) and its done event.
pub(crate) fn until_done(
    b: &mut Bridge,
    id_field: &str,
    id: &str,
    progress: &str,
    done: &str,
) -> (Vec<Value>, Value) {
    let (events, done) = b.job_events(id_field, id, done);
    for ev in &events {
        assert_eq!(ev["method"], progress, "unexpected event {ev}");
    }
    (
        events.into_iter().map(|e| e["params"].clone()).collect(),
        done,
    )
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn sqlite_round_trip_with_progress_and_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("shop.db");
    fixture(&source, 200_000, 40);
    let mut b = Bridge::start();
    let started = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    );
    let id = started["backupId"].as_str().unwrap().to_string();
    let (progress, done) = until_done(&mut b, "backupId", &id, "backup.progress", "backup.done");
    assert_eq!(done["status"], "completed", "{done}");
    // Progress: in phase order, the percent never goes back, 100 only at the end.
    let phases: Vec<&str> = progress
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"preparing"));
    assert_eq!(phases.last(), Some(&"finalizing"));
    let mut order = phases.clone();
    order.dedup();
    assert!(
        ["preparing", "dumping", "finalizing"]
            .windows(order.len())
            .any(|w| w == order.as_slice())
            || order == ["preparing", "finalizing"],
        "{order:?}"
    );
    let percents: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["percent"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(percents.last(), Some(&100.0));
    assert!(percents[..percents.len() - 1].iter().all(|p| *p < 100.0));
    // The file, its size and checksum, and the catalog entry.
    let path = Path::new(done["path"].as_str().unwrap()).to_path_buf();
    assert!(
        path.starts_with(b.data_dir.join("backups")),
        "{}",
        path.display()
    );
    assert_eq!(done["sizeBytes"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(done["sha256"], sha256_of(&path));
    let list = b.ok("backup.list", json!({}));
    assert_eq!(list[0]["backupId"], id);
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["fileExists"], true);
    assert!(
        list[0]["toolVersion"]
            .as_str()
            .unwrap()
            .starts_with("SQLite 3.")
    );
    // Restored into a fresh file: the same schema and rows.
    let target = dir.path().join("restored.db");
    let r = b.ok(
        "backup.restore",
        json!({"backupId": id, "target": {"kind": "sqlite", "path": target, "create": true}}),
    );
    let rid = r["restoreId"].as_str().unwrap().to_string();
    let (rprogress, rdone) = until_done(
        &mut b,
        "restoreId",
        &rid,
        "backup.restore.progress",
        "backup.restore.done",
    );
    assert_eq!(rdone["status"], "completed", "{rdone}");
    assert_eq!(rprogress.first().unwrap()["phase"], "verifying");
    assert_eq!(digest(&source), digest(&target));
    assert!(digest(&source).contains("orders: 200000 rows"));
    // An existing destination is refused unless overwrite is set.
    let e = b.err(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}, "destination": path}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    let again = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}, "destination": path, "options": {"overwrite": true}}),
    );
    let again = again["backupId"].as_str().unwrap().to_string();
    let (_, done) = until_done(&mut b, "backupId", &again, "backup.progress", "backup.done");
    assert_eq!(done["status"], "completed");
}

#[test]
fn a_backup_under_concurrent_writes_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("busy.db");
    fixture(&source, 100_000, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (source, stop) = (source.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&source).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut written = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // A transaction that keeps the two tables in step.
                conn.execute_batch(&format!(
                    "BEGIN; INSERT INTO customer (name) VALUES ('w{written}'); INSERT INTO orders (customer_id, total, note) VALUES (last_insert_rowid(), 1, 'w'); COMMIT;"
                ))
                .unwrap();
                written += 1;
            }
            written
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut b = Bridge::start();
    let started = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    );
    let id = started["backupId"].as_str().unwrap().to_string();
    let (_, done) = until_done(&mut b, "backupId", &id, "backup.progress", "backup.done");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert!(written > 0);
    let copy = rusqlite::Connection::open(done["path"].as_str().unwrap()).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every writer transaction is in the copy whole or not at all.
    let (customers, orders): (i64, i64) = copy
        .query_row(
            "SELECT (SELECT count(*) FROM customer), (SELECT count(*) FROM orders)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(customers - 100, orders - 100_000, "a torn copy");
}

#[test]
fn cancel_leaves_no_file_and_a_cancelled_entry() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("large.db");
    fixture(&source, 400_000, 600);
    let mut b = Bridge::start();
    let started = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    );
    let id = started["backupId"].as_str().unwrap().to_string();
    b.event_where(Duration::from_secs(30), |e| {
        e["method"] == "backup.progress" && e["params"]["phase"] == "dumping"
    });
    let ping = b.ok("health.ping", json!({}));
    assert_eq!(ping["runningJobs"], 1, "{ping}");
    let c = b.ok("backup.cancel", json!({"backupId": id}));
    assert_eq!(c["cancelled"], true);
    let (_, done) = until_done(&mut b, "backupId", &id, "backup.progress", "backup.done");
    assert_eq!(done["status"], "cancelled", "{done}");
    let path = Path::new(done["path"].as_str().unwrap()).to_path_buf();
    assert!(!path.exists());
    let backups = std::fs::read_dir(b.data_dir.join("backups"))
        .unwrap()
        .count();
    assert_eq!(backups, 0, "a partial file was left");
    let list = b.ok("backup.list", json!({}));
    assert_eq!(list[0]["status"], "cancelled");
    assert_eq!(b.ok("health.ping", json!({}))["runningJobs"], 0);
    assert_eq!(
        b.ok("backup.cancel", json!({"backupId": id}))["cancelled"],
        false
    );
}

#[test]
fn restores_verify_the_checksum_and_refuse_an_open_target() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app.db");
    fixture(&source, 5000, 20);
    let mut b = Bridge::start();
    let id = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, done) = until_done(&mut b, "backupId", &id, "backup.progress", "backup.done");
    let file = done["path"].as_str().unwrap().to_string();
    // The source has changed since; a session has it open: refused.
    rusqlite::Connection::open(&source)
        .unwrap()
        .execute("DELETE FROM orders WHERE id > 100", [])
        .unwrap();
    let session = b.open_sqlite(source.to_str().unwrap());
    let e = b.err("backup.restore", json!({"backupId": id}));
    assert_eq!(e["code"], "RESTORE_FAILED", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("open in a session"),
        "{e}"
    );
    b.ok("session.close", json!({"sessionId": session}));
    // A corrupted backup file fails its checksum; the target is untouched.
    let before = digest(&source);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let r = b.ok("backup.restore", json!({"backupId": id}))["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, rdone) = until_done(
        &mut b,
        "restoreId",
        &r,
        "backup.restore.progress",
        "backup.restore.done",
    );
    assert_eq!(rdone["status"], "failed", "{rdone}");
    assert_eq!(rdone["error"]["code"], "RESTORE_FAILED");
    assert!(
        rdone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checksum"),
        "{rdone}"
    );
    assert_eq!(digest(&source), before);
    // Repaired, it restores over the source (its default target).
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let r = b.ok("backup.restore", json!({"backupId": id}))["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let (_, rdone) = until_done(
        &mut b,
        "restoreId",
        &r,
        "backup.restore.progress",
        "backup.restore.done",
    );
    assert_eq!(rdone["status"], "completed", "{rdone}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(digest(&source).contains("orders: 5000 rows"));
    let e = b.err("backup.restore", json!({"backupId": "b_nope"}));
    assert_eq!(e["code"], "BACKUP_NOT_FOUND");
    // The custom archive is Postgres's alone.
    let e = b.err(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}, "options": {"format": "custom"}}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    // A server that cannot be reached fails the call; no job, no entry.
    let before = b.ok("backup.list", json!({})).as_array().unwrap().len();
    let e = b.err(
        "backup.start",
        json!({"connection": {"kind": "postgres", "host": "127.0.0.1", "port": 1, "user": "x", "database": "x"}}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");
    assert_eq!(
        b.ok("backup.list", json!({})).as_array().unwrap().len(),
        before
    );
}

#[test]
fn shutdown_cancels_a_running_backup_and_removes_its_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let source = dir.path().join("big.db");
    fixture(&source, 400_000, 600);
    let mut b = Bridge::start_with(Options {
        data_dir: Some(data.clone()),
        ..Default::default()
    });
    let id = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    b.event_where(Duration::from_secs(30), |e| {
        e["method"] == "backup.progress" && e["params"]["phase"] == "dumping"
    });
    b.ok("bridge.shutdown", json!({}));
    let done = b.event_where(Duration::from_secs(10), |e| e["method"] == "backup.done");
    assert_eq!(done["params"]["status"], "cancelled", "{done}");
    assert!(b.wait_exit(Duration::from_secs(15)).success());
    let left: Vec<_> = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let catalog = rusqlite::Connection::open(data.join("bridge.db")).unwrap();
    let status: String = catalog
        .query_row("SELECT status FROM backups WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "cancelled");
}

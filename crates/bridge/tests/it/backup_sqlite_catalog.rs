//! The backup catalog of SQLite backups through the real binary: it survives
//! restarts, a bridge killed mid-backup has its partial file cleaned up and
//! its entry failed on restart, and it lists a saved connection's backups.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::backup_sqlite::{digest, fixture, until_done};
use crate::harness::{Bridge, Options};

#[test]
fn the_catalog_survives_restarts_and_crashes_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let source = dir.path().join("src.db");
    fixture(&source, 400_000, 600);
    let options = || Options {
        data_dir: Some(data.clone()),
        ..Default::default()
    };
    // A finished backup, then a clean stop.
    let mut b = Bridge::start_with(options());
    let small = dir.path().join("small.db");
    fixture(&small, 1000, 10);
    let id = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": small}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    until_done(&mut b, "backupId", &id, "backup.progress", "backup.done");
    b.ok("bridge.shutdown", json!({}));
    b.wait_exit(Duration::from_secs(10));
    // A crash (kill -9) in the middle of a large backup.
    let mut b = Bridge::start_with(options());
    assert_eq!(b.ok("backup.list", json!({}))[0]["backupId"], id);
    let crashed = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": source}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    b.event_where(Duration::from_secs(30), |e| {
        e["method"] == "backup.progress" && e["params"]["phase"] == "dumping"
    });
    b.child.kill().unwrap();
    let _ = b.child.wait();
    let parts = || {
        std::fs::read_dir(data.join("backups"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".part")
            })
            .count()
    };
    assert_eq!(parts(), 1, "the crash left its partial file");
    // The next start fails the interrupted entry and removes its partial file.
    let mut b = Bridge::start_with(options());
    let list = b.ok("backup.list", json!({}));
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["backupId"] == crashed)
        .unwrap();
    assert_eq!(entry["status"], "failed", "{entry}");
    assert_eq!(parts(), 0);
    // Delete removes the file and the entry; a file gone missing is listed as such.
    let kept = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["backupId"] == id)
        .unwrap();
    let kept_path = kept["path"].as_str().unwrap().to_string();
    std::fs::rename(&kept_path, format!("{kept_path}.moved")).unwrap();
    let list = b.ok("backup.list", json!({}));
    let missing = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["backupId"] == id)
        .unwrap();
    assert_eq!(missing["fileExists"], false);
    std::fs::rename(format!("{kept_path}.moved"), &kept_path).unwrap();
    b.ok("backup.delete", json!({"backupId": id}));
    assert!(!Path::new(&kept_path).exists());
    let e = b.err("backup.delete", json!({"backupId": id}));
    assert_eq!(e["code"], "BACKUP_NOT_FOUND");
}

#[test]
fn the_catalog_lists_a_saved_connections_backups() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.db"), dir.path().join("two.db"));
    fixture(&one, 100, 10);
    fixture(&two, 100, 10);
    let mut b = Bridge::start();
    let saved = b.ok(
        "connection.save",
        json!({"name": "one", "connection": {"kind": "sqlite", "path": one}}),
    )["connectionId"]
        .as_str()
        .unwrap()
        .to_string();
    let by_saved = b.ok(
        "backup.start",
        json!({"connection": {"connectionId": saved}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    until_done(
        &mut b,
        "backupId",
        &by_saved,
        "backup.progress",
        "backup.done",
    );
    let other = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": two}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    until_done(&mut b, "backupId", &other, "backup.progress", "backup.done");
    let all = b.ok("backup.list", json!({}));
    assert_eq!(all.as_array().unwrap().len(), 2);
    let mine = b.ok("backup.list", json!({"connectionId": saved}));
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["backupId"], by_saved);
    let none = b.ok("backup.list", json!({"connectionId": "c_none"}));
    assert!(none.as_array().unwrap().is_empty());
    // A saved connection's backup restores into its source by default.
    rusqlite::Connection::open(&one)
        .unwrap()
        .execute("DELETE FROM orders", [])
        .unwrap();
    let rid = b.ok("backup.restore", json!({"backupId": by_saved}))["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, done) = until_done(
        &mut b,
        "restoreId",
        &rid,
        "backup.restore.progress",
        "backup.restore.done",
    );
    assert_eq!(done["status"], "completed", "{done}");
    assert!(digest(&one).contains("orders: 100 rows"));
}

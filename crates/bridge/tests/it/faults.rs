//! A full disk, for real: small tmpfs mounts (the tests run as root in CI)
//! as an export's and a backup's destination and as the data dir. An export
//! or backup fails with a clear error and leaves no partial file; log
//! writes that fail do not stop the bridge; a secret write that fails
//! leaves the existing store readable. And a bridge killed mid-write.
//! Servers, tools and networks that fail are in `faults_servers.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::export::part_files;
use crate::harness::{Bridge, Options};

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk { path, _dir: dir }),
            other => {
                let why = format!("cannot mount a tmpfs (root needed): {other:?}");
                assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
                eprintln!("SKIPPED full-disk test: {why}");
                None
            }
        }
    }

    /// Fills the disk up with a file of its own.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![b'x'; 64 * 1024];
        use std::io::Write;
        while filler.write_all(&block).is_ok() {}
        let _ = filler.flush();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn sqlite_fixture(path: &Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT);
             WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < 100000)
             INSERT INTO t SELECT v, printf('%.60c', 'x') FROM g;",
        )
        .unwrap();
}

#[test]
fn a_full_destination_fails_exports_and_backups_with_no_partial_file() {
    let Some(disk) = SmallDisk::mount("512k") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    sqlite_fixture(&db);
    let mut b = Bridge::start();
    let s = b.open_sqlite(db.to_str().unwrap());
    for format in ["csv", "jsonl", "sql", "xlsx"] {
        let dest = disk.path.join(format!("out.{format}"));
        let data = b.ok(
            "export.start",
            json!({"sessionId": s, "source": {"schema": "main", "table": "t"}, "format": format,
                   "destination": dest.to_str().unwrap()}),
        );
        let id = data["exportId"].as_str().unwrap().to_string();
        let (_, done) = b.job_events("exportId", &id, "export.done");
        assert_eq!(done["status"], "failed", "{format}: {done}");
        assert_eq!(done["error"]["code"], "EXPORT_FAILED", "{format}: {done}");
        let message = done["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("No space left") || message.contains("space"),
            "{format}: {message}"
        );
        assert!(!dest.exists(), "{format}");
        assert!(
            part_files(&disk.path).is_empty(),
            "{format}: {:?}",
            part_files(&disk.path)
        );
    }
    let dest = disk.path.join("backup.sqlite");
    let data = b.ok(
        "backup.start",
        json!({"connection": {"kind": "sqlite", "path": db}, "destination": dest}),
    );
    let id = data["backupId"].as_str().unwrap().to_string();
    let (_, done) = b.job_events("backupId", &id, "backup.done");
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "BACKUP_FAILED", "{done}");
    assert!(!dest.exists());
    let left: Vec<_> = std::fs::read_dir(&disk.path).unwrap().collect();
    assert!(left.is_empty(), "left on the disk: {left:?}");
    // The session and the bridge go on.
    assert_eq!(
        b.query(&s, "SELECT count(*) FROM t", json!({})).status(),
        "completed"
    );
}

#[test]
fn a_full_data_dir_keeps_the_bridge_serving_and_the_secret_store_whole() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let start = || {
        Bridge::start_with(Options {
            env: vec![
                ("DBBRIDGE_LOG".into(), "debug".into()),
                ("DBBRIDGE_SECRET_BACKEND".into(), "file".into()),
                ("DBBRIDGE_SECRET_KEY".into(), "full-disk-key".into()),
            ],
            data_dir: Some(disk.path.clone()),
            ..Default::default()
        })
    };
    let mut b = start();
    b.ok("secret.store", json!({"key": "kept", "value": "old-value"}));
    disk.fill();
    // Log lines now fail to be written (debug logs a line per request);
    // the bridge answers on.
    for _ in 0..50 {
        b.ok("health.ping", json!({}));
    }
    // A secret write fails cleanly (the store is rewritten whole, atomically).
    let big = "v".repeat(256 * 1024);
    let e = b.err("secret.store", json!({"key": "new", "value": big}));
    assert_eq!(e["code"], "SECRET_STORE_UNAVAILABLE", "{e}");
    assert_eq!(
        b.ok("secret.get", json!({"key": "kept"}))["value"],
        "old-value"
    );
    b.ok("health.ping", json!({}));
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    // Room again: after a restart the old store is whole.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let mut b = start();
    assert_eq!(
        b.ok("secret.get", json!({"key": "kept"}))["value"],
        "old-value"
    );
    let e = b.err("secret.get", json!({"key": "new"}));
    assert_eq!(e["code"], "SECRET_NOT_FOUND", "{e}");
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
}

/// The bridge killed (SIGKILL) in the middle of secret writes and
/// `connection.save`s, thirty times over: after each restart the catalog
/// opens, and the secret store holds an old or a new value, never a
/// corrupt file.
#[test]
fn a_bridge_killed_mid_write_restarts_with_a_consistent_store_and_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        Bridge::start_with(Options {
            env: vec![
                ("DBBRIDGE_SECRET_BACKEND".into(), "file".into()),
                ("DBBRIDGE_SECRET_KEY".into(), "kill-test-key".into()),
            ],
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
    };
    let mut b = start();
    b.ok("secret.store", json!({"key": "k", "value": "v0"}));
    let mut written = vec!["v0".to_string()];
    let mut mid_burst = 0;
    for round in 1..=30u32 {
        // A burst of writes in flight, then the kill after a few ms.
        for i in 0..20 {
            let value = format!("v{round}-{i}-{}", "x".repeat(4096));
            b.send("secret.store", json!({"key": "k", "value": value}));
            written.push(value);
            b.send(
                "connection.save",
                json!({"name": format!("c{round}-{i}"), "connection": {"kind": "sqlite", "path": "/tmp/x.db"}}),
            );
        }
        std::thread::sleep(Duration::from_millis(u64::from(round % 7) * 3));
        let status = Command::new("kill")
            .args(["-KILL", &b.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = b.wait_exit(Duration::from_secs(10));
        b = start();
        let value = b.ok("secret.get", json!({"key": "k"}));
        let value = value["value"].as_str().unwrap().to_string();
        assert!(
            written.contains(&value),
            "round {round}: a value never written"
        );
        if value.starts_with(&format!("v{round}-")) && !value.starts_with(&format!("v{round}-19-"))
        {
            mid_burst += 1;
        }
        let listed = b.ok("connection.list", json!({}));
        assert!(listed.as_array().is_some(), "round {round}: {listed}");
    }
    // Some kills landed while that round's writes were going on.
    eprintln!("{mid_burst} of 30 kills landed mid-burst");
    assert!(mid_burst > 0, "no kill landed while writes were in flight");
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
}

//! A full disk, for real: small tmpfs mounts (the tests run as root in CI)
//! as an export's and a backup's destination and as the data dir. An export
//! or backup fails with a clear error and leaves no partial file; log
//! writes that fail do not stop the bridge; a secret write that fails
//! leaves the existing store readable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

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

/// A black-holed server: the port accepts the TCP connection and never says
/// a word. `connectTimeoutMs` bounds the whole login on both engines, and
/// the bridge serves on.
#[test]
fn a_server_that_never_answers_is_given_up_after_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepted connections are kept open and never written to.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let mut b = Bridge::start();
    for kind in ["postgres", "mysql"] {
        let started = std::time::Instant::now();
        let e = b.err(
            "session.open",
            json!({"connection": {"kind": kind, "host": "127.0.0.1", "port": port, "user": "u",
                                  "password": "p", "database": "d", "sslMode": "disable",
                                  "connectTimeoutMs": 1000}}),
        );
        let took = started.elapsed();
        assert_eq!(e["code"], "CONNECTION_FAILED", "{kind}: {e}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{kind}: gave up after {took:?}"
        );
    }
    assert!(
        !held.lock().unwrap().is_empty(),
        "the connections were accepted"
    );
    b.ok("health.ping", json!({}));
}

/// The pid of `parent`'s child process named `name`, if there is one.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1;
            let ppid: u32 = tail.split(' ').nth(1)?.parse().ok()?;
            (ppid == parent && comm == name).then(|| entry.file_name().to_str()?.parse().ok())?
        })
}

/// `pg_dump` killed from outside (SIGKILL) in the middle of a backup: the
/// job fails with BACKUP_FAILED naming the signal, leaves no file, records
/// the failure, and the bridge serves on.
#[test]
fn a_pg_dump_killed_mid_backup_fails_the_job_cleanly() {
    let Some(pg) = crate::servers::postgres() else {
        return;
    };
    let source = pg.create_database();
    let out = pg.psql(
        &source,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    assert!(out.status.success());
    kill_the_dump_mid_backup(
        &pg.connection(&source),
        "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
        "pg_dump",
    );
}

/// The same for `mariadb-dump`.
#[test]
fn a_mariadb_dump_killed_mid_backup_fails_the_job_cleanly() {
    let Some(my) = crate::servers::mysql() else {
        return;
    };
    let source = my.create_database();
    let out = my.client(
        &source,
        "CREATE TABLE t (g INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_1000",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kill_the_dump_mid_backup(
        &my.connection(&source),
        "LOCK TABLES t WRITE",
        "mariadb-dump",
    );
}

/// Holds a lock on `t` from another bridge session so the dump tool waits,
/// SIGKILLs the tool, and checks the job fails cleanly.
fn kill_the_dump_mid_backup(connection: &Value, lock: &str, tool: &str) {
    let mut locker = Bridge::start();
    let ls = locker.open_session(connection);
    locker.query(&ls, lock, json!({}));
    let mut b = Bridge::start();
    let id = b.ok("backup.start", json!({"connection": connection}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut pid = None;
    for _ in 0..200 {
        pid = child_named(b.pid(), tool);
        if pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let pid = pid.unwrap_or_else(|| panic!("{tool} runs"));
    // Give the tool a moment to reach the lock: it is then mid-dump.
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, done) = b.job_events("backupId", &id, "backup.done");
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{tool} ended with signal: 9 (SIGKILL)")),
        "{done}"
    );
    assert_eq!(done["error"]["code"], "BACKUP_FAILED", "{done}");
    assert!(!Path::new(done["path"].as_str().unwrap()).exists());
    let listed = b.ok("backup.list", json!({}));
    let row = crate::harness::find(&listed, "backupId", &id);
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(b.ok("health.ping", json!({}))["runningJobs"], 0);
    // The lock holder's session is untouched.
    assert_eq!(
        locker.query(&ls, "SELECT 1", json!({})).status(),
        "completed"
    );
}

/// Postgres stopped with `pg_ctl stop -m immediate` while a result streams:
/// the stream fails with CONNECTION_FAILED, both sessions on that server are
/// closed as `connectionLost`, a SQLite session of the same client keeps its
/// data whole and serves on, and once the server is back a new session works.
#[test]
fn postgres_stopped_immediately_mid_stream_fails_the_stream_and_spares_the_rest() {
    let Some(cluster) = crate::servers::Cluster::private() else {
        return;
    };
    let pg = &cluster.pg;
    let db = pg.create_database();
    let mut b = Bridge::start();
    let streaming = b.open_session(&pg.connection(&db));
    let idle = b.open_session(&pg.connection(&db));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = b.open_sqlite(dir.path().join("spared.db").to_str().unwrap());
    b.query(
        &sqlite,
        "CREATE TABLE t AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000) SELECT n FROM c",
        json!({}),
    );
    let q = b.start_query(
        &streaming,
        "SELECT g, md5(g::text) FROM generate_series(1, 50000000) g",
        json!({}),
    );
    b.consume_for(Duration::from_millis(700)); // rows are flowing
    cluster.stop_immediate();
    let done = b.wait_done(&q, Duration::from_secs(30));
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "CONNECTION_FAILED", "{done}");
    for s in [&streaming, &idle] {
        let closed = b.event_where(Duration::from_secs(30), |e| {
            e["method"] == "session.closed" && e["params"]["sessionId"] == s.as_str()
        });
        assert_eq!(closed["params"]["reason"], "connectionLost", "{closed}");
    }
    let spared = b.query(&sqlite, "SELECT count(*), sum(n) FROM t", json!({}));
    assert_eq!(spared.rows(0), [json!(["100000", "5000050000"])]);
    let health = b.ok("health.ping", json!({}));
    assert_eq!(health["runningQueries"], 0, "{health}");
    assert_eq!(health["sessions"], 1, "{health}");
    cluster.restart();
    let again = b.open_session(&pg.connection(&db));
    assert_eq!(b.query(&again, "SELECT 1", json!({})).status(), "completed");
}

/// A network to Postgres that stalls mid-stream (a loopback proxy that stops
/// forwarding but keeps both sockets open, so TCP itself sees nothing
/// wrong): `query.cancel` and `session.close` answer within 5 s, the
/// session is gone within that bound, and the bridge serves on.
#[test]
fn a_postgres_network_that_stalls_mid_stream_still_answers_cancel_and_close() {
    let Some(pg) = crate::servers::postgres() else {
        return;
    };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let (s, q) = b.stalled_mid_stream(
        &pg.connection(&db),
        "SELECT g, repeat('x', 200) FROM generate_series(1, 50000000) g",
    );
    let asked = std::time::Instant::now();
    b.ok("query.cancel", json!({"sessionId": s}));
    let cancel_answered = asked.elapsed();
    let asked = std::time::Instant::now();
    b.ok("session.close", json!({"sessionId": s}));
    let close_answered = asked.elapsed();
    let done = b.wait_done(&q, Duration::from_secs(15));
    let ended = asked.elapsed();
    eprintln!(
        "stalled Postgres: cancel answered in {cancel_answered:?}, close in {close_answered:?}, query.done {} after {ended:?}",
        done["status"]
    );
    assert!(
        cancel_answered < Duration::from_secs(5),
        "{cancel_answered:?}"
    );
    assert!(
        close_answered < Duration::from_secs(5),
        "{close_answered:?}"
    );
    assert!(ended < Duration::from_secs(5), "query.done after {ended:?}");
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(
        b.err("query.run", json!({"sessionId": s, "sql": "SELECT 1"}))["code"],
        "SESSION_NOT_FOUND"
    );
    let health = b.ok("health.ping", json!({}));
    assert_eq!(health["sessions"], 0, "{health}");
    assert_eq!(health["runningQueries"], 0, "{health}");
}

/// Idle sessions on a network that stalls (a loopback proxy that stops
/// forwarding and keeps both sockets open, so TCP keepalive sees nothing):
/// the bridge's liveness probe (every 5 s while no query runs, given up
/// after 10 s unanswered) reports them lost within 15 s, on Postgres and
/// MariaDB, while a session beside them on a direct connection is
/// untouched. Before the fix, MariaDB's idle ping waited on the silent
/// socket for ever holding the connection, and Postgres had no probe.
#[test]
fn idle_sessions_on_a_stalled_network_are_reported_lost() {
    let (Some(pg), Some(my)) = (crate::servers::postgres(), crate::servers::mysql()) else {
        return;
    };
    let (pg_db, my_db) = (pg.create_database(), my.create_database());
    let mut b = Bridge::start();
    let mut proxied = Vec::new();
    for connection in [pg.connection(&pg_db), my.connection(&my_db)] {
        let upstream = (
            connection["host"].as_str().unwrap().to_string(),
            connection["port"].as_u64().unwrap() as u16,
        );
        let (port, stalled) = crate::harness::stalling_proxy(upstream);
        let mut through = connection.clone();
        through["host"] = json!("127.0.0.1");
        through["port"] = json!(port);
        let s = b.open_session(&through);
        assert_eq!(b.query(&s, "SELECT 1", json!({})).status(), "completed");
        proxied.push((s, stalled));
    }
    let direct = b.open_session(&pg.connection(&pg_db));
    for (_, stalled) in &proxied {
        stalled.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let stalled_at = std::time::Instant::now();
    let mut took = Vec::new();
    for (s, _) in &proxied {
        let closed = b.event_where(Duration::from_secs(40), |e| {
            e["method"] == "session.closed" && e["params"]["sessionId"] == s.as_str()
        });
        assert_eq!(closed["params"]["reason"], "connectionLost", "{closed}");
        took.push(stalled_at.elapsed());
    }
    eprintln!(
        "idle sessions on a stalled network reported lost after {took:?} (Postgres, MariaDB)"
    );
    for t in &took {
        assert!(*t < Duration::from_secs(20), "reported lost after {t:?}");
    }
    assert_eq!(
        b.query(&direct, "SELECT 1", json!({})).status(),
        "completed"
    );
    let health = b.ok("health.ping", json!({}));
    assert_eq!(health["sessions"], 1, "{health}");
}

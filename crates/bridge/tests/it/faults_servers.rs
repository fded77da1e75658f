//! Servers, tools and networks that fail, with real processes: a server that
//! never answers, `pg_dump` and `mariadb-dump` killed mid-backup, Postgres
//! stopped with `-m immediate` mid-stream, and a network that stalls under a
//! streaming and under idle sessions.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Bridge;

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

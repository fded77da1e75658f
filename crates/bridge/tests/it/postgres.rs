//! Postgres connections against a real server (a throwaway cluster).

use serde_json::json;

use crate::harness::Bridge;
use crate::servers::postgres;

#[test]
fn connection_test_reports_the_server_version_and_latency() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let data = b.ok("connection.test", json!({"connection": pg.connection(&db)}));
    assert_eq!(data["kind"], "postgres");
    let expected = String::from_utf8(pg.psql(&db, "SHOW server_version").stdout).unwrap();
    assert_eq!(data["serverVersion"], expected.trim());
    assert!(data["latencyMs"].is_u64());

    // The URL form, and sslMode prefer falling back to plain text on a server without TLS.
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        pg.user, pg.password, pg.host, pg.port, db
    );
    let data = b.ok(
        "connection.test",
        json!({"connection": {"kind": "postgres", "url": url, "sslMode": "prefer"}}),
    );
    assert_eq!(data["serverVersion"], expected.trim());
    // require insists on TLS, which this server does not offer.
    let mut conn = pg.connection(&db);
    conn["sslMode"] = json!("require");
    assert_eq!(
        b.err("connection.test", json!({"connection": conn}))["code"],
        "CONNECTION_FAILED"
    );
}

#[test]
fn wrong_password_is_auth_failed_and_never_echoed() {
    let Some(pg) = postgres() else { return };
    let mut b = Bridge::start();
    let mut conn = pg.connection("postgres");
    conn["password"] = json!("Wrong-Password-123");
    let e = b.err("connection.test", json!({"connection": conn}));
    assert_eq!(e["code"], "AUTH_FAILED", "{e}");
    assert_eq!(e["details"]["sqlstate"], "28P01");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{e}"
    );
    let url = format!(
        "postgres://{}:Wrong-Password-456@{}:{}/postgres",
        pg.user, pg.host, pg.port
    );
    let e = b.err(
        "session.open",
        json!({"connection": {"kind": "postgres", "url": url, "sslMode": "disable"}}),
    );
    assert_eq!(e["code"], "AUTH_FAILED");
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(std::time::Duration::from_secs(30)).success());
    let everything = format!(
        "{}{}",
        crate::harness::read_dir_text(&b.data_dir),
        b.stderr.lock().unwrap()
    );
    assert!(
        !everything.contains("Wrong-Password-123") && !everything.contains("Wrong-Password-456")
    );
}

#[test]
fn a_refused_port_is_connection_failed() {
    let mut b = Bridge::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = b.err(
        "connection.test",
        json!({"connection": {"kind": "postgres", "host": "127.0.0.1", "port": port, "user": "u", "password": "p", "sslMode": "disable", "connectTimeoutMs": 2000}}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");
}

#[test]
fn sessions_open_on_postgres_and_a_saved_connection_resolves_its_password() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let opened = b.ok("session.open", json!({"connection": pg.connection(&db)}));
    assert_eq!(opened["kind"], "postgres");
    let listed = b.ok("session.list", json!({}));
    assert_eq!(listed[0]["database"], db.as_str());
    let sid = opened["sessionId"].as_str().unwrap().to_string();
    let out = b.query(&sid, "SELECT current_database()", json!({}));
    assert_eq!(out.rows(0), [json!([db])]);

    // A saved connection keeps its password in the secret store and still opens.
    let saved = b.ok(
        "connection.save",
        json!({"name": "pg", "connection": pg.connection(&db)}),
    )["connectionId"]
        .clone();
    let opened = b.ok(
        "session.open",
        json!({"connection": {"connectionId": saved}}),
    );
    assert_eq!(opened["kind"], "postgres");
    assert!(
        !std::fs::read(b.data_dir.join("bridge.db"))
            .unwrap()
            .windows(pg.password.len())
            .any(|w| w == pg.password.as_bytes())
    );
}

#[test]
fn tls_modes_against_a_server_with_a_certificate_and_cancel_over_tls() {
    let Some((cluster, ca)) = crate::servers::Cluster::private_tls() else {
        return;
    };
    let pg = &cluster.pg;
    let db = pg.create_database();
    let mut b = Bridge::start();
    let with = |mode: &str, root: Option<&std::path::Path>| {
        let mut c = pg.connection(&db);
        c["sslMode"] = json!(mode);
        if let Some(root) = root {
            c["sslRootCert"] = json!(root);
        }
        c
    };
    // require encrypts without verifying; verify-full checks chain and host with the CA given.
    for conn in [
        with("require", None),
        with("verify-full", Some(&ca)),
        with("verify-ca", Some(&ca)),
    ] {
        let s = b.ok("session.open", json!({"connection": conn}))["sessionId"].clone();
        let q = b.start_query(
            s.as_str().unwrap(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            json!({}),
        );
        let out = b.collect(&q, std::time::Duration::from_secs(60));
        assert_eq!(out.rows(0), [json!([true])], "{conn}");
    }
    // Without the CA the chain is unknown: refused.
    let e = b.err(
        "connection.test",
        json!({"connection": with("verify-full", None)}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");

    // The cancel request goes over TLS too, and the session goes on.
    let s = b.ok("session.open", json!({"connection": with("require", None)}))["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let q = b.start_query(&s, "SELECT pg_sleep(30)", json!({}));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let asked = std::time::Instant::now();
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, std::time::Duration::from_secs(60));
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5));
    let out = b.query(&s, "SELECT 1", json!({}));
    assert_eq!(out.rows(0), [json!([1])]);
}

/// Threads of the bridge named like a Postgres session's (`comm` is cut at 15 bytes).
fn session_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("dbbridge-postgr"))
        .count()
}

fn wait_for_threads(pid: u32, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = session_threads(pid);
        if n == want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn each_session_runs_on_its_own_thread_which_ends_with_it() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    // connection.test's connection goes with its answer.
    b.ok("connection.test", json!({"connection": pg.connection(&db)}));
    assert_eq!(wait_for_threads(b.pid(), 0), 0);

    let sessions: Vec<String> = (0..6)
        .map(|_| {
            b.ok("session.open", json!({"connection": pg.connection(&db)}))["sessionId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(session_threads(b.pid()), 6);
    for s in &sessions {
        let out = b.query(s, "SELECT 1", json!({}));
        assert_eq!(out.rows(0), [json!([1])]);
    }
    // Closed idle, and closed in the middle of a query: both threads end.
    let busy = b.start_query(&sessions[0], "SELECT pg_sleep(30)", json!({}));
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.ok("session.close", json!({"sessionId": sessions[0]}));
    let done = b.wait_done(&busy, std::time::Duration::from_secs(30));
    assert_eq!(done["status"], "cancelled", "{done}");
    b.ok("session.close", json!({"sessionId": sessions[1]}));
    assert_eq!(wait_for_threads(b.pid(), 4), 4);
    for s in &sessions[2..] {
        b.ok("session.close", json!({"sessionId": s}));
    }
    assert_eq!(wait_for_threads(b.pid(), 0), 0);
}

/// `pg_stat_database`'s count of `db`'s sessions that ended on an EOF instead
/// of a Terminate message, once none of them is left running (a backend adds
/// its end to the statistics as it exits, after the client has gone).
fn abandoned_once_gone(pg: &crate::servers::Postgres, db: &str) -> (u64, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = pg.psql(
            "postgres",
            &format!(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'), \
                 sessions, sessions_abandoned FROM pg_stat_database WHERE datname = '{db}'"
            ),
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let fields: Vec<u64> = text.split('|').map(|f| f.parse().unwrap()).collect();
        if fields[0] == 0 {
            return (fields[1], fields[2]);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{db} still has backends: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every way a Postgres connection ends in an orderly way sends Terminate:
/// the server counts none of them as abandoned (`sessions_abandoned`, which
/// an EOF without Terminate adds to, as the bridge killed at the end shows).
#[test]
fn closed_connections_say_goodbye_and_only_a_killed_bridge_abandons_one() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    // connection.test, a session closed idle, one closed in a transaction
    // and one closed mid-query.
    b.ok("connection.test", json!({"connection": pg.connection(&db)}));
    let idle = b.open_session(&pg.connection(&db));
    let out = b.query(&idle, "SELECT 1", json!({}));
    assert_eq!(out.rows(0), [json!([1])]);
    b.ok("session.close", json!({"sessionId": idle}));
    let in_tx = b.open_session(&pg.connection(&db));
    b.query(&in_tx, "BEGIN; CREATE TABLE t (a int)", json!({}));
    b.ok("session.close", json!({"sessionId": in_tx}));
    let busy = b.open_session(&pg.connection(&db));
    let q = b.start_query(&busy, "SELECT pg_sleep(30)", json!({}));
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.ok("session.close", json!({"sessionId": busy}));
    assert_eq!(
        b.wait_done(&q, std::time::Duration::from_secs(30))["status"],
        "cancelled"
    );
    let (sessions, abandoned) = abandoned_once_gone(&pg, &db);
    assert!(sessions >= 4, "{sessions} sessions counted");
    assert_eq!(abandoned, 0, "of {sessions} sessions");

    // Sessions still open when the bridge shuts down (stdin closed).
    for _ in 0..20 {
        b.open_session(&pg.connection(&db));
    }
    b.close_stdin();
    assert!(b.wait_exit(std::time::Duration::from_secs(10)).success());
    let (after, abandoned) = abandoned_once_gone(&pg, &db);
    assert_eq!(after, sessions + 20);
    assert_eq!(abandoned, 0, "of {after} sessions");

    // The count can move: a bridge killed with a session open abandons it.
    let mut b = Bridge::start();
    b.open_session(&pg.connection(&db));
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert_eq!(abandoned_once_gone(&pg, &db), (after + 1, 1));
}

//! SQLite sessions over their lifetime: idle timeouts, transactions across
//! calls, closing and shutdown mid-query, SIGTERM with a stalled client.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Bridge, find};
use crate::sqlite::{ENDLESS_SILENT, T, db_path};

#[test]
fn idle_sessions_are_closed_with_an_event() {
    let mut b = Bridge::start();
    let path = db_path(&b, "idle.db");
    let s = b.ok("session.open", json!({"connection": {"kind": "sqlite", "path": path, "create": true}, "idleTimeoutMs": 400}))
        ["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = b.open_sqlite(&path);
    let ev = b.event_where(Duration::from_secs(5), |e| e["method"] == "session.closed");
    assert_eq!(ev["params"], json!({"sessionId": s, "reason": "idle"}));
    assert_eq!(
        b.err("query.run", json!({"sessionId": s, "sql": "SELECT 1"}))["code"],
        "SESSION_NOT_FOUND"
    );
    // The default timeout is long: the other session is still there.
    let listed = b.ok("session.list", json!({}));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["sessionId"], keep.as_str());
}

#[test]
fn transactions_span_calls_and_show_in_session_list() {
    let mut b = Bridge::start();
    let path = db_path(&b, "tx.db");
    let s = b.open_sqlite(&path);
    let other = b.open_sqlite(&path);
    b.query(&s, "CREATE TABLE t (a)", json!({}));
    b.query(&s, "BEGIN; INSERT INTO t VALUES (1)", json!({}));
    let listed = b.ok("session.list", json!({}));
    let mine = find(&listed, "sessionId", &s);
    assert_eq!(mine["inTransaction"], true);
    assert_eq!(mine["kind"], "sqlite");
    assert_eq!(mine["database"], path.as_str());
    assert_eq!(
        b.query(&other, "SELECT count(*) FROM t", json!({})).rows(0),
        &[json!(["0"])]
    );
    b.query(&s, "COMMIT", json!({}));
    assert_eq!(
        b.query(&other, "SELECT count(*) FROM t", json!({})).rows(0),
        &[json!(["1"])]
    );
}

#[test]
fn closing_a_session_cancels_its_query_and_shutdown_closes_all() {
    let mut b = Bridge::start();
    let path = db_path(&b, "close.db");
    let s = b.open_sqlite(&path);
    let q = b.start_query(&s, ENDLESS_SILENT, json!({}));
    b.ok("session.close", json!({"sessionId": s}));
    assert_eq!(b.collect(&q, T).status(), "cancelled");
    let s2 = b.open_sqlite(&path);
    let q2 = b.start_query(&s2, ENDLESS_SILENT, json!({}));
    b.ok("bridge.shutdown", json!({}));
    assert_eq!(b.collect(&q2, T).status(), "cancelled");
    let ev = b.event_where(T, |e| e["method"] == "session.closed");
    assert_eq!(ev["params"], json!({"sessionId": s2, "reason": "shutdown"}));
    assert!(b.wait_exit(T).success());
}

#[test]
fn sigterm_with_a_stalled_client_mid_stream_still_exits_zero() {
    let mut b = Bridge::start();
    let s = b.open_sqlite(":memory:");
    b.pause_reading();
    b.start_query_unread(&s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, printf('%0100d', x) FROM c");
    std::thread::sleep(Duration::from_millis(1000));
    let started = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(b.pid().to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge hung on shutdown behind a stalled client"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    // 1 s offering query.done, 1 s offering session.closed, then 1 s in which
    // stdout takes nothing ends the wait (it was a flat 5 s, 7.3 s in all).
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

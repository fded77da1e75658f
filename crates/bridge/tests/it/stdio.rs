//! The stdio transport and the router, through the real binary.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Bridge;

const T: Duration = Duration::from_secs(30);

#[test]
fn health_ping_reports_real_figures() {
    let mut b = Bridge::start();
    let data = b.ok("health.ping", json!({}));
    assert_eq!(data["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(data["pid"], b.pid());
    assert!(
        data["memoryRssBytes"].as_u64().unwrap() > 1_000_000,
        "{data}"
    );
    assert!(data["uptimeMs"].is_u64());
    assert!(data["cpuPercent"].is_number());
    for counter in ["sessions", "runningQueries", "runningJobs"] {
        assert_eq!(data[counter], 0, "{counter}");
    }
    assert!(data.get("secretBackend").is_some());
}

#[test]
fn unknown_method_and_a_job_that_is_not_running() {
    let mut b = Bridge::start();
    assert_eq!(
        b.err("no.such.method", json!({}))["code"],
        "METHOD_NOT_FOUND"
    );
    // Every method of the contract has landed; a cancel of a job that is
    // not running says so.
    assert_eq!(
        b.ok("export.cancel", json!({"exportId": "x_1"}))["cancelled"],
        false
    );
}

#[test]
fn invalid_params_name_the_field() {
    let mut b = Bridge::start();
    let e = b.err("debug.sleep", json!({"ms": "soon"}));
    assert_eq!(e["code"], "INVALID_PARAMS");
    assert_eq!(e["details"]["field"], "ms", "{e}");
    assert!(e["message"].as_str().unwrap().contains("ms"), "{e}");
    let e = b.err("debug.sleep", json!({}));
    assert_eq!(e["code"], "INVALID_PARAMS");
    assert_eq!(e["details"]["field"], "ms", "{e}");
}

#[test]
fn malformed_json_is_answered_and_the_bridge_keeps_serving() {
    let mut b = Bridge::start();
    b.send_raw("{\"jsonrpc\":\"2.0\",\"id\":");
    let resp = b.response(&Value::Null, T);
    assert_eq!(resp["error"]["code"], -32700);
    assert_eq!(resp["error"]["data"]["code"], "PARSE_ERROR");
    // Not an object, and an unusable id.
    b.send_raw("[1,2]");
    assert_eq!(
        b.response(&Value::Null, T)["error"]["data"]["code"],
        "INVALID_REQUEST"
    );
    b.send_raw(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"health.ping"}"#);
    assert_eq!(
        b.response(&Value::Null, T)["error"]["data"]["code"],
        "INVALID_REQUEST"
    );
    // Wrong jsonrpc version with a usable id gets an envelope.
    b.send_raw(r#"{"jsonrpc":"1.0","id":"v1","method":"health.ping"}"#);
    assert_eq!(
        b.response(&json!("v1"), T)["result"]["error"]["code"],
        "INVALID_REQUEST"
    );
    assert_eq!(b.ok("health.ping", json!({}))["pid"], b.pid());
}

#[test]
fn a_17_mib_line_is_refused_and_the_bridge_keeps_serving() {
    let mut b = Bridge::start();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":99,"method":"health.ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(17 << 20)
    );
    b.send_raw(&big);
    let resp = b.response(&Value::Null, T);
    assert_eq!(resp["error"]["data"]["code"], "INVALID_REQUEST", "{resp}");
    assert!(resp["error"]["message"].as_str().unwrap().contains("limit"));
    assert_eq!(b.ok("health.ping", json!({}))["pid"], b.pid());
    // The bridge did not buffer the whole line.
    assert!(crate::harness::rss_bytes(b.pid()) < 64 << 20);
}

#[test]
fn three_hundred_pipelined_requests_are_all_answered() {
    let mut b = Bridge::start();
    let ids: Vec<i64> = (0..300).map(|_| b.send("health.ping", json!({}))).collect();
    for id in ids {
        let resp = b.response(&json!(id), T);
        assert_eq!(resp["result"]["ok"], true, "{resp}");
    }
}

#[test]
fn a_slow_request_does_not_delay_a_ping() {
    let mut b = Bridge::start();
    let slow = b.send("debug.sleep", json!({"ms": 3000}));
    let started = Instant::now();
    b.ok("health.ping", json!({}));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.response(&json!(slow), T)["result"]["data"]["slept"], 3000);
}

#[test]
fn a_panicking_handler_is_answered_internal_and_the_process_lives() {
    let mut b = Bridge::start();
    let e = b.err("debug.panic", json!({}));
    assert_eq!(e["code"], "INTERNAL");
    assert_eq!(b.ok("health.ping", json!({}))["pid"], b.pid());
}

#[test]
fn rpc_discover_lists_every_method_and_event() {
    let mut b = Bridge::start();
    let doc = b.ok("rpc.discover", json!({}));
    assert_eq!(doc["openrpc"], "1.3.2");
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in [
        "connection.test",
        "session.open",
        "query.run",
        "metadata.describeTable",
        "secret.store",
        "backup.restore",
        "export.start",
        "health.ping",
        "bridge.shutdown",
        "rpc.discover",
    ] {
        assert!(names.contains(&m), "{m} missing");
    }
    let events: Vec<&str> = doc["x-events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"query.result") && events.contains(&"backup.restore.done"));
}

#[test]
fn bridge_shutdown_answers_then_exits_zero() {
    let mut b = Bridge::start();
    assert_eq!(b.ok("bridge.shutdown", json!({})), json!({}));
    assert!(b.wait_exit(T).success());
    assert!(b.non_json_lines.lock().unwrap().is_empty());
}

#[test]
fn stdin_eof_exits_zero() {
    let mut b = Bridge::start();
    b.ok("health.ping", json!({}));
    b.close_stdin();
    assert!(b.wait_exit(T).success());
}

#[test]
fn sigterm_exits_zero() {
    let mut b = Bridge::start();
    b.ok("health.ping", json!({}));
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(b.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(b.wait_exit(T).success());
}

#[test]
fn nothing_but_json_on_stdout() {
    let mut b = Bridge::start_with(crate::harness::Options {
        env: vec![("DBBRIDGE_LOG".into(), "debug".into())],
        ..Default::default()
    });
    b.ok("health.ping", json!({}));
    b.err("nope", json!({}));
    b.send_raw("garbage");
    b.response(&Value::Null, T);
    b.err("debug.panic", json!({}));
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(T).success());
    let bad = b.non_json_lines.lock().unwrap().clone();
    assert!(bad.is_empty(), "non-JSON lines on stdout: {bad:?}");
    // The log went to files, not stdout.
    assert!(b.logs().contains("handler panicked"));
}

#[test]
fn a_client_that_stops_reading_does_not_hold_shutdown_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT);
             WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < 300000)
             INSERT INTO big SELECT v, printf('%.100c', 'x') FROM g;",
        )
        .unwrap();
    let mut b = Bridge::start();
    let sessions: Vec<String> = (0..4)
        .map(|_| b.open_sqlite(db.to_str().unwrap()))
        .collect();
    // The client stops reading mid-stream: one query fills the pipe and its
    // lane; the others read to their end but cannot deliver, so their
    // `query.done` waits on the client.
    b.pause_reading();
    b.send(
        "query.run",
        json!({"sessionId": sessions[0], "sql": "SELECT * FROM big"}),
    );
    std::thread::sleep(Duration::from_millis(500));
    for s in &sessions[1..] {
        b.send(
            "query.run",
            json!({"sessionId": s, "sql": "SELECT * FROM big LIMIT 800"}),
        );
    }
    std::thread::sleep(Duration::from_millis(1000));
    let asked = Instant::now();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(b.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = b.wait_exit(Duration::from_secs(5));
    assert!(exit.success(), "{exit:?}");
    assert!(asked.elapsed() < Duration::from_secs(5));
    // Every session was closed on the way out.
    let logs = b.logs();
    for s in &sessions {
        assert!(
            logs.lines()
                .any(|l| l.contains("session closed") && l.contains(s.as_str())),
            "session {s} not closed: {logs}"
        );
    }
}

/// A parent killed with SIGKILL while this test still holds the bridge's
/// stdin open: no EOF ever comes, and the bridge must still be gone within
/// 2 s (the parent-death signal on Linux, the parent-pid watch elsewhere).
#[test]
fn a_parent_killed_without_closing_stdin_takes_the_bridge_with_it() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    // The shell is the parent. A background job's stdin would be /dev/null,
    // so the pipe goes through fd 3; the shell prints the bridge's pid.
    let script = r#"exec 3<&0; "$0" --data-dir "$1" serve <&3 3<&- & echo "$!"; wait"#;
    let mut parent = Command::new("sh")
        .args(["-c", script, crate::harness::BIN])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = parent.stdin.take().unwrap();
    let mut out = BufReader::new(parent.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let bridge: i32 = line.trim().parse().expect("the bridge's pid");
    // The bridge answers, so it is up and has armed its watch.
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":1,"method":"health.ping"}}"#
    )
    .unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["result"]["data"]["pid"], bridge, "{answer}");

    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    let killed = Instant::now();
    let alive = || std::path::Path::new(&format!("/proc/{bridge}")).exists() && !zombie(bridge);
    while alive() && killed.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(),
        "the bridge (pid {bridge}) outlived its parent by 2 s with its stdin still open"
    );
    eprintln!(
        "bridge gone {:?} after its parent's SIGKILL",
        killed.elapsed()
    );
    drop(stdin);
}

/// A process that has exited but not been reaped (its new parent, init,
/// reaps it a moment later) is gone for this purpose.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

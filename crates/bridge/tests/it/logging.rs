//! Logs are JSON lines in the data dir, and never carry a secret.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Bridge, Options, read_dir_text};

#[test]
fn log_lines_are_json_with_the_required_fields() {
    let mut b = Bridge::start_with(Options {
        env: vec![("DBBRIDGE_LOG".into(), "debug".into())],
        ..Default::default()
    });
    b.ok("health.ping", json!({}));
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    let logs = b.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("log line is JSON"))
        .collect();
    assert!(lines.len() >= 3);
    for line in &lines {
        for field in ["timestamp", "level", "message"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }
    assert!(
        lines.iter().any(|l| l["method"] == "health.ping"),
        "request span fields are carried"
    );
}

#[test]
fn secrets_and_passwords_never_reach_a_log_line_or_stderr() {
    let secret = "s3cret-Value-9f2a7";
    let password = "pw-Hunter2-41c9";
    let url_password = "urlPw-77aa-b0b0";
    let mut b = Bridge::start_with(Options {
        env: vec![("DBBRIDGE_LOG".into(), "debug".into())],
        ..Default::default()
    });
    let replies = [
        b.call("secret.store", json!({"key": "conn/app", "value": secret})),
        b.call("session.open", json!({"connection": {"kind": "postgres", "host": "127.0.0.1", "port": 1, "user": "me", "password": password, "database": "x"}})),
        b.call("connection.test", json!({"connection": {"kind": "postgres", "url": format!("postgres://me:{url_password}@127.0.0.1:1/x")}})),
        b.call("session.open", json!({"connection": {"kind": "sqlite", "path": format!("/nonexistent/{secret}/{password}.db")}})),
    ];
    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    let everything = format!(
        "{}\n{}\n{:?}",
        read_dir_text(&b.data_dir),
        b.stderr.lock().unwrap(),
        replies
    );
    assert!(
        b.logs().lines().count() > 5,
        "the test must have produced logs"
    );
    for value in [secret, password, url_password] {
        assert!(!everything.contains(value), "{value} leaked: {everything}");
    }
}

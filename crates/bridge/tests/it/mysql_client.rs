//! MySQL client correctness, each test a defect the review found: `maxRows`
//! on a `CALL`, text in other character sets, ed25519 logins, cancels whose
//! `KILL QUERY` cannot connect or whose server stopped answering, and the
//! caching_sha2 RSA exchange against a scripted peer.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::Bridge;
use crate::mysql::client_ok;
use crate::mysql8::{greeting, packet, read};
use crate::servers::{mysql, private_mysql};

#[test]
fn max_rows_on_a_call_lets_the_procedure_finish() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = b.open_session(&my.connection(&db));
    let setup = b.query(
        &s,
        "CREATE TABLE src AS SELECT seq FROM seq_1_to_5000;\nCREATE TABLE t (x int);\nDELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT seq FROM src; INSERT INTO t VALUES (1); SELECT 'after' AS what; END//",
        json!({}),
    );
    assert_eq!(setup.status(), "completed", "{}", setup.done);
    let out = b.query(&s, "CALL p()", json!({"maxRows": 1}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let results = out.done["results"].as_array().unwrap();
    assert_eq!(results[0]["truncated"], true, "{}", out.done);
    assert_eq!(results[0]["rowCount"], 1);
    assert_eq!(out.rows(1), [json!(["after"])]);
    let count = b.query(&s, "SELECT COUNT(*) FROM t", json!({}));
    assert_eq!(count.rows(0), [json!(["1"])]);
    // A SELECT is still stopped at the server, and the status is current.
    let out = b.query(&s, "BEGIN; SELECT seq FROM src", json!({"maxRows": 3}));
    assert_eq!(out.done["results"][1]["truncated"], true);
    let list = b.ok("session.list", json!({}));
    assert_eq!(list[0]["inTransaction"], true, "{list}");
}

#[test]
fn text_is_read_in_its_own_character_set() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = b.open_session(&my.connection(&db));
    // The statement text is always sent as UTF-8; the results come in latin1.
    let out = b.query(
        &s,
        "SET NAMES latin1; SELECT _latin1 0xE9 AS e, _utf8mb4 'ü' AS u, CONVERT(_utf8mb4 'ß€' USING latin1) AS s",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(1), [json!(["é", "ü", "ß€"])]);
    // A latin1 column read with no conversion at all.
    let out = b.query(
        &s,
        "SET NAMES utf8mb4; CREATE TABLE l (v varchar(10) CHARACTER SET latin1); INSERT INTO l VALUES ('é'); SET character_set_results = NULL; SELECT v FROM l",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(4), [json!(["é"])]);
    // Binary results are bytes: exact, never U+FFFD.
    let out = b.query(
        &s,
        "SET character_set_results = binary; SELECT v FROM l",
        json!({}),
    );
    assert_eq!(out.results[1].columns[0]["kind"], "bytes");
    assert_eq!(out.rows(1), [json!(["6Q=="])]);
    assert!(!out.done.to_string().contains('\u{fffd}'));
}

#[test]
fn two_thousand_ed25519_logins_all_succeed() {
    let Some(my) = private_mysql() else { return };
    let db = my.create_database();
    client_ok(
        &my,
        "",
        &format!(
            "INSTALL SONAME 'auth_ed25519'; \
             CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpass'); \
             GRANT ALL ON {db}.* TO 'ed'@'%'"
        ),
    );
    let mut b = Bridge::start();
    let mut conn = my.connection(&db);
    conn["user"] = json!("ed");
    conn["password"] = json!("edpass");
    let started = Instant::now();
    let mut failures = Vec::new();
    for i in 0..2000 {
        let r = b.call("connection.test", json!({"connection": conn}));
        if r["ok"] != true {
            failures.push(format!("login {i}: {r}"));
        }
    }
    eprintln!(
        "2000 ed25519 logins in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

#[test]
fn a_cancel_whose_kill_cannot_connect_closes_the_session() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let user = format!("one_{db}");
    client_ok(
        &my,
        "",
        &format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1; GRANT ALL ON {db}.* TO '{user}'@'%'"
        ),
    );
    let mut b = Bridge::start();
    let mut conn = my.connection(&db);
    conn["user"] = json!(user);
    conn["password"] = json!("pw");
    let s = b.open_session(&conn);
    let q = b.start_query(
        &s,
        "SELECT COUNT(*) FROM seq_1_to_100000000 a, seq_1_to_100000000 b",
        json!({}),
    );
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, Duration::from_secs(10));
    let took = asked.elapsed();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(took < Duration::from_secs(5), "query.done after {took:?}");
    let closed = b.event_where(Duration::from_secs(10), |e| e["method"] == "session.closed");
    assert_eq!(closed["params"]["reason"], "connectionLost", "{closed}");
    // The bridge serves on, and the server is free for the account again.
    b.ok("health.ping", json!({}));
    let s2 = b.open_session(&my.connection(&db));
    assert_eq!(b.query(&s2, "SELECT 1", json!({})).status(), "completed");
}

#[test]
fn a_cancel_behind_a_dead_network_answers_within_five_seconds() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let (s, q) = b.stalled_mid_stream(
        &my.connection(&db),
        "SELECT seq, REPEAT('x', 200) FROM seq_1_to_50000000",
    );
    let asked = Instant::now();
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, Duration::from_secs(15));
    let took = asked.elapsed();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(took < Duration::from_secs(5), "query.done after {took:?}");
    let closed = b.event_where(Duration::from_secs(10), |e| e["method"] == "session.closed");
    assert_eq!(closed["params"]["reason"], "connectionLost");
    b.ok("health.ping", json!({}));
}

/// A MySQL 8 server as far as the caching_sha2 full-auth exchange goes,
/// built on the documented packet formats; `reply` is what it sends where
/// the client asked for the public key.
fn rsa_peer(reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.write_all(&packet(&greeting(), 0));
        let Some((seq, _response)) = read(&mut s) else {
            return;
        };
        // Perform full authentication.
        let _ = s.write_all(&packet(&[0x01, 0x04], seq + 1));
        let Some((seq, request)) = read(&mut s) else {
            return;
        };
        assert_eq!(request, [0x02], "the client asks for the public key");
        let _ = s.write_all(&packet(&reply, seq + 1));
        // Whatever the client does next, the exchange is over.
        let _ = read(&mut s);
    });
    port
}

#[test]
fn the_rsa_exchange_fails_cleanly_on_errors_bad_keys_and_long_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(&key)
        .status()
        .expect("openssl");
    assert!(made.success());
    let public = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl");
    let mut err = vec![0xff];
    err.extend_from_slice(&2061u16.to_le_bytes());
    err.extend_from_slice(b"#HY000Authentication requires secure connection.");
    let mut good_key = vec![0x01];
    good_key.extend_from_slice(&public.stdout);
    let long_password = "x".repeat(200);
    let cases = [
        (err, "secret", "Authentication requires secure connection"),
        (
            b"\x01not a key at all".to_vec(),
            "secret",
            "public key does not parse",
        ),
        (good_key, long_password.as_str(), "connect with TLS"),
    ];
    let mut b = Bridge::start();
    for (reply, password, message) in cases {
        let port = rsa_peer(reply);
        let e = b.err(
            "connection.test",
            json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": port, "user": "u", "password": password, "sslMode": "disable"}}),
        );
        let text = e.to_string();
        assert!(text.contains(message), "{text}");
        assert!(!text.contains(password) || password == "secret", "{text}");
        assert_ne!(e["code"], "INTERNAL", "{e}");
    }
    b.ok("health.ping", json!({}));
}

//! Postgres queries against a real server: every value type compared with
//! what psql prints, streaming, cancellation, timeouts, transactions, the
//! script splitter, errors and a server that goes away.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Bridge, Options, find};
use crate::servers::{Cluster, Postgres, postgres};

const T: Duration = Duration::from_secs(120);

pub fn open(b: &mut Bridge, pg: &Postgres, db: &str) -> String {
    b.open_session(&pg.connection(db))
}

pub fn psql_ok(pg: &Postgres, db: &str, sql: &str) -> String {
    let out = pg.psql(db, sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_million_rows_stream_exactly_and_max_rows_truncates() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let out = b.query(
        &s,
        "SELECT g, 'row-' || g AS label FROM generate_series(1, 1000000) g",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    let rows = out.rows(0);
    assert_eq!(rows.len(), 1_000_000);
    assert_eq!(out.done["results"][0]["rowCount"], 1_000_000);
    assert_eq!(out.done["results"][0]["command"], "SELECT");
    assert!(out.batches >= 2000, "batches of 500: {}", out.batches);
    for (i, row) in rows.iter().enumerate().step_by(99_991) {
        assert_eq!(row, &json!([i + 1, format!("row-{}", i + 1)]));
    }
    assert_eq!(rows[999_999], json!([1_000_000, "row-1000000"]));

    // maxRows stops the read; the session goes on at once.
    let out = b.query(
        &s,
        "SELECT generate_series(1, 1000000000) AS g",
        json!({"maxRows": 1234}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 1234);
    assert_eq!(out.done["results"][0]["truncated"], true);
    assert!(
        out.done["durationMs"].as_u64().unwrap() < 5000,
        "{}",
        out.done
    );
    let out = b.query(&s, "SELECT 1 AS one", json!({"maxRows": 1}));
    assert_eq!(out.done["results"][0]["truncated"], false);
    assert_eq!(out.rows(0), [json!([1])]);
}

#[test]
fn a_stalled_client_keeps_memory_flat() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start_with(Options::default());
    let s = open(&mut b, &pg, &db);
    let sql =
        "SELECT g, lpad(g::text, 80, '0') AS pad, g * 1.5 AS f FROM generate_series(1, 3000000) g";
    let (out, peak) = b.stream_while_stalled(&s, sql);
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 3_000_000);
    assert!(
        peak > 0 && peak < 100 << 20,
        "RSS while stalled: {} MiB",
        peak >> 20
    );
}

/// Cancels `sql` after `after`, checks it ends `cancelled` promptly and that
/// the session runs its next query.
fn cancel_case(b: &mut Bridge, s: &str, sql: &str, after: Duration, read_first: bool) {
    let started = Instant::now();
    let q = b.start_query(s, sql, json!({}));
    if read_first {
        b.event_where(T, |e| {
            e["method"] == "query.result" && e["params"]["queryId"] == q.as_str()
        });
    }
    std::thread::sleep(after);
    let asked = Instant::now();
    assert_eq!(
        b.ok("query.cancel", json!({"sessionId": s}))["cancelled"],
        true
    );
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "cancelled", "{sql}: {done}");
    assert_eq!(done["error"]["code"], "QUERY_CANCELLED");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{sql}: {:?}",
        asked.elapsed()
    );
    let next = b.query(s, "SELECT 2 AS two", json!({}));
    assert_eq!(next.rows(0), [json!([2])], "{sql}");
    eprintln!(
        "{sql}: {:?} to cancel and run the next query",
        started.elapsed()
    );
}

#[test]
fn cancel_during_planning_before_the_first_row_and_mid_stream() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    // An immutable function in a WHERE clause is folded to a constant by the
    // planner: the sleep happens while planning.
    psql_ok(
        &pg,
        &db,
        "CREATE FUNCTION slow_const() RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(30); RETURN 1; END $$",
    );
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let t = Instant::now();
    cancel_case(
        &mut b,
        &s,
        "SELECT g FROM generate_series(1, 10) g WHERE g = slow_const()",
        Duration::from_millis(500),
        false,
    );
    cancel_case(
        &mut b,
        &s,
        "SELECT pg_sleep(30), 1",
        Duration::from_millis(500),
        false,
    );
    cancel_case(
        &mut b,
        &s,
        // In the select list the series streams (in FROM it would be materialized first).
        "SELECT generate_series(1, 1000000000) AS g",
        Duration::from_millis(100),
        true,
    );
    // The same inside a script: the first statement's result stays, the rest is not run.
    let q = b.start_query(
        &s,
        "SELECT 1 AS a; SELECT pg_sleep(30); SELECT 3",
        json!({}),
    );
    std::thread::sleep(Duration::from_millis(500));
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["results"].as_array().unwrap().len(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "cancels were not prompt"
    );
}

#[test]
fn timeout_cancels_through_the_same_path() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let t = Instant::now();
    let out = b.query(&s, "SELECT pg_sleep(30)", json!({"timeoutMs": 500}));
    assert_eq!(out.status(), "timeout", "{}", out.done);
    assert_eq!(out.done["error"]["code"], "QUERY_TIMEOUT");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

#[test]
fn a_transaction_spans_calls_and_is_invisible_until_commit() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    psql_ok(&pg, &db, "CREATE TABLE t (id int)");
    let mut b = Bridge::start();
    let s1 = open(&mut b, &pg, &db);
    let s2 = open(&mut b, &pg, &db);
    let in_tx = |b: &mut Bridge, s: &str| {
        let listed = b.ok("session.list", json!({}));
        find(&listed, "sessionId", s)["inTransaction"].clone()
    };
    assert_eq!(in_tx(&mut b, &s1), false);
    let out = b.query(&s1, "BEGIN; INSERT INTO t VALUES (1), (2)", json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.done["results"][1]["command"], "INSERT");
    assert_eq!(out.done["results"][1]["affectedRows"], 2);
    assert_eq!(in_tx(&mut b, &s1), true);
    // Reads inside the open transaction (through a cursor) leave it open.
    assert_eq!(
        b.query(&s1, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );
    assert_eq!(in_tx(&mut b, &s1), true);
    assert_eq!(
        b.query(&s2, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["0"])]
    );
    let out = b.query(&s1, "COMMIT", json!({}));
    assert_eq!(out.done["results"][0]["command"], "COMMIT");
    assert_eq!(in_tx(&mut b, &s1), false);
    assert_eq!(
        b.query(&s2, "SELECT count(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );

    // A failed statement leaves the block aborted (and still open) until ROLLBACK.
    b.query(&s1, "BEGIN", json!({}));
    let out = b.query(&s1, "SELECT 1/0", json!({}));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.done["error"]["details"]["sqlstate"], "22012");
    assert_eq!(in_tx(&mut b, &s1), true);
    let out = b.query(&s1, "SELECT 1", json!({}));
    assert_eq!(out.done["error"]["details"]["sqlstate"], "25P02");
    b.query(&s1, "ROLLBACK", json!({}));
    assert_eq!(in_tx(&mut b, &s1), false);
}

#[test]
fn the_splitter_handles_dollar_quoted_bodies_comments_and_parameters() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let script = r#"
-- a comment; with a semicolon
CREATE FUNCTION add_one(x int) RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
  -- inside the body; still the body
  /* nested /* block; */ comment */
  RETURN x + 1;
END;
$body$;
/* a block comment; between statements */
CREATE TABLE "semi;colon" (v text);
INSERT INTO "semi;colon" VALUES ('it''s; fine'), (E'esc\'; aped'), ($$dollar; $$);
SELECT add_one(41) AS answer, $q$;$q$ AS semi;
SELECT v FROM "semi;colon" ORDER BY v
"#;
    let out = b.query(&s, script, json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let commands: Vec<&str> = out.done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["CREATE", "CREATE", "INSERT", "SELECT", "SELECT"]);
    assert_eq!(out.done["results"][2]["affectedRows"], 3);
    assert_eq!(out.rows(3), [json!([42, ";"])]);
    assert_eq!(
        out.rows(4),
        [
            json!(["dollar; "]),
            json!(["esc'; aped"]),
            json!(["it's; fine"])
        ]
    );
    // DDL and DML report their result sets with no columns.
    assert_eq!(out.results[0].columns, Vec::<Value>::new());

    // Parameters bind to every statement that has placeholders, by value.
    let out = b.query(
        &s,
        "SELECT $1::int + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull",
        json!({"params": [41, "x'); DROP TABLE \"semi;colon\"; --", null]}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(
        out.rows(0),
        [json!([42, "x'); DROP TABLE \"semi;colon\"; --", true])]
    );
    let out = b.query(
        &s,
        "SELECT count(*) FROM \"semi;colon\" WHERE v <> $1",
        json!({"params": ["nothing"]}),
    );
    assert_eq!(out.rows(0), [json!(["3"])]);
    let e = b.query(&s, "SELECT $2", json!({"params": [1]}));
    assert_eq!(e.status(), "failed");
    assert_eq!(e.done["error"]["code"], "INVALID_PARAMS");
}

#[test]
fn a_syntax_error_reports_sqlstate_and_position_in_the_script() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    let script = "SELECT 1;\nSELECT 'é' AS x, 2 FROM;";
    let out = b.query(&s, script, json!({}));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.done["results"].as_array().unwrap().len(), 1);
    let e = &out.done["error"];
    assert_eq!(e["code"], "QUERY_FAILED");
    assert_eq!(e["details"]["sqlstate"], "42601");
    assert!(
        e["message"].as_str().unwrap().contains("syntax error"),
        "{e}"
    );
    // 1-based characters into the whole script: the ';' after FROM.
    let expected = script.chars().count();
    assert_eq!(e["details"]["position"], expected, "{e}");
    // With a parameter written in before the error, the position still points into the caller's text.
    let script = "SELECT $1, FROM x";
    let out = b.query(&s, script, json!({"params": ["a long parameter value"]}));
    assert_eq!(
        out.done["error"]["details"]["position"],
        script.find("FROM").unwrap() + 1
    );
}

#[test]
fn a_server_restart_mid_query_fails_it_and_closes_the_session() {
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let pg = &cluster.pg;
    let db = pg.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, pg, &db);
    let other = open(&mut b, pg, &db);
    let q = b.start_query(&s, "SELECT pg_sleep(60)", json!({}));
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "CONNECTION_FAILED", "{done}");
    let closed = b.event_where(T, |e| {
        e["method"] == "session.closed" && e["params"]["sessionId"] == s.as_str()
    });
    assert_eq!(closed["params"]["reason"], "connectionLost");
    // The idle session on the same server learns of it too.
    let closed = b.event_where(T, |e| {
        e["method"] == "session.closed" && e["params"]["sessionId"] == other.as_str()
    });
    assert_eq!(closed["params"]["reason"], "connectionLost");
    assert_eq!(
        b.err("query.run", json!({"sessionId": s, "sql": "SELECT 1"}))["code"],
        "SESSION_NOT_FOUND"
    );
    // The bridge serves on: a new session on the restarted server works.
    let s = open(&mut b, pg, &db);
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

#[test]
fn bytes_that_are_not_utf8_in_a_sql_ascii_database_fail_clearly_and_the_session_goes_on() {
    let Some(pg) = postgres() else { return };
    let db = format!("{}_ascii", pg.create_database());
    psql_ok(
        &pg,
        "postgres",
        &format!(
            "CREATE DATABASE {db} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    );
    // A Latin-1 byte, which SQL_ASCII stores as it is.
    psql_ok(
        &pg,
        &db,
        "CREATE TABLE t (n int, v text); INSERT INTO t VALUES (1, E'caf\\xe9'), (2, 'plain')",
    );
    let mut b = Bridge::start();
    let s = open(&mut b, &pg, &db);
    // The server refuses to send it as UTF-8: the query fails with its SQLSTATE.
    let out = b.query(&s, "SELECT n, v FROM t ORDER BY n", json!({}));
    assert_eq!(out.status(), "failed", "{}", out.done);
    assert_eq!(
        out.done["error"]["details"]["sqlstate"], "22021",
        "{}",
        out.done
    );
    // The rest of the table reads, through COPY and through a cursor.
    for extra in [json!({}), json!({"maxRows": 5})] {
        let out = b.query(&s, "SELECT n, v FROM t WHERE n = 2", extra);
        assert_eq!(out.status(), "completed", "{}", out.done);
        assert_eq!(out.rows(0), [json!([2, "plain"])]);
    }
}

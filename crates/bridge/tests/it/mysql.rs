//! MySQL/MariaDB against a real server (a throwaway MariaDB): connections,
//! values compared with what the `mariadb` client prints, streaming,
//! `KILL QUERY` cancellation, the DELIMITER-aware splitter, errors and a
//! server that dies.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Bridge, Options, find};
use crate::servers::{Mysql, mysql, private_mysql};

const T: Duration = Duration::from_secs(120);

pub fn open(b: &mut Bridge, my: &Mysql, db: &str) -> String {
    b.open_session(&my.connection(db))
}

pub fn client_ok(my: &Mysql, db: &str, sql: &str) -> String {
    let out = my.client(db, sql);
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn connection_test_reports_version_and_flavour_and_auth_failure_hides_the_password() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let data = b.ok("connection.test", json!({"connection": my.connection(&db)}));
    assert_eq!(data["kind"], "mysql");
    assert_eq!(data["flavour"], "mariadb");
    let version = client_ok(&my, &db, "SELECT VERSION()");
    assert_eq!(data["serverVersion"], version.trim());
    let url = format!(
        "mysql://{}:{}@{}:{}/{}",
        my.user, my.password, my.host, my.port, db
    );
    let data = b.ok(
        "connection.test",
        json!({"connection": {"kind": "mysql", "url": url}}),
    );
    assert_eq!(data["flavour"], "mariadb");

    let mut conn = my.connection(&db);
    conn["password"] = json!("Wrong-My-Password-1");
    let e = b.err("connection.test", json!({"connection": conn}));
    assert_eq!(e["code"], "AUTH_FAILED", "{e}");
    assert_eq!(e["details"]["errno"], 1045);
    assert_eq!(e["details"]["sqlstate"], "28000");
    assert!(!e.to_string().contains("Wrong-My-Password-1"));

    // A server without TLS (the throwaway one has no certificate):
    // `prefer` goes on in plain text, `require` refuses.
    let mut conn = my.connection(&db);
    conn["sslMode"] = json!("prefer");
    b.ok("connection.test", json!({"connection": conn}));
    if client_ok(&my, &db, "SELECT @@have_ssl").trim() != "YES" {
        conn["sslMode"] = json!("require");
        let e = b.err("connection.test", json!({"connection": conn}));
        assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");
        assert!(e["message"].as_str().unwrap().contains("TLS"), "{e}");
    }

    // Nobody listening: CONNECTION_FAILED.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = b.err(
        "connection.test",
        json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": port, "user": "u", "password": "p", "connectTimeoutMs": 2000}}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");
}

#[test]
fn an_ed25519_account_logs_in_through_an_auth_switch_and_urls_are_decoded() {
    // The server's handshake offers mysql_native_password; an ed25519
    // account makes it switch plugins mid-login.
    let Some(my) = private_mysql() else { return };
    let db = my.create_database();
    let password = "p@ss:w/rd%ed";
    client_ok(
        &my,
        "",
        &format!(
            "INSTALL SONAME 'auth_ed25519'; \
             CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}'); \
             GRANT ALL ON {db}.* TO 'ed'@'%'"
        ),
    );
    let mut b = Bridge::start();
    let mut conn = my.connection(&db);
    conn["user"] = json!("ed");
    conn["password"] = json!(password);
    let s = b.open_session(&conn);
    let out = b.query(&s, "SELECT CURRENT_USER()", json!({}));
    assert_eq!(out.rows(0), &[json!(["ed@%"])]);

    // The same account by URL, its password percent-encoded.
    let url = format!(
        "mysql://ed:{}@{}:{}/{db}",
        "p%40ss%3Aw%2Frd%25ed", my.host, my.port
    );
    b.ok(
        "connection.test",
        json!({"connection": {"kind": "mysql", "url": url}}),
    );

    conn["password"] = json!("not-the-ed-password");
    let e = b.err("connection.test", json!({"connection": conn}));
    assert_eq!(e["code"], "AUTH_FAILED", "{e}");
    assert_eq!(e["details"]["errno"], 1045, "{e}");
    assert!(!e.to_string().contains("not-the-ed-password"));

    // Sessions and tests that ended said goodbye: no aborted connection.
    b.ok("session.close", json!({"sessionId": s}));
    std::thread::sleep(Duration::from_millis(500));
    let aborted = client_ok(&my, "", "SHOW GLOBAL STATUS LIKE 'Aborted_clients'");
    assert_eq!(aborted.trim(), "Aborted_clients\t0");

    // URL parameters are not guessed at.
    let e = b.err(
        "connection.test",
        json!({"connection": {"kind": "mysql", "url": format!("mysql://ed@{}:{}/{db}?ssl-mode=REQUIRED", my.host, my.port)}}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    assert!(e["message"].as_str().unwrap().contains("ssl-mode"), "{e}");

    // Sessions still open when the bridge shuts down say goodbye too: the
    // bridge waits for their session threads to write it before exiting.
    conn["password"] = json!(password);
    for _ in 0..10 {
        b.open_session(&conn);
    }
    b.close_stdin();
    assert!(b.wait_exit(Duration::from_secs(10)).success());
    std::thread::sleep(Duration::from_millis(500));
    let aborted = client_ok(&my, "", "SHOW GLOBAL STATUS LIKE 'Aborted_clients'");
    assert_eq!(aborted.trim(), "Aborted_clients\t0");
}

#[test]
fn a_million_rows_stream_exactly_and_max_rows_stops_the_server() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    let out = b.query(
        &s,
        "SELECT seq, CONCAT('row-', seq) AS label FROM seq_1_to_1000000",
        json!({}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    let rows = out.rows(0);
    assert_eq!(rows.len(), 1_000_000);
    assert_eq!(out.results[0].columns[0]["kind"], "bigint");
    for (i, row) in rows.iter().enumerate().step_by(99_991) {
        assert_eq!(row, &json!([(i + 1).to_string(), format!("row-{}", i + 1)]));
    }
    let t = Instant::now();
    let out = b.query(
        &s,
        "SELECT a.seq FROM seq_1_to_100000 a, seq_1_to_100000 b",
        json!({"maxRows": 1000}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 1000);
    assert_eq!(out.done["results"][0]["truncated"], true);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

#[test]
fn a_stalled_client_keeps_memory_flat() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start_with(Options::default());
    let s = open(&mut b, &my, &db);
    let sql = "SELECT seq, LPAD(seq, 80, '0') AS pad FROM seq_1_to_2000000";
    let (out, peak) = b.stream_while_stalled(&s, sql);
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0).len(), 2_000_000);
    assert!(
        peak > 0 && peak < 100 << 20,
        "RSS while stalled: {} MiB",
        peak >> 20
    );
}

#[test]
fn kill_query_cancels_and_the_transaction_survives() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    client_ok(&my, &db, "CREATE TABLE t (id int) ENGINE=InnoDB");
    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    let other = open(&mut b, &my, &db);
    let out = b.query(&s, "BEGIN; INSERT INTO t VALUES (1), (2)", json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.done["results"][1]["affectedRows"], 2);

    // Mid-SLEEP.
    let q = b.start_query(&s, "SELECT SLEEP(30)", json!({}));
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    b.ok("query.cancel", json!({"sessionId": s}));
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(asked.elapsed() < Duration::from_secs(5));
    // Mid-stream.
    let q = b.start_query(
        &s,
        "SELECT a.seq FROM seq_1_to_100000 a, seq_1_to_100000 b",
        json!({}),
    );
    b.event_where(T, |e| {
        e["method"] == "query.result" && e["params"]["queryId"] == q.as_str()
    });
    b.ok("query.cancel", json!({"sessionId": s}));
    assert_eq!(b.wait_done(&q, T)["status"], "cancelled");

    // The transaction is still open: its rows are visible here, not elsewhere.
    let listed = b.ok("session.list", json!({}));
    let me = find(&listed, "sessionId", &s);
    assert_eq!(me["inTransaction"], true);
    assert_eq!(
        b.query(&s, "SELECT COUNT(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );
    assert_eq!(
        b.query(&other, "SELECT COUNT(*) FROM t", json!({})).rows(0),
        [json!(["0"])]
    );
    b.query(&s, "COMMIT", json!({}));
    assert_eq!(
        b.query(&other, "SELECT COUNT(*) FROM t", json!({})).rows(0),
        [json!(["2"])]
    );

    // A timeout takes the same path.
    let out = b.query(&s, "SELECT SLEEP(30)", json!({"timeoutMs": 500}));
    assert_eq!(out.status(), "timeout");
    assert_eq!(b.query(&s, "SELECT 3", json!({})).rows(0), [json!([3])]);
}

#[test]
fn delimiter_scripts_errors_and_parameters() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    let script = "CREATE TABLE `semi;colon` (id int AUTO_INCREMENT PRIMARY KEY, v text);\n\
        # a comment; with a semicolon\n\
        DELIMITER //\n\
        CREATE PROCEDURE add_row(IN x text)\n\
        BEGIN\n  INSERT INTO `semi;colon` (v) VALUES (x); -- inside; still the body\n  SELECT COUNT(*) AS n FROM `semi;colon`;\nEND//\n\
        DELIMITER ;\n\
        INSERT INTO `semi;colon` (v) VALUES ('it''s; fine'), (\"dq;\");\n\
        CALL add_row('via; proc');\n\
        SELECT v FROM `semi;colon` ORDER BY id";
    let out = b.query(&s, script, json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let results = out.done["results"].as_array().unwrap();
    assert_eq!(results[0]["command"], "CREATE");
    assert_eq!(results[1]["command"], "CREATE");
    assert_eq!(results[2]["command"], "INSERT");
    assert_eq!(results[2]["affectedRows"], 2);
    assert_eq!(results[2]["lastInsertId"], "1");
    let last = out.results.len() - 1;
    assert_eq!(
        out.rows(last),
        [json!(["it's; fine"]), json!(["dq;"]), json!(["via; proc"])]
    );

    let out = b.query(&s, "SELECT 1;\nSELEC oops", json!({}));
    assert_eq!(out.status(), "failed");
    let e = &out.done["error"];
    assert_eq!(e["code"], "QUERY_FAILED");
    assert_eq!(e["details"]["errno"], 1064);
    assert_eq!(e["details"]["sqlstate"], "42000");
    // A query the server refuses to prepare fails with the same error as text.
    let out = b.query(&s, "SELECT * FROM no_such_table", json!({}));
    assert_eq!(out.status(), "failed", "{}", out.done);
    let e = &out.done["error"];
    assert_eq!(e["details"]["errno"], 1146, "{e}");
    assert_eq!(e["details"]["sqlstate"], "42S02", "{e}");

    // What the client library would read as placeholders: data inside a
    // string, and outside one the server's own error, naming the text as given.
    let out = b.query(&s, "SELECT ':name ?' AS t, 1 AS n", json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0), [json!([":name ?", 1])]);
    let out = b.query(&s, "SELECT 1 AS n FROM DUAL WHERE 1 = :name", json!({}));
    assert_eq!(out.status(), "failed", "{}", out.done);
    let e = &out.done["error"];
    assert_eq!(e["details"]["errno"], 1064, "{e}");
    assert!(e["message"].as_str().unwrap().contains(":name"), "{e}");

    let out = b.query(
        &s,
        "SELECT ? + 1 AS n, ? AS t, ? IS NULL AS isnull",
        json!({"params": [41, "x'); DROP TABLE `semi;colon`; --", null]}),
    );
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(
        out.rows(0),
        [json!([42, "x'); DROP TABLE `semi;colon`; --", 1])]
    );
}

#[test]
fn values_and_statements_beyond_one_16_mib_frame_in_both_protocols() {
    // A packet over 16 MiB travels as several frames, in both directions.
    let Some(my) = private_mysql() else { return };
    client_ok(&my, "", "SET GLOBAL max_allowed_packet = 67108864");
    let db = my.create_database();
    // A statement that long needs a message cap above the default 16 MiB.
    let mut b = Bridge::start_with(Options {
        args: vec!["--max-message-bytes".into(), "33554432".into()],
        ..Options::default()
    });
    let s = open(&mut b, &my, &db);
    let big = 20_000_000;
    for (sql, protocol) in [
        (
            format!("SELECT REPEAT('ab', {}) AS big, 42 AS after", big / 2),
            "binary",
        ),
        (
            format!(
                "EXECUTE IMMEDIATE 'SELECT REPEAT(''ab'', {}) AS big, 42 AS after'",
                big / 2
            ),
            "text",
        ),
    ] {
        let out = b.query(&s, &sql, json!({}));
        assert_eq!(out.status(), "completed", "{protocol}: {}", out.done);
        let row = &out.rows(0)[0];
        let text = row[0].as_str().unwrap();
        assert_eq!(text.len(), big, "{protocol}");
        assert!(
            text.starts_with("abab") && text.ends_with("abab"),
            "{protocol}"
        );
        assert_eq!(row[1], 42, "{protocol}");
    }
    // A statement of 17 MB goes out in two frames.
    let literal = "x".repeat(17_000_000);
    let out = b.query(&s, &format!("SELECT LENGTH('{literal}') AS n"), json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(0)[0][0], 17_000_000);
    // And the connection is in step after all of it.
    let out = b.query(&s, "SELECT 1 + 1 AS two", json!({}));
    assert_eq!(out.rows(0), &[json!([2])]);
}

#[test]
fn a_killed_server_fails_the_query_and_closes_the_session() {
    let Some(my) = private_mysql() else { return };
    let db = my.create_database();
    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    let q = b.start_query(&s, "SELECT SLEEP(60)", json!({}));
    std::thread::sleep(Duration::from_millis(500));
    my.kill();
    let done = b.wait_done(&q, T);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "CONNECTION_FAILED", "{done}");
    let closed = b.event_where(T, |e| {
        e["method"] == "session.closed" && e["params"]["sessionId"] == s.as_str()
    });
    assert_eq!(closed["params"]["reason"], "connectionLost");
    assert_eq!(b.ok("health.ping", json!({}))["sessions"], 0);
}

#[test]
fn metadata_of_a_fixture() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    let other = my.create_database();
    client_ok(
        &my,
        &other,
        "CREATE TABLE region (code varchar(10), country char(2), name text NOT NULL, PRIMARY KEY (code, country)) ENGINE=InnoDB",
    );
    client_ok(
        &my,
        &db,
        &format!(
            "CREATE TABLE customer (
                id bigint unsigned AUTO_INCREMENT PRIMARY KEY,
                email varchar(200) NOT NULL COMMENT 'where we write',
                price decimal(12,2) DEFAULT 0.00,
                region_code varchar(10), region_country char(2),
                email_upper varchar(200) AS (UPPER(email)) STORED,
                bio text,
                UNIQUE KEY email_unique (email),
                KEY bio_prefix (bio(10)),
                FOREIGN KEY fk_region (region_code, region_country) REFERENCES {other}.region (code, country)
                    ON UPDATE CASCADE ON DELETE SET NULL
             ) ENGINE=InnoDB COMMENT='people who pay';
             CREATE VIEW customer_emails AS SELECT id, email FROM customer;"
        ),
    );
    let mut b = Bridge::start();
    let s = open(&mut b, &my, &db);
    let schemas = b.ok("metadata.listSchemas", json!({"sessionId": s}));
    assert_eq!(find(&schemas, "name", &db)["isSystem"], false);
    assert_eq!(find(&schemas, "name", "mysql")["isSystem"], true);
    let tables = b.ok("metadata.listTables", json!({"sessionId": s, "schema": db}));
    assert_eq!(find(&tables, "name", "customer")["type"], "table");
    assert_eq!(
        find(&tables, "name", "customer")["comment"],
        "people who pay"
    );
    assert_eq!(find(&tables, "name", "customer_emails")["type"], "view");

    let t = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": db, "table": "customer"}),
    );
    let col = |name: &str| find(&t["columns"], "name", name);
    assert_eq!(col("id")["dbType"], "bigint(20) unsigned");
    assert_eq!(col("id")["kind"], "bigint");
    assert_eq!(col("id")["autoIncrement"], true);
    assert_eq!(col("email")["comment"], "where we write");
    assert_eq!(col("email")["nullable"], false);
    assert_eq!(col("price")["dbType"], "decimal(12,2)");
    assert_eq!(col("price")["kind"], "decimal");
    assert_eq!(col("price")["default"], "0.00");
    assert_eq!(col("email_upper")["generated"], "stored");
    assert_eq!(t["primaryKey"]["columns"], json!(["id"]));
    let idx = |name: &str| find(&t["indexes"], "name", name);
    assert_eq!(idx("email_unique")["unique"], true);
    assert_eq!(idx("bio_prefix")["columns"], json!(["bio(10)"]));
    assert_eq!(idx("PRIMARY")["primary"], true);
    let fk = &t["foreignKeys"][0];
    assert_eq!(fk["columns"], json!(["region_code", "region_country"]));
    assert_eq!(fk["referencedSchema"], other.as_str());
    assert_eq!(fk["referencedColumns"], json!(["code", "country"]));
    assert_eq!(fk["onUpdate"], "CASCADE");
    assert_eq!(fk["onDelete"], "SET NULL");
    let e = b.err(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": db, "table": "nope"}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS");
}

#[test]
fn tls_modes_against_a_server_with_a_certificate_and_kill_over_tls() {
    let Some((my, ca)) = crate::servers::private_mysql_tls() else {
        return;
    };
    let db = my.create_database();
    let mut b = Bridge::start();
    let with = |mode: &str, root: Option<&std::path::Path>| {
        let mut c = my.connection(&db);
        c["sslMode"] = json!(mode);
        if let Some(root) = root {
            c["sslRootCert"] = json!(root);
        }
        c
    };
    for conn in [
        with("prefer", None),
        with("require", None),
        with("verify-ca", Some(&ca)),
        with("verify-full", Some(&ca)),
    ] {
        let s = b.open_session(&conn);
        let out = b.query(&s, "SHOW SESSION STATUS LIKE 'Ssl_cipher'", json!({}));
        let cipher = out.rows(0)[0][1].as_str().unwrap_or_default().to_string();
        assert!(!cipher.is_empty(), "{conn}: not encrypted");
    }
    let e = b.err(
        "connection.test",
        json!({"connection": with("verify-full", None)}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED", "{e}");

    // KILL QUERY goes over a TLS connection of its own.
    let s = b.open_session(&with("verify-full", Some(&ca)));
    let q = b.start_query(&s, "SELECT SLEEP(30)", json!({}));
    std::thread::sleep(Duration::from_millis(500));
    b.ok("query.cancel", json!({"sessionId": s}));
    assert_eq!(b.wait_done(&q, T)["status"], "cancelled");
    assert_eq!(b.query(&s, "SELECT 1", json!({})).rows(0), [json!([1])]);
}

//! One walk over every method that takes a secret, against real servers:
//! `connection.test`, `connection.save`, `session.open` (by spec, by URL,
//! by saved connection), `secret.store`, `secret.unlock`, `backup.start`,
//! `backup.restore` (with a target that carries a password), and
//! `export.start` (which reopens the session's connection), with right and
//! wrong passwords. Throughout, the bridge's and its children's argv and
//! environment are sampled; at the end the logs, stderr, every answer and
//! event, and the data dir are searched. No secret may appear anywhere.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Bridge, Options, children_of, read_dir_text};
use crate::mysql::client_ok;
use crate::servers::{mysql, postgres};

/// The argv and environment of the bridge and of its child processes.
fn process_text(pid: u32) -> String {
    let mut out = String::new();
    for what in ["cmdline", "environ"] {
        if let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{what}")) {
            out.push_str(&String::from_utf8_lossy(&bytes).replace('\0', " "));
            out.push('\n');
        }
    }
    for (cmdline, environ) in children_of(pid) {
        out.push_str(&cmdline);
        out.push('\n');
        out.push_str(&environ);
        out.push('\n');
    }
    out
}

#[test]
fn no_secret_reaches_argv_environment_logs_answers_or_files() {
    let (Some(pg), Some(my)) = (postgres(), mysql()) else {
        return;
    };
    let tag = std::process::id();
    let pg_pw = format!("PgWalkPw{tag}x");
    let my_pw = format!("MyWalkPw{tag}x");
    let wrong = format!("WrongWalkPw{tag}x");
    let stored = format!("StoredWalk{tag}x");
    let phrase = format!("PhraseWalk{tag}x");
    let secrets = [&pg_pw, &my_pw, &wrong, &stored, &phrase];

    let pg_db = pg.create_database();
    let pg_user = format!("walker_{pg_db}");
    let out = pg.psql(
        &pg_db,
        &format!(
            "CREATE ROLE {pg_user} LOGIN PASSWORD '{pg_pw}'; GRANT ALL ON SCHEMA public TO {pg_user}; \
             CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g; \
             GRANT SELECT ON t TO {pg_user}"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let my_db = my.create_database();
    let my_user = format!("walker_{my_db}");
    client_ok(
        &my,
        "",
        &format!(
            "CREATE USER '{my_user}'@'%' IDENTIFIED BY '{my_pw}'; GRANT ALL ON *.* TO '{my_user}'@'%'"
        ),
    );
    client_ok(
        &my,
        &my_db,
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000",
    );

    let pg_conn = |pw: &str| {
        json!({"kind": "postgres", "host": pg.host, "port": pg.port, "user": pg_user, "password": pw,
               "database": pg_db, "sslMode": "disable"})
    };
    let my_conn = |pw: &str| {
        json!({"kind": "mysql", "host": my.host, "port": my.port, "user": my_user, "password": pw,
               "database": my_db, "sslMode": "disable"})
    };

    let mut b = Bridge::start_with(Options {
        env: vec![
            ("DBBRIDGE_LOG".into(), "debug".into()),
            ("DBBRIDGE_SECRET_BACKEND".into(), "file".into()),
        ],
        ..Default::default()
    });
    let mut seen = String::new();
    let mut processes = String::new();
    // Every answer and event kept, and the processes sampled, after each call.
    let record = |b: &mut Bridge, seen: &mut String, v: Value| {
        seen.push_str(&v.to_string());
        seen.push('\n');
        seen.push_str(&process_text(b.pid()));
    };

    // Right and wrong passwords on both engines.
    for connection in [pg_conn(&pg_pw), my_conn(&my_pw)] {
        let v = b.ok("connection.test", json!({"connection": connection}));
        record(&mut b, &mut seen, v);
    }
    for connection in [pg_conn(&wrong), my_conn(&wrong)] {
        let e = b.err("connection.test", json!({"connection": connection}));
        assert_eq!(e["code"], "AUTH_FAILED", "{e}");
        record(&mut b, &mut seen, e);
    }
    let url = format!(
        "postgres://{pg_user}:{pg_pw}@{}:{}/{pg_db}?sslmode=disable",
        pg.host, pg.port
    );
    let v = b.ok(
        "connection.test",
        json!({"connection": {"kind": "postgres", "url": url}}),
    );
    record(&mut b, &mut seen, v);

    // The secret store, a saved connection, and sessions of every kind.
    let v = b.ok("secret.store", json!({"key": "walk", "value": stored}));
    record(&mut b, &mut seen, v);
    let saved = b.ok(
        "connection.save",
        json!({"name": "walk", "connection": pg_conn(&pg_pw)}),
    );
    record(&mut b, &mut seen, saved.clone());
    let saved_id = saved["connectionId"].as_str().unwrap().to_string();
    let by_saved = b.open_session(&json!({"connectionId": saved_id}));
    let pg_session = b.open_session(&pg_conn(&pg_pw));
    let my_session = b.open_session(&my_conn(&my_pw));
    let e = b.err("session.open", json!({"connection": my_conn(&wrong)}));
    record(&mut b, &mut seen, e);

    // Jobs: exports reopen the session's connection; backups and restores
    // run the engines' tools. Their children are sampled while they run.
    let dir = tempfile::tempdir().unwrap();
    for (session, name) in [
        (&pg_session, "pg"),
        (&my_session, "my"),
        (&by_saved, "saved"),
    ] {
        let dest = dir.path().join(format!("{name}.csv"));
        let data = b.ok(
            "export.start",
            json!({"sessionId": session, "source": {"sql": "SELECT * FROM t"}, "format": "csv",
                   "destination": dest.to_str().unwrap()}),
        );
        let id = data["exportId"].as_str().unwrap().to_string();
        let (events, done) = b.job_events("exportId", &id, "export.done");
        assert_eq!(done["status"], "completed", "{done}");
        record(&mut b, &mut seen, json!([events, done]));
    }
    for connection in [pg_conn(&pg_pw), my_conn(&my_pw)] {
        let data = b.ok("backup.start", json!({"connection": connection}));
        let id = data["backupId"].as_str().unwrap().to_string();
        // Sample the tool's argv and environment while it runs.
        let started = Instant::now();
        while b.count_events(|e| {
            e["method"] == "backup.done" && e["params"]["backupId"] == id.as_str()
        }) == 0
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "backup {id} hangs"
            );
            processes.push_str(&process_text(b.pid()));
            std::thread::sleep(Duration::from_millis(20));
        }
        let (_, done) = b.job_events("backupId", &id, "backup.done");
        assert_eq!(done["status"], "completed", "{done}");
        record(&mut b, &mut seen, done);
    }
    // A restore whose target carries a password (a fresh MySQL database).
    let backups = b.ok("backup.list", json!({}));
    record(&mut b, &mut seen, backups.clone());
    let my_backup = backups
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "mysql")
        .unwrap()["backupId"]
        .clone();
    let mut target = my_conn(&my_pw);
    target["database"] = json!(format!("{my_db}_restored"));
    let data = b.ok(
        "backup.restore",
        json!({"backupId": my_backup, "target": target}),
    );
    let id = data["restoreId"].as_str().unwrap().to_string();
    let (events, done) = b.job_events("restoreId", &id, "backup.restore.done");
    record(&mut b, &mut seen, json!([events, done]));
    let v = b.ok("session.list", json!({}));
    record(&mut b, &mut seen, v);
    let v = b.ok("connection.list", json!({}));
    record(&mut b, &mut seen, v);
    let v = b.ok("secret.unlock", json!({"passphrase": phrase}));
    record(&mut b, &mut seen, v);

    b.ok("bridge.shutdown", json!({}));
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    let files = read_dir_text(&b.data_dir);
    let stderr = b.stderr.lock().unwrap().clone();
    assert!(b.logs().lines().count() > 20, "the walk was logged");
    assert!(processes.contains("dbbridge"), "processes were sampled");
    let processes = processes + &seen;
    for secret in secrets {
        for (place, text) in [
            ("an answer, an event, argv or the environment", &processes),
            ("the data dir (logs, catalog)", &files),
            ("stderr", &stderr),
        ] {
            assert!(!text.contains(secret.as_str()), "{secret} found in {place}");
        }
    }
}

//! Postgres backups through `pg_dump`, as jobs: progress from its verbose
//! output, the password kept out of its arguments and environment, cancel,
//! and a dump that `psql` loads into a fresh database equal to the source.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Bridge, children_of};
use crate::servers::{Postgres, postgres};

const FIXTURE: &str = "
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer(id), total numeric(12,2), note text);
CREATE TABLE audit (order_id int, at timestamptz DEFAULT now());
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (order_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW WHEN (NEW.id % 1000 = 0) EXECUTE FUNCTION log_order();
CREATE FUNCTION gross(n numeric) RETURNS numeric LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT n * 1.2; END;
CREATE VIEW big_orders AS SELECT id, gross(total) FROM orders WHERE total > 100;
INSERT INTO customer SELECT g, 'customer ' || g FROM generate_series(1, 100) g;
INSERT INTO orders SELECT g, 1 + g % 100, g * 0.25, repeat('n', 40) FROM generate_series(1, 200000) g;
";

fn checksums(pg: &Postgres, db: &str) -> String {
    let out = pg.psql(
        db,
        "SELECT string_agg(t || ' ' || c, ',' ORDER BY t) FROM (
           SELECT 'customer' t, md5(string_agg(x::text, ',' ORDER BY x.id)) c FROM customer x UNION ALL
           SELECT 'orders', md5(string_agg(x::text, ',' ORDER BY x.id)) FROM orders x UNION ALL
           SELECT 'audit', count(*)::text FROM audit UNION ALL
           SELECT 'view', md5(pg_get_viewdef('big_orders'::regclass)) UNION ALL
           SELECT 'routines', md5(string_agg(pg_get_functiondef(p.oid), ',' ORDER BY proname)) FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
         ) s",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn until_done(b: &mut Bridge, id: &str) -> (Vec<Value>, Value) {
    let (events, done) = b.job_events("backupId", id, "backup.done");
    for ev in &events {
        assert_eq!(ev["method"], "backup.progress", "unexpected {ev}");
    }
    (
        events.into_iter().map(|e| e["params"].clone()).collect(),
        done,
    )
}

/// The command line and environment of every pg_dump the bridge runs now.
fn pg_dumps_of(bridge_pid: u32) -> Vec<(String, String)> {
    children_of(bridge_pid)
        .into_iter()
        .filter(|(cmdline, _)| cmdline.contains("pg_dump"))
        .collect()
}

#[test]
fn a_postgres_backup_keeps_its_password_secret_and_loads_into_a_fresh_database() {
    let Some(pg) = postgres() else { return };
    let source = pg.create_database();
    let out = pg.psql(&source, FIXTURE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A role with a password of its own, so there is one to leak.
    let secret = format!("pw-{}-not-in-argv", std::process::id());
    let role = format!("dumper_{source}");
    let out = pg.psql(
        &source,
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{secret}'"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = pg.connection(&source);
    conn["user"] = json!(role);
    conn["password"] = json!(secret);
    // A lock held elsewhere keeps pg_dump waiting while its process is read.
    let mut locker = Bridge::start();
    let ls = locker.open_session(&pg.connection(&source));
    locker.query(
        &ls,
        "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE",
        json!({}),
    );

    let mut b = Bridge::start();
    let id = b.ok("backup.start", json!({"connection": conn}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = pg_dumps_of(b.pid());
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!seen.is_empty(), "no pg_dump child found");
    for (cmdline, environ) in &seen {
        assert!(!cmdline.contains(&secret), "password in argv: {cmdline}");
        assert!(!environ.contains(&secret), "password in the environment");
        assert!(!environ.contains("PGPASSWORD="), "PGPASSWORD set");
        assert!(environ.contains("PGPASSFILE="));
    }
    let passfile = seen[0]
        .1
        .split(' ')
        .find_map(|kv| kv.strip_prefix("PGPASSFILE="))
        .unwrap()
        .to_string();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&passfile).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    locker.query(&ls, "COMMIT", json!({}));

    let (progress, done) = until_done(&mut b, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        !Path::new(&passfile).exists(),
        "the password file was left behind"
    );
    assert!(!Path::new(&passfile).parent().unwrap().exists());
    let percents: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["percent"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(percents.last(), Some(&100.0));
    assert!(
        progress
            .iter()
            .any(|p| p["currentObject"] == "public.orders"),
        "{progress:?}"
    );
    let list = b.ok("backup.list", json!({}));
    assert!(
        list[0]["toolVersion"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL")
    );
    assert!(list[0]["serverVersion"].as_str().is_some());
    let text = std::fs::read_to_string(done["path"].as_str().unwrap()).unwrap();
    assert!(!text.contains(&secret));
    // Restored through the bridge into a fresh database: equal by checksums.
    let target = pg.create_database();
    let restored = restore(&mut b, &id, json!({"target": pg.connection(&target)}));
    assert_eq!(restored["status"], "completed", "{restored}");
    assert_eq!(checksums(&pg, &source), checksums(&pg, &target));
    // A restore that fails midway (the objects exist already) leaves the
    // target exactly as it was: one transaction.
    let out = pg.psql(&target, "INSERT INTO customer VALUES (1000, 'added after')");
    assert!(out.status.success());
    let before = checksums(&pg, &target);
    let failed = restore(&mut b, &id, json!({"target": pg.connection(&target)}));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "RESTORE_FAILED");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{failed}"
    );
    assert_eq!(checksums(&pg, &target), before);
    // pg_dump's custom archive, restored through pg_restore: equal too.
    let custom = b.ok(
        "backup.start",
        json!({"connection": conn, "options": {"format": "custom"}}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, cdone) = until_done(&mut b, &custom);
    assert_eq!(cdone["status"], "completed", "{cdone}");
    let archive = std::fs::read(cdone["path"].as_str().unwrap()).unwrap();
    assert!(archive.starts_with(b"PGDMP"), "not a custom archive");
    let from_archive = pg.create_database();
    let restored = restore(
        &mut b,
        &custom,
        json!({"target": pg.connection(&from_archive)}),
    );
    assert_eq!(restored["status"], "completed", "{restored}");
    assert_eq!(checksums(&pg, &source), checksums(&pg, &from_archive));
    // A dump by a pg_dump newer than the target server is refused up front.
    let catalog = rusqlite::Connection::open(b.data_dir.join("bridge.db")).unwrap();
    catalog
        .execute(
            "UPDATE backups SET tool_version = 'pg_dump (PostgreSQL) 99.1' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    let e = b.err(
        "backup.restore",
        json!({"backupId": id, "target": pg.connection(&target)}),
    );
    assert_eq!(e["code"], "TOOL_VERSION_MISMATCH", "{e}");
    assert!(e["message"].as_str().unwrap().contains("99"), "{e}");
    assert_eq!(checksums(&pg, &target), before);
}

fn restore(b: &mut Bridge, id: &str, extra: Value) -> Value {
    let mut params = json!({"backupId": id});
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let rid = b.ok("backup.restore", params)["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    b.job_events("restoreId", &rid, "backup.restore.done").1
}

#[test]
fn cancelling_a_postgres_backup_kills_pg_dump_and_leaves_no_file() {
    let Some(pg) = postgres() else { return };
    let source = pg.create_database();
    let out = pg.psql(
        &source,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    assert!(out.status.success());
    let mut locker = Bridge::start();
    let ls = locker.open_session(&pg.connection(&source));
    locker.query(
        &ls,
        "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
        json!({}),
    );
    let mut b = Bridge::start();
    let id = b.ok(
        "backup.start",
        json!({"connection": pg.connection(&source)}),
    )["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    // pg_dump waits on the lock; cancel it there.
    for _ in 0..100 {
        if !pg_dumps_of(b.pid()).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.ok("health.ping", json!({}))["runningJobs"], 1);
    assert_eq!(
        b.ok("backup.cancel", json!({"backupId": id}))["cancelled"],
        true
    );
    let (_, done) = until_done(&mut b, &id);
    assert_eq!(done["status"], "cancelled", "{done}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(pg_dumps_of(b.pid()).is_empty(), "pg_dump still runs");
    assert!(!Path::new(done["path"].as_str().unwrap()).exists());
    let parts = std::fs::read_dir(b.data_dir.join("backups"))
        .unwrap()
        .count();
    assert_eq!(parts, 0);
    assert_eq!(b.ok("backup.list", json!({}))[0]["status"], "cancelled");
    locker.query(&ls, "COMMIT", json!({}));
    // An unreachable server fails the call before any job starts.
    let e = b.err(
        "backup.start",
        json!({"connection": {"kind": "mysql", "host": "127.0.0.1", "port": 1, "user": "x"}}),
    );
    assert_eq!(e["code"], "CONNECTION_FAILED");
    assert_eq!(b.ok("health.ping", json!({}))["runningJobs"], 0);
}

#[test]
fn a_postgres_18_server_needs_pg_dump_18_and_its_dumps_do_not_go_into_15() {
    let Some(cluster) = crate::servers::Cluster::private_18() else {
        return;
    };
    let Some(pg15) = postgres() else { return };
    let pg18 = &cluster.pg;
    let db = pg18.create_database();
    let out = pg18.psql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The connector itself on 18: a query, the metadata, a cancel.
    let mut b = Bridge::start();
    let s = b.open_session(&pg18.connection(&db));
    let out = b.query(
        &s,
        "SELECT count(*), current_setting('server_version_num')::int / 10000 FROM t",
        json!({}),
    );
    assert_eq!(out.rows(0), [json!(["1000", 18])]);
    let table = b.ok(
        "metadata.describeTable",
        json!({"sessionId": s, "schema": "public", "table": "t"}),
    );
    assert_eq!(table["primaryKey"]["columns"], json!(["id"]));
    let q = b.start_query(&s, "SELECT pg_sleep(30)", json!({}));
    std::thread::sleep(Duration::from_millis(200));
    b.ok("query.cancel", json!({"sessionId": s}));
    assert_eq!(
        b.wait_done(&q, Duration::from_secs(10))["status"],
        "cancelled"
    );

    // Only this machine's Postgres 15 tools: refused before anything starts.
    let e = b.err("backup.start", json!({"connection": pg18.connection(&db)}));
    assert_eq!(e["code"], "TOOL_VERSION_MISMATCH", "{e}");
    assert_eq!(e["details"]["neededMajor"], 18, "{e}");
    let found: Vec<u64> = e["details"]["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["major"].as_u64().unwrap())
        .collect();
    assert!(found.contains(&15), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("18")
            && e["message"].as_str().unwrap().contains("15"),
        "{e}"
    );
    assert_eq!(b.ok("backup.list", json!({})).as_array().unwrap().len(), 0);

    // With the 18 tools' folder given, the same backup completes.
    let bin = crate::servers::pg18_bin_dir();
    let mut b = Bridge::start_with(crate::harness::Options {
        env: vec![("DBBRIDGE_PG_BIN_DIR".into(), bin.display().to_string())],
        ..Default::default()
    });
    let id = b.ok("backup.start", json!({"connection": pg18.connection(&db)}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, done) = until_done(&mut b, &id);
    assert_eq!(done["status"], "completed", "{done}");
    let info = b.ok("backup.list", json!({}));
    assert!(
        info[0]["toolVersion"].as_str().unwrap().contains("18."),
        "{info}"
    );
    assert!(
        info[0]["serverVersion"]
            .as_str()
            .unwrap()
            .starts_with("18."),
        "{info}"
    );

    // A dump of 18 into a 15 server is refused before any statement runs.
    let target = pg15.create_database();
    let e = b.err(
        "backup.restore",
        json!({"backupId": id, "target": pg15.connection(&target)}),
    );
    assert_eq!(e["code"], "TOOL_VERSION_MISMATCH", "{e}");
    let out = pg15.psql(
        &target,
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    // Into another 18 database it restores.
    let again = pg18.create_database();
    let restored = restore(&mut b, &id, json!({"target": pg18.connection(&again)}));
    assert_eq!(restored["status"], "completed", "{restored}");
    let out = pg18.psql(&again, "SELECT count(*) FROM t");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000");
}

#[test]
fn a_tool_that_fails_gives_backup_failed_with_its_own_words() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let role = format!("weak_{db}");
    let secret = format!("weak-{}-secret", std::process::id());
    let out = pg.psql(
        &db,
        &format!("CREATE TABLE private (x int); CREATE ROLE {role} LOGIN PASSWORD '{secret}'; REVOKE ALL ON private FROM {role}"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = pg.connection(&db);
    conn["user"] = json!(role);
    conn["password"] = json!(secret);
    let mut b = Bridge::start();
    let id = b.ok("backup.start", json!({"connection": conn}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, done) = until_done(&mut b, &id);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "BACKUP_FAILED");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("permission denied"), "{message}");
    assert!(!done.to_string().contains(&secret));
    assert!(!Path::new(done["path"].as_str().unwrap()).exists());
    let list = b.ok("backup.list", json!({}));
    assert_eq!(list[0]["status"], "failed");
    assert!(
        list[0]["error"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );
}

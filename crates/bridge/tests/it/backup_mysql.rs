//! MySQL/MariaDB backups through `mariadb-dump` and restores through the
//! `mariadb` client, as jobs: the login only in an option file, a restore
//! into a fresh database equal to the source, and the fresh database
//! dropped again when a restore fails.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Bridge, children_of};
use crate::mysql::client_ok;
use crate::servers::{Mysql, mysql};

fn checksums(my: &Mysql, db: &str) -> String {
    client_ok(
        my,
        db,
        "CHECKSUM TABLE customer, orders, audit EXTENDED; \
         SELECT COUNT(*) FROM orders; \
         SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE(); \
         SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE(); \
         SELECT table_name FROM information_schema.views WHERE table_schema = DATABASE()",
    )
    .replace(db, "DB")
}

fn wait_for(b: &mut Bridge, field: &str, id: &str, done: &str) -> (Vec<Value>, Value) {
    let (events, done) = b.job_events(field, id, done);
    (
        events.into_iter().map(|e| e["params"].clone()).collect(),
        done,
    )
}

#[test]
fn a_mysql_backup_restores_into_a_fresh_database() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    client_ok(
        &my,
        &db,
        "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(12,2), note TEXT, FOREIGN KEY (customer_id) REFERENCES customer(id));
         CREATE TABLE audit (order_id INT);
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
         CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
         CREATE PROCEDURE touch() SELECT 1;
         INSERT INTO customer SELECT seq, CONCAT('customer é ', seq) FROM seq_1_to_100;
         INSERT INTO orders SELECT seq, 1 + seq % 100, seq * 0.25, REPEAT('n', 40) FROM seq_1_to_200000;",
    );
    let user = format!("dumper_{db}");
    let secret = format!("pw-{}-kept-out", std::process::id());
    client_ok(
        &my,
        "",
        &format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{secret}'; GRANT ALL ON *.* TO '{user}'@'%'"
        ),
    );
    let mut conn = my.connection(&db);
    conn["user"] = json!(user);
    conn["password"] = json!(secret);
    let mut b = Bridge::start();
    let id = b.ok("backup.start", json!({"connection": conn}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    // While the tool runs, its argv and environment hold no password.
    let mut checked = 0;
    for _ in 0..200 {
        for (cmdline, environ) in children_of(b.pid()) {
            if cmdline.contains("dump") {
                assert!(!cmdline.contains(&secret) && !environ.contains(&secret));
                assert!(cmdline.contains("--defaults-extra-file="));
                checked += 1;
            }
        }
        if checked > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (progress, done) = wait_for(&mut b, "backupId", &id, "backup.done");
    assert_eq!(done["status"], "completed", "{done}");
    assert!(checked > 0, "the dump tool was never seen running");
    let percents: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["percent"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(percents.last(), Some(&100.0));
    let text = std::fs::read_to_string(done["path"].as_str().unwrap()).unwrap();
    assert!(!text.contains(&secret) && text.contains("CREATE TABLE `orders`"));
    assert!(
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .all(|e| !std::fs::read_to_string(e.path().join("my.cnf"))
                .unwrap_or_default()
                .contains(&secret))
    );

    // Into a fresh database that the bridge creates.
    let fresh = format!("{db}_restored");
    let mut target = conn.clone();
    target["database"] = json!(fresh);
    let rid = b.ok("backup.restore", json!({"backupId": id, "target": target}))["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, rdone) = wait_for(&mut b, "restoreId", &rid, "backup.restore.done");
    assert_eq!(rdone["status"], "completed", "{rdone}");
    assert_eq!(checksums(&my, &db), checksums(&my, &fresh));
    // An existing database is not restored over.
    let e = b.err("backup.restore", json!({"backupId": id, "target": target}));
    assert_eq!(e["code"], "RESTORE_FAILED", "{e}");
    // A restore that fails drops the fresh database it created.
    let file = done["path"].as_str().unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    bytes.push(b'\n');
    std::fs::write(file, &bytes).unwrap();
    let mut other = conn.clone();
    other["database"] = json!(format!("{db}_failed"));
    let rid = b.ok("backup.restore", json!({"backupId": id, "target": other}))["restoreId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, rdone) = wait_for(&mut b, "restoreId", &rid, "backup.restore.done");
    assert_eq!(rdone["status"], "failed", "{rdone}");
    assert!(
        rdone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );
    let left = client_ok(&my, "", &format!("SHOW DATABASES LIKE '{db}_failed'"));
    assert!(
        left.trim().is_empty(),
        "the fresh database was left: {left}"
    );
    // Without a database named, the caller is told to name one.
    let mut unnamed = conn.clone();
    unnamed.as_object_mut().unwrap().remove("database");
    let e = b.err("backup.restore", json!({"backupId": id, "target": unnamed}));
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
}

#[test]
fn a_missing_tool_is_tool_not_found_and_a_bin_dir_finds_it() {
    let Some(my) = mysql() else { return };
    let db = my.create_database();
    client_ok(
        &my,
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
    );
    // Debian's mariadb-dump is found through PATH only: an empty PATH hides it.
    let empty = tempfile::tempdir().unwrap();
    let hidden = || vec![("PATH".to_string(), empty.path().display().to_string())];
    let mut b = Bridge::start_with(crate::harness::Options {
        env: hidden(),
        ..Default::default()
    });
    let e = b.err("backup.start", json!({"connection": my.connection(&db)}));
    assert_eq!(e["code"], "TOOL_NOT_FOUND", "{e}");
    assert_eq!(e["details"]["tool"], "mariadb-dump or mysqldump", "{e}");
    assert!(!e["details"]["searched"].as_array().unwrap().is_empty());
    assert_eq!(b.ok("backup.list", json!({})).as_array().unwrap().len(), 0);
    // The tool's folder given: found, even with nothing on PATH.
    let dump = ["/usr/bin/mariadb-dump", "/usr/bin/mysqldump"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("mariadb-dump is installed by install-deps");
    let folder = std::path::Path::new(dump)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut env = hidden();
    env.push(("DBBRIDGE_MYSQL_BIN_DIR".to_string(), folder));
    let mut b = Bridge::start_with(crate::harness::Options {
        env,
        ..Default::default()
    });
    let id = b.ok("backup.start", json!({"connection": my.connection(&db)}))["backupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, done) = wait_for(&mut b, "backupId", &id, "backup.done");
    assert_eq!(done["status"], "completed", "{done}");
}

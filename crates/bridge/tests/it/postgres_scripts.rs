//! Postgres scripts split exactly as psql splits them: psql itself is the
//! oracle (`psql_oracle.rs`), on the issue's cases, on Postgres's own
//! regression scripts and on generated scripts; and scripts run through
//! `query.run` as through psql (routine bodies, rules, `$n` left to the
//! server, `COPY ... FROM stdin` with inline data, a whole plain dump).

use std::process::Command;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::harness::{Bridge, QueryOutcome};
use crate::psql_oracle::{self, Comparison, Sent};
use crate::servers::{Cluster, Postgres, postgres};

/// Scripts users paste every day, each of which the old splitter cut wrongly.
const ISSUE_CASES: &str = "\
CREATE TABLE a (x int);
CREATE TABLE t (x int);
CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + 1; SELECT a + 2; END;
CREATE OR REPLACE FUNCTION g(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;
END;
CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO a VALUES (2));
PREPARE p(int) AS SELECT $1 + 1; EXECUTE p(1);
COPY a FROM stdin;
7
\\N
\\.
SELECT f(1), g(1), count(*) FROM a;
";

#[test]
fn issue_cases_split_as_psql_does() {
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let db = cluster.pg.create_database();
    let psql = psql_oracle::psql_sent(&cluster.pg, &db, ISSUE_CASES);
    let bridge = psql_oracle::bridge_sent(ISSUE_CASES).expect("splits");
    assert_eq!(bridge.len(), 10, "{bridge:#?}");
    if let Some(diff) = psql_oracle::first_difference(&psql, &bridge) {
        panic!("{diff}");
    }
}

#[test]
fn regression_corpus_splits_as_psql_does() {
    let Some(dir) = psql_oracle::regress_dir() else {
        return;
    };
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let started = Instant::now();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let (mut compared, mut statements, mut skipped) = (0usize, 0usize, Vec::new());
    let mut differences = Vec::new();
    let mut until_refused_copy = Vec::new();
    let mut kinds = [0usize; 5];
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let raw = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let script = psql_oracle::without_meta_commands(&raw);
        // psql substitutes its variables (`:'DBNAME'`), which is not splitting.
        if script.contains(":'") || script.contains(":\"") {
            skipped.push(format!("{name} (psql variables)"));
            continue;
        }
        let bridge = match psql_oracle::bridge_sent(&script) {
            Ok(bridge) => bridge,
            // A meta-command in mid-line (`SELECT ... \gset`) cannot be cut out.
            Err(error) => {
                skipped.push(format!("{name} ({})", error.message));
                continue;
            }
        };
        let db = cluster.pg.create_database();
        let psql = psql_oracle::psql_sent(&cluster.pg, &db, &script);
        compared += 1;
        statements += bridge.len();
        for sent in &bridge {
            let Sent::Query(text) = sent else { continue };
            let lower = text.to_ascii_lowercase();
            kinds[0] += usize::from(lower.contains("function") || lower.contains("procedure"));
            kinds[1] += usize::from(lower.contains("create rule"));
            kinds[2] += usize::from(text.contains('$'));
            kinds[3] += usize::from(lower.contains(" e'"));
            kinds[4] += usize::from(lower.contains("u&'") || lower.contains("u&\""));
        }
        match psql_oracle::compare(&psql, &bridge) {
            Comparison::Same => {}
            Comparison::SameUntilRefusedCopy(at) => {
                statements -= bridge.len() - at;
                until_refused_copy.push(name);
            }
            Comparison::Differs(diff) => differences.push(format!("{name}: {diff}")),
        }
    }
    eprintln!(
        "psql corpus: {compared} files, {statements} statements compared ({} with routines, {} rules, {} with $, {} E'', {} U&), {} of them up to a COPY the server refused ({until_refused_copy:?}), {} files left out, {:.1} s",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4],
        until_refused_copy.len(),
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        compared >= 100 && statements >= 5000,
        "too little of the corpus was compared: {compared} files, {statements} statements; left out: {skipped:#?}"
    );
    assert!(kinds.iter().all(|&k| k >= 10), "corpus kinds: {kinds:?}");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// A random statement and the text the splitter should give for it.
fn random_statement(rng: &mut StdRng, n: usize) -> String {
    const PIECES: &[&str] = &[
        "'a;b'",
        "'it''s; here'",
        "E'esc\\'; q'",
        "E'\\\\'",
        "$$ dollar; $ $$",
        "$tag$ a $$ ; $t$ $tag$",
        "\"quoted;ident\"",
        "U&'\\0061;'",
        "B'101'",
        "X'1F'",
        "'con'\n  'tinued;'",
        "E'e'\n'x;y'",
        "(1)",
        "((2))",
        "$1",
        "1.5e3",
        "u&\"x;\"",
    ];
    const GAPS: &[&str] = &[
        " ",
        "\n",
        " -- line; comment\n",
        " /* block; /* nested; */ */ ",
        "\t",
    ];
    let mut s = String::new();
    match rng.random_range(0..6) {
        0 => {
            s.push_str(&format!(
                "CREATE OR REPLACE FUNCTION gen_f{n}(a int) RETURNS int LANGUAGE sql{}BEGIN ATOMIC SELECT a + 1;{}SELECT CASE WHEN a > {} THEN 1 ELSE 2 END; END",
                GAPS[rng.random_range(0..GAPS.len())],
                GAPS[rng.random_range(0..GAPS.len())],
                rng.random_range(0..9)
            ));
        }
        1 => s.push_str(&format!(
            "PREPARE gen_p{n}(int) AS SELECT $1 + {}",
            rng.random_range(0..9)
        )),
        2 => s.push_str(&format!(
            "DO $do$ BEGIN PERFORM {}; END $do$",
            rng.random_range(0..9)
        )),
        3 => s.push_str("SELECT (SELECT 1; SELECT 2)"),
        _ => {
            s.push_str("SELECT ");
            for i in 0..rng.random_range(1..5) {
                if i > 0 {
                    s.push(',');
                    s.push_str(GAPS[rng.random_range(0..GAPS.len())]);
                }
                s.push_str(PIECES[rng.random_range(0..PIECES.len())]);
            }
        }
    }
    s
}

#[test]
fn generated_scripts_split_as_psql_does() {
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let db = cluster.pg.create_database();
    let seed = std::env::var("DBBRIDGE_SPLIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0;
    for script_no in 0..40 {
        let mut script = String::new();
        let mut expected = Vec::new();
        for i in 0..rng.random_range(1..12) {
            let n = script_no * 100 + i;
            if rng.random_range(0..8) == 0 {
                // A COPY with data that holds every awkward byte of the text format.
                let table = format!("gen_c{n}");
                let create = format!("CREATE TEMP TABLE {table} (a text, b int)");
                let copy = format!("COPY {table} FROM stdin");
                let data = "x;y\t1\n\\N\t\\N\na\\tb 'q' \"r\" $$\t3\n\\\\back\t4\n";
                script.push_str(&format!("{create};\n{copy};\n{data}\\.\n"));
                expected.push(Sent::Query(create));
                expected.push(Sent::Query(copy));
                expected.push(Sent::CopyData(data.to_string()));
                continue;
            }
            let stmt = random_statement(&mut rng, n);
            script.push_str(&stmt);
            script.push_str([";\n", ";", " ;\n\n", ";-- after\n"][rng.random_range(0..4)]);
            expected.push(Sent::Query(stmt));
        }
        let bridge = psql_oracle::bridge_sent(&script).expect("splits");
        assert_eq!(bridge, expected, "seed {seed}, script:\n{script}");
        let psql = psql_oracle::psql_sent(&cluster.pg, &db, &script);
        if let Some(diff) = psql_oracle::first_difference(&psql, &bridge) {
            panic!("seed {seed} (DBBRIDGE_SPLIT_SEED={seed} reruns it): {diff}\nscript:\n{script}");
        }
        total += bridge.len();
    }
    eprintln!("generated scripts: {total} statements matched psql (seed {seed})");
}

/// Runs `sql` through `query.run` on a fresh session of `database`.
fn run(pg: &Postgres, database: &str, sql: &str, extra: Value) -> QueryOutcome {
    let mut bridge = Bridge::start();
    let session = bridge.open_session(&pg.connection(database));
    bridge.query(&session, sql, extra)
}

fn psql_value(pg: &Postgres, database: &str, sql: &str) -> String {
    let out = pg.psql(database, sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn issue_scripts_run_through_query_run() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let out = run(&pg, &db, ISSUE_CASES, json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let commands: Vec<&str> = out.done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "CREATE", "CREATE", "CREATE", "CREATE", "CREATE", "PREPARE", "EXECUTE", "COPY",
            "SELECT"
        ]
    );
    // EXECUTE p(1): the server bound its own $1.
    assert_eq!(out.rows(6), [json!([2])]);
    assert_eq!(out.done["results"][7]["affectedRows"], 2);
    // f's BEGIN ATOMIC body ran whole (the last SELECT is its result).
    assert_eq!(out.rows(8), [json!([3, 1, "2"])]);
    // The rule's two actions both stand.
    psql_value(&pg, &db, "INSERT INTO t VALUES (5)");
    assert_eq!(psql_value(&pg, &db, "SELECT count(*) FROM a"), "4");
}

#[test]
fn params_bind_to_the_callers_statements_only() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let sql = "PREPARE q(int) AS SELECT $1 * 2; SELECT $1 + 1 AS plus; EXECUTE q(5);\nCREATE FUNCTION h(a int) RETURNS int LANGUAGE sql RETURN $1 * 3; SELECT h($1)";
    let out = run(&pg, &db, sql, json!({"params": [41]}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    assert_eq!(out.rows(1), [json!([42])]);
    assert_eq!(out.rows(2), [json!([10])]);
    assert_eq!(out.rows(4), [json!([123])]);
    // A placeholder past the params is refused before the statement runs.
    let out = run(&pg, &db, "SELECT 1; SELECT $2", json!({"params": [1]}));
    assert_eq!(out.status(), "failed");
    assert_eq!(out.done["error"]["code"], "INVALID_PARAMS", "{}", out.done);
}

#[test]
fn copy_from_stdin_runs_with_its_inline_data() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let sql = "CREATE TABLE c (id int, t text, b bytea);\nCOPY c (id, t, b) FROM stdin;\n1\ttab\\there\t\\\\x00ff\n2\t\\N\t\\N\n3\tback\\\\slash; 'q' \"d\" é\t\\\\x\n\\.\nSELECT id, t, b FROM c ORDER BY id;\nSELECT nope FROM nowhere";
    let out = run(&pg, &db, sql, json!({}));
    assert_eq!(out.status(), "failed", "{}", out.done);
    assert_eq!(out.done["results"][1]["command"], "COPY");
    assert_eq!(out.done["results"][1]["affectedRows"], 3);
    assert_eq!(
        out.rows(2),
        [
            json!([1, "tab\there", "AP8="]),
            json!([2, null, null]),
            json!([3, "back\\slash; 'q' \"d\" é", ""])
        ]
    );
    // The error after the data points into the caller's script.
    let position = sql[..sql.find("nowhere").unwrap()].chars().count() + 1;
    assert_eq!(
        out.done["error"]["details"]["position"], position,
        "{}",
        out.done
    );
}

#[test]
fn scripts_that_are_not_sql_are_refused_before_anything_runs() {
    let Some(pg) = postgres() else { return };
    let db = pg.create_database();
    let mut bridge = Bridge::start();
    let session = bridge.open_session(&pg.connection(&db));
    let cases = [
        (
            "CREATE TABLE m1 (x int);\n\\connect other\nSELECT 1;",
            "line 2: \\connect is a psql meta-command",
        ),
        (
            "CREATE TABLE m1 (x int);\nSELECT 1 \\gset\n",
            "line 2: \\gset",
        ),
        (
            "CREATE TABLE m1 (x int);\nCOPY m1 FROM STDIN;",
            "line 2: COPY ... FROM stdin needs its data",
        ),
        (
            "CREATE TABLE m1 (x int); COPY m1 FROM STDIN; SELECT 1;\n1\n\\.\n",
            "nothing else may follow",
        ),
    ];
    for (sql, message) in cases {
        let out = bridge.query(&session, sql, json!({}));
        assert_eq!(out.status(), "failed", "{sql}");
        assert_eq!(out.done["error"]["code"], "INVALID_PARAMS");
        let text = out.done["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text}");
        assert!(out.done["results"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        psql_value(&pg, &db, "SELECT to_regclass('m1') IS NULL"),
        "t"
    );
    // Bad COPY data fails with the server's error; the session reads on.
    let out = bridge.query(
        &session,
        "CREATE TABLE n (x int); COPY n FROM stdin;\nnot a number\n\\.\n",
        json!({}),
    );
    assert_eq!(out.done["error"]["code"], "QUERY_FAILED", "{}", out.done);
    assert_eq!(out.done["error"]["details"]["sqlstate"], "22P02");
    let out = bridge.query(&session, "SELECT count(*) FROM n", json!({}));
    assert_eq!(out.rows(0), [json!(["0"])]);
}

/// A database that holds what a plain dump must carry: SQL-standard routine
/// bodies, a rule with two actions, a trigger, and COPY data with tabs,
/// backslashes, NULLs and non-ASCII text.
const FIXTURE: &str = r#"
CREATE TABLE item (id int PRIMARY KEY, name text, note text, price numeric(12,2), raw bytea);
CREATE TABLE audit (item_id int, what text);
CREATE TABLE item_log (id int, at_price numeric);
CREATE FUNCTION add_tax(p numeric) RETURNS numeric LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
  SELECT CASE WHEN p IS NULL THEN NULL ELSE round(p * 1.2, 2) END;
END;
CREATE PROCEDURE log_item(i int) LANGUAGE sql
BEGIN ATOMIC
  INSERT INTO item_log SELECT id, price FROM item WHERE id = i;
  INSERT INTO item_log VALUES (i, NULL);
END;
CREATE FUNCTION audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit VALUES (NEW.id, 'insert; with a semicolon');
  RETURN NEW;
END;
$$;
CREATE TRIGGER item_audit AFTER INSERT ON item FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE RULE item_rule AS ON UPDATE TO item DO ALSO (INSERT INTO audit VALUES (NEW.id, 'update 1'); INSERT INTO audit VALUES (NEW.id, 'update 2'));
CREATE VIEW priced AS SELECT id, add_tax(price) AS gross FROM item;
INSERT INTO item
SELECT g, 'name ' || g || E'\ttab\\back', CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\nbreak é ü; ''q''' END,
       g * 1.25, decode(lpad(to_hex(g), 8, '0'), 'hex')
FROM generate_series(1, 5000) g;
UPDATE item SET price = price + 1 WHERE id <= 3;
CALL log_item(2);
"#;

fn checksums(pg: &Postgres, database: &str) -> String {
    psql_value(
        pg,
        database,
        "SELECT 'item', md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM item t;
         SELECT 'audit', md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM audit t;
         SELECT 'item_log', md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM item_log t;
         SELECT 'routines', md5(string_agg(pg_get_functiondef(p.oid), E'\\n' ORDER BY proname)) FROM pg_proc p WHERE pronamespace = 'public'::regnamespace;
         SELECT 'rules', md5(string_agg(definition, E'\\n' ORDER BY rulename)) FROM pg_rules WHERE schemaname = 'public';
         SELECT 'triggers', md5(string_agg(pg_get_triggerdef(t.oid), E'\\n' ORDER BY tgname)) FROM pg_trigger t WHERE NOT tgisinternal;
         SELECT 'view', pg_get_viewdef('priced'::regclass);",
    )
}

#[test]
fn a_plain_pg_dump_runs_through_query_run() {
    let Some(pg) = postgres() else { return };
    let source = pg.create_database();
    let out = pg.psql(&source, FIXTURE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = Command::new("pg_dump")
        .args([
            "-h",
            &pg.host,
            "-p",
            &pg.port.to_string(),
            "-U",
            &pg.user,
            "--no-owner",
            &source,
        ])
        .env("PGPASSWORD", &pg.password)
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8(dump.stdout).unwrap();
    assert!(
        dump.contains("BEGIN ATOMIC") && dump.contains("FROM stdin;"),
        "{dump}"
    );
    let target = pg.create_database();
    let out = run(&pg, &target, &dump, json!({}));
    assert_eq!(out.status(), "completed", "{}", out.done);
    let copies = out.done["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "COPY")
        .count();
    assert_eq!(copies, 3);
    let (a, b) = (checksums(&pg, &source), checksums(&pg, &target));
    assert!(a.contains("item|") && a.lines().count() >= 7, "{a}");
    assert_eq!(a, b);
}

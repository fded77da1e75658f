//! Postgres scripts split exactly as psql splits them: psql itself is the
//! oracle (`psql_oracle.rs`), on the issue's cases, on Postgres's own
//! regression scripts and on generated scripts; and scripts run through
//! `query.run` as through psql (routine bodies, rules, `$n` left to the
//! server, `COPY ... FROM stdin` with inline data, a whole plain dump).

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::psql_oracle::{self, Comparison, Sent};
use crate::servers::Cluster;

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

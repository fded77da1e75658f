//! Tests of `split`.

use super::*;

fn texts(sql: &str) -> Vec<&str> {
    split(sql)
        .expect("splits")
        .iter()
        .map(|s| &sql[s.start..s.end])
        .collect()
}

#[test]
fn splits_on_semicolons_outside_quotes_and_comments() {
    let sql = "select 'a;b', \"c;d\", E'it\\'s;' ; -- x;y\n select 2 /* a /* nested; */ still; */ ;; select $$;$$, $fn$ a $$ ; $fn$";
    assert_eq!(
        texts(sql),
        vec![
            "select 'a;b', \"c;d\", E'it\\'s;'",
            "select 2 /* a /* nested; */ still; */",
            "select $$;$$, $fn$ a $$ ; $fn$"
        ]
    );
}

#[test]
fn function_bodies_stay_whole() {
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  -- it's; fine\n  RETURN 1;\nEND;\n$body$;\nSELECT f();";
    let parts = split(sql).expect("splits");
    assert_eq!(parts.len(), 2);
    assert!(sql[parts[0].start..parts[0].end].ends_with("$body$"));
    assert_eq!(parts[0].command, "CREATE");
    assert_eq!(parts[1].command, "SELECT");
    assert!(parts[1].cursor_safe());
}

#[test]
fn begin_atomic_bodies_with_case_stay_whole() {
    let body = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + 1; SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END; END";
    let sql = format!("{body};\nSELECT 1;");
    assert_eq!(texts(&sql), vec![body, "SELECT 1"]);
    let replace =
        "create or replace procedure p() language sql begin atomic insert into t values (1); end";
    assert_eq!(
        texts(&format!("{replace}; select 2")),
        vec![replace, "select 2"]
    );
    // Outside a routine, BEGIN is a transaction and `;` ends it.
    assert_eq!(
        texts("BEGIN; SELECT 1; END;"),
        vec!["BEGIN", "SELECT 1", "END"]
    );
    // CREATE TRIGGER is not a routine: its BEGIN-less body is no block.
    assert_eq!(
        texts("create trigger t before insert on x for each row execute function f(); select 1"),
        vec![
            "create trigger t before insert on x for each row execute function f()",
            "select 1"
        ]
    );
}

#[test]
fn semicolons_inside_parentheses_do_not_end_a_statement() {
    let rule = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO a VALUES (2))";
    assert_eq!(texts(&format!("{rule}; SELECT 1")), vec![rule, "SELECT 1"]);
    // A stray `)` does not go below zero.
    assert_eq!(texts("select 1); select 2"), vec!["select 1)", "select 2"]);
}

#[test]
fn a_string_after_a_newline_is_a_string_of_its_own_as_in_psql() {
    // SQL would continue E'a' into the second line; psql, reading line by
    // line, takes '\' as a standard string and ends the statement at `;`.
    let sql = "select E'a'\n'\\';' ; select 2";
    assert_eq!(texts(sql), vec!["select E'a'\n'\\'", "' ; select 2"]);
}

#[test]
fn prefixed_strings_and_identifiers() {
    let sql = "select U&'d\\0061t;a', U&\"a;b\", B'1;0', X'1F;', N'n;';select u&x; select 3";
    assert_eq!(
        texts(sql),
        vec![
            "select U&'d\\0061t;a', U&\"a;b\", B'1;0', X'1F;', N'n;'",
            "select u&x",
            "select 3"
        ]
    );
}

#[test]
fn comment_only_statements_are_dropped() {
    assert!(
        split("  -- nothing\n /* here */ ; ")
            .expect("splits")
            .is_empty()
    );
    // A block comment before a statement belongs to it, as in psql.
    assert_eq!(
        texts("/* a */ select 1; -- b\nselect 2"),
        vec!["/* a */ select 1", "select 2"]
    );
}

#[test]
fn placeholders_dollar_idents_and_server_params() {
    let sql = "select $1, a$1, '$2', $$ $3 $$, $2, 1$$ $9 $$";
    let s = &split(sql).expect("splits")[0];
    let ns: Vec<usize> = s.placeholders.iter().map(|p| p.2).collect();
    assert_eq!(ns, vec![1, 2]);
    assert!(!s.server_params);
    let script = "PREPARE p(int) AS SELECT $1 + 1; EXECUTE p(1); CREATE FUNCTION f(int) RETURNS int LANGUAGE sql RETURN $1";
    let parts = split(script).expect("splits");
    assert_eq!(
        parts.iter().map(|s| s.server_params).collect::<Vec<_>>(),
        vec![true, false, true]
    );
}

#[test]
fn classification() {
    let first = |sql: &str| split(sql).expect("splits").remove(0);
    assert!(first("with x as (select 1) select * from x").cursor_safe());
    assert!(!first("with x as (delete from t returning *) select * from x").cursor_safe());
    assert!(!first("select * into t2 from t").cursor_safe());
    assert!(!first("select * from t for update").cursor_safe());
    assert!(first("copy t to stdout").copy_to_stdout);
    assert!(!first("select 'stdin'").copy_to_stdout);
    assert!(!first("copy t (stdout) from '/f'").copy_to_stdout);
}

#[test]
fn copy_from_stdin_takes_its_inline_data() {
    let sql = "COPY t (a, b) FROM stdin;\n1\tx;y\n\\N\t'q\n\\.\nSELECT 2;";
    let parts = split(sql).expect("splits");
    assert_eq!(parts.len(), 2);
    let data = parts[0].copy_data.clone().expect("data");
    assert_eq!(&sql[data], "1\tx;y\n\\N\t'q\n");
    assert_eq!(&sql[parts[1].start..parts[1].end], "SELECT 2");
    // Empty data, CRLF, a comment after the statement.
    let sql = "copy t from stdin; -- data\r\n\\.\r\nselect 3";
    let parts = split(sql).expect("splits");
    assert_eq!(parts[0].copy_data.clone().map(|r| r.len()), Some(0));
    assert_eq!(&sql[parts[1].start..parts[1].end], "select 3");
}

#[test]
fn copy_from_stdin_without_data_is_refused() {
    for sql in [
        "COPY t FROM stdin",
        "COPY t FROM stdin;",
        "select 1;\nCOPY t FROM STDIN;\n1\n2\n",
    ] {
        let error = split(sql).expect_err(sql);
        assert!(
            error.message.contains("needs its data"),
            "{}",
            error.message
        );
    }
    let error = split("COPY t FROM stdin; select 1;\n\\.\n").expect_err("text after");
    assert!(error.message.starts_with("line 1:"), "{}", error.message);
}

#[test]
fn meta_commands_are_refused_with_their_line() {
    let sql = "select 1;\n\\connect other\nselect 2;";
    let error = split(sql).expect_err("meta-command");
    assert!(
        error
            .message
            .starts_with("line 2: \\connect is a psql meta-command"),
        "{}",
        error.message
    );
    assert_eq!(error.position, 11);
    // Inside quotes a backslash is just a character.
    assert_eq!(
        texts("select '\\set x', $$\\q$$"),
        vec!["select '\\set x', $$\\q$$"]
    );
}

#[test]
fn pg_dump_restrict_lines_are_passed_over() {
    let sql = "--\n-- dump\n--\n\\restrict AbC123\n\nSET x = 1;\nCOPY t FROM stdin;\n1\n\\.\n\n\\unrestrict AbC123\n";
    let parts = split(sql).expect("splits");
    assert_eq!(parts.len(), 2);
    assert_eq!(&sql[parts[0].start..parts[0].end], "SET x = 1");
    // Not inside a statement, though.
    assert!(split("select 1 \\restrict x\n;").is_err());
}

#[test]
fn standard_conforming_strings_off_makes_backslashes_escape() {
    let sql = "SET standard_conforming_strings = off;\nselect 'a\\';b'; RESET ALL; select 'c\\'; select 2";
    assert_eq!(
        texts(sql),
        vec![
            "SET standard_conforming_strings = off",
            "select 'a\\';b'",
            "RESET ALL",
            "select 'c\\'",
            "select 2"
        ]
    );
}

#[test]
fn character_offsets_count_characters() {
    let sql = "select 'é';\nselect 'ü' ; select 3";
    let parts = split(sql).expect("splits");
    let offsets: Vec<usize> = parts.iter().map(|s| s.char_offset).collect();
    let expected: Vec<usize> = parts
        .iter()
        .map(|s| sql[..s.start].chars().count())
        .collect();
    assert_eq!(offsets, expected);
}

//! `dbbridge demo` runs end to end and shows every part it promises.

use std::process::Command;

use crate::harness::BIN;

#[test]
fn demo_runs_and_shows_each_step() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("demo")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for expected in [
            "health.ping",
            "table customers",
            "view order_totals",
            "where status = 'refunded'",
            "query.done       completed  300000 rows",
            "query.done cancelled (QUERY_CANCELLED)",
            "query.paused     after 100 rows",
            "query.paused after 200 rows",
            "200 rows shown in all",
            "QUERY_FAILED: no such column: emali",
            "export.done      completed  300000 rows",
            "backup.done      completed",
            "100.0%  finalizing",
            "backup.restore.done  completed",
            "the copy holds 300000 line items",
            "demo finished",
        ] {
            assert!(
                stdout.contains(expected),
                "round {round}: missing {expected:?} in\n{stdout}"
            );
        }
        // The sample is built once and reused.
        assert_eq!(stdout.contains("sample built"), round == 0, "{stdout}");
    }
}

//! Exports as jobs, shared by the engines' export tests: running one to its
//! `export.done`, and reading JSON, JSON Lines and XLSX files back (the
//! latter with calamine, an independent reader) against the rows the same
//! source gives through `query.run`.

use std::path::Path;

use calamine::{Data, DataType, Reader, Xlsx, open_workbook};
use serde_json::{Value, json};

use crate::harness::Bridge;

/// Starts an export and waits for its `export.done`; the progress events'
/// params and the done event's params.
pub fn run_export(
    b: &mut Bridge,
    session: &str,
    source: Value,
    format: &str,
    dest: &Path,
    options: Value,
) -> (Vec<Value>, Value) {
    let data = b.ok(
        "export.start",
        json!({"sessionId": session, "source": source, "format": format,
               "destination": dest.to_str().unwrap(), "options": options}),
    );
    let id = data["exportId"].as_str().unwrap().to_string();
    let (events, done) = b.job_events("exportId", &id, "export.done");
    for e in &events {
        assert_eq!(e["method"], "export.progress", "{e}");
    }
    (
        events.into_iter().map(|e| e["params"].clone()).collect(),
        done,
    )
}

/// Runs an export that must complete; its done event.
pub fn export_ok(
    b: &mut Bridge,
    session: &str,
    source: Value,
    format: &str,
    dest: &Path,
    options: Value,
) -> Value {
    let (_, done) = run_export(b, session, source, format, dest, options);
    assert_eq!(done["status"], "completed", "{done}");
    eprintln!("export {format}: {done}");
    assert_eq!(
        done["sizeBytes"].as_u64().unwrap(),
        std::fs::metadata(dest).unwrap().len()
    );
    done
}

/// The columns and rows `sql` gives through `query.run`.
pub fn source_rows(b: &mut Bridge, session: &str, sql: &str) -> (Vec<Value>, Vec<Value>) {
    let out = b.query(session, sql, json!({}));
    assert_eq!(out.status(), "completed", "{:?}", out.done);
    (out.results[0].columns.clone(), out.results[0].rows.clone())
}

/// A JSON or JSON Lines file holds exactly the source's rows, as objects
/// keyed by column name, values as `query.run` encodes them.
pub fn check_json(path: &Path, lines: bool, columns: &[Value], rows: &[Value]) {
    let text = std::fs::read_to_string(path).unwrap();
    let objects: Vec<Value> = if lines {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        serde_json::from_str::<Vec<Value>>(&text).unwrap()
    };
    assert_eq!(objects.len(), rows.len());
    for (object, row) in objects.iter().zip(rows) {
        let object = object.as_object().unwrap();
        assert_eq!(object.len(), columns.len());
        for (i, column) in columns.iter().enumerate() {
            let name = column["name"].as_str().unwrap();
            assert_eq!(object[name], row[i], "column {name} of {row}");
        }
    }
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Excel's serial number of `2024-02-29[T13:45:07.123]` or `13:45:07.5`.
fn excel_serial(text: &str) -> f64 {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (Some(d), Some(t)),
        None if text.contains('-') => (Some(text), None),
        None => (None, Some(text)),
    };
    let mut serial = 0.0;
    if let Some(date) = date {
        let p: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let days = days_from_civil(p[0], p[1], p[2]) - days_from_civil(1899, 12, 30);
        // Excel counts a 29 February 1900 that never was (Lotus's bug), so
        // its serials before March 1900 are one less.
        serial += if days < 61 { days - 1 } else { days } as f64;
    }
    if let Some(time) = time {
        let p: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
        serial += (p[0] * 3600.0 + p[1] * 60.0 + p[2]) / 86_400.0;
    }
    serial
}

fn significant_digits(text: &str) -> usize {
    let digits = text.trim_start_matches('-').replace('.', "");
    let s = digits.trim_start_matches('0');
    if text.contains('.') {
        s.trim_end_matches('0').len()
    } else {
        s.len()
    }
}

/// An XLSX file (read with calamine) holds the header and the source's
/// rows: numbers where a double holds the value exactly, dates as dates,
/// everything else as the exact text `query.run` gives.
pub fn check_xlsx(path: &Path, columns: &[Value], rows: &[Value]) {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let cells: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
    assert_eq!(cells.len(), rows.len() + 1, "header and every row");
    for (i, column) in columns.iter().enumerate() {
        assert_eq!(
            cells[0][i],
            Data::String(column["name"].as_str().unwrap().into())
        );
    }
    for (r, row) in rows.iter().enumerate() {
        for (i, column) in columns.iter().enumerate() {
            let got = cells[r + 1].get(i).cloned().unwrap_or(Data::Empty);
            let kind = column["kind"].as_str().unwrap();
            let value = &row[i];
            let context = format!("row {r} column {} ({kind}) = {value}", column["name"]);
            match value {
                // Excel keeps no empty-string cell: "" is blank, as NULL is.
                Value::Null => assert_eq!(got, Data::Empty, "{context}"),
                Value::String(s) if s.is_empty() => assert_eq!(got, Data::Empty, "{context}"),
                Value::Bool(b) => assert_eq!(got, Data::Bool(*b), "{context}"),
                Value::Number(n) => {
                    assert_eq!(got.as_f64(), n.as_f64(), "{context}: {got:?}")
                }
                Value::String(s) => {
                    let exact_number = match kind {
                        "bigint" => s.parse::<i128>().is_ok_and(|v| v.abs() <= 1 << 53),
                        "decimal" => {
                            s.parse::<f64>().is_ok_and(|f| f.is_finite())
                                && significant_digits(s) <= 15
                        }
                        _ => false,
                    };
                    let fraction = s
                        .rsplit_once('.')
                        .map_or(0, |(_, f)| f.trim_end_matches('0').len());
                    let year_ok = s
                        .get(..4)
                        .and_then(|y| y.parse::<u32>().ok())
                        .is_some_and(|y| (1900..=9999).contains(&y));
                    let date = match kind {
                        "date" => year_ok,
                        "timestamp" => year_ok && fraction <= 3,
                        "time" => fraction <= 3 && !s.starts_with("24"),
                        _ => false,
                    };
                    if exact_number {
                        assert_eq!(got.as_f64(), s.parse::<f64>().ok(), "{context}: {got:?}");
                    } else if date {
                        match &got {
                            Data::DateTime(when) => {
                                let want = excel_serial(s);
                                assert!(
                                    (when.as_f64() - want).abs() < 1e-8,
                                    "{context}: {} vs {want}",
                                    when.as_f64()
                                )
                            }
                            other => panic!("{context}: not a date: {other:?}"),
                        }
                    } else {
                        assert_eq!(got, Data::String(s.clone()), "{context}");
                    }
                }
                other => assert_eq!(got, Data::String(other.to_string()), "{context}"),
            }
        }
    }
}

/// The refusals every engine shares, none of which reads a row or leaves a
/// file: a missing folder, a folder without write permission, an existing
/// file without `overwrite`, a relative path, an unknown option.
pub fn bad_destinations(b: &mut Bridge, session: &str, source: Value, dir: &Path) {
    let dir = &dir.join("refusals");
    std::fs::create_dir(dir).unwrap();
    let start = |b: &mut Bridge, dest: &str, options: Value| {
        b.err(
            "export.start",
            json!({"sessionId": session, "source": source, "format": "csv",
                   "destination": dest, "options": options}),
        )
    };
    let e = start(b, dir.join("missing/out.csv").to_str().unwrap(), json!({}));
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("does not exist"),
        "{e}"
    );

    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root writes in any folder regardless of its mode; sysfs refuses a new
    // file even to root, so it stands in for an unwritable folder there.
    let writable_anyway = std::fs::write(locked.join("probe"), b"x").is_ok();
    let _ = std::fs::remove_file(locked.join("probe"));
    let unwritable = if writable_anyway {
        std::path::PathBuf::from("/sys/dbbridge-export.csv")
    } else {
        locked.join("out.csv")
    };
    let e = start(b, unwritable.to_str().unwrap(), json!({}));
    assert_eq!(e["code"], "EXPORT_FAILED", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("cannot write"),
        "{e}"
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();

    let existing = dir.join("existing.csv");
    std::fs::write(&existing, b"keep me").unwrap();
    let e = start(b, existing.to_str().unwrap(), json!({}));
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    assert!(e["message"].as_str().unwrap().contains("overwrite"), "{e}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let e = start(b, "relative/out.csv", json!({}));
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");

    let e = start(
        b,
        dir.join("x.csv").to_str().unwrap(),
        json!({"delimeter": ";"}),
    );
    assert_eq!(e["code"], "INVALID_PARAMS", "{e}");
    assert_eq!(e["details"]["field"], "options.delimeter", "{e}");
    assert!(e["message"].as_str().unwrap().contains("delimeter"), "{e}");

    // Nothing was left behind: no file, no temporary file.
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "locked" && n != "existing.csv")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A directory's entries that look like an export's temporary file.
pub fn part_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// JSON, JSON Lines and XLSX exports of `table` hold exactly what `select`
/// gives through `query.run`; returns those columns and rows.
pub fn check_readable_formats(
    b: &mut Bridge,
    session: &str,
    table: &Value,
    select: &str,
    dir: &Path,
) -> (Vec<Value>, Vec<Value>) {
    let (columns, rows) = source_rows(b, session, select);
    for (format, lines) in [("jsonl", true), ("json", false)] {
        let path = dir.join(format!("every.{format}"));
        export_ok(b, session, table.clone(), format, &path, json!({}));
        check_json(&path, lines, &columns, &rows);
    }
    let xlsx = dir.join("every.xlsx");
    export_ok(b, session, table.clone(), "xlsx", &xlsx, json!({}));
    check_xlsx(&xlsx, &columns, &rows);
    (columns, rows)
}

/// An export of a writing statement fails in the read-only snapshot and
/// leaves no file; its done event.
pub fn refuses_writes(b: &mut Bridge, session: &str, sql: &str, dir: &Path) -> Value {
    let dest = dir.join("write.csv");
    let (_, done) = run_export(b, session, json!({"sql": sql}), "csv", &dest, json!({}));
    assert_eq!(done["status"], "failed", "{done}");
    assert!(!dest.exists());
    assert!(part_files(dir).is_empty());
    done
}

/// A large export (`sql`, 1M rows) cancelled after its first progress
/// event: meanwhile its session answers `probe`; afterwards there is no
/// file and the session still works.
pub fn cancel_mid_way(b: &mut Bridge, session: &str, sql: &str, format: &str, probe: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(format!("big.{format}"));
    let data = b.ok(
        "export.start",
        json!({"sessionId": session, "format": format, "destination": dest.to_str().unwrap(),
               "source": {"sql": sql}}),
    );
    let id = data["exportId"].as_str().unwrap().to_string();
    let first = b.event_where(std::time::Duration::from_secs(60), |e| {
        e["params"]["exportId"] == id.as_str()
    });
    assert_eq!(first["method"], "export.progress", "{first}");
    assert_eq!(b.query(session, probe, json!({})).status(), "completed");
    assert_eq!(
        b.ok("export.cancel", json!({"exportId": id}))["cancelled"],
        true
    );
    let (_, done) = b.job_events("exportId", &id, "export.done");
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(!dest.exists());
    assert!(part_files(dir.path()).is_empty());
    assert_eq!(
        b.ok("export.cancel", json!({"exportId": id}))["cancelled"],
        false
    );
    assert_eq!(
        b.query(session, "SELECT 1", json!({})).status(),
        "completed"
    );
}

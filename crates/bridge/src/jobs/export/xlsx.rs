//! The XLSX format, through rust_xlsxwriter in its constant-memory mode
//! (each finished row goes to a temporary file, so memory does not grow with
//! the sheet). A cell is typed where the spreadsheet holds the value
//! exactly: a number when an `f64` carries it (integers up to 2^53, decimals
//! of at most 15 significant digits), a date or time when its fraction fits
//! Excel's milliseconds; anything else is text, never a rounded number.
//! Excel keeps no empty-string cell: an empty text is a blank cell, as a
//! NULL is (the one thing this format cannot tell apart).

use std::path::PathBuf;

use dbbridge_protocol::connection::EngineKind;
use dbbridge_protocol::query::{ColumnInfo, ValueKind};
use dbbridge_protocol::{ErrorCode, RpcError};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};
use serde_json::value::RawValue;

use super::cell::{self, Cell};
use super::options::{Binary, ExportOptions};
use super::{FormatWriter, WriteError, WriteResult};

/// Excel's rows per sheet.
pub const SHEET_ROWS: u32 = 1_048_576;
/// Excel's characters (UTF-16 units) per cell.
const CELL_CHARS: usize = 32_767;
/// Integers an `f64` holds exactly.
const EXACT_INT: i128 = 1 << 53;

pub struct Xlsx {
    workbook: Workbook,
    path: PathBuf,
    header: bool,
    binary: Binary,
    engine: EngineKind,
    columns: Vec<ColumnInfo>,
    row: u32,
    date: Format,
    datetime: Format,
    time: Format,
    scratch: String,
}

fn failed(message: String) -> RpcError {
    RpcError::new(ErrorCode::ExportFailed, message)
}

fn xlsx_error(e: XlsxError) -> RpcError {
    failed(format!("writing the XLSX file failed: {e}"))
}

impl Xlsx {
    /// A workbook to be saved at `path` when finished.
    pub fn new(
        path: PathBuf,
        options: &ExportOptions,
        engine: EngineKind,
    ) -> Result<Xlsx, RpcError> {
        let mut workbook = Workbook::new();
        workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_error)?;
        Ok(Xlsx {
            workbook,
            path,
            header: options.header,
            binary: options.binary,
            engine,
            columns: Vec::new(),
            row: 0,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            time: Format::new().set_num_format("hh:mm:ss.000"),
            scratch: String::new(),
        })
    }

    fn next_row(&mut self) -> Result<u32, RpcError> {
        if self.row >= SHEET_ROWS {
            return Err(failed(format!(
                "the result has more rows than an XLSX sheet holds ({SHEET_ROWS}, header included); export it as CSV, or narrow the query"
            ))
            .with_details(serde_json::json!({"limit": SHEET_ROWS})));
        }
        let row = self.row;
        self.row += 1;
        Ok(row)
    }
}

/// A number of at most 15 significant digits, which an `f64` (and Excel)
/// gives back digit for digit.
fn exact_decimal(text: &str) -> Option<f64> {
    if !cell::is_plain_number(text) || text.contains(['e', 'E']) {
        return None;
    }
    let digits = text.trim_start_matches('-').replace('.', "");
    let significant = digits.trim_start_matches('0');
    let significant = if text.contains('.') {
        significant.trim_end_matches('0')
    } else {
        significant
    };
    if significant.len() > 15 {
        return None;
    }
    text.parse().ok()
}

/// An integer an `f64` holds exactly.
fn exact_integer(text: &str) -> Option<f64> {
    let v: i128 = text.parse().ok()?;
    (v.abs() <= EXACT_INT).then_some(v as f64)
}

/// Whether a time text's fraction fits Excel's milliseconds.
fn fits_millis(text: &str) -> bool {
    match text.rsplit_once('.') {
        Some((_, fraction)) => fraction.trim_end_matches('0').len() <= 3,
        None => true,
    }
}

/// A date, timestamp or time as Excel holds it, when it does exactly.
fn datetime(kind: ValueKind, text: &str) -> Option<ExcelDateTime> {
    let ok = match kind {
        ValueKind::Date => text.len() == 10,
        ValueKind::Timestamp => {
            text.len() >= 19 && matches!(text.as_bytes()[10], b'T' | b' ') && fits_millis(text)
        }
        ValueKind::Time => text.len() >= 8 && !text.starts_with("24") && fits_millis(text),
        _ => false,
    };
    if !ok {
        return None;
    }
    if kind != ValueKind::Time {
        let year: u16 = text.get(..4)?.parse().ok()?;
        if !(1900..=9999).contains(&year) {
            return None;
        }
    }
    ExcelDateTime::parse_from_str(text).ok()
}

impl FormatWriter for Xlsx {
    fn begin(&mut self, columns: &[ColumnInfo]) -> WriteResult {
        self.columns = columns.to_vec();
        if self.header {
            let row = self.next_row()?;
            let sheet = self.workbook.worksheet_from_index(0).map_err(xlsx_error)?;
            for (i, column) in columns.iter().enumerate() {
                sheet
                    .write_string(row, i as u16, &column.name)
                    .map_err(xlsx_error)?;
            }
        }
        Ok(())
    }

    fn rows(&mut self, rows: &[Vec<&RawValue>]) -> WriteResult {
        for values in rows {
            let row = self.next_row()?;
            for (i, raw) in values.iter().enumerate() {
                let col = i as u16;
                let kind = self.columns[i].kind;
                let sheet = self.workbook.worksheet_from_index(0).map_err(xlsx_error)?;
                let text: std::borrow::Cow<'_, str> = match cell::cell(raw) {
                    Cell::Null => continue,
                    Cell::Bool(b) => {
                        sheet.write_boolean(row, col, b).map_err(xlsx_error)?;
                        continue;
                    }
                    Cell::Number(n) => match n.parse::<f64>() {
                        Ok(v) => {
                            sheet.write_number(row, col, v).map_err(xlsx_error)?;
                            continue;
                        }
                        Err(_) => n.into(),
                    },
                    Cell::Array(json) => json.into(),
                    Cell::Text(t) => t,
                };
                let number = match kind {
                    ValueKind::Bigint => exact_integer(&text),
                    ValueKind::Decimal => exact_decimal(&text),
                    _ => None,
                };
                if let Some(v) = number {
                    sheet.write_number(row, col, v).map_err(xlsx_error)?;
                    continue;
                }
                if let Some(when) = datetime(kind, &text) {
                    let format = match kind {
                        ValueKind::Date => &self.date,
                        ValueKind::Time => &self.time,
                        _ => &self.datetime,
                    };
                    sheet
                        .write_datetime_with_format(row, col, &when, format)
                        .map_err(xlsx_error)?;
                    continue;
                }
                let value: &str = if kind == ValueKind::Bytes && self.binary == Binary::Hex {
                    match cell::decode_bytes(&text) {
                        Some(bytes) => {
                            self.scratch.clear();
                            if self.engine == EngineKind::Postgres {
                                self.scratch.push_str("\\x");
                            }
                            cell::push_hex(&mut self.scratch, &bytes);
                            &self.scratch
                        }
                        None => &text,
                    }
                } else {
                    &text
                };
                let units = value.encode_utf16().count();
                if units > CELL_CHARS {
                    return Err(WriteError(failed(format!(
                        "row {} column {:?} holds {units} UTF-16 units of text; an XLSX cell holds at most {CELL_CHARS}",
                        row, self.columns[i].name,
                    ))));
                }
                sheet.write_string(row, col, value).map_err(xlsx_error)?;
            }
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        // The workbook is assembled when saved; until then nothing is in
        // the destination.
        0
    }

    fn finish(mut self: Box<Self>) -> WriteResult {
        self.workbook.save(&self.path).map_err(xlsx_error)?;
        std::fs::File::open(&self.path)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_numbers_only() {
        assert_eq!(exact_integer("9007199254740992"), Some(9007199254740992.0));
        assert_eq!(exact_integer("9007199254740993"), None);
        assert_eq!(exact_integer("-9223372036854775808"), None);
        assert_eq!(exact_decimal("12345.6789"), Some(12345.6789));
        assert_eq!(exact_decimal("0.000000000000001"), Some(1e-15));
        assert_eq!(exact_decimal("12345678901234.50"), Some(12345678901234.5));
        assert_eq!(exact_decimal("1234567890123456.7"), None);
        assert_eq!(exact_decimal("NaN"), None);
        assert!(datetime(ValueKind::Date, "2024-02-29").is_some());
        assert!(datetime(ValueKind::Date, "1899-12-31").is_none());
        assert!(datetime(ValueKind::Timestamp, "2024-02-29T13:45:07.123").is_some());
        assert!(datetime(ValueKind::Timestamp, "2024-02-29T13:45:07.123456").is_none());
        assert!(datetime(ValueKind::Time, "13:45:07.500000").is_some());
    }
}

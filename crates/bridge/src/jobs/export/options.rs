//! `export.start`'s `options`: one object whose names are part of the
//! contract. An unknown name, a name that does not apply to the format, or a
//! value of the wrong shape is `INVALID_PARAMS` naming `options.<name>`.

use dbbridge_protocol::export::ExportFormat;
use dbbridge_protocol::{ErrorCode, RpcError};
use serde_json::Value;

/// How binary values are written in text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Base64,
    /// The form the source engine's own loader reads back: `\x00ff` for a
    /// Postgres bytea, plain `00ff` for MySQL's `UNHEX` and SQLite's `unhex`.
    Hex,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub header: bool,
    pub delimiter: char,
    pub quote: char,
    pub null_text: String,
    pub line_ending: &'static str,
    pub bom: bool,
    pub binary: Binary,
    pub overwrite: bool,
    pub batch_rows: usize,
    pub create_table: bool,
    pub numbers_as_strings: bool,
    /// The table the SQL format inserts into (an extension of the contract's
    /// names: a query has no table of its own).
    pub table_name: Option<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            header: true,
            delimiter: ',',
            quote: '"',
            null_text: String::new(),
            // RFC 4180's line break; `lineEnding: "lf"` for Unix tools.
            line_ending: "\r\n",
            bom: false,
            binary: Binary::Base64,
            overwrite: false,
            batch_rows: 500,
            create_table: false,
            numbers_as_strings: true,
            table_name: None,
        }
    }
}

/// Rows per `INSERT` at most: a statement stays well under every engine's
/// packet and parser limits.
const MAX_BATCH_ROWS: u64 = 10_000;

fn invalid(name: &str, message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message.into())
        .with_details(serde_json::json!({"field": format!("options.{name}")}))
}

/// Which formats each option applies to.
fn applies(name: &str, format: ExportFormat) -> Option<bool> {
    use ExportFormat::*;
    Some(match name {
        "overwrite" => true,
        "header" => matches!(format, Csv | Xlsx),
        "delimiter" | "quote" | "nullText" | "lineEnding" | "bom" => format == Csv,
        "binary" => matches!(format, Csv | Xlsx),
        "batchRows" | "createTable" | "tableName" => format == Sql,
        "numbersAsStrings" => matches!(format, Json | Jsonl),
        _ => return None,
    })
}

fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Json => "json",
        ExportFormat::Sql => "sql",
        ExportFormat::Xlsx => "xlsx",
    }
}

fn boolean(name: &str, value: &Value) -> Result<bool, RpcError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(name, format!("options.{name} must be true or false")))
}

fn text<'a>(name: &str, value: &'a Value) -> Result<&'a str, RpcError> {
    value
        .as_str()
        .ok_or_else(|| invalid(name, format!("options.{name} must be a string")))
}

/// One character that may separate or enclose CSV fields.
fn field_char(name: &str, value: &Value) -> Result<char, RpcError> {
    let s = text(name, value)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '\r' && c != '\n' => Ok(c),
        _ => Err(invalid(
            name,
            format!("options.{name} must be one character other than a line break"),
        )),
    }
}

/// Reads `options` for `format`.
pub fn parse(options: Option<&Value>, format: ExportFormat) -> Result<ExportOptions, RpcError> {
    let mut out = ExportOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    if options.is_null() {
        return Ok(out);
    }
    let Some(map) = options.as_object() else {
        return Err(
            RpcError::new(ErrorCode::InvalidParams, "options must be an object")
                .with_details(serde_json::json!({"field": "options"})),
        );
    };
    for (name, value) in map {
        match applies(name, format) {
            None => {
                return Err(invalid(name, format!("unknown export option \"{name}\"")));
            }
            Some(false) => {
                return Err(invalid(
                    name,
                    format!(
                        "options.{name} does not apply to the {} format",
                        format_name(format)
                    ),
                ));
            }
            Some(true) => {}
        }
        match name.as_str() {
            "header" => out.header = boolean(name, value)?,
            "bom" => out.bom = boolean(name, value)?,
            "overwrite" => out.overwrite = boolean(name, value)?,
            "createTable" => out.create_table = boolean(name, value)?,
            "numbersAsStrings" => out.numbers_as_strings = boolean(name, value)?,
            "delimiter" => out.delimiter = field_char(name, value)?,
            "quote" => out.quote = field_char(name, value)?,
            "nullText" => out.null_text = text(name, value)?.to_string(),
            "lineEnding" => {
                out.line_ending = match text(name, value)? {
                    "crlf" | "\r\n" => "\r\n",
                    "lf" | "\n" => "\n",
                    other => {
                        return Err(invalid(
                            name,
                            format!("options.lineEnding is \"crlf\" or \"lf\", not {other:?}"),
                        ));
                    }
                }
            }
            "binary" => {
                out.binary = match text(name, value)? {
                    "base64" => Binary::Base64,
                    "hex" => Binary::Hex,
                    other => {
                        return Err(invalid(
                            name,
                            format!("options.binary is \"base64\" or \"hex\", not {other:?}"),
                        ));
                    }
                }
            }
            "batchRows" => {
                out.batch_rows = match value.as_u64() {
                    Some(n @ 1..=MAX_BATCH_ROWS) => n as usize,
                    _ => {
                        return Err(invalid(
                            name,
                            format!(
                                "options.batchRows must be a whole number from 1 to {MAX_BATCH_ROWS}"
                            ),
                        ));
                    }
                }
            }
            "tableName" => {
                let t = text(name, value)?;
                if t.is_empty() {
                    return Err(invalid(name, "options.tableName must not be empty"));
                }
                out.table_name = Some(t.to_string());
            }
            _ => unreachable!("every applicable name is handled"),
        }
    }
    if format == ExportFormat::Csv {
        if out.delimiter == out.quote {
            return Err(invalid(
                "quote",
                "options.quote and options.delimiter must differ",
            ));
        }
        if out
            .null_text
            .contains([out.delimiter, out.quote, '\r', '\n'])
        {
            return Err(invalid(
                "nullText",
                "options.nullText must not hold the delimiter, the quote or a line break",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(e: RpcError) -> String {
        e.details.unwrap()["field"].as_str().unwrap().to_string()
    }

    #[test]
    fn defaults_and_values() {
        let o = parse(None, ExportFormat::Csv).unwrap();
        assert!(o.header && !o.bom && !o.overwrite);
        assert_eq!((o.delimiter, o.quote, o.line_ending), (',', '"', "\r\n"));
        let o = parse(
            Some(&json!({"delimiter": "\t", "lineEnding": "lf", "nullText": "\\N", "binary": "hex", "bom": true})),
            ExportFormat::Csv,
        )
        .unwrap();
        assert_eq!(
            (o.delimiter, o.line_ending, o.null_text.as_str()),
            ('\t', "\n", "\\N")
        );
        assert_eq!(o.binary, Binary::Hex);
        assert!(o.bom);
        let o = parse(
            Some(&json!({"batchRows": 7, "createTable": true})),
            ExportFormat::Sql,
        )
        .unwrap();
        assert_eq!((o.batch_rows, o.create_table), (7, true));
    }

    #[test]
    fn refusals_name_the_option() {
        let e = parse(Some(&json!({"delimeter": ";"})), ExportFormat::Csv).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParams);
        assert!(e.message.contains("delimeter"), "{}", e.message);
        assert_eq!(field(e), "options.delimeter");
        let e = parse(Some(&json!({"batchRows": 10})), ExportFormat::Csv).unwrap_err();
        assert_eq!(field(e), "options.batchRows");
        let e = parse(Some(&json!({"batchRows": 0})), ExportFormat::Sql).unwrap_err();
        assert_eq!(field(e), "options.batchRows");
        let e = parse(Some(&json!({"delimiter": ";;"})), ExportFormat::Csv).unwrap_err();
        assert_eq!(field(e), "options.delimiter");
        let e = parse(Some(&json!({"header": "yes"})), ExportFormat::Csv).unwrap_err();
        assert_eq!(field(e), "options.header");
        let e = parse(Some(&json!({"quote": ","})), ExportFormat::Csv).unwrap_err();
        assert_eq!(field(e), "options.quote");
        let e = parse(Some(&json!([1])), ExportFormat::Csv).unwrap_err();
        assert_eq!(field(e), "options");
    }
}

//! The text formats: CSV (RFC 4180) and JSON / JSON Lines. Each row is built
//! in one reused string and written through a counting, buffered file.

use std::fs::File;
use std::io::{BufWriter, Write};

use dbbridge_protocol::connection::EngineKind;
use dbbridge_protocol::query::{ColumnInfo, ValueKind};
use serde_json::value::RawValue;

use super::cell::{self, Cell};
use super::options::{Binary, ExportOptions};
use super::{FormatWriter, WriteResult};

/// A file that counts what is written to it, and has the disk write it
/// back as it goes: every `SYNC_EVERY` bytes a thread of its own syncs what
/// is written so far, so the sync before the rename has little left to do
/// and the writing never waits for the disk.
pub struct Counted {
    inner: BufWriter<File>,
    pub written: u64,
    synced_at: u64,
    syncer: Option<Syncer>,
}

const SYNC_EVERY: u64 = 32 * 1024 * 1024;

struct Syncer {
    ask: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Syncer {
    fn start(file: &File) -> Option<Syncer> {
        let file = file.try_clone().ok()?;
        let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("dbbridge-export-sync".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        Some(Syncer { ask, thread })
    }
}

impl Counted {
    pub fn new(file: File) -> Counted {
        let syncer = Syncer::start(&file);
        Counted {
            inner: BufWriter::with_capacity(256 * 1024, file),
            written: 0,
            synced_at: 0,
            syncer,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.synced_at >= SYNC_EVERY {
            self.synced_at = self.written;
            if let Some(syncer) = &self.syncer {
                // Busy syncing: the next round takes this part too.
                let _ = syncer.ask.try_send(());
            }
        }
        Ok(())
    }

    /// Flushes and syncs the file's data to disk (before the rename that
    /// puts it in place, so a crash never leaves a short file there).
    pub fn finish(self) -> std::io::Result<()> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        if let Some(Syncer { ask, thread }) = self.syncer {
            drop(ask);
            thread
                .join()
                .map_err(|_| std::io::Error::other("the sync thread panicked"))??;
        }
        file.sync_data()
    }
}

/// A CSV file.
pub struct Csv {
    out: Counted,
    options: ExportOptions,
    engine: EngineKind,
    columns: Vec<ColumnInfo>,
    line: String,
    scratch: String,
    text: String,
}

impl Csv {
    pub fn new(file: File, options: ExportOptions, engine: EngineKind) -> Csv {
        Csv {
            out: Counted::new(file),
            options,
            engine,
            columns: Vec::new(),
            line: String::new(),
            scratch: String::new(),
            text: String::new(),
        }
    }

    /// Appends one field, quoted when it must be: when it holds the
    /// delimiter, the quote or a line break, when it is empty or equals the
    /// NULL text (so a NULL and a string stay apart), and when it is `\.`
    /// (Postgres's end-of-data marker).
    fn field(line: &mut String, options: &ExportOptions, value: &str) {
        let quote = options.quote;
        let special = match (u8::try_from(options.delimiter), u8::try_from(quote)) {
            // The usual case, ASCII delimiter and quote: one pass over bytes.
            (Ok(d), Ok(q)) if d.is_ascii() && q.is_ascii() => value
                .bytes()
                .any(|b| b == d || b == q || b == b'\r' || b == b'\n'),
            _ => value.contains([options.delimiter, quote, '\r', '\n']),
        };
        let needs = special || value.is_empty() || value == options.null_text || value == "\\.";
        if !needs {
            line.push_str(value);
            return;
        }
        line.push(quote);
        let mut pieces = value.split(quote);
        if let Some(first) = pieces.next() {
            line.push_str(first);
        }
        for piece in pieces {
            line.push(quote);
            line.push(quote);
            line.push_str(piece);
        }
        line.push(quote);
    }

    fn cell(&mut self, index: usize, raw: &RawValue) {
        let column = &self.columns[index];
        let options = &self.options;
        if column.kind != ValueKind::Bytes
            && let Some(text) = cell::text_into(raw, &mut self.text)
        {
            // A string, unescaped into a reused buffer: no allocation per cell.
            Self::field(&mut self.line, options, text);
            return;
        }
        match cell::cell(raw) {
            Cell::Null => self.line.push_str(&options.null_text),
            Cell::Bool(b) => self.line.push_str(match (self.engine, b) {
                (EngineKind::Postgres, true) => "true",
                (EngineKind::Postgres, false) => "false",
                (_, true) => "1",
                (_, false) => "0",
            }),
            Cell::Number(n) => Self::field(&mut self.line, options, n),
            Cell::Text(text) if column.kind == ValueKind::Bytes => {
                match (options.binary, cell::decode_bytes(&text)) {
                    (Binary::Hex, Some(bytes)) => {
                        self.scratch.clear();
                        if self.engine == EngineKind::Postgres {
                            self.scratch.push_str("\\x");
                        }
                        cell::push_hex(&mut self.scratch, &bytes);
                        Self::field(&mut self.line, options, &self.scratch);
                    }
                    _ => Self::field(&mut self.line, options, &text),
                }
            }
            Cell::Text(text) => Self::field(&mut self.line, options, &text),
            Cell::Array(json) => {
                self.scratch.clear();
                if self.engine == EngineKind::Postgres {
                    cell::push_pg_array(
                        &mut self.scratch,
                        json,
                        cell::is_bytea_array(&column.db_type),
                    );
                } else {
                    self.scratch.push_str(json);
                }
                Self::field(&mut self.line, options, &self.scratch);
            }
        }
    }
}

impl FormatWriter for Csv {
    fn begin(&mut self, columns: &[ColumnInfo]) -> WriteResult {
        self.columns = columns.to_vec();
        if self.options.bom {
            self.out.write("\u{feff}".as_bytes())?;
        }
        if self.options.header {
            self.line.clear();
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.line.push(self.options.delimiter);
                }
                Self::field(&mut self.line, &self.options, &column.name);
            }
            self.line.push_str(self.options.line_ending);
            self.out.write(self.line.as_bytes())?;
        }
        Ok(())
    }

    fn rows(&mut self, rows: &[Vec<&RawValue>]) -> WriteResult {
        for row in rows {
            self.line.clear();
            for (i, raw) in row.iter().enumerate() {
                if i > 0 {
                    self.line.push(self.options.delimiter);
                }
                self.cell(i, raw);
            }
            self.line.push_str(self.options.line_ending);
            self.out.write(self.line.as_bytes())?;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.out.written
    }

    fn finish(self: Box<Self>) -> WriteResult {
        Ok(self.out.finish()?)
    }
}

/// JSON Lines (an object a line) or JSON (one array of objects).
pub struct Json {
    out: Counted,
    lines: bool,
    numbers_as_strings: bool,
    /// `"name":` of each column, encoded once.
    keys: Vec<String>,
    exact: Vec<bool>,
    rows: u64,
    line: String,
}

impl Json {
    pub fn new(file: File, options: &ExportOptions, lines: bool) -> Json {
        Json {
            out: Counted::new(file),
            lines,
            numbers_as_strings: options.numbers_as_strings,
            keys: Vec::new(),
            exact: Vec::new(),
            rows: 0,
            line: String::new(),
        }
    }
}

impl FormatWriter for Json {
    fn begin(&mut self, columns: &[ColumnInfo]) -> WriteResult {
        self.keys = cell::unique_names(columns.iter().map(|c| c.name.as_str()))
            .iter()
            .map(|name| format!("{}:", serde_json::Value::from(name.as_str())))
            .collect();
        self.exact = columns
            .iter()
            .map(|c| cell::is_exact_number(c.kind))
            .collect();
        if !self.lines {
            self.out.write(b"[")?;
        }
        Ok(())
    }

    fn rows(&mut self, rows: &[Vec<&RawValue>]) -> WriteResult {
        for row in rows {
            self.line.clear();
            if !self.lines {
                self.line
                    .push_str(if self.rows == 0 { "\n" } else { ",\n" });
            }
            self.line.push('{');
            for (i, raw) in row.iter().enumerate() {
                if i > 0 {
                    self.line.push(',');
                }
                self.line.push_str(&self.keys[i]);
                let text = raw.get();
                // An exact number asked for as a number: its digits unquoted.
                if !self.numbers_as_strings
                    && self.exact[i]
                    && text.len() > 2
                    && cell::is_plain_number(&text[1..text.len() - 1])
                {
                    self.line.push_str(&text[1..text.len() - 1]);
                } else {
                    self.line.push_str(text);
                }
            }
            self.line.push('}');
            if self.lines {
                self.line.push('\n');
            }
            self.out.write(self.line.as_bytes())?;
            self.rows += 1;
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.out.written
    }

    fn finish(mut self: Box<Self>) -> WriteResult {
        if !self.lines {
            self.out.write(if self.rows == 0 {
                b"]\n" as &[u8]
            } else {
                b"\n]\n"
            })?;
        }
        Ok(self.out.finish()?)
    }
}

//! Logging: tracing events as JSON lines in `<data-dir>/logs/`, rotated daily
//! and at a size cap with a bounded number of files kept; warnings and errors
//! also go to stderr. Never to stdout. Every line passes through redaction:
//! fields named like secrets are masked and remembered secret values scrubbed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::redact;

/// A log file is rotated past this size.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// How many log files are kept.
pub const MAX_FILES: usize = 10;

/// Installs the global subscriber. `level` applies to the bridge's own crates;
/// dependencies log at warn and above.
pub fn init(log_dir: &Path, level: LevelFilter) -> std::io::Result<()> {
    let file = RotatingFile::open(log_dir, "dbbridge", MAX_FILE_BYTES, MAX_FILES)?;
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target("dbbridge", level)
        .with_target("dbbridge_db", level);
    let layer = JsonLogLayer {
        file: Mutex::new(file),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
    Ok(())
}

/// Writes each event as one JSON object per line.
struct JsonLogLayer {
    file: Mutex<RotatingFile>,
}

/// The fields of a span, kept in its extensions so events inside it carry them
/// (`sessionId`, `queryId`, ...).
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for JsonLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor(Map::new());
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(visitor.0));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(fields) = extensions.get_mut::<SpanFields>() {
                let mut visitor = JsonVisitor(std::mem::take(&mut fields.0));
                values.record(&mut visitor);
                fields.0 = visitor.0;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Map::new();
        let timestamp = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert(
            "target".into(),
            Value::String(metadata.target().to_string()),
        );
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        for (k, v) in visitor.0 {
            line.insert(k, v);
        }
        let text = Value::Object(line).to_string();
        let text = redact::scrub(&text);
        if let Ok(mut file) = self.file.lock() {
            file.write_line(text.as_bytes());
        }
        if *metadata.level() <= Level::WARN {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}

/// Collects fields as JSON, masking any field named like a secret.
struct JsonVisitor(Map<String, Value>);

impl JsonVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if redact::is_sensitive_name(name) {
            Value::String(redact::MASK.into())
        } else {
            value
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Files named `<prefix>-YYYY-MM-DD-NNN.log`: a new one each UTC day and
/// whenever the current one passes `max_bytes`; the oldest beyond `keep` are deleted.
struct RotatingFile {
    dir: PathBuf,
    prefix: String,
    max_bytes: u64,
    keep: usize,
    date: time::Date,
    seq: u32,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    fn open(dir: &Path, prefix: &str, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let date = OffsetDateTime::now_utc().date();
        let mut this = RotatingFile {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            max_bytes,
            keep,
            date,
            seq: 0,
            file: None,
            size: 0,
        };
        // Continue today's latest file when it has room.
        let latest = this
            .files()?
            .into_iter()
            .filter(|(d, _)| *d == date.to_string())
            .map(|(_, s)| s)
            .max();
        this.seq = latest.unwrap_or(0);
        this.open_current()?;
        if this.size >= max_bytes {
            this.seq += 1;
            this.open_current()?;
        }
        this.prune();
        Ok(this)
    }

    fn path(&self) -> PathBuf {
        self.dir
            .join(format!("{}-{}-{:03}.log", self.prefix, self.date, self.seq))
    }

    fn open_current(&mut self) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path())?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// (date, seq) of every log file of ours in the directory.
    fn files(&self) -> std::io::Result<Vec<(String, u32)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(rest) = name
                .strip_prefix(&format!("{}-", self.prefix))
                .and_then(|r| r.strip_suffix(".log"))
            else {
                continue;
            };
            if let Some((date, seq)) = rest.rsplit_once('-')
                && let Ok(seq) = seq.parse()
            {
                out.push((date.to_string(), seq));
            }
        }
        out.sort();
        Ok(out)
    }

    fn prune(&self) {
        let Ok(files) = self.files() else { return };
        let excess = files.len().saturating_sub(self.keep);
        for (date, seq) in files.into_iter().take(excess) {
            let _ = std::fs::remove_file(
                self.dir
                    .join(format!("{}-{}-{:03}.log", self.prefix, date, seq)),
            );
        }
    }

    fn write_line(&mut self, line: &[u8]) {
        let today = OffsetDateTime::now_utc().date();
        let rotate = if today != self.date {
            self.date = today;
            self.seq = 0;
            true
        } else if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
            self.seq += 1;
            true
        } else {
            false
        };
        if rotate && self.open_current().is_ok() {
            self.prune();
        }
        if let Some(file) = self.file.as_mut() {
            // One write per line so concurrent processes never interleave within a line.
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line);
            buf.push(b'\n');
            if file.write_all(&buf).is_ok() {
                self.size += buf.len() as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_size_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = RotatingFile::open(dir.path(), "t", 100, 3).expect("open");
        for _ in 0..50 {
            file.write_line(&[b'x'; 40]);
        }
        let files = file.files().expect("list");
        assert_eq!(files.len(), 3, "{files:?}");
        for (date, seq) in files {
            let len = std::fs::metadata(dir.path().join(format!("t-{date}-{seq:03}.log")))
                .expect("stat")
                .len();
            assert!(len <= 100, "{len}");
        }
    }
}

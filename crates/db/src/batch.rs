//! Row batches: the unit that travels from a connector to the client. A batch
//! is cut at the requested row count, at about 1 MiB of JSON, or when rows
//! trickle in for 100 ms, whichever comes first.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::value::RowWriter;

/// A batch of rows, already encoded as one JSON array of arrays.
#[derive(Debug)]
pub struct RowBatch {
    pub json: String,
    pub rows: usize,
}

pub const DEFAULT_BATCH_SIZE: usize = 500;
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
pub const TRICKLE: Duration = Duration::from_millis(100);

/// Batch texts already written out, kept for the next batches: a fresh
/// buffer of ~100 KB is new memory the kernel must fault in and zero page by
/// page (5% of the bridge's CPU on a large MySQL read), a spare one is not.
static SPARE: Spares = Spares::new(4);

/// Hands a batch's text back once it has been written out, for a later batch
/// to fill.
pub fn recycle(text: String) {
    SPARE.put(text);
}

/// A few empty strings with their memory, up to `max`; tiny ones (an empty
/// result's `[]`) are not worth a place, oversized ones are dropped so the
/// spares stay small.
struct Spares {
    list: Mutex<Vec<String>>,
    max: usize,
}

impl Spares {
    const fn new(max: usize) -> Self {
        Spares {
            list: Mutex::new(Vec::new()),
            max,
        }
    }

    fn put(&self, mut text: String) {
        if !(1024..=MAX_BATCH_BYTES * 2).contains(&text.capacity()) {
            return;
        }
        text.clear();
        if let Ok(mut list) = self.list.lock()
            && list.len() < self.max
        {
            list.push(text);
        }
    }

    /// A spare, or a new empty string.
    fn take(&self) -> String {
        self.list
            .lock()
            .ok()
            .and_then(|mut list| list.pop())
            .unwrap_or_default()
    }
}

/// Accumulates encoded rows and says when the batch is due.
pub struct BatchBuilder {
    buf: String,
    rows: usize,
    first_row_at: Option<Instant>,
    batch_size: usize,
}

impl BatchBuilder {
    pub fn new(batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        BatchBuilder {
            buf: Self::fresh(Self::first_capacity(batch_size)),
            rows: 0,
            first_row_at: None,
            batch_size,
        }
    }

    /// An empty batch text (`[`) with room for `capacity` bytes, a spare if
    /// there is one.
    fn fresh(capacity: usize) -> String {
        let mut buf = SPARE.take();
        buf.reserve(capacity);
        buf.push('[');
        buf
    }

    /// The room a first batch of `batch_size` rows starts with.
    fn first_capacity(batch_size: usize) -> usize {
        (batch_size * 64).min(MAX_BATCH_BYTES) + 64
    }

    /// Encodes one row: `f` writes its cells.
    pub fn row(&mut self, f: impl FnOnce(&mut RowWriter<'_>)) {
        if self.rows > 0 {
            self.buf.push(',');
        } else {
            self.first_row_at = Some(Instant::now());
        }
        let mut writer = RowWriter::new(&mut self.buf);
        f(&mut writer);
        writer.finish();
        self.rows += 1;
    }

    /// Fallible variant of [`row`](Self::row): on error the partial row is removed.
    pub fn try_row<E>(
        &mut self,
        f: impl FnOnce(&mut RowWriter<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mark = self.buf.len();
        let rows = self.rows;
        let mut result = Ok(());
        self.row(|w| result = f(w));
        if result.is_err() {
            self.buf.truncate(mark);
            self.rows = rows;
        }
        result
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Whether the batch should be sent now.
    pub fn is_due(&self) -> bool {
        self.is_due_after(true)
    }

    /// Whether the batch should be sent now, after a row that had to be
    /// `waited` for or that was already in the reader's buffer. Only a row
    /// that was waited for can end a trickle batch (one already there came
    /// at once), so only then is the clock read.
    pub fn is_due_after(&self, waited: bool) -> bool {
        self.rows >= self.batch_size
            || self.buf.len() >= MAX_BATCH_BYTES
            || (waited && self.first_row_at.is_some_and(|t| t.elapsed() >= TRICKLE))
    }

    /// Takes the batch (possibly empty) and starts a new one, sized like this
    /// one (an eighth more) so that it does not grow by copying.
    pub fn take(&mut self) -> RowBatch {
        let like_this =
            (self.buf.len() + self.buf.len() / 8).min(MAX_BATCH_BYTES + MAX_BATCH_BYTES / 8);
        let next = Self::fresh(like_this.max(Self::first_capacity(self.batch_size)));
        let mut json = std::mem::replace(&mut self.buf, next);
        json.push(']');
        let rows = std::mem::take(&mut self.rows);
        self.first_row_at = None;
        RowBatch { json, rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_by_rows_and_valid_json() {
        let mut b = BatchBuilder::new(3);
        for i in 0..3 {
            assert!(!b.is_due());
            b.row(|w| {
                w.int(i);
                w.str("a");
            });
        }
        assert!(b.is_due());
        let batch = b.take();
        assert_eq!(batch.rows, 3);
        let v: serde_json::Value = serde_json::from_str(&batch.json).expect("json");
        assert_eq!(v, serde_json::json!([[0, "a"], [1, "a"], [2, "a"]]));
        assert_eq!(b.take().json, "[]");
    }

    #[test]
    fn the_next_batch_has_room_for_one_like_the_last() {
        let mut b = BatchBuilder::new(1000);
        for _ in 0..1000 {
            b.row(|w| w.str(&"x".repeat(200)));
        }
        let taken = b.take().json.len();
        assert!(taken > 200_000);
        assert!(b.buf.capacity() >= taken, "{} < {taken}", b.buf.capacity());
        assert!(b.buf.capacity() <= taken * 2, "{}", b.buf.capacity());
    }

    #[test]
    fn spares_come_back_empty_with_their_memory_and_stay_few_and_small() {
        let spares = Spares::new(2);
        let mut text = String::with_capacity(4096);
        text.push_str("[[1]]");
        let at = text.as_ptr();
        spares.put(text);
        let back = spares.take();
        assert!(back.is_empty());
        assert_eq!(back.as_ptr(), at);
        assert!(back.capacity() >= 4096);
        assert_eq!(spares.take().capacity(), 0, "none left: a new string");
        spares.put("[]".to_string());
        assert!(spares.list.lock().unwrap().is_empty(), "too small to keep");
        for _ in 0..3 {
            spares.put(String::with_capacity(2048));
        }
        spares.put(String::with_capacity(MAX_BATCH_BYTES * 3));
        let list = spares.list.lock().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|s| s.capacity() < MAX_BATCH_BYTES));
    }

    #[test]
    fn cut_by_trickle() {
        let mut b = BatchBuilder::new(1000);
        b.row(|w| w.null());
        std::thread::sleep(TRICKLE);
        assert!(b.is_due());
    }

    #[test]
    fn failed_row_leaves_no_trace() {
        let mut b = BatchBuilder::new(10);
        b.row(|w| w.int(1));
        let r: Result<(), ()> = b.try_row(|w| {
            w.int(2);
            Err(())
        });
        assert!(r.is_err());
        assert_eq!(b.take().json, "[[1]]");
    }
}

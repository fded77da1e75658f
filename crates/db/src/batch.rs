//! Row batches: the unit that travels from a connector to the client. A batch
//! is cut at the requested row count, at about 1 MiB of JSON, or when rows
//! trickle in for 100 ms, whichever comes first.

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
            buf: Self::fresh(batch_size),
            rows: 0,
            first_row_at: None,
            batch_size,
        }
    }

    fn fresh(batch_size: usize) -> String {
        let mut buf = String::with_capacity((batch_size * 64).min(MAX_BATCH_BYTES) + 64);
        buf.push('[');
        buf
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
        self.rows >= self.batch_size
            || self.buf.len() >= MAX_BATCH_BYTES
            || self.first_row_at.is_some_and(|t| t.elapsed() >= TRICKLE)
    }

    /// Takes the batch (possibly empty) and starts a new one, sized like this
    /// one (an eighth more) so that it does not grow by copying.
    pub fn take(&mut self) -> RowBatch {
        let like_this =
            (self.buf.len() + self.buf.len() / 8).min(MAX_BATCH_BYTES + MAX_BATCH_BYTES / 8);
        let mut next = Self::fresh(self.batch_size);
        next.reserve(like_this.saturating_sub(next.len()));
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

//! Reading a described statement's rows: whole through `COPY (...) TO
//! STDOUT`, or page by page through a cursor; the column descriptions and
//! encoders, the row writer and the result sender shared with `simple`.

use std::sync::atomic::Ordering;

use dbbridge_protocol::query::{ColumnInfo, ResultSummary};
use futures::{FutureExt, StreamExt};
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use super::{Out, PgColumn, Runner, Stop, failed, failed_after, in_transaction_now};
use crate::postgres::copy;
use crate::postgres::values::{self, Encoder};
use crate::{BatchBuilder, DbError, StreamItem};

/// Aim for about this much row text per `FETCH`.
const FETCH_BYTES: usize = 2 * 1024 * 1024;
const FIRST_FETCH: usize = 1000;
const MAX_FETCH: usize = 20_000;

impl Runner<'_> {
    /// A row-returning query read whole through `COPY (...) TO STDOUT`: one
    /// protocol read with no per-row allocation, which pauses when the
    /// consumer does (the socket is not read while the stream's channel is
    /// full). The server's own text output, so nothing is lost.
    pub(super) async fn copy(
        &self,
        sql: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        // Before the COPY: nothing else can run on the connection while it streams.
        let columns = self.column_infos(&described).await;
        // The newline ends a trailing `--` comment.
        const PREFIX: &str = "COPY (\n";
        let copy = format!("{PREFIX}{sql}\n) TO STDOUT");
        let unprefixed = |error| failed_after(PREFIX, error);
        let stream = self
            .client()
            .copy_out(copy.as_str())
            .await
            .map_err(unprefixed)?;
        futures::pin_mut!(stream);
        sender.columns(&columns).await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut scratch = String::new();
        loop {
            // Whether the next row had to be waited for, or was already received.
            let (next, waited) = match stream.next().now_or_never() {
                Some(next) => (next, false),
                None => (stream.next().await, true),
            };
            let Some(data) = next else { break };
            let data = data.map_err(unprefixed)?;
            let line = std::str::from_utf8(&data)
                .map_err(|_| DbError::internal("COPY sent a row that is not UTF-8"))?;
            builder.try_row(|w| {
                let count = copy::each_field(line, &mut scratch, |i, text| {
                    if let Some((_, encoder)) = columns.get(i) {
                        values::encode(w, encoder, text);
                    }
                });
                if count == columns.len() {
                    Ok(())
                } else {
                    Err(DbError::internal(format!(
                        "COPY sent a row of {count} fields for {} columns",
                        columns.len()
                    )))
                }
            })?;
            row_count += 1;
            if builder.is_due_after(waited) {
                // A cancel that reached a server already done sending ends the
                // read here rather than after what is still on its way.
                if self.requested.load(Ordering::SeqCst) {
                    return Err(Stop::Failed(DbError::cancelled()));
                }
                sender.rows(&mut builder).await?;
            }
        }
        sender.finish(&mut builder, row_count, None, false).await
    }

    /// A row-returning query read through a cursor.
    pub(super) async fn cursor(
        &self,
        sql: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        let own_transaction = !in_transaction_now(self.client()).await?;
        let name = format!(
            "dbbridge_cursor_{}",
            self.shared.cursor_seq.fetch_add(1, Ordering::SeqCst)
        );
        if own_transaction && self.options.windowed {
            // A windowed read may pause for as long as its user looks at the
            // first page. Its own transaction then sits idle, and a FETCH
            // whose rows wait in the socket stays active: the role's
            // idle-in-transaction and statement timeouts would end either.
            // Both are lifted for this transaction only.
            self.client()
                .batch_execute(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0",
                )
                .await
                .map_err(failed)?;
        } else if own_transaction {
            self.client().batch_execute("BEGIN").await.map_err(failed)?;
        }
        let read = self.fetch_all(sql, &name, described, sender).await;
        match read {
            Ok(()) => {
                let end = if own_transaction {
                    format!("CLOSE {name}; COMMIT")
                } else {
                    format!("CLOSE {name}")
                };
                self.client().batch_execute(&end).await.map_err(failed)
            }
            Err(stop) => {
                // A cancel still on its way must not hit the cleanup.
                self.cancel.settle().await;
                let cleanup = if own_transaction {
                    "ROLLBACK".to_string()
                } else {
                    format!("CLOSE {name}")
                };
                // In an aborted block CLOSE fails too; the block's owner rolls back.
                let _ = self.client().batch_execute(&cleanup).await;
                Err(stop)
            }
        }
    }

    pub(super) async fn fetch_all(
        &self,
        sql: &str,
        name: &str,
        described: Vec<PgColumn>,
        sender: &Sender<'_>,
    ) -> Result<(), Stop> {
        let declare = format!("DECLARE {name} NO SCROLL CURSOR FOR ");
        if let Err(error) = self
            .client()
            .batch_execute(&format!("{declare}{sql}"))
            .await
        {
            return Err(failed_after(&declare, error));
        }
        let columns = self.column_infos(&described).await;
        sender.columns(&columns).await?;
        let mut builder = BatchBuilder::new(self.options.batch_size);
        let mut row_count = 0u64;
        let mut truncated = false;
        // How many rows to ask for when `expected` rows will have been read: one
        // past maxRows tells whether there was more.
        let want_for = |fetch: usize, expected: u64| match self.options.max_rows {
            Some(max) => max
                .checked_sub(expected)
                .map_or(0, |left| (fetch as u64).min(left + 1) as usize),
            None => fetch,
        };
        let fetch_more = |want: usize| async move {
            self.client()
                .simple_query_raw(&format!("FETCH FORWARD {want} FROM {name}"))
                .await
                .map(Box::pin)
                .map_err(failed)
        };
        let mut fetch = FIRST_FETCH;
        let mut want = want_for(fetch, 0);
        let mut current = fetch_more(want).await?;
        loop {
            if self.requested.load(Ordering::SeqCst) {
                return Err(Stop::Failed(DbError::cancelled()));
            }
            // The next FETCH is queued before this one is read, so the server
            // produces rows while these are encoded.
            let next_want = want_for(fetch, row_count + want as u64);
            let next = match next_want {
                0 => None,
                n => Some((n, fetch_more(n).await?)),
            };
            let (mut got, mut bytes) = (0usize, 0usize);
            while let Some(message) = current.next().await {
                let SimpleQueryMessage::Row(row) = message.map_err(failed)? else {
                    continue;
                };
                got += 1;
                if self.options.max_rows.is_some_and(|max| row_count >= max) {
                    truncated = true;
                    continue;
                }
                bytes += write_row(&mut builder, &columns, &row);
                row_count += 1;
                if builder.is_due() {
                    sender.rows(&mut builder).await?;
                }
            }
            if got < want || truncated {
                break;
            }
            fetch = (FETCH_BYTES / (bytes / got.max(1)).max(1)).clamp(16, MAX_FETCH);
            match next {
                Some((n, stream)) => (want, current) = (n, stream),
                None => break,
            }
        }
        sender
            .finish(&mut builder, row_count, None, truncated)
            .await
    }

    /// Column descriptions, with `dbType` as Postgres writes it (`format_type`,
    /// asked once per type and modifier on this connection).
    pub(super) async fn column_infos(&self, columns: &[PgColumn]) -> Vec<(ColumnInfo, Encoder)> {
        let missing: Vec<(u32, i32)> = {
            let cache = self
                .shared
                .type_names
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut missing: Vec<(u32, i32)> = columns
                .iter()
                .map(|c| (c.ty.oid(), c.typmod))
                .filter(|key| !cache.contains_key(key))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            let list: Vec<String> = missing
                .iter()
                .map(|(oid, typmod)| format!("format_type({oid}, {typmod})"))
                .collect();
            if let Ok(messages) = self
                .client()
                .simple_query(&format!("SELECT {}", list.join(", ")))
                .await
            {
                let mut cache = self
                    .shared
                    .type_names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for message in messages {
                    if let SimpleQueryMessage::Row(row) = message {
                        for (i, key) in missing.iter().enumerate() {
                            if let Some(name) = row.get(i) {
                                cache.insert(*key, name.to_string());
                            }
                        }
                    }
                }
            }
        }
        let cache = self
            .shared
            .type_names
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        columns
            .iter()
            .map(|c| {
                let (kind, encoder) = values::encoder_for(&c.ty);
                let db_type = cache
                    .get(&(c.ty.oid(), c.typmod))
                    .cloned()
                    .unwrap_or_else(|| c.ty.name().to_string());
                (
                    ColumnInfo {
                        name: c.name.clone(),
                        db_type,
                        kind,
                    },
                    encoder,
                )
            })
            .collect()
    }
}

/// Encodes one row; returns the bytes of text it held.
pub(super) fn write_row(
    builder: &mut BatchBuilder,
    columns: &[(ColumnInfo, Encoder)],
    row: &SimpleQueryRow,
) -> usize {
    let mut bytes = 0;
    builder.row(|w| {
        for (i, (_, encoder)) in columns.iter().enumerate() {
            let text = row.try_get(i).unwrap_or(None);
            bytes += text.map_or(0, str::len);
            values::encode(w, encoder, text);
        }
    });
    bytes
}

/// Sends the items of one result set.
pub(super) struct Sender<'a> {
    pub(super) out: &'a Out,
    pub(super) index: u32,
    pub(super) command: String,
}

impl Sender<'_> {
    pub(super) async fn send(&self, item: StreamItem) -> Result<(), Stop> {
        self.out
            .send(Ok(item))
            .await
            .map_err(|_| Stop::ConsumerGone)
    }

    pub(super) async fn columns(&self, columns: &[(ColumnInfo, Encoder)]) -> Result<(), Stop> {
        self.send(StreamItem::Columns {
            result_index: self.index,
            columns: columns.iter().map(|(c, _)| c.clone()).collect(),
        })
        .await
    }

    pub(super) async fn rows(&self, builder: &mut BatchBuilder) -> Result<(), Stop> {
        self.send(StreamItem::Rows {
            result_index: self.index,
            batch: builder.take(),
        })
        .await
    }

    /// Sends the rows left in `builder`, then the result's summary.
    pub(super) async fn finish(
        &self,
        builder: &mut BatchBuilder,
        row_count: u64,
        affected_rows: Option<u64>,
        truncated: bool,
    ) -> Result<(), Stop> {
        if !builder.is_empty() {
            self.rows(builder).await?;
        }
        self.send(StreamItem::Done(ResultSummary {
            result_index: self.index,
            command: self.command.clone(),
            row_count,
            affected_rows,
            truncated,
            last_insert_id: None,
        }))
        .await
    }
}

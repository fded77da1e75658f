//! Running one query of a session: the task that forwards the connector's
//! stream as `query.result` events and ends with exactly one `query.done`.
//! Cancellation and timeouts both go through the connector's `CancelHandle`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbbridge_db::{ColumnInfo, DbErrorKind, QueryOptions, QueryStream, StreamItem};
use dbbridge_protocol::events::{QueryDone, QueryPaused};
use dbbridge_protocol::query::{QueryDoneEvent, QueryPausedEvent, QueryStatus, ResultSummary};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::sync::oneshot;
use tokio::time::sleep_until;
use tracing::Instrument;

use crate::errors::db_error;
use crate::session::{QueryControl, Session, SessionManager};
use crate::shutdown::Shutdown;
use crate::transport::Outbound;

/// How a query's delivery is bounded: `timeoutMs` and `window`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flow {
    pub timeout: Option<Duration>,
    pub window: Option<u64>,
}

/// Starts `sql` on the session. Answers with the query id at once; the events
/// follow once `replied` fires (the answer is on its way to the client).
pub fn start(
    sessions: &Arc<SessionManager>,
    shutdown: &Shutdown,
    session: Arc<Session>,
    sql: String,
    options: QueryOptions,
    flow: Flow,
    replied: oneshot::Receiver<()>,
) -> Result<String, RpcError> {
    let Flow { timeout, window } = flow;
    let control = Arc::new(QueryControl::new(crate::ids::new_id("q"), window));
    session.claim(control.clone())?;
    let stream = match session.connection.run(sql, options) {
        Ok(stream) => stream,
        Err(error) => {
            session.release(&control.query_id);
            return Err(db_error(error));
        }
    };
    let manager = sessions.clone();
    manager.query_started();
    let span = tracing::info_span!("query", sessionId = %session.id, queryId = %control.query_id);
    let query_id = control.query_id.clone();
    shutdown.tracker.spawn(
        async move {
            // Events come after the answer that names the query.
            let _ = replied.await;
            drive(&session, &control, stream, timeout, &|| {
                manager.query_ended()
            })
            .await;
            control.finished.cancel();
        }
        .instrument(span),
    );
    Ok(query_id)
}

/// Why forwarding stopped before the stream ended.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Cancelled,
    Timeout,
    ClientGone,
}

async fn drive(
    session: &Session,
    control: &QueryControl,
    mut stream: QueryStream,
    timeout: Option<Duration>,
    ended: &(dyn Fn() + Sync),
) {
    let started = Instant::now();
    // Without a timeout, a deadline that never comes (a century away).
    let deadline =
        tokio::time::Instant::now() + timeout.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
    let timed_out = sleep_until(deadline);
    tokio::pin!(timed_out);

    let mut results: Vec<ResultSummary> = Vec::new();
    let mut pending_columns: Option<Vec<ColumnInfo>> = None;
    let mut batch_index = 0u32;
    let mut stop: Option<Stop> = None;
    let mut failure: Option<RpcError> = None;
    // A result whose columns came but whose summary did not: if the stream
    // ends there, the engine's task died (a panic in a driver), and the rows
    // sent are not the whole result.
    let mut open_result = false;

    loop {
        let item = tokio::select! {
            biased;
            _ = control.cancel_requested(), if stop.is_none() => {
                stop = Some(Stop::Cancelled);
                stream.cancel.cancel();
                continue;
            }
            _ = &mut timed_out, if stop.is_none() => {
                stop = Some(Stop::Timeout);
                stream.cancel.cancel();
                continue;
            }
            item = stream.items.recv() => item,
        };
        let Some(item) = item else { break };
        if stop.is_some() {
            // Draining after a cancel: the engine stops at its next check.
            continue;
        }
        let text = match item {
            Ok(StreamItem::Columns { columns, .. }) => {
                open_result = true;
                pending_columns = Some(columns);
                batch_index = 0;
                continue;
            }
            Ok(StreamItem::Rows {
                result_index,
                batch,
            }) if control.window.is_some() => {
                let columns = pending_columns.take();
                let sent = send_windowed(
                    session,
                    control,
                    (result_index, &mut batch_index),
                    columns,
                    batch,
                    timed_out.as_mut(),
                )
                .await;
                if let Err(why) = sent {
                    stop = Some(why);
                    stream.cancel.cancel();
                }
                continue;
            }
            Ok(StreamItem::Rows {
                result_index,
                batch,
            }) => {
                let text = result_event(
                    session,
                    control,
                    result_index,
                    batch_index,
                    pending_columns.take(),
                    batch.json,
                );
                batch_index += 1;
                text
            }
            Ok(StreamItem::Done(summary)) => {
                open_result = false;
                let text = pending_columns.take().map(|columns| {
                    result_event(
                        session,
                        control,
                        summary.result_index,
                        batch_index,
                        Some(columns),
                        "[]".to_string(),
                    )
                });
                results.push(summary);
                match text {
                    Some(text) => text,
                    None => continue,
                }
            }
            Err(error) => {
                if error.kind == DbErrorKind::Cancelled {
                    stop = Some(Stop::Cancelled);
                } else {
                    failure = Some(db_error(error));
                }
                continue;
            }
        };
        // A slow client makes this wait, which stops reading the stream,
        // which stops the engine: back-pressure end to end.
        let sent = tokio::select! {
            biased;
            _ = control.cancel_requested() => Err(Stop::Cancelled),
            _ = &mut timed_out => Err(Stop::Timeout),
            ok = session.client.send_rows(control.stream, text) => if ok { Ok(()) } else { Err(Stop::ClientGone) },
        };
        if let Err(why) = sent {
            stop = Some(why);
            stream.cancel.cancel();
        }
    }

    // (A cancelled or timed-out read stops inside a result on purpose.)
    if open_result && stop.is_none() && failure.is_none() {
        tracing::error!("the engine's stream ended inside a result");
        failure = Some(RpcError::internal(
            "the query's reader stopped before the end of its result; the rows sent may be incomplete",
        ));
    }
    let (status, error) = match (stop, failure) {
        (Some(Stop::Timeout), _) => (
            QueryStatus::Timeout,
            Some(RpcError::new(
                ErrorCode::QueryTimeout,
                format!(
                    "the query ran past its {} ms timeout",
                    timeout.unwrap_or_default().as_millis()
                ),
            )),
        ),
        (Some(Stop::Cancelled | Stop::ClientGone), _) => (
            QueryStatus::Cancelled,
            Some(RpcError::new(
                ErrorCode::QueryCancelled,
                "the query was cancelled",
            )),
        ),
        (None, Some(error)) => (QueryStatus::Failed, Some(crate::rpc::scrub_error(error))),
        (None, None) => (QueryStatus::Completed, None),
    };
    let done = QueryDoneEvent {
        session_id: session.id.clone(),
        query_id: control.query_id.clone(),
        status,
        results,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
    };
    tracing::info!(status = ?status, duration_ms = done.duration_ms, "query ended");
    // A stopped query's batches still waiting are dropped (the done says
    // why the rows end early); then query.done waits for the rest to be in
    // the transport's hands, so it never overtakes them.
    if stop.is_some() {
        session.client.discard_rows(control.stream);
    }
    // Free the session and stop counting the query before telling the
    // client, so its next query.run is never refused and a `health.ping`
    // after `query.done` never counts it as running.
    session.release(&control.query_id);
    ended();
    if stop != Some(Stop::ClientGone) {
        let client = &session.client;
        let notify = async move {
            client.rows_flushed(control.stream).await;
            client.notify::<QueryDone>(&done).await
        };
        tokio::pin!(notify);
        tokio::select! {
            _ = &mut notify => {}
            _ = session.closed.cancelled() => {
                // The session is closing (shutdown, idle, client request): do
                // not let a client that stopped reading hold the close up.
                if tokio::time::timeout(Duration::from_secs(1), &mut notify)
                    .await
                    .is_err()
                {
                    tracing::warn!("query.done not delivered: the client is not reading");
                }
            }
        }
    }
}

/// Sends one batch of a windowed query: as much as its credit allows, cut
/// at the window's edge; at the edge, one `query.paused` (after the rows
/// sent), then a wait for `query.fetch` during which the stream is not
/// read, so the engine's read stops behind its bounded channel.
async fn send_windowed(
    session: &Session,
    control: &QueryControl,
    (result_index, batch_index): (u32, &mut u32),
    mut columns: Option<Vec<ColumnInfo>>,
    batch: dbbridge_db::RowBatch,
    mut timed_out: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), Stop> {
    let Some(window) = &control.window else {
        return Ok(());
    };
    let mut rest = Some(batch.json);
    let mut rest_rows = batch.rows as u64;
    while let Some(json) = rest.take() {
        let n = window.take(rest_rows);
        if n == 0 {
            window.set_paused(true, rest_rows);
            session.client.rows_flushed(control.stream).await;
            session.touch();
            let (_, rows_sent) = window.state();
            session
                .client
                .notify::<QueryPaused>(&QueryPausedEvent {
                    session_id: session.id.clone(),
                    query_id: control.query_id.clone(),
                    rows_sent,
                })
                .await;
            tokio::select! {
                biased;
                _ = control.cancel_requested() => return Err(Stop::Cancelled),
                _ = timed_out.as_mut() => return Err(Stop::Timeout),
                _ = window.credit() => {}
            }
            window.set_paused(false, 0);
            session.touch();
            rest = Some(json);
            continue;
        }
        let now = if n < rest_rows {
            let (now, later) = split_batch(&json, n as usize);
            rest = Some(later);
            now
        } else {
            json
        };
        rest_rows -= n;
        let text = result_event(
            session,
            control,
            result_index,
            *batch_index,
            columns.take(),
            now,
        );
        *batch_index += 1;
        tokio::select! {
            biased;
            _ = control.cancel_requested() => return Err(Stop::Cancelled),
            _ = timed_out.as_mut() => return Err(Stop::Timeout),
            ok = session.client.send_rows(control.stream, text) => if !ok { return Err(Stop::ClientGone) },
        }
    }
    Ok(())
}

/// A batch's JSON text cut after its first `n` rows (only at a window's edge).
fn split_batch(json: &str, n: usize) -> (String, String) {
    let rows: Vec<&serde_json::value::RawValue> = serde_json::from_str(json).unwrap_or_default();
    let join = |rows: &[&serde_json::value::RawValue]| {
        let mut out = String::with_capacity(json.len());
        out.push('[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(row.get());
        }
        out.push(']');
        out
    };
    let n = n.min(rows.len());
    (join(&rows[..n]), join(&rows[n..]))
}

/// The `query.result` notification, built around the batch's JSON text so the
/// rows are not parsed or re-encoded.
fn result_event(
    session: &Session,
    control: &QueryControl,
    result_index: u32,
    batch_index: u32,
    columns: Option<Vec<ColumnInfo>>,
    rows_json: String,
) -> Outbound {
    let mut head = String::with_capacity(192);
    head.push_str(r#"{"jsonrpc":"2.0","method":"query.result","params":{"sessionId":"#);
    dbbridge_db::value::push_json_str(&mut head, &session.id);
    head.push_str(r#","queryId":"#);
    dbbridge_db::value::push_json_str(&mut head, &control.query_id);
    head.push_str(r#","resultIndex":"#);
    head.push_str(itoa::Buffer::new().format(result_index));
    head.push_str(r#","batchIndex":"#);
    head.push_str(itoa::Buffer::new().format(batch_index));
    if let Some(columns) = columns {
        head.push_str(r#","columns":"#);
        head.push_str(&serde_json::to_string(&columns).unwrap_or_else(|_| "[]".into()));
    }
    head.push_str(r#","rows":"#);
    Outbound {
        head,
        body: rows_json,
        tail: "}}",
    }
}

//! Running one query of a session: the task that forwards the connector's
//! stream as `query.result` events and ends with exactly one `query.done`.
//! Cancellation and timeouts both go through the connector's `CancelHandle`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbbridge_db::{ColumnInfo, DbErrorKind, QueryOptions, QueryStream, StreamItem};
use dbbridge_protocol::events::QueryDone;
use dbbridge_protocol::query::{QueryDoneEvent, QueryStatus, ResultSummary};
use dbbridge_protocol::{ErrorCode, RpcError};
use tokio::sync::oneshot;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::errors::db_error;
use crate::session::{QueryControl, Session, SessionManager};
use crate::shutdown::Shutdown;
use crate::transport::Outbound;

/// Starts `sql` on the session. Answers with the query id at once; the events
/// follow once `replied` fires (the answer is on its way to the client).
pub fn start(
    sessions: &Arc<SessionManager>,
    shutdown: &Shutdown,
    session: Arc<Session>,
    sql: String,
    options: QueryOptions,
    timeout: Option<Duration>,
    replied: oneshot::Receiver<()>,
) -> Result<String, RpcError> {
    let control = Arc::new(QueryControl::new(crate::ids::new_id("q")));
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
            drive(&session, &control, stream, timeout).await;
            manager.query_ended();
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
) {
    let started = Instant::now();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let never = CancellationToken::new();
    let timed_out = async {
        match deadline {
            Some(d) => sleep_until(d).await,
            None => never.cancelled().await,
        }
    };
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
            ok = session.client.send(text) => if ok { Ok(()) } else { Err(Stop::ClientGone) },
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
    // Free the session before telling the client, so its next query.run is never refused.
    session.release(&control.query_id);
    if stop != Some(Stop::ClientGone) {
        let notify = session.client.notify::<QueryDone>(&done);
        if session.closed.is_cancelled() {
            // The session is closing (shutdown, idle, client request): do not let
            // a client that stopped reading hold the close up.
            if tokio::time::timeout(Duration::from_secs(1), notify)
                .await
                .is_err()
            {
                tracing::warn!("query.done not delivered: the client is not reading");
            }
        } else {
            notify.await;
        }
    }
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

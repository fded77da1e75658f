//! `query.run`, `query.cancel`, `query.fetch`.

use std::time::Duration;

use dbbridge_db::QueryOptions;
use dbbridge_db::batch::DEFAULT_BATCH_SIZE;
use dbbridge_protocol::methods::{QueryCancel, QueryFetch, QueryRun};
use dbbridge_protocol::query::{
    QueryFetchParams, QueryFetchResult, QueryRunParams, QueryRunResult,
};
use dbbridge_protocol::session::SessionIdParams;
use dbbridge_protocol::{CancelResult, ErrorCode, RpcError};

use crate::router::RequestCtx;
use crate::router::Router;

/// The largest batch a client may ask for; larger ones would defeat the 1 MiB cut anyway.
const MAX_BATCH_SIZE: u32 = 100_000;

pub fn register(router: &mut Router) {
    router
        .add::<QueryRun, _, _>(run)
        .add::<QueryCancel, _, _>(cancel)
        .add::<QueryFetch, _, _>(fetch);
}

async fn run(ctx: RequestCtx, params: QueryRunParams) -> Result<QueryRunResult, RpcError> {
    let session = ctx.bridge.sessions.get(&params.session_id, &ctx.client)?;
    session.touch();
    let batch_size = params.batch_size.unwrap_or(DEFAULT_BATCH_SIZE as u32);
    if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("batchSize must be between 1 and {MAX_BATCH_SIZE}"),
        )
        .with_details(serde_json::json!({ "field": "batchSize" })));
    }
    if params.sql.trim().is_empty() {
        return Err(RpcError::new(ErrorCode::InvalidParams, "sql is empty")
            .with_details(serde_json::json!({ "field": "sql" })));
    }
    if params.window == Some(0) {
        return Err(
            RpcError::new(ErrorCode::InvalidParams, "window must be at least 1")
                .with_details(serde_json::json!({ "field": "window" })),
        );
    }
    let options = QueryOptions {
        batch_size: batch_size as usize,
        max_rows: params.max_rows,
        params: params.params.unwrap_or_default(),
        windowed: params.window.is_some(),
    };
    let query_id = crate::query::start(
        &ctx.bridge.sessions,
        &ctx.bridge.shutdown,
        session,
        params.sql,
        options,
        crate::query::Flow {
            timeout: params.timeout_ms.map(Duration::from_millis),
            window: params.window,
        },
        ctx.on_reply(),
    )?;
    Ok(QueryRunResult { query_id })
}

async fn cancel(ctx: RequestCtx, params: SessionIdParams) -> Result<CancelResult, RpcError> {
    let session = ctx.bridge.sessions.get(&params.session_id, &ctx.client)?;
    session.touch();
    Ok(CancelResult {
        cancelled: match session.running() {
            Some(query) => {
                query.cancel();
                true
            }
            None => false,
        },
    })
}

async fn fetch(ctx: RequestCtx, params: QueryFetchParams) -> Result<QueryFetchResult, RpcError> {
    let session = ctx.bridge.sessions.get(&params.session_id, &ctx.client)?;
    session.touch();
    let not_running = || {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "query {} is not running on session {}",
                params.query_id, params.session_id
            ),
        )
        .with_details(serde_json::json!({ "field": "queryId" }))
    };
    let query = session
        .running()
        .filter(|q| q.query_id == params.query_id)
        .ok_or_else(not_running)?;
    let window = query.window.as_ref().ok_or_else(|| {
        RpcError::new(
            ErrorCode::InvalidParams,
            "the query was started without a window; it streams to the end on its own",
        )
        .with_details(serde_json::json!({ "field": "queryId" }))
    })?;
    if params.rows == 0 {
        return Err(
            RpcError::new(ErrorCode::InvalidParams, "rows must be at least 1")
                .with_details(serde_json::json!({ "field": "rows" })),
        );
    }
    let (granted, buffered) = window.grant(params.rows);
    Ok(QueryFetchResult { granted, buffered })
}

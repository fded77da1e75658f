//! `connection.test`, `session.open`, `session.close`, `session.list`.

use std::time::{Duration, Instant};

use dbbridge_db::Connection;
use dbbridge_protocol::connection::{ConnectionTestParams, ConnectionTestResult};
use dbbridge_protocol::methods::{ConnectionTest, SessionClose, SessionList, SessionOpen};
use dbbridge_protocol::session::{
    SessionIdParams, SessionInfo, SessionOpenParams, SessionOpenResult,
};
use dbbridge_protocol::{Empty, RpcError};

use crate::connections::resolve;
use crate::errors::db_error;
use crate::router::RequestCtx;
use crate::router::Router;
use crate::session::not_found;

pub fn register(router: &mut Router) {
    router
        .add::<ConnectionTest, _, _>(test)
        .add::<SessionOpen, _, _>(open)
        .add::<SessionClose, _, _>(close)
        .add::<SessionList, _, _>(list);
}

async fn test(
    ctx: RequestCtx,
    params: ConnectionTestParams,
) -> Result<ConnectionTestResult, RpcError> {
    let spec = resolve(&ctx.bridge.catalog, &ctx.bridge.secrets, params.connection).await?;
    let connection = Connection::open(&spec).await.map_err(db_error)?;
    let started = Instant::now();
    connection.ping().await.map_err(db_error)?;
    Ok(ConnectionTestResult {
        kind: connection.kind(),
        server_version: connection.server_version().to_string(),
        latency_ms: started.elapsed().as_millis() as u64,
        flavour: connection.flavour().map(str::to_string),
    })
}

async fn open(ctx: RequestCtx, params: SessionOpenParams) -> Result<SessionOpenResult, RpcError> {
    let spec = resolve(&ctx.bridge.catalog, &ctx.bridge.secrets, params.connection).await?;
    let connection = Connection::open(&spec).await.map_err(db_error)?;
    let idle = params.idle_timeout_ms.map(Duration::from_millis);
    let session = ctx
        .bridge
        .sessions
        .add(connection, spec, ctx.client.clone(), idle)?;
    Ok(SessionOpenResult {
        session_id: session.id.clone(),
        kind: session.kind(),
        server_version: session.connection.server_version().to_string(),
    })
}

async fn close(ctx: RequestCtx, params: SessionIdParams) -> Result<Empty, RpcError> {
    // Ownership check first: a client closes only its own sessions.
    ctx.bridge.sessions.get(&params.session_id, &ctx.client)?;
    if ctx.bridge.sessions.close(&params.session_id, None).await {
        Ok(Empty {})
    } else {
        Err(not_found(&params.session_id))
    }
}

async fn list(ctx: RequestCtx, _: Empty) -> Result<Vec<SessionInfo>, RpcError> {
    Ok(ctx.bridge.sessions.list(&ctx.client))
}

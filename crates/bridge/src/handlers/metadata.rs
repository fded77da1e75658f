//! `metadata.listSchemas`, `metadata.listTables`, `metadata.describeTable`.

use dbbridge_protocol::RpcError;
use dbbridge_protocol::metadata::{
    DescribeTableParams, ListTablesParams, SchemaInfo, TableDescription, TableInfo,
};
use dbbridge_protocol::methods::{MetadataDescribeTable, MetadataListSchemas, MetadataListTables};
use dbbridge_protocol::session::SessionIdParams;

use crate::errors::db_error;
use crate::router::RequestCtx;
use crate::router::Router;
use crate::session::Session;

pub fn register(router: &mut Router) {
    router
        .add::<MetadataListSchemas, _, _>(list_schemas)
        .add::<MetadataListTables, _, _>(list_tables)
        .add::<MetadataDescribeTable, _, _>(describe_table);
}

/// The session, if it is free: metadata uses the session's one connection.
fn idle_session(ctx: &RequestCtx, id: &str) -> Result<std::sync::Arc<Session>, RpcError> {
    let session = ctx.bridge.sessions.get(id, &ctx.client)?;
    session.ensure_idle()?;
    session.touch();
    Ok(session)
}

async fn list_schemas(
    ctx: RequestCtx,
    params: SessionIdParams,
) -> Result<Vec<SchemaInfo>, RpcError> {
    idle_session(&ctx, &params.session_id)?
        .connection
        .list_schemas()
        .await
        .map_err(db_error)
}

async fn list_tables(
    ctx: RequestCtx,
    params: ListTablesParams,
) -> Result<Vec<TableInfo>, RpcError> {
    idle_session(&ctx, &params.session_id)?
        .connection
        .list_tables(params.schema)
        .await
        .map_err(db_error)
}

async fn describe_table(
    ctx: RequestCtx,
    params: DescribeTableParams,
) -> Result<TableDescription, RpcError> {
    idle_session(&ctx, &params.session_id)?
        .connection
        .describe_table(params.schema, params.table)
        .await
        .map_err(db_error)
}

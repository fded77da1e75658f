//! `export.start`, `export.cancel`: thin over `jobs::export`.

use dbbridge_protocol::export::{ExportIdParams, ExportStartParams, ExportStartResult};
use dbbridge_protocol::methods::{ExportCancel, ExportStart};
use dbbridge_protocol::{CancelResult, RpcError};

use crate::jobs::export;
use crate::router::{RequestCtx, Router};

pub fn register(router: &mut Router) {
    router
        .add::<ExportStart, _, _>(start)
        .add::<ExportCancel, _, _>(cancel);
}

async fn start(ctx: RequestCtx, params: ExportStartParams) -> Result<ExportStartResult, RpcError> {
    let session = ctx.bridge.sessions.get(&params.session_id, &ctx.client)?;
    session.touch();
    let export_id = export::start(&ctx.bridge.jobs, &session, ctx.client.clone(), params).await?;
    Ok(ExportStartResult { export_id })
}

async fn cancel(ctx: RequestCtx, params: ExportIdParams) -> Result<CancelResult, RpcError> {
    Ok(CancelResult {
        cancelled: ctx.bridge.jobs.cancel(&params.export_id),
    })
}

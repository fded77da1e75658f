//! `health.ping`, `bridge.shutdown`, `rpc.discover`.

use std::sync::OnceLock;

use dbbridge_protocol::bridge::HealthInfo;
use dbbridge_protocol::methods::{BridgeShutdown, HealthPing, RpcDiscover};
use dbbridge_protocol::secret::SecretKeySource;
use dbbridge_protocol::{Empty, RpcError};
use serde_json::Value;

use crate::router::RequestCtx;
use crate::router::Router;

pub fn register(router: &mut Router) {
    router
        .add::<HealthPing, _, _>(health_ping)
        .add::<BridgeShutdown, _, _>(shutdown)
        .add::<RpcDiscover, _, _>(discover);
}

async fn health_ping(ctx: RequestCtx, _: Empty) -> Result<HealthInfo, RpcError> {
    let bridge = &ctx.bridge;
    // Sampling reads two small files of this process under /proc (a few
    // microseconds, never the disk), so it runs here. A hop to the blocking
    // pool for it took up to 680 ms of a ping's answer when 100 streaming
    // sessions kept every thread of the bridge waiting for a core
    // (`cargo xtask bench load`).
    let sample = bridge.process.sample();
    let counts = bridge.sessions.counts();
    Ok(HealthInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: bridge.started.elapsed().as_millis() as u64,
        pid: sample.pid,
        cpu_percent: (sample.cpu_percent * 10.0).round() / 10.0,
        memory_rss_bytes: sample.rss_bytes,
        sessions: counts.sessions,
        running_queries: counts.running_queries,
        running_jobs: bridge.jobs.running() as u32,
        secret_backend: Some(bridge.secrets.backend()),
        secret_key_source: bridge.secrets.key_source().map(|s| match s {
            crate::secrets::KeySource::Env => SecretKeySource::Env,
            crate::secrets::KeySource::Passphrase => SecretKeySource::Passphrase,
            crate::secrets::KeySource::LocalKey => SecretKeySource::LocalKey,
        }),
    })
}

async fn shutdown(ctx: RequestCtx, _: Empty) -> Result<Empty, RpcError> {
    let replied = ctx.on_reply();
    let shutdown = ctx.bridge.shutdown.clone();
    // Tracked like every task; it waits for the answer to be queued, but
    // never past 2 s (a client that does not read must not keep the bridge up).
    ctx.bridge.shutdown.tracker.spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), replied).await;
        shutdown.trigger("bridge.shutdown");
    });
    Ok(Empty {})
}

async fn discover(_: RequestCtx, _: Empty) -> Result<Value, RpcError> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Ok(DOCUMENT
        .get_or_init(dbbridge_protocol::codegen::openrpc)
        .clone())
}

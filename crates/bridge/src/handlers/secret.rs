//! `secret.store`, `secret.get`, `secret.delete`, `secret.list`, `secret.unlock`.

use dbbridge_protocol::connection::SecretString as WireSecret;
use dbbridge_protocol::methods::{SecretDelete, SecretGet, SecretList, SecretStore, SecretUnlock};
use dbbridge_protocol::secret::{
    SecretGetResult, SecretKeyParams, SecretStoreParams, SecretStoreResult, SecretUnlockParams,
};
use dbbridge_protocol::{Empty, RpcError};
use secrecy::{ExposeSecret, SecretString};

use crate::router::RequestCtx;
use crate::router::Router;

pub fn register(router: &mut Router) {
    router
        .add::<SecretStore, _, _>(store)
        .add::<SecretGet, _, _>(get)
        .add::<SecretDelete, _, _>(delete)
        .add::<SecretList, _, _>(list)
        .add::<SecretUnlock, _, _>(unlock);
}

async fn store(ctx: RequestCtx, params: SecretStoreParams) -> Result<SecretStoreResult, RpcError> {
    let value = SecretString::from(params.value.expose().to_string());
    ctx.bridge.secrets.store(&params.key, value).await?;
    Ok(SecretStoreResult {
        backend: ctx.bridge.secrets.backend(),
    })
}

async fn get(ctx: RequestCtx, params: SecretKeyParams) -> Result<SecretGetResult, RpcError> {
    let value = ctx.bridge.secrets.get(&params.key).await?;
    Ok(SecretGetResult {
        value: WireSecret::new(value.expose_secret()),
    })
}

async fn delete(ctx: RequestCtx, params: SecretKeyParams) -> Result<Empty, RpcError> {
    ctx.bridge.secrets.delete(&params.key).await?;
    Ok(Empty {})
}

async fn list(ctx: RequestCtx, _: Empty) -> Result<Vec<String>, RpcError> {
    ctx.bridge.secrets.list().await
}

async fn unlock(ctx: RequestCtx, params: SecretUnlockParams) -> Result<Empty, RpcError> {
    ctx.bridge
        .secrets
        .unlock(SecretString::from(params.passphrase.expose().to_string()))
        .await?;
    Ok(Empty {})
}

//! `connection.save`, `connection.list`, `connection.delete`. A plain
//! password given to `connection.save` moves into the secret store; only its
//! key is kept in `bridge.db`.

use dbbridge_protocol::connection::{
    ConnectionDeleteParams, ConnectionParams, ConnectionSaveParams, ConnectionSaveResult,
    ConnectionSpec, SavedConnection,
};
use dbbridge_protocol::methods::{ConnectionDelete, ConnectionList, ConnectionSave};
use dbbridge_protocol::{Empty, ErrorCode, RpcError};
use secrecy::SecretString;

use crate::catalog::SavedRow;
use crate::connections::{owned_secret_key, unknown_connection};
use crate::router::RequestCtx;
use crate::router::Router;

pub fn register(router: &mut Router) {
    router
        .add::<ConnectionSave, _, _>(save)
        .add::<ConnectionList, _, _>(list)
        .add::<ConnectionDelete, _, _>(delete);
}

async fn save(
    ctx: RequestCtx,
    params: ConnectionSaveParams,
) -> Result<ConnectionSaveResult, RpcError> {
    let ConnectionParams::Spec(mut spec) = params.connection else {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "a saved connection cannot be saved again; give its full specification",
        )
        .with_details(serde_json::json!({ "field": "connection" })));
    };
    if params.name.trim().is_empty() {
        return Err(
            RpcError::new(ErrorCode::InvalidParams, "name must not be empty")
                .with_details(serde_json::json!({ "field": "name" })),
        );
    }
    let id = crate::ids::new_id("c");
    let mut stored_secret = None;
    if let ConnectionSpec::Postgres(server) | ConnectionSpec::Mysql(server) = &mut spec {
        if server.password.is_some() && server.password_secret.is_some() {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                "give either password or passwordSecret, not both",
            )
            .with_details(serde_json::json!({ "field": "connection.passwordSecret" })));
        }
        if crate::redact::url_password(server.url.as_deref().unwrap_or_default()).is_some() {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                "a saved connection's url must not hold a password; give it as password",
            )
            .with_details(serde_json::json!({ "field": "connection.url" })));
        }
        if let Some(password) = server.password.take() {
            let key = owned_secret_key(&id);
            ctx.bridge
                .secrets
                .store(&key, SecretString::from(password.expose().to_string()))
                .await?;
            server.password_secret = Some(key.clone());
            stored_secret = Some(key);
        }
    }
    let kind = spec.kind().as_str();
    let row = SavedRow {
        id: id.clone(),
        name: params.name,
        spec: serde_json::to_string(&spec).map_err(|e| RpcError::internal(e.to_string()))?,
    };
    if let Err(error) = ctx.bridge.catalog.save_connection(row, kind).await {
        if let Some(key) = stored_secret {
            let _ = ctx.bridge.secrets.delete(&key).await;
        }
        return Err(error);
    }
    Ok(ConnectionSaveResult { connection_id: id })
}

async fn list(ctx: RequestCtx, _: Empty) -> Result<Vec<SavedConnection>, RpcError> {
    let rows = ctx.bridge.catalog.connections().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let spec: ConnectionSpec = match serde_json::from_str(&row.spec) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::warn!(connectionId = %row.id, %error, "skipping an unreadable saved connection");
                continue;
            }
        };
        let mut saved = SavedConnection {
            connection_id: row.id,
            name: row.name,
            kind: spec.kind(),
            host: None,
            port: None,
            database: None,
            user: None,
            path: None,
        };
        match spec {
            ConnectionSpec::Postgres(s) | ConnectionSpec::Mysql(s) => {
                saved.host = s.host;
                saved.port = s.port;
                saved.database = s.database;
                saved.user = s.user;
            }
            ConnectionSpec::Sqlite(s) => saved.path = Some(s.path),
        }
        out.push(saved);
    }
    Ok(out)
}

async fn delete(ctx: RequestCtx, params: ConnectionDeleteParams) -> Result<Empty, RpcError> {
    if !ctx
        .bridge
        .catalog
        .delete_connection(&params.connection_id)
        .await?
    {
        return Err(unknown_connection(&params.connection_id));
    }
    // The password this connection's save put in the store goes with it.
    match ctx
        .bridge
        .secrets
        .delete(&owned_secret_key(&params.connection_id))
        .await
    {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::SecretNotFound => {}
        Err(e) => {
            tracing::warn!(connectionId = %params.connection_id, error = %e, "could not delete the saved password")
        }
    }
    Ok(Empty {})
}

//! Turning `ConnectionParams` into a connector's spec: saved connections are
//! read from `bridge.db`, and `passwordSecret` is read from the secret store.

use dbbridge_protocol::connection::{
    ConnectionParams, ConnectionSpec, SecretString, ServerConnection,
};
use dbbridge_protocol::{ErrorCode, RpcError};
use secrecy::ExposeSecret;

use crate::catalog::Catalog;
use crate::secrets::SecretStore;

/// The secret-store key under which `connection.save` keeps a connection's password.
pub fn owned_secret_key(connection_id: &str) -> String {
    format!("connection/{connection_id}/password")
}

pub fn unknown_connection(id: &str) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidParams,
        format!("no saved connection {id:?}"),
    )
    .with_details(serde_json::json!({ "field": "connectionId" }))
}

/// The full spec, with any password resolved.
pub async fn resolve(
    catalog: &Catalog,
    secrets: &SecretStore,
    params: ConnectionParams,
) -> Result<ConnectionSpec, RpcError> {
    let mut spec = match params {
        ConnectionParams::Spec(spec) => spec,
        ConnectionParams::Saved(saved) => {
            let row = catalog
                .connection(&saved.connection_id)
                .await?
                .ok_or_else(|| unknown_connection(&saved.connection_id))?;
            let mut spec: ConnectionSpec = serde_json::from_str(&row.spec).map_err(|e| {
                RpcError::internal(format!("saved connection {} is unreadable: {e}", row.id))
            })?;
            if let Some(timeout) = saved.connect_timeout_ms {
                match &mut spec {
                    ConnectionSpec::Postgres(s) | ConnectionSpec::Mysql(s) => {
                        s.connect_timeout_ms = Some(timeout)
                    }
                    ConnectionSpec::Sqlite(s) => s.connect_timeout_ms = Some(timeout),
                }
            }
            spec
        }
    };
    if let ConnectionSpec::Postgres(server) | ConnectionSpec::Mysql(server) = &mut spec {
        resolve_password(secrets, server).await?;
    }
    Ok(spec)
}

async fn resolve_password(
    secrets: &SecretStore,
    server: &mut ServerConnection,
) -> Result<(), RpcError> {
    if server.password.is_some() && server.password_secret.is_some() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "give either password or passwordSecret, not both",
        )
        .with_details(serde_json::json!({ "field": "connection.passwordSecret" })));
    }
    if let Some(key) = server.password_secret.take() {
        let value = secrets.get(&key).await?;
        crate::redact::remember(value.expose_secret());
        server.password = Some(SecretString::new(value.expose_secret()));
    }
    Ok(())
}

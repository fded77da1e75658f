//! Turning `ConnectionParams` into a connector's spec: saved connections and
//! passwords kept in the secret store are resolved here.

use dbbridge_protocol::connection::{ConnectionParams, ConnectionSpec, ServerConnection};
use dbbridge_protocol::{ErrorCode, RpcError};

/// The full spec, with any password resolved. The secret store and saved
/// connections arrive with their own issue; until then they answer `NOT_SUPPORTED`.
pub fn resolve(params: ConnectionParams) -> Result<ConnectionSpec, RpcError> {
    match params {
        ConnectionParams::Saved(saved) => Err(RpcError::new(
            ErrorCode::NotSupported,
            format!(
                "saved connection {:?}: saved connections are not available yet",
                saved.connection_id
            ),
        )),
        ConnectionParams::Spec(spec) => {
            if let ConnectionSpec::Postgres(server) | ConnectionSpec::Mysql(server) = &spec {
                check_server(server)?;
            }
            Ok(spec)
        }
    }
}

fn check_server(server: &ServerConnection) -> Result<(), RpcError> {
    if server.password.is_some() && server.password_secret.is_some() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            "give either password or passwordSecret, not both",
        )
        .with_details(serde_json::json!({ "field": "connection.passwordSecret" })));
    }
    if server.password_secret.is_some() {
        return Err(RpcError::new(
            ErrorCode::NotSupported,
            "passwordSecret: the secret store is not available yet",
        ));
    }
    Ok(())
}

//! JSON-RPC 2.0 framing: request ids, the `{ok, data, error}` envelope, and the
//! outgoing response and notification shapes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{ErrorCode, RpcError};

/// A JSON-RPC id: a number or a string. `null` is not a usable id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(untagged)]
pub enum RequestId {
    Number(i64),
    String(String),
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `result` of every answered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Envelope<T> {
    pub ok: bool,
    pub data: Option<T>,
    pub error: Option<RpcError>,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope {
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    pub fn err(error: RpcError) -> Self {
        Envelope {
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// A response carrying the envelope: `{"jsonrpc":"2.0","id":..,"result":{ok,data,error}}`.
#[derive(Debug, Serialize)]
pub struct Response<'a, T: Serialize> {
    pub jsonrpc: &'static str,
    pub id: &'a RequestId,
    pub result: Envelope<T>,
}

/// A plain JSON-RPC error, used only when no id can be recovered.
#[derive(Debug, Serialize)]
pub struct ErrorResponse {
    pub jsonrpc: &'static str,
    pub id: Option<RequestId>,
    pub error: JsonRpcError,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JsonRpcError {
    pub code: i64,
    pub message: String,
    pub data: RpcError,
}

impl ErrorResponse {
    pub fn new(error: RpcError) -> Self {
        ErrorResponse {
            jsonrpc: "2.0",
            id: None,
            error: JsonRpcError {
                code: error.code.jsonrpc_code(),
                message: error.message.clone(),
                data: error,
            },
        }
    }

    pub fn parse_error(message: impl Into<String>) -> Self {
        ErrorResponse::new(RpcError::new(ErrorCode::ParseError, message))
    }
}

/// A server-to-client event: `{"jsonrpc":"2.0","method":..,"params":..}`.
#[derive(Debug, Serialize)]
pub struct Notification<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub method: &'a str,
    pub params: &'a P,
}

impl<'a, P: Serialize> Notification<'a, P> {
    pub fn new(method: &'a str, params: &'a P) -> Self {
        Notification {
            jsonrpc: "2.0",
            method,
            params,
        }
    }
}

/// An incoming message as first parsed: the fields are checked by the server loop.
#[derive(Debug, Deserialize)]
pub struct IncomingMessage {
    #[serde(default)]
    pub jsonrpc: Option<serde_json::Value>,
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    pub method: Option<serde_json::Value>,
    #[serde(default)]
    pub params: Option<serde_json::Value>,
}

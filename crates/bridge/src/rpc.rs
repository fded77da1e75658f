//! Response and error envelopes as they go on the wire, with every remembered
//! secret scrubbed out of error messages and details.

use dbbridge_protocol::message::{ErrorResponse, Response};
use dbbridge_protocol::{Envelope, RequestId, RpcError};
use serde_json::value::RawValue;

use crate::redact;

/// The response text for a request: the envelope, with secrets scrubbed from any error.
pub fn response(id: &RequestId, result: Result<Box<RawValue>, RpcError>) -> String {
    let envelope = match result {
        Ok(data) => Envelope::ok(data),
        Err(error) => Envelope::err(scrub_error(error)),
    };
    serde_json::to_string(&Response {
        jsonrpc: "2.0",
        id,
        result: envelope,
    })
    .unwrap_or_else(|e| {
        plain_error(RpcError::internal(format!(
            "encoding a response failed: {e}"
        )))
    })
}

/// A JSON-RPC error with id null, for messages whose id cannot be recovered.
pub fn plain_error(error: RpcError) -> String {
    let error = scrub_error(error);
    serde_json::to_string(&ErrorResponse::new(error)).unwrap_or_default()
}

/// Scrubs every remembered secret out of an error's message and details.
pub fn scrub_error(mut error: RpcError) -> RpcError {
    error.message = redact::scrub(&error.message).into_owned();
    if let Some(details) = error.details.take() {
        let text = details.to_string();
        let scrubbed = redact::scrub(&text);
        // Details that cannot be scrubbed and re-read are dropped rather than sent as they were.
        error.details = if scrubbed == text {
            Some(details)
        } else {
            serde_json::from_str(&scrubbed).ok()
        };
    }
    error
}

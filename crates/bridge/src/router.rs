//! Method name to async handler. Params are decoded with serde so that a wrong
//! or missing field is `INVALID_PARAMS` naming the field; methods of the
//! contract that have no handler yet answer `NOT_SUPPORTED`.

use std::collections::HashMap;
use std::sync::Arc;

use dbbridge_protocol::{ErrorCode, Method, RpcError};
use futures::future::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;

use tokio::sync::oneshot;

use crate::client::Client;
use crate::state::Bridge;

type Handler = Arc<
    dyn Fn(RequestCtx, Value) -> BoxFuture<'static, Result<Box<RawValue>, RpcError>> + Send + Sync,
>;

#[derive(Default)]
pub struct Router {
    handlers: HashMap<&'static str, Handler>,
    contract: Vec<&'static str>,
}

/// What the router makes of a method name.
pub enum Route<'a> {
    Handler(&'a Handler),
    NotSupported,
    NotFound,
}

impl Router {
    pub fn new() -> Self {
        Router {
            handlers: HashMap::new(),
            contract: dbbridge_protocol::method_infos()
                .iter()
                .map(|m| m.name)
                .collect(),
        }
    }

    /// Registers the handler of a contract method.
    pub fn add<M, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        M: Method,
        F: Fn(RequestCtx, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Result, RpcError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |ctx, params| {
            let handler = handler.clone();
            Box::pin(async move {
                let params: M::Params = decode_params(params)?;
                let result = handler(ctx, params).await?;
                serde_json::value::to_raw_value(&result)
                    .map_err(|e| RpcError::internal(format!("encoding the result failed: {e}")))
            })
        });
        self.handlers.insert(M::NAME, erased);
        self
    }

    /// Registers a method outside the contract (test hooks).
    pub fn add_raw<F, Fut>(&mut self, name: &'static str, handler: F) -> &mut Self
    where
        F: Fn(RequestCtx, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            name,
            Arc::new(move |ctx, params| {
                let handler = handler.clone();
                Box::pin(async move {
                    let result = handler(ctx, params).await?;
                    serde_json::value::to_raw_value(&result)
                        .map_err(|e| RpcError::internal(e.to_string()))
                })
            }),
        );
        self
    }

    pub fn route(&self, method: &str) -> Route<'_> {
        match self.handlers.get(method) {
            Some(handler) => Route::Handler(handler),
            None if self.contract.contains(&method) => Route::NotSupported,
            None => Route::NotFound,
        }
    }
}

/// Decodes params, naming the offending field on failure. Absent params are `{}`.
pub fn decode_params<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    let params = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params
    };
    serde_path_to_error::deserialize(params).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        let field = match inner
            .strip_prefix("missing field `")
            .and_then(|s| s.split('`').next())
        {
            Some(missing) if path == "." => missing.to_string(),
            Some(missing) => format!("{path}.{missing}"),
            None => path.clone(),
        };
        let message = if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params: {message}"),
        )
        .with_details(serde_json::json!({ "field": field }))
    })
}

/// What a handler is given besides its params.
#[derive(Clone)]
pub struct RequestCtx {
    pub bridge: Arc<Bridge>,
    pub client: Client,
    replied: Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>>,
}

impl RequestCtx {
    pub fn new(bridge: Arc<Bridge>, client: Client) -> RequestCtx {
        RequestCtx {
            bridge,
            client,
            replied: Default::default(),
        }
    }

    /// The waiters for this request's answer (see [`on_reply`](Self::on_reply)).
    pub fn replied(&self) -> Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>> {
        self.replied.clone()
    }

    /// Resolves once this request's answer has been queued to the client, so
    /// that work started by a handler (a query's events, a shutdown) comes after it.
    pub fn on_reply(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.replied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

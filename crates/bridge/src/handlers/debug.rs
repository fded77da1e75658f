//! `debug.*`: methods outside the contract that the test suite uses to prove
//! router guarantees (a panic is answered, a slow request delays nothing).
//! Registered only when `DBBRIDGE_TEST_HOOKS=1`.

use std::time::Duration;

use dbbridge_protocol::RpcError;
use serde_json::{Value, json};

use crate::router::{Router, decode_params};

#[derive(serde::Deserialize)]
struct SleepParams {
    ms: u64,
}

pub fn register(router: &mut Router) {
    router.add_raw("debug.panic", |_, _| async {
        panic!("debug.panic was called")
    });
    router.add_raw("debug.sleep", |_, params: Value| async move {
        let params: SleepParams = decode_params(params)?;
        tokio::time::sleep(Duration::from_millis(params.ms)).await;
        Ok::<_, RpcError>(json!({ "slept": params.ms }))
    });
}

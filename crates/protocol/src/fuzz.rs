//! The entry point of the `rpc_frame` fuzz target and its smoke run: one
//! inbound frame decoded as the server loop decodes it (the envelope, the
//! id, then the params of the methods whose params have structure). Not
//! part of the crate's API.

use serde_json::Value;

use crate::message::{IncomingMessage, RequestId};

/// Decodes `data` as a frame and its params as every structured params type.
pub fn rpc_frame(data: &[u8]) {
    let Ok(message) = serde_json::from_slice::<IncomingMessage>(data) else {
        return;
    };
    if let Some(id) = message.id {
        let _ = serde_json::from_value::<RequestId>(id);
    }
    let params = message.params.unwrap_or(Value::Null);
    macro_rules! decode {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Ok(decoded) = serde_json::from_value::<$ty>(params.clone()) {
                    // What decodes encodes again.
                    assert!(serde_json::to_value(&decoded).is_ok());
                }
            )*
        };
    }
    decode!(
        crate::query::QueryRunParams,
        crate::query::QueryFetchParams,
        crate::session::SessionOpenParams,
        crate::connection::ConnectionTestParams,
        crate::connection::ConnectionSaveParams,
        crate::metadata::ListTablesParams,
        crate::metadata::DescribeTableParams,
        crate::secret::SecretStoreParams,
        crate::backup::BackupStartParams,
        crate::backup::BackupRestoreParams,
        crate::export::ExportStartParams,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_target_survives_a_smoke_run() {
        let seeds: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"query.run","params":{"sessionId":"s","sql":"SELECT 1","window":10,"params":[1,"a",null]}}"#,
            br#"{"jsonrpc":"2.0","id":"x","method":"session.open","params":{"connection":{"kind":"postgres","host":"h","port":5432,"user":"u","password":"p","sslMode":"require"}}}"#,
            br#"{"jsonrpc":"2.0","id":2,"method":"export.start","params":{"sessionId":"s","source":{"schema":"a","table":"b"},"format":"csv","destination":"/x","options":{"delimiter":";"}}}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"backup.start","params":{"connection":{"connectionId":"c"},"options":{"format":"custom"}}}"#,
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for seed in seeds {
            super::rpc_frame(seed);
        }
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut input = seeds[(state % 4) as usize].to_vec();
            for k in 0..(state % 6) {
                let at = ((state >> (8 + k * 7)) as usize) % input.len().max(1);
                match (state >> (40 + k)) % 3 {
                    0 if !input.is_empty() => input[at] = (state >> 16) as u8,
                    1 if !input.is_empty() => {
                        input.remove(at);
                    }
                    _ => input.insert(
                        at.min(input.len()),
                        b"{}[]\":,0-e\\u"[(state >> 20) as usize % 12],
                    ),
                }
            }
            super::rpc_frame(&input);
        }
    }
}

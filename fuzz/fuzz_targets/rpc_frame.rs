#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dbbridge_protocol::fuzz::rpc_frame(data));

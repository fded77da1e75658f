#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dbbridge_db::fuzz::my_row(data));

#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dbbridge::fuzz::stdio_lines(data));

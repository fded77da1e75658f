#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dbbridge::fuzz::secret_file(data));

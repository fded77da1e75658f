//! Entry points for the bridge's fuzz targets (`fuzz/`), and their smoke
//! runs in the test command: the stdio line reader and the secret file
//! reader. Not part of the crate's API.

pub use crate::secrets::sealed::fuzz_secret_file as secret_file;
pub use crate::transport::stdio::fuzz_read_lines as stdio_lines;

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[&[u8]] = &[
        b"\x10\x05{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"health.ping\"}\n\r\n\n",
        b"\x02\x00abc\nabcd\r\nab\r\n\xff\xfe\n",
        b"\xff\x3f\n\n\nlast line without a newline",
    ];
    const SECRETS: &[&[u8]] = &[
        b"connection/c_1\0s3cret\0other\0\xff\xfe",
        b"{\"format\":\"dbbridge-secrets\",\"version\":1,\"keySource\":\"localKey\",\"salt\":null,\"nonce\":\"AAAA\",\"ciphertext\":\"AAAA\"}",
        b"",
    ];

    /// Found by the smoke run: a last line over the cap with no newline
    /// before EOF was dropped unanswered.
    #[test]
    fn inputs_that_failed() {
        stdio_lines(b"\x01\x03abcdef");
        stdio_lines(b"\x01\x03ok\nabcdef");
    }

    #[test]
    fn the_fuzz_targets_survive_a_smoke_run() {
        dbbridge_db::fuzz::smoke(stdio_lines, LINES, 20_000);
        dbbridge_db::fuzz::smoke(secret_file, SECRETS, 3_000);
    }
}

//! stdio transport: one JSON message per line on stdin and stdout.
//! stdout carries nothing else; a line over the cap is discarded without being
//! buffered whole, and answered with an error by the server loop.
//!
//! Writing is a thread of its own doing blocking `writev` calls on stdout: a
//! message goes out in the parts it was built from (a batch's rows are not
//! copied again), messages already queued go in the same call, and no
//! runtime worker waits on a slow reader.

use std::io::{IoSlice, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::{Connection, INBOUND_QUEUE, Inbound, Outbound, OutboundReceiver, outbound};

/// How many queued messages one `writev` may carry (4 slices each, well
/// under the system's 1024).
const MESSAGES_PER_WRITE: usize = 64;

/// The writer thread, as `main` sees it at exit.
pub struct Writer {
    done: oneshot::Receiver<()>,
    /// Bytes written so far.
    written: Arc<AtomicU64>,
}

impl Writer {
    /// Waits until every outbound message has been written (all senders
    /// dropped) or stdout has failed. Gives up after `limit`, or sooner once
    /// the reader has taken nothing for `stalled`: a front end that stopped
    /// reading does not hold the exit up. Returns whether it drained.
    pub async fn drained(mut self, limit: Duration, stalled: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = self.written.load(Ordering::Relaxed);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if tokio::time::timeout(stalled.min(left), &mut self.done)
                .await
                .is_ok()
            {
                return true;
            }
            let now = self.written.load(Ordering::Relaxed);
            if now == seen || left <= stalled {
                return false;
            }
            seen = now;
        }
    }
}

/// How much a stdout pipe is asked to hold: a few batches. With the
/// default 64 KiB, less than one batch, the writer waits on the client after
/// every read it makes and the client on the writer after every batch, and
/// on two cores those hand-offs left the client idle ~15% of a large read.
/// More is not better: a control message (a ping's answer, a `query.done`)
/// waits behind whatever the pipe holds, and a parsing client reads 1 MiB
/// in ~15 ms. 256 KiB kept the throughput of 1 MiB and brought a ping's p99
/// under full-speed streams from 36 to 21 ms (`cargo xtask bench lanes`).
#[cfg(target_os = "linux")]
const PIPE_BYTES: usize = 256 * 1024;

/// Asks for a larger pipe buffer when stdout is a pipe (Linux; elsewhere,
/// and where the system's limit says no, the pipe stays as it is).
fn grow_pipe(stdout: &std::fs::File) {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::pipe::fcntl_setpipe_size(stdout, PIPE_BYTES) {
        tracing::debug!(%error, "stdout keeps its pipe size");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stdout;
}

/// Starts the reader task on stdin and the writer thread on stdout; the
/// thread itself never holds the process open (see [`Writer::drained`]).
pub fn start(max_message_bytes: usize) -> std::io::Result<(Connection, Writer)> {
    use std::os::fd::AsFd;
    let stdin = BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    // Our own handle on fd 1, written without std's line buffer.
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    grow_pipe(&stdout);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = outbound::channel();
    let (done_tx, done) = oneshot::channel();
    let written = Arc::new(AtomicU64::new(0));
    tokio::spawn(read_lines(stdin, in_tx, max_message_bytes));
    let counter = written.clone();
    std::thread::Builder::new()
        .name("dbbridge-stdout".into())
        .spawn(move || {
            write_lines(stdout, out_rx, &counter);
            let _ = done_tx.send(());
        })?;
    Ok((
        Connection {
            receiver: in_rx,
            sender: out_tx,
        },
        Writer { done, written },
    ))
}

async fn read_lines<R: AsyncBufRead + Unpin>(
    mut reader: R,
    tx: mpsc::Sender<Inbound>,
    limit: usize,
) {
    let mut line: Vec<u8> = Vec::new();
    let mut discarding = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(error) => {
                tracing::warn!(%error, "stdin read failed; treating as end of input");
                break;
            }
        };
        if buf.is_empty() {
            // EOF: a last line without a newline still counts, and is
            // answered as too large when it was (the fuzz target found it
            // dropped without an answer).
            if discarding {
                let _ = tx.send(Inbound::TooLarge { limit }).await;
            } else if !line.is_empty() {
                let _ = tx.send(frame(std::mem::take(&mut line))).await;
            }
            break;
        }
        let (chunk, consumed, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !discarding {
            if line.len() + chunk.len() > limit {
                discarding = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(consumed);
        if complete {
            let item = if discarding {
                Inbound::TooLarge { limit }
            } else {
                frame(std::mem::take(&mut line))
            };
            discarding = false;
            if tx.send(item).await.is_err() {
                break;
            }
        }
    }
    tracing::debug!("stdin closed");
}

/// For the fuzz target: the line reader over arbitrary bytes. The first
/// byte sets the size cap, the second the read buffer's size (so lines
/// arrive split across reads); the rest is stdin. Every line comes out as
/// exactly one frame, in order: its text (less one trailing CR, invalid
/// UTF-8 replaced) when within the cap, `TooLarge` when over it.
#[doc(hidden)]
pub fn fuzz_read_lines(data: &[u8]) {
    let [cap, buffer, input @ ..] = data else {
        return;
    };
    let limit = 1 + *cap as usize;
    let (tx, mut rx) = mpsc::channel(input.len() + 2);
    let reader = tokio::io::BufReader::with_capacity(1 + (*buffer as usize % 64), input);
    futures::executor::block_on(read_lines(reader, tx, limit));
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // After the last newline: no line.
    }
    for line in lines {
        match rx.try_recv() {
            Ok(Inbound::Text(text)) => {
                assert!(line.len() <= limit, "a line over the cap came through");
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert_eq!(
                    text,
                    String::from_utf8_lossy(line),
                    "a line changed on the way"
                );
            }
            Ok(Inbound::TooLarge { limit: l }) => {
                assert_eq!(l, limit);
                assert!(line.len() > limit, "a line within the cap was refused");
            }
            Err(_) => panic!("a line was lost"),
        }
    }
    assert!(rx.try_recv().is_err(), "a frame came from nowhere");
}

fn frame(mut bytes: Vec<u8>) -> Inbound {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    // Invalid UTF-8 is passed on lossily; the JSON parser then reports it.
    Inbound::Text(
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Writes messages, each followed by a newline, until every sender is gone
/// or the writer fails (the reader has gone away).
fn write_lines<W: Write>(mut out: W, mut rx: OutboundReceiver, written: &AtomicU64) {
    let mut pending: Vec<Outbound> = Vec::with_capacity(MESSAGES_PER_WRITE);
    while let Some(first) = rx.blocking_recv() {
        pending.push(first);
        while pending.len() < MESSAGES_PER_WRITE {
            match rx.try_recv() {
                Some(msg) => pending.push(msg),
                None => break,
            }
        }
        let mut slices: Vec<IoSlice<'_>> = pending
            .iter()
            .flat_map(|msg| {
                let [head, body, tail] = msg.parts();
                [head, body, tail, "\n"]
            })
            .filter(|part| !part.is_empty())
            .map(|part| IoSlice::new(part.as_bytes()))
            .collect();
        if let Err(error) = write_all_vectored(&mut out, &mut slices, written) {
            tracing::info!(%error, "stdout write failed; the reader is gone");
            return;
        }
        drop(slices);
        // Written: the rows' buffers go back for the next batches to fill.
        for msg in pending.drain(..) {
            dbbridge_db::batch::recycle(msg.body);
        }
    }
}

/// `write_all` for slices: `writev` until all are written.
fn write_all_vectored<W: Write>(
    out: &mut W,
    mut slices: &mut [IoSlice<'_>],
    written: &AtomicU64,
) -> std::io::Result<()> {
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written.fetch_add(n as u64, Ordering::Relaxed);
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes a call, as a full pipe does.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut left = self.step;
            let mut written = 0;
            for buf in bufs {
                let n = buf.len().min(left);
                self.out.extend_from_slice(&buf[..n]);
                written += n;
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(written)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn messages_in_parts_come_out_whole_one_per_line_through_short_writes() {
        for step in [1, 3, 7, 64, 1 << 20] {
            let (tx, rx) = outbound::channel();
            let mut expected = String::new();
            let writer = std::thread::spawn(move || {
                let mut out = Trickle {
                    out: Vec::new(),
                    step,
                };
                let written = AtomicU64::new(0);
                write_lines(&mut out, rx, &written);
                assert_eq!(written.load(Ordering::Relaxed), out.out.len() as u64);
                out.out
            });
            for i in 0..200 {
                let msg = if i % 3 == 0 {
                    Outbound::from(format!(r#"{{"plain":{i}}}"#))
                } else {
                    Outbound {
                        head: format!(r#"{{"batch":{i},"rows":"#),
                        body: format!("[[{i},\"x\"]]")
                            .repeat(1 + i % 5)
                            .replace("]][[", "],["),
                        tail: "}",
                    }
                };
                expected.push_str(&msg.parts().concat());
                expected.push('\n');
                assert!(futures::executor::block_on(tx.send_control(msg)));
            }
            drop(tx);
            let written = writer.join().unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), expected, "step {step}");
        }
    }

    #[test]
    fn a_failing_writer_ends_the_thread_and_drops_what_is_queued() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = outbound::channel();
        assert!(futures::executor::block_on(
            tx.send_control(Outbound::from("{}".to_string()))
        ));
        let writer = std::thread::spawn(move || write_lines(Broken, rx, &AtomicU64::new(0)));
        writer.join().unwrap();
        // The receiver is gone with the thread: senders learn it.
        assert!(!futures::executor::block_on(
            tx.send_control(Outbound::from("{}".to_string()))
        ));
    }
}

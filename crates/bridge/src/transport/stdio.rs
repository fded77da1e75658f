//! stdio transport: one JSON message per line on stdin and stdout.
//! stdout carries nothing else; a line over the cap is discarded without being
//! buffered whole, and answered with an error by the server loop.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Connection, INBOUND_QUEUE, Inbound, OUTBOUND_QUEUE};

/// Starts the reader and writer tasks on the process's stdin and stdout.
/// The returned handle finishes once every outbound message has been written
/// and flushed (all senders dropped), so `main` can wait for it before exiting.
pub fn start(max_message_bytes: usize) -> (Connection, JoinHandle<()>) {
    let stdin = BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    start_on(stdin, tokio::io::stdout(), max_message_bytes)
}

/// The same over any reader and writer (tests use pipes).
pub fn start_on<R, W>(
    reader: R,
    writer: W,
    max_message_bytes: usize,
) -> (Connection, JoinHandle<()>)
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    tokio::spawn(read_lines(reader, in_tx, max_message_bytes));
    let writer = tokio::spawn(write_lines(writer, out_rx));
    (
        Connection {
            receiver: in_rx,
            sender: out_tx,
        },
        writer,
    )
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
            // EOF: a last line without a newline still counts.
            if !discarding && !line.is_empty() {
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

async fn write_lines<W: AsyncWrite + Unpin>(writer: W, mut rx: mpsc::Receiver<String>) {
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, writer);
    while let Some(msg) = rx.recv().await {
        if write_one(&mut out, &msg).await.is_err() {
            break;
        }
        // Write everything already queued before paying for a flush.
        while let Ok(msg) = rx.try_recv() {
            if write_one(&mut out, &msg).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}

async fn write_one<W: AsyncWrite + Unpin>(out: &mut W, msg: &str) -> std::io::Result<()> {
    out.write_all(msg.as_bytes()).await?;
    out.write_all(b"\n").await
}

//! Packets on the socket: read into one buffer 128 KiB at a time (a packet
//! is a slice of it, or, past the buffer, one reassembled from its
//! frames), and written framed with their sequence ids.

use std::io;

use super::abort::read_or_abort;
use super::{Conn, Error, MAX_FRAME, MAX_PACKET, READ_BUFFER, protocol};

impl Conn {
    /// Makes sure `need` bytes are read past `start`.
    pub(super) async fn fill(&mut self, need: usize) -> Result<(), Error> {
        while self.end - self.start < need {
            if self.buf.len() - self.start < need {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < need {
                    self.buf.resize(need.next_power_of_two(), 0);
                }
            }
            let buf = &mut self.buf[self.end..];
            let n = match &self.abort {
                Some(abort) => read_or_abort(&mut self.stream, buf, abort).await?,
                None => self.stream.read(buf).await?,
            };
            self.reads += 1;
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.end += n;
        }
        Ok(())
    }

    /// Reads the next packet (the previous one is let go).
    pub(super) async fn read_packet(&mut self) -> Result<(), Error> {
        self.big = None;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * READ_BUFFER {
                // A large packet grew the buffer; give the memory back.
                self.buf = vec![0; READ_BUFFER];
            }
        }
        let mut joined: Option<Vec<u8>> = None;
        loop {
            self.fill(4).await?;
            let h = &self.buf[self.start..self.start + 4];
            let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
            if h[3] != self.seq {
                // A packet of another exchange (or a corrupt stream): nothing
                // after it can be trusted to belong to this response.
                return Err(Error::Protocol(format!(
                    "packet out of sequence (number {}, {} expected)",
                    h[3], self.seq
                )));
            }
            self.seq = h[3].wrapping_add(1);
            self.fill(4 + len).await?;
            let from = self.start + 4;
            self.start = from + len;
            if len < MAX_FRAME && joined.is_none() {
                self.packet = (from, from + len);
                return Ok(());
            }
            let whole = joined.get_or_insert_with(Vec::new);
            if whole.len() + len > MAX_PACKET as usize {
                // More than the largest packet this client agreed to take.
                return Err(protocol("a packet larger than 1 GiB"));
            }
            whole.extend_from_slice(&self.buf[from..from + len]);
            if len < MAX_FRAME {
                self.big = joined;
                return Ok(());
            }
        }
    }

    pub(super) async fn write_packet(&mut self, payload: &[u8]) -> Result<(), Error> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut chunks = payload.chunks(MAX_FRAME).peekable();
        if payload.is_empty() {
            out.extend_from_slice(&[0, 0, 0, self.seq]);
            self.seq = self.seq.wrapping_add(1);
        }
        while let Some(chunk) = chunks.next() {
            let len = chunk.len() as u32;
            out.extend_from_slice(&len.to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(chunk);
            if chunks.peek().is_none() && chunk.len() == MAX_FRAME {
                // A payload of whole frames ends with an empty one.
                out.extend_from_slice(&[0, 0, 0, self.seq]);
                self.seq = self.seq.wrapping_add(1);
            }
        }
        self.stream.write_all(&out).await?;
        Ok(())
    }
}

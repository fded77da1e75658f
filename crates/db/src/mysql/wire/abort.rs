//! The cancel deadline of the session connection's reads, and TCP keepalive
//! on its socket.

use std::io;

use tokio::net::TcpStream;

use super::{Error, Stream};

/// A deadline for the session connection's socket reads, set when its
/// running statement is cancelled: `KILL QUERY` should end the result well
/// before it; if the kill failed (it could not connect: `max_user_connections`,
/// a proxy, a dead network) or the server went on anyway, a read still
/// waiting at the deadline gives the connection up ([`Error::Abandoned`]),
/// rather than reading a cross join to its end or waiting on a dead peer.
#[derive(Default)]
pub(crate) struct Abort {
    at: std::sync::Mutex<Option<tokio::time::Instant>>,
    changed: tokio::sync::Notify,
}

impl Abort {
    /// Reads give up at `at` (or at the earlier deadline already set).
    pub fn set(&self, at: tokio::time::Instant) {
        let mut current = self.at.lock().unwrap_or_else(|e| e.into_inner());
        if current.is_none_or(|now| at < now) {
            *current = Some(at);
        }
        drop(current);
        self.changed.notify_waiters();
    }

    pub fn clear(&self) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads into `buf`, unless `abort`'s deadline (set now or while waiting)
/// passes first.
pub(super) async fn read_or_abort(
    stream: &mut Stream,
    buf: &mut [u8],
    abort: &Abort,
) -> Result<usize, Error> {
    loop {
        let changed = abort.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match abort.deadline() {
            Some(at) => {
                return match tokio::time::timeout_at(at, stream.read(buf)).await {
                    Ok(read) => Ok(read?),
                    Err(_) => Err(Error::Abandoned),
                };
            }
            None => {
                tokio::select! {
                    read = stream.read(buf) => return Ok(read?),
                    _ = &mut changed => continue,
                }
            }
        }
    }
}

/// Keepalive probes on the socket, so that a dead peer fails a read.
pub(super) fn keepalive(tcp: &TcpStream) -> io::Result<()> {
    let probes = socket2::TcpKeepalive::new()
        .with_time(crate::KEEPALIVE_IDLE)
        .with_interval(crate::KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let probes = probes.with_retries(crate::KEEPALIVE_RETRIES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&probes)
}

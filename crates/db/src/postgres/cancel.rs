//! Cancelling a running statement: the protocol's cancel request, sent over
//! a new connection with the session's own TLS settings.

use std::time::Duration;

use tokio_postgres::{CancelToken, NoTls};

use crate::SentCancel;

/// Where a cancel request is sent: the connection's first host and port.
#[derive(Clone, Debug)]
pub(crate) enum CancelAddr {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
}

impl CancelAddr {
    pub(crate) fn of(config: &tokio_postgres::Config) -> Option<CancelAddr> {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(host) => Some(CancelAddr::Tcp(host.clone(), port)),
            tokio_postgres::config::Host::Unix(dir) => {
                Some(CancelAddr::Unix(dir.join(format!(".s.PGSQL.{port}"))))
            }
        }
    }
}

/// Sends the protocol cancel request for the connection's running query.
pub struct PgCancel {
    pub(super) token: CancelToken,
    pub(super) tls: Option<rustls::ClientConfig>,
    pub(super) addr: Option<CancelAddr>,
    pub(super) sent: SentCancel,
    /// Woken by the first request: the start of the query's `ABORT_GRACE`.
    pub(super) asked: tokio::sync::Notify,
}

impl PgCancel {
    pub(crate) fn request(&self) {
        self.asked.notify_one();
        let (token, tls, addr) = (self.token.clone(), self.tls.clone(), self.addr.clone());
        self.sent.send(async move {
            if let Err(error) = send_cancel(token, tls, addr).await {
                tracing::warn!(%error, "postgres cancel request failed");
            }
        });
    }

    /// Waits (briefly) until a requested cancel has been acted on by the
    /// server, so it cannot land on a later statement of the session.
    pub(super) async fn settle(&self) {
        self.sent.settle(Duration::from_secs(2)).await;
    }
}

/// Sends a cancel request. Without TLS the request goes over a socket of our
/// own, read to its end: the server closes it only after it has signalled the
/// backend, so once this returns the cancel cannot arrive later and hit the
/// session's next statement. Over TLS tokio-postgres sends it (same settings
/// as the session) and a short grace period stands in for that wait.
async fn send_cancel(
    token: CancelToken,
    tls: Option<rustls::ClientConfig>,
    addr: Option<CancelAddr>,
) -> Result<(), String> {
    match (tls, addr) {
        (Some(tls), _) => {
            token
                .cancel_query(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (None, Some(CancelAddr::Tcp(host, port))) => {
            let socket = tokio::net::TcpStream::connect((host.as_str(), port)).await;
            cancel_and_wait(&token, socket.map_err(|e| e.to_string())?).await?;
        }
        (None, Some(CancelAddr::Unix(path))) => {
            let socket = tokio::net::UnixStream::connect(&path).await;
            cancel_and_wait(&token, socket.map_err(|e| e.to_string())?).await?;
        }
        (None, None) => token.cancel_query(NoTls).await.map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// Sends the cancel request over `socket`, then reads it to its end.
async fn cancel_and_wait<S>(token: &CancelToken, mut socket: S) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    token
        .cancel_query_raw(&mut socket, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut rest)).await;
    Ok(())
}

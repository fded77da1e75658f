//! The session's MySQL/MariaDB connection: the client side of the wire
//! protocol, on mysql_common's packet types (handshake, auth scrambles, OK and
//! ERR packets, column definitions, prepared-statement requests) over a tokio
//! socket of our own, with rustls for TLS.
//!
//! Why not mysql_async: it hands every row over as a `Row` of owned `Value`s
//! (a `Vec<u8>` per string cell) built from a pooled copy of each packet,
//! behind several layers of futures. That machinery was 40% of the bridge's
//! CPU on a large read. Here a row is a slice of the read buffer, encoded to
//! JSON where it lies ([`Conn::row`]), and the socket is read 128 KiB at a
//! time. The read still pauses with the consumer: the socket is read only
//! when the row asked for is not already in the buffer, so at most one
//! buffer's worth is read ahead.
//!
//! One response at a time: a command is sent only once the previous response
//! is read to its end; what a read stopped early leaves (the rest of a result
//! set, further results) is read off by [`Conn::drain`] before the next
//! command goes out.

use std::io;
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, Command, MariadbCapabilities, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, ComStmtExecuteRequestBuilder, CommonOkPacket, ErrPacket, OkPacketDeserializer,
    StmtPacket,
};
use mysql_common::params::Params;
use mysql_common::proto::{Binary, MySerialize, Text};
use mysql_common::row::RowDeserializer;
use mysql_common::row::convert::{FromRow, from_row_opt};
use mysql_common::value::{ServerSide, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use abort::Abort;
use abort::keepalive;
pub(crate) use results::{Extended, lenenc_bytes, split_extended};

/// What a read starts with, and grows from for a larger packet.
const READ_BUFFER: usize = 128 * 1024;
/// A packet's largest frame; a payload this long continues in the next one.
const MAX_FRAME: usize = 0xff_ffff;
const MAX_PACKET: u32 = 1 << 30;
const UTF8MB4_GENERAL_CI: u8 = 45;
/// More columns than any server sends in one result (MySQL and MariaDB
/// allow 4096 in a table): a larger count is a corrupt stream.
const MAX_COLUMNS: usize = 65_535;
/// How many plugins a server may switch to in one login.
const MAX_AUTH_SWITCHES: usize = 4;

/// A failure on the connection.
#[derive(Debug)]
pub(crate) enum Error {
    /// The server's ERR packet: the connection is fine.
    Server(ServerError),
    /// The socket failed or closed: the connection is gone.
    Io(io::Error),
    /// The server said something this client does not follow; the
    /// connection is given up.
    Protocol(String),
    /// The server asks for a way to log in that this client does not offer.
    Auth(String),
    /// A value did not convert to the type asked for (a catalog query's row);
    /// the connection is fine.
    Convert(String),
    /// A read waited past the [`Abort`] deadline after a cancel; the
    /// connection is given up.
    Abandoned,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Server(e) => write!(f, "{} ({}): {}", e.code, e.state, e.message),
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(e) | Error::Auth(e) | Error::Convert(e) => write!(f, "{e}"),
            Error::Abandoned => write!(
                f,
                "the server did not stop after the cancel; the connection was closed"
            ),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn protocol(what: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("unexpected reply from the server: {what}"))
}

/// Where and as whom to connect. The password is held only here (no
/// `Debug`), and goes to the server only as a scramble, or over TLS.
#[derive(Clone)]
pub(crate) struct Opts {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
    /// TLS, and whether a server without it is refused (`require` and up)
    /// rather than spoken to in plain text (`prefer`).
    pub tls: Option<(Arc<rustls::ClientConfig>, bool)>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while the plain socket is handed to TLS.
    Upgrading,
}

fn upgrading() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS upgrade failed")
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Upgrading => Err(upgrading()),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Stream::Upgrading => Err(upgrading()),
        }
    }
}

/// The start of a response.
pub(crate) enum Head {
    /// A statement without rows.
    Ok(OkInfo),
    /// A result set's columns; its rows follow ([`Conn::next_row`]).
    Columns(Arc<[Column]>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: Option<u64>,
}

/// A prepared statement.
pub(crate) struct Prepared {
    id: u32,
    params: u16,
}

impl Prepared {
    pub fn num_params(&self) -> u16 {
        self.params
    }
}

pub(crate) struct Conn {
    stream: Stream,
    /// Read buffer: `buf[start..end]` is read and not yet taken.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The current packet's payload, in `buf`, or in `big` when it spanned frames.
    packet: (usize, usize),
    big: Option<Vec<u8>>,
    seq: u8,
    caps: CapabilityFlags,
    /// MariaDB's own capabilities, as agreed: extended column metadata.
    mariadb_caps: MariadbCapabilities,
    /// The current result set's extended metadata (MariaDB), one per column.
    extended: Vec<Extended>,
    status: StatusFlags,
    /// Inside a result set: rows are still to be read.
    in_rows: bool,
    secure: bool,
    /// Reads from the socket so far.
    reads: u64,
    /// The session connection's cancel deadline (none on a KILL connection).
    abort: Option<Arc<Abort>>,
}

impl Conn {
    /// Connects, upgrades to TLS when asked, and authenticates.
    pub async fn connect(opts: &Opts) -> Result<Conn, Error> {
        let tcp = TcpStream::connect((opts.host.as_str(), opts.port)).await?;
        tcp.set_nodelay(true)?;
        keepalive(&tcp)?;
        let mut conn = Conn {
            stream: Stream::Plain(tcp),
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            packet: (0, 0),
            big: None,
            seq: 0,
            caps: CapabilityFlags::empty(),
            mariadb_caps: MariadbCapabilities::empty(),
            extended: Vec::new(),
            status: StatusFlags::empty(),
            in_rows: false,
            secure: false,
            reads: 0,
            abort: None,
        };
        conn.handshake(opts).await?;
        Ok(conn)
    }

    /// Makes this connection's socket reads give up at `abort`'s deadline.
    pub fn set_abort(&mut self, abort: Arc<Abort>) {
        self.abort = Some(abort);
    }

    /// How many times the socket was read: a row that came without a read
    /// was already in the buffer.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Whether the last reply said a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
    }

    /// Whether the statement just read has more results to come.
    pub fn more_results(&self) -> bool {
        self.status
            .contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)
    }

    // ---- packets ----

    /// The current packet's payload.
    pub fn payload(&self) -> &[u8] {
        match &self.big {
            Some(big) => big,
            None => &self.buf[self.packet.0..self.packet.1],
        }
    }

    /// The current row's packet, after [`next_row`](Self::next_row) said there is one.
    pub fn row(&self) -> &[u8] {
        self.payload()
    }

    /// Sends a command, after reading off what is left of the last response.
    async fn command(&mut self, command: Command, body: &[u8]) -> Result<(), Error> {
        let mut payload = Vec::with_capacity(body.len() + 1);
        payload.push(command as u8);
        payload.extend_from_slice(body);
        self.send_command(&payload).await
    }

    /// Sends a command's packet (its first byte the command), after reading
    /// off what is left of the last response.
    async fn send_command(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.drain().await?;
        self.seq = 0;
        self.write_packet(payload).await
    }

    fn err_packet(&self) -> Error {
        match ParseBuf(self.payload()).parse::<ErrPacket>(self.caps) {
            Ok(ErrPacket::Error(e)) => Error::Server(ServerError {
                code: e.error_code(),
                state: e
                    .sql_state_ref()
                    .map(|s| s.as_str().into_owned())
                    .unwrap_or_else(|| "HY000".to_string()),
                message: e.message_str().into_owned(),
            }),
            Ok(ErrPacket::Progress(_)) => protocol("a progress report"),
            Err(e) => protocol(e),
        }
    }

    fn ok_packet(&self) -> Result<(OkInfo, StatusFlags), Error> {
        let ok = ParseBuf(self.payload())
            .parse::<OkPacketDeserializer<CommonOkPacket>>(self.caps)
            .map_err(protocol)?
            .into_inner();
        Ok((
            OkInfo {
                affected_rows: ok.affected_rows(),
                last_insert_id: ok.last_insert_id(),
            },
            ok.status_flags(),
        ))
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    // ---- commands ----

    /// Sends `sql` in the text protocol and reads its first result's head.
    pub async fn query(&mut self, sql: &str) -> Result<Head, Error> {
        self.command(Command::COM_QUERY, sql.as_bytes()).await?;
        self.read_head().await
    }

    pub async fn prepare(&mut self, sql: &str) -> Result<Prepared, Error> {
        self.command(Command::COM_STMT_PREPARE, sql.as_bytes())
            .await?;
        self.read_packet().await?;
        if self.payload().first() == Some(&0xff) {
            return Err(self.err_packet());
        }
        let stmt = ParseBuf(self.payload())
            .parse::<StmtPacket>(())
            .map_err(protocol)?;
        let prepared = Prepared {
            id: stmt.statement_id(),
            params: stmt.num_params(),
        };
        self.columns(usize::from(stmt.num_params())).await?;
        self.columns(usize::from(stmt.num_columns())).await?;
        Ok(prepared)
    }

    /// Executes a prepared statement; its rows come in the binary protocol.
    pub async fn execute(&mut self, stmt: &Prepared, params: &[Value]) -> Result<Head, Error> {
        let (request, as_long_data) = ComStmtExecuteRequestBuilder::new(stmt.id).build(params);
        if as_long_data {
            return Err(Error::Protocol("a parameter is too long".into()));
        }
        let mut body = Vec::new();
        request.serialize(&mut body);
        // The request carries its command byte.
        self.send_command(&body).await?;
        self.read_head().await
    }

    /// Frees a prepared statement (the server does not answer).
    pub async fn close(&mut self, stmt: Prepared) -> Result<(), Error> {
        self.command(Command::COM_STMT_CLOSE, &stmt.id.to_le_bytes())
            .await
    }

    pub async fn ping(&mut self) -> Result<(), Error> {
        self.command(Command::COM_PING, &[]).await?;
        match self.read_head().await? {
            Head::Ok(_) => Ok(()),
            Head::Columns(_) => Err(protocol("rows for a ping")),
        }
    }

    /// Says goodbye, so that the server does not count and log an aborted
    /// connection. In the middle of a response the server would not read
    /// it before sending the rest; the socket is just closed then.
    pub async fn quit(mut self) {
        if !self.pending() {
            self.seq = 0;
            let _ = self.write_packet(&[Command::COM_QUIT as u8]).await;
        }
    }

    /// Runs a statement and reads off whatever it returns.
    pub async fn query_drop(&mut self, sql: &str) -> Result<(), Error> {
        self.query(sql).await?;
        self.drain().await
    }

    /// The first result's rows of a text query, converted.
    pub async fn query_rows<T: FromRow>(&mut self, sql: &str) -> Result<Vec<T>, Error> {
        let head = self.query(sql).await?;
        self.collect::<T, Text>(head).await
    }

    /// The first result's rows of a statement prepared and executed with `params`.
    pub async fn exec_rows<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<T>, Error> {
        let params = match params.into() {
            Params::Positional(values) => values,
            Params::Empty => Vec::new(),
            Params::Named(_) => return Err(Error::Protocol("named parameters".into())),
        };
        let stmt = self.prepare(sql).await?;
        let rows = match self.execute(&stmt, &params).await {
            Ok(head) => self.collect::<T, Binary>(head).await,
            Err(e) => Err(e),
        };
        self.close(stmt).await?;
        rows
    }

    async fn collect<T: FromRow, P>(&mut self, head: Head) -> Result<Vec<T>, Error>
    where
        for<'de> RowDeserializer<ServerSide, P>:
            mysql_common::proto::MyDeserialize<'de, Ctx = Arc<[Column]>>,
    {
        let mut out = Vec::new();
        if let Head::Columns(columns) = head {
            while self.next_row().await? {
                let row = ParseBuf(self.payload())
                    .parse::<RowDeserializer<ServerSide, P>>(columns.clone())
                    .map_err(protocol)?
                    .into_inner();
                match from_row_opt::<T>(row) {
                    Ok(row) => out.push(row),
                    Err(e) => {
                        self.drain().await?;
                        return Err(Error::Convert(format!("unexpected catalog row: {e:?}")));
                    }
                }
            }
        }
        self.drain().await?;
        Ok(out)
    }
}

mod abort;
mod auth;
mod packets;
mod results;
#[cfg(test)]
mod tests;

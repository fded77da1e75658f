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
    OldEofPacket, ResultSetTerminator, StmtPacket,
};
use mysql_common::params::Params;
use mysql_common::proto::{Binary, MySerialize, Text};
use mysql_common::row::RowDeserializer;
use mysql_common::row::convert::{FromRow, from_row_opt};
use mysql_common::value::{ServerSide, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use abort::Abort;
use abort::{keepalive, read_or_abort};

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

    /// Makes sure `need` bytes are read past `start`.
    async fn fill(&mut self, need: usize) -> Result<(), Error> {
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
    async fn read_packet(&mut self) -> Result<(), Error> {
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

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), Error> {
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

    /// Reads `n` column definitions (and the EOF after them on old servers),
    /// keeping MariaDB's extended metadata of each in `extended`.
    async fn columns(&mut self, n: usize) -> Result<Arc<[Column]>, Error> {
        let extended = self
            .mariadb_caps
            .contains(MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA);
        if n > MAX_COLUMNS {
            return Err(protocol(format!("a result of {n} columns")));
        }
        let mut columns = Vec::with_capacity(n.min(1024));
        self.extended.clear();
        for _ in 0..n {
            self.read_packet().await?;
            let column = if extended {
                let (column, ext) = split_extended(self.payload())
                    .ok_or_else(|| protocol("a column definition"))?;
                self.extended.push(ext);
                column
            } else {
                ParseBuf(self.payload())
                    .parse::<Column>(())
                    .map_err(protocol)?
            };
            columns.push(column);
        }
        if n > 0 && !self.deprecate_eof() {
            self.read_packet().await?;
        }
        Ok(columns.into())
    }

    /// MariaDB's extended metadata of the current result's columns (empty
    /// from a server that does not send it).
    pub fn extended(&self) -> &[Extended] {
        &self.extended
    }

    // ---- responses ----

    /// Reads the start of the (next) result of the command just sent.
    pub async fn read_head(&mut self) -> Result<Head, Error> {
        self.read_packet().await?;
        match self.payload().first() {
            Some(0x00) => {
                let (info, status) = self.ok_packet()?;
                self.status = status;
                Ok(Head::Ok(info))
            }
            Some(0xff) => {
                // An error ends the whole response.
                self.status.remove(StatusFlags::SERVER_MORE_RESULTS_EXISTS);
                Err(self.err_packet())
            }
            Some(0xfb) => {
                // LOAD DATA LOCAL INFILE: refused with an empty file (this
                // client never offers to send files), then the server's reply.
                self.write_packet(&[]).await?;
                self.read_packet().await?;
                self.status.remove(StatusFlags::SERVER_MORE_RESULTS_EXISTS);
                match self.payload().first() {
                    Some(0xff) => Err(self.err_packet()),
                    _ => Err(Error::Server(ServerError {
                        code: 1148,
                        state: "42000".into(),
                        message: "LOAD DATA LOCAL INFILE is not supported by dbbridge".into(),
                    })),
                }
            }
            Some(_) => {
                let n = lenenc(self.payload(), &mut 0).ok_or_else(|| protocol("column count"))?;
                let n = usize::try_from(n).map_err(protocol)?;
                let columns = self.columns(n).await?;
                self.in_rows = true;
                Ok(Head::Columns(columns))
            }
            None => Err(protocol("an empty packet")),
        }
    }

    /// Reads the next row of the current result set: `true` with the row in
    /// [`row`](Self::row), `false` at the set's end.
    pub async fn next_row(&mut self) -> Result<bool, Error> {
        self.read_packet().await?;
        let p = self.payload();
        match p.first() {
            Some(0xfe) if p.len() < MAX_FRAME && (self.deprecate_eof() || p.len() < 9) => {
                let status = if self.deprecate_eof() {
                    ParseBuf(p)
                        .parse::<OkPacketDeserializer<ResultSetTerminator>>(self.caps)
                        .map_err(protocol)?
                        .into_inner()
                        .status_flags()
                } else {
                    ParseBuf(p)
                        .parse::<OkPacketDeserializer<OldEofPacket>>(self.caps)
                        .map_err(protocol)?
                        .into_inner()
                        .status_flags()
                };
                self.status = status;
                self.in_rows = false;
                Ok(false)
            }
            Some(0xff) => {
                self.in_rows = false;
                self.status.remove(StatusFlags::SERVER_MORE_RESULTS_EXISTS);
                Err(self.err_packet())
            }
            Some(_) => Ok(true),
            None => Err(protocol("an empty row packet")),
        }
    }

    /// Whether the last response is not read to its end.
    fn pending(&self) -> bool {
        self.in_rows || self.more_results()
    }

    /// Reads off the rest of the response: rows, further results, an error.
    pub async fn drain(&mut self) -> Result<(), Error> {
        while self.pending() {
            let read = if self.in_rows {
                self.next_row().await.map(|_| ())
            } else {
                self.read_head().await.map(|_| ())
            };
            match read {
                Ok(()) | Err(Error::Server(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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

/// What MariaDB says of a column beyond its protocol type: the name of a
/// type of its own (`uuid`, `inet6`, `point`) and a format (`json`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Extended {
    pub type_name: Option<String>,
    pub format: Option<String>,
}

/// A column definition with MariaDB's extended metadata: the definition as
/// mysql_common reads it (without that field) and the metadata. The field
/// follows the six names (catalog, schema, table, org_table, name,
/// org_name) and holds entries of a kind byte (0 type, 1 format) and a
/// length-encoded value.
pub(crate) fn split_extended(p: &[u8]) -> Option<(Column, Extended)> {
    let mut at = 0;
    for _ in 0..6 {
        lenenc_bytes(p, &mut at)?;
    }
    let from = at;
    let field = lenenc_bytes(p, &mut at)?;
    let mut ext = Extended::default();
    let mut i = 0;
    while i < field.len() {
        let kind = field[i];
        i += 1;
        let value = String::from_utf8_lossy(lenenc_bytes(field, &mut i)?).into_owned();
        match kind {
            0 => ext.type_name = Some(value),
            1 => ext.format = Some(value),
            _ => {}
        }
    }
    let mut plain = Vec::with_capacity(p.len());
    plain.extend_from_slice(&p[..from]);
    plain.extend_from_slice(&p[at..]);
    let column = ParseBuf(&plain).parse::<Column>(()).ok()?;
    Some((column, ext))
}

/// A length-encoded integer at `*at`, moving past it.
pub(crate) fn lenenc(p: &[u8], at: &mut usize) -> Option<u64> {
    let first = *p.get(*at)?;
    let (len, value) = match first {
        0..=0xfa => (1, u64::from(first)),
        0xfc => (
            3,
            u64::from(u16::from_le_bytes([*p.get(*at + 1)?, *p.get(*at + 2)?])),
        ),
        0xfd => (
            4,
            u64::from(*p.get(*at + 1)?)
                | u64::from(*p.get(*at + 2)?) << 8
                | u64::from(*p.get(*at + 3)?) << 16,
        ),
        0xfe => {
            let bytes: [u8; 8] = p.get(*at + 1..*at + 9)?.try_into().ok()?;
            (9, u64::from_le_bytes(bytes))
        }
        _ => return None,
    };
    *at += len;
    Some(value)
}

/// A length-encoded string at `*at`, moving past it.
pub(crate) fn lenenc_bytes<'p>(p: &'p [u8], at: &mut usize) -> Option<&'p [u8]> {
    let len = usize::try_from(lenenc(p, at)?).ok()?;
    let bytes = p.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(bytes)
}

mod abort;
mod auth;
#[cfg(test)]
mod tests;

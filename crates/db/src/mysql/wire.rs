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
    AuthPlugin, Column, ComStmtExecuteRequestBuilder, CommonOkPacket, ErrPacket, HandshakePacket,
    HandshakeResponse, OkPacketDeserializer, OldEofPacket, ResultSetTerminator, SslRequest,
    StmtPacket,
};
use mysql_common::params::Params;
use mysql_common::proto::{Binary, MySerialize, Text};
use mysql_common::row::RowDeserializer;
use mysql_common::row::convert::{FromRow, from_row_opt};
use mysql_common::value::{ServerSide, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
async fn read_or_abort(stream: &mut Stream, buf: &mut [u8], abort: &Abort) -> Result<usize, Error> {
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
fn keepalive(tcp: &TcpStream) -> io::Result<()> {
    let probes = socket2::TcpKeepalive::new()
        .with_time(crate::KEEPALIVE_IDLE)
        .with_interval(crate::KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let probes = probes.with_retries(crate::KEEPALIVE_RETRIES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&probes)
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

    async fn handshake(&mut self, opts: &Opts) -> Result<(), Error> {
        self.read_packet().await?;
        if self.payload().first() == Some(&0xff) {
            return Err(self.err_packet());
        }
        let (nonce, server_caps, plugin, version_parsed, status, mariadb_caps) = {
            let hs = ParseBuf(self.payload())
                .parse::<HandshakePacket>(())
                .map_err(protocol)?;
            let mut nonce = hs.scramble_1_ref().to_vec();
            nonce.extend_from_slice(hs.scramble_2_ref().unwrap_or_default());
            // The scramble is 20 bytes and a NUL, as the server fills it.
            nonce.resize(20, 0);
            let plugin = match hs.auth_plugin() {
                Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
                _ => AuthPlugin::MysqlNativePassword,
            };
            let parsed = hs
                .maria_db_server_version_parsed()
                .or_else(|| hs.server_version_parsed())
                .unwrap_or((5, 7, 0));
            (
                nonce,
                hs.capabilities(),
                plugin.into_owned(),
                parsed,
                hs.status_flags(),
                // MariaDB says it has capabilities of its own by clearing
                // the first standard one.
                if hs
                    .capabilities()
                    .contains(CapabilityFlags::CLIENT_LONG_PASSWORD)
                {
                    MariadbCapabilities::empty()
                } else {
                    hs.mariadb_ext_capabilities()
                },
            )
        };
        self.status = status;
        self.mariadb_caps = mariadb_caps & MariadbCapabilities::MARIADB_CLIENT_EXTENDED_METADATA;
        let mut wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        if opts.database.is_some() {
            wanted |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        }
        let tls = match &opts.tls {
            Some((config, _)) if server_caps.contains(CapabilityFlags::CLIENT_SSL) => {
                wanted |= CapabilityFlags::CLIENT_SSL;
                Some(config.clone())
            }
            Some((_, true)) => {
                return Err(Error::Protocol(
                    "the server does not offer TLS (sslMode requires it)".into(),
                ));
            }
            _ => None,
        };
        self.caps = server_caps & wanted;
        if let Some(config) = tls {
            self.upgrade(config, &opts.host).await?;
        }
        let auth_data = plugin.gen_data(opts.password.as_deref(), &nonce);
        let response = HandshakeResponse::new(
            auth_data.as_deref(),
            version_parsed,
            Some(opts.user.as_bytes()),
            opts.database.as_deref().map(str::as_bytes),
            Some(plugin.borrow()),
            self.caps,
            None,
            MAX_PACKET,
        )
        .with_mariadb_ext_capabilities(self.mariadb_caps);
        let mut body = Vec::new();
        response.serialize(&mut body);
        self.write_packet(&body).await?;
        self.authenticate(opts, plugin, nonce).await
    }

    async fn upgrade(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<(), Error> {
        let request = SslRequest::new(self.caps, MAX_PACKET, UTF8MB4_GENERAL_CI)
            .with_mariadb_capabilities(self.mariadb_caps);
        let mut body = Vec::new();
        request.serialize(&mut body);
        self.write_packet(&body).await?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| Error::Protocol(format!("TLS: {host:?} is not a host name: {e}")))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(Error::Protocol("TLS requested twice".into()));
        };
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Protocol(format!("TLS handshake failed: {e}")))?;
        self.stream = Stream::Tls(Box::new(tls));
        self.secure = true;
        Ok(())
    }

    /// The replies to the handshake response, auth switches and
    /// caching_sha2_password's extra rounds included, up to the final OK.
    async fn authenticate(
        &mut self,
        opts: &Opts,
        mut plugin: AuthPlugin<'static>,
        mut nonce: Vec<u8>,
    ) -> Result<(), Error> {
        // MariaDB's `IDENTIFIED VIA a OR b` switches once per plugin it tries.
        let mut switches = 0;
        loop {
            self.read_packet().await?;
            let first = self.payload().first().copied();
            match first {
                Some(0x00) => {
                    self.status = self.ok_packet()?.1;
                    return Ok(());
                }
                Some(0xff) => return Err(self.err_packet()),
                Some(0xfe) if switches < MAX_AUTH_SWITCHES => {
                    switches += 1;
                    let (name, data) = auth_switch(self.payload())?;
                    nonce = data;
                    plugin = name;
                    let supported = match &plugin {
                        AuthPlugin::MysqlNativePassword
                        | AuthPlugin::CachingSha2Password
                        | AuthPlugin::Ed25519 => true,
                        // The clear password only where it cannot be read on the way.
                        AuthPlugin::MysqlClearPassword => self.secure,
                        _ => false,
                    };
                    if !supported {
                        return Err(Error::Auth(format!(
                            "the server asks for the authentication plugin {:?}, which dbbridge does not support{}",
                            String::from_utf8_lossy(plugin.as_bytes()),
                            if matches!(plugin, AuthPlugin::MysqlClearPassword) {
                                " without TLS"
                            } else {
                                ""
                            }
                        )));
                    }
                    let data = plugin.gen_data(opts.password.as_deref(), &nonce);
                    let mut body = Vec::new();
                    if let Some(data) = data {
                        data.serialize(&mut body);
                    }
                    self.write_packet(&body).await?;
                }
                Some(0x01) if matches!(plugin, AuthPlugin::CachingSha2Password) => {
                    match self.payload().get(1) {
                        // Fast auth: the server had the password's hash cached.
                        Some(0x03) => {}
                        // Full auth: the password itself, over TLS or RSA-encrypted.
                        Some(0x04) => {
                            let mut pass = opts.password.clone().unwrap_or_default().into_bytes();
                            pass.push(0);
                            if self.secure {
                                self.write_packet(&pass).await?;
                            } else {
                                self.write_packet(&[0x02]).await?;
                                self.read_packet().await?;
                                let key = match self.payload().split_first() {
                                    Some((0x01, key)) => key.to_vec(),
                                    Some((0xff, _)) => return Err(self.err_packet()),
                                    other => {
                                        return Err(protocol(format!(
                                            "{:?} where the server's public key was expected",
                                            other.map(|(b, _)| b)
                                        )));
                                    }
                                };
                                let encrypted = rsa_encrypt_password(&pass, &nonce, &key)?;
                                self.write_packet(&encrypted).await?;
                            }
                        }
                        other => return Err(protocol(format!("auth data {other:?}"))),
                    }
                }
                other => return Err(protocol(format!("packet {other:?} while authenticating"))),
            }
        }
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

/// An auth switch request: the plugin and its data exactly as sent. The
/// scramble-based plugins end their 20-byte scramble with a NUL that is not
/// part of it; MariaDB's ed25519 nonce is 32 raw bytes whose last may be 0,
/// so the NUL is taken off only for the plugins whose data carries one
/// (mysql_common's `plugin_data()` takes any last 0 off, which failed one
/// ed25519 login in 256).
pub(crate) fn auth_switch(payload: &[u8]) -> Result<(AuthPlugin<'static>, Vec<u8>), Error> {
    let rest = payload
        .strip_prefix(&[0xfe])
        .ok_or_else(|| protocol("an auth switch without its header"))?;
    let name_end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| protocol("an auth switch without a plugin name"))?;
    let plugin = AuthPlugin::from_bytes(&rest[..name_end]).into_owned();
    let raw = &rest[name_end + 1..];
    let data = match (&plugin, raw) {
        (
            AuthPlugin::MysqlNativePassword
            | AuthPlugin::CachingSha2Password
            | AuthPlugin::MysqlClearPassword,
            [scramble @ .., 0],
        ) => scramble,
        _ => raw,
    };
    Ok((plugin, data.to_vec()))
}

/// caching_sha2_password's full auth without TLS: the NUL-terminated
/// password XORed with the scramble, encrypted (RSA-OAEP, SHA-1) with the
/// server's public key. A key that does not parse, or a password too long
/// for the key, is an error, never a panic.
pub(crate) fn rsa_encrypt_password(
    pass: &[u8],
    nonce: &[u8],
    key_pem: &[u8],
) -> Result<Vec<u8>, Error> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    if nonce.is_empty() {
        return Err(protocol("an empty scramble"));
    }
    let pem = std::str::from_utf8(key_pem)
        .map_err(|_| Error::Auth("the server's public key is not PEM text".into()))?;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| Error::Auth(format!("the server's public key does not parse: {e}")))?;
    let xored: Vec<u8> = pass
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ nonce[i % nonce.len()])
        .collect();
    key.encrypt(
        &mut rsa::rand_core::OsRng,
        rsa::Oaep::new::<sha1::Sha1>(),
        &xored,
    )
    .map_err(|e| {
        Error::Auth(format!(
            "the password cannot be sent encrypted with the server's key ({e}); connect with TLS"
        ))
    })
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
fn split_extended(p: &[u8]) -> Option<(Column, Extended)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_extended_metadata_is_split_off_a_column_definition() {
        use mysql_common::constants::ColumnType;
        // catalog, schema, table, org_table, name, org_name.
        let mut names = Vec::new();
        for name in ["def", "db", "t", "t", "doc", "doc"] {
            names.push(name.len() as u8);
            names.extend_from_slice(name.as_bytes());
        }
        // 0x0c, charset 45, length, type BLOB (0xfc), flags, decimals, filler.
        let mut fixed = vec![0x0c, 45, 0];
        fixed.extend_from_slice(&u32::MAX.to_le_bytes());
        fixed.extend_from_slice(&[0xfc, 0x10, 0x00, 0x00, 0x00, 0x00]);
        // [kind 1 "json"] [kind 0 "longtext"].
        let field = [&[1u8, 4][..], b"json", &[0, 8], b"longtext"].concat();
        let packet = [&names[..], &[field.len() as u8], &field, &fixed].concat();
        let (column, ext) = split_extended(&packet).unwrap();
        assert_eq!(column.name_str(), "doc");
        assert_eq!(column.schema_str(), "db");
        assert_eq!(column.column_type(), ColumnType::MYSQL_TYPE_BLOB);
        assert_eq!(column.character_set(), 45);
        assert_eq!(column.column_length(), u32::MAX);
        assert_eq!(ext.format.as_deref(), Some("json"));
        assert_eq!(ext.type_name.as_deref(), Some("longtext"));
        // An empty field: no metadata; one cut short: no column.
        let packet = [&names[..], &[0], &fixed].concat();
        assert_eq!(split_extended(&packet).unwrap().1, Extended::default());
        assert!(split_extended(&packet[..names.len() + 1]).is_none());
        let bad = [&names[..], &[3, 1, 9, b'x'], &fixed].concat();
        assert!(split_extended(&bad).is_none());
    }

    #[test]
    fn length_encoded_integers_and_strings() {
        let cases: [(&[u8], u64, usize); 5] = [
            (&[0x00], 0, 1),
            (&[0xfa], 250, 1),
            (&[0xfc, 0xfb, 0x00], 251, 3),
            (&[0xfd, 0x01, 0x02, 0x03], 0x03_0201, 4),
            (&[0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80], 0x8000_0000_0000_0001, 9),
        ];
        for (bytes, value, len) in cases {
            let mut at = 0;
            assert_eq!(lenenc(bytes, &mut at), Some(value), "{bytes:?}");
            assert_eq!(at, len);
            let mut at = 0;
            assert_eq!(lenenc(&bytes[..len - 1], &mut at), None, "cut {bytes:?}");
        }
        // 0xfb is NULL in a row and 0xff no length at all.
        assert_eq!(lenenc(&[0xfb], &mut 0), None);
        assert_eq!(lenenc(&[0xff], &mut 0), None);
        let mut at = 0;
        assert_eq!(lenenc_bytes(b"\x03abcd", &mut at), Some(&b"abc"[..]));
        assert_eq!(at, 4);
        assert_eq!(lenenc_bytes(b"\x05abcd", &mut 0), None);
    }

    #[test]
    fn auth_switch_keeps_an_ed25519_nonce_whole() {
        let mut packet = vec![0xfe];
        packet.extend_from_slice(b"client_ed25519\0");
        let mut nonce = [7u8; 32];
        nonce[31] = 0;
        packet.extend_from_slice(&nonce);
        let (plugin, data) = auth_switch(&packet).unwrap();
        assert!(matches!(plugin, AuthPlugin::Ed25519));
        assert_eq!(data, nonce);
        let mut packet = vec![0xfe];
        packet.extend_from_slice(b"mysql_native_password\0");
        packet.extend_from_slice(&[1u8; 20]);
        packet.push(0);
        assert_eq!(auth_switch(&packet).unwrap().1, [1u8; 20]);
        assert!(auth_switch(&[0xfe, b'x']).is_err());
        assert!(auth_switch(&[0x00]).is_err());
    }

    #[test]
    fn rsa_password_errors_instead_of_panicking() {
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let nonce = [3u8; 20];
        assert!(matches!(
            rsa_encrypt_password(b"pw\0", &nonce, b"not a key"),
            Err(Error::Auth(_))
        ));
        assert!(matches!(
            rsa_encrypt_password(
                b"pw\0",
                &nonce,
                b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
            ),
            Err(Error::Auth(_))
        ));
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let encrypted = rsa_encrypt_password(b"secret\0", &nonce, pem.as_bytes()).unwrap();
        assert_eq!(encrypted.len(), 128);
        // OAEP-SHA1 in 1024 bits holds 86 bytes at most.
        let long = vec![b'x'; 200];
        let Err(Error::Auth(message)) = rsa_encrypt_password(&long, &nonce, pem.as_bytes()) else {
            panic!("a long password must be refused");
        };
        assert!(message.contains("TLS"), "{message}");
    }

    /// A server that greets (mysql_native_password, no TLS), accepts any
    /// login, then answers the first command with `reply`: raw bytes,
    /// headers included, so they can be anything.
    async fn scripted(reply: Vec<u8>) -> Opts {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let caps: u32 = 0x0000_0001
                | 0x0000_0200
                | 0x0000_2000
                | 0x0000_8000
                | 0x0002_0000
                | 0x0008_0000
                | 0x0100_0000;
            let mut hs = vec![10];
            hs.extend_from_slice(b"5.7.99-scripted\0");
            hs.extend_from_slice(&9u32.to_le_bytes());
            hs.extend_from_slice(b"abcdefgh\0");
            hs.extend_from_slice(&(caps as u16).to_le_bytes());
            hs.push(45);
            hs.extend_from_slice(&2u16.to_le_bytes());
            hs.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
            hs.push(21);
            hs.extend_from_slice(&[0; 10]);
            hs.extend_from_slice(b"ijklmnopqrst\0");
            hs.extend_from_slice(b"mysql_native_password\0");
            let frame = |p: &[u8], seq: u8| {
                let mut f = (p.len() as u32).to_le_bytes()[..3].to_vec();
                f.push(seq);
                f.extend_from_slice(p);
                f
            };
            s.write_all(&frame(&hs, 0)).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(&frame(&[0, 0, 0, 2, 0, 0, 0], 2))
                .await
                .unwrap();
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&reply).await;
            // Then silence, or the end of the connection after a while.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        });
        Opts {
            host: "127.0.0.1".into(),
            port,
            user: "u".into(),
            password: Some("p".into()),
            database: None,
            tls: None,
        }
    }

    fn frame(payload: &[u8], seq: u8) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        f.push(seq);
        f.extend_from_slice(payload);
        f
    }

    /// One text result of one column: `SELECT 'x'` as the server sends it.
    fn one_column_result(row: &[u8]) -> Vec<u8> {
        let mut column = Vec::new();
        for part in [&b"def"[..], b"", b"", b"", b"c", b""] {
            column.push(part.len() as u8);
            column.extend_from_slice(part);
        }
        column.extend_from_slice(&[0x0c, 45, 0, 4, 0, 0, 0, 253, 0, 0, 0x1f, 0, 0]);
        let mut reply = frame(&[1], 1);
        reply.extend(frame(&column, 2));
        reply.extend(frame(row, 3));
        reply.extend(frame(&[0xfe, 0, 0, 2, 0, 0, 0], 4));
        reply
    }

    async fn read_all(reply: Vec<u8>) -> Result<usize, Error> {
        let mut conn = Conn::connect(&scripted(reply).await).await?;
        let mut rows = 0;
        if let Head::Columns(_) = conn.query("SELECT 'x'").await? {
            while conn.next_row().await? {
                rows += 1;
            }
        }
        Ok(rows)
    }

    #[tokio::test]
    async fn the_packet_reader_refuses_bad_streams_without_panicking() {
        // The well-formed reply reads.
        assert_eq!(read_all(one_column_result(&[1, b'x'])).await.unwrap(), 1);
        // Desynchronised: the row packet's sequence number skips one.
        let mut desync = one_column_result(&[1, b'x']);
        let row_at = desync.len() - 11 - 6;
        desync[row_at + 3] = 9;
        assert!(
            matches!(read_all(desync).await, Err(Error::Protocol(m)) if m.contains("sequence"))
        );
        // Truncated: the connection ends inside a packet.
        let mut cut = one_column_result(&[1, b'x']);
        cut.truncate(cut.len() - 9);
        assert!(matches!(read_all(cut).await, Err(Error::Io(_))));
        // Oversized: a column count no server sends.
        let huge = frame(&[0xfe, 0, 0, 0, 0, 1, 0, 0, 0], 1);
        assert!(matches!(read_all(huge).await, Err(Error::Protocol(m)) if m.contains("columns")));
        // Wrong header: an ERR packet cut after its marker.
        assert!(matches!(
            read_all(frame(&[0xff, 1], 1)).await,
            Err(Error::Protocol(_))
        ));
        // An empty packet where a response starts.
        assert!(matches!(
            read_all(frame(&[], 1)).await,
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn mysql_commons_plugin_data_loses_a_trailing_zero() {
        // Why auth_switch reads the raw data: the library's accessor takes a
        // last 0 byte off any plugin's data, a 32-byte ed25519 nonce too.
        let mut packet = vec![0xfe];
        packet.extend_from_slice(b"client_ed25519\0");
        packet.extend_from_slice(&[5u8; 31]);
        packet.push(0);
        let switch = ParseBuf(&packet)
            .parse::<mysql_common::packets::AuthSwitchRequest>(())
            .unwrap();
        assert_eq!(switch.plugin_data().len(), 31);
        assert_eq!(auth_switch(&packet).unwrap().1.len(), 32);
    }
}

//! Reading responses: a result's head (OK, ERR, or column definitions with
//! MariaDB's extended metadata), its rows, and what a read stopped early
//! leaves; the length-encoded fields they are made of.

use std::sync::Arc;

use mysql_common::constants::{MariadbCapabilities, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{Column, OkPacketDeserializer, OldEofPacket, ResultSetTerminator};

use super::{Conn, Error, Head, MAX_COLUMNS, MAX_FRAME, ServerError, protocol};

impl Conn {
    /// Reads `n` column definitions (and the EOF after them on old servers),
    /// keeping MariaDB's extended metadata of each in `extended`.
    pub(super) async fn columns(&mut self, n: usize) -> Result<Arc<[Column]>, Error> {
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
    pub(super) fn pending(&self) -> bool {
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

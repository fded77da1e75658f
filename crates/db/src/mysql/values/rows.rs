//! Walking a row packet cell by cell: the text protocol's length-encoded
//! strings, or the binary protocol's NULL bitmap and fixed-size or
//! length-encoded values, each checked to end exactly at the packet's end.

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::packets::Column;
use mysql_common::value::Value;

use super::{Charset, Encoder, encode, encode_value};
use crate::mysql::wire::lenenc_bytes;
use crate::value::RowWriter;

/// How a column's cells lie in a binary-protocol row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    Tiny,
    Short,
    Long,
    LongLong,
    Float,
    Double,
    /// DATE, DATETIME, TIMESTAMP: a length byte, then as many fields as it says.
    Date,
    /// TIME: a length byte, then sign, days, clock and microseconds.
    Time,
    Null,
    /// Everything else: a length-encoded string.
    Str,
}

/// One column of a result as this module reads and writes it.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub encoder: Encoder,
    charset: Charset,
    wire: Wire,
    unsigned: bool,
}

/// Why a row packet could not be written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowError {
    /// Shorter than its columns, longer, or with a wrong header: the stream
    /// cannot be trusted.
    Malformed,
    /// This column's text is not valid in its character set.
    Text(usize),
}

impl Cell {
    pub fn new(column: &Column, encoder: Encoder) -> Cell {
        use ColumnType::*;
        let wire = match column.column_type() {
            MYSQL_TYPE_TINY => Wire::Tiny,
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => Wire::Short,
            MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => Wire::Long,
            MYSQL_TYPE_LONGLONG => Wire::LongLong,
            MYSQL_TYPE_FLOAT => Wire::Float,
            MYSQL_TYPE_DOUBLE => Wire::Double,
            MYSQL_TYPE_DATE
            | MYSQL_TYPE_NEWDATE
            | MYSQL_TYPE_DATETIME
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIMESTAMP
            | MYSQL_TYPE_TIMESTAMP2 => Wire::Date,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Wire::Time,
            MYSQL_TYPE_NULL => Wire::Null,
            _ => Wire::Str,
        };
        Cell {
            encoder,
            charset: Charset::of(column).unwrap_or(Charset::Utf8),
            wire,
            unsigned: column.flags().contains(ColumnFlags::UNSIGNED_FLAG),
        }
    }
}

/// Writes the cells of a text-protocol row packet: each a length-encoded
/// string, or `0xfb` for NULL, which must fill the packet exactly.
pub fn encode_text_row(w: &mut RowWriter<'_>, cells: &[Cell], row: &[u8]) -> Result<(), RowError> {
    let mut at = 0;
    for (i, cell) in cells.iter().enumerate() {
        if row.get(at) == Some(&0xfb) {
            at += 1;
            w.null();
            continue;
        }
        let value = lenenc_bytes(row, &mut at).ok_or(RowError::Malformed)?;
        encode(w, cell.encoder, cell.charset, Some(value)).map_err(|()| RowError::Text(i))?;
    }
    if at == row.len() {
        Ok(())
    } else {
        Err(RowError::Malformed)
    }
}

/// Writes the cells of a binary-protocol row packet (a `0x00` header, a NULL
/// bitmap offset by two bits, then the values by column type), straight from
/// the packet, which the values must fill exactly.
pub fn encode_binary_row(
    w: &mut RowWriter<'_>,
    cells: &[Cell],
    row: &[u8],
) -> Result<(), RowError> {
    match binary_row(w, cells, row) {
        Some(Ok(at)) if at == row.len() => Ok(()),
        Some(Err(column)) => Err(RowError::Text(column)),
        _ => Err(RowError::Malformed),
    }
}

/// The binary walk: `None` when the packet is cut short or its header is
/// wrong, else where the values ended or the column whose text is invalid.
fn binary_row(w: &mut RowWriter<'_>, cells: &[Cell], row: &[u8]) -> Option<Result<usize, usize>> {
    if row.first() != Some(&0x00) {
        return None;
    }
    let bitmap = row.get(1..1 + (cells.len() + 9) / 8)?;
    let mut at = 1 + bitmap.len();
    for (i, cell) in cells.iter().enumerate() {
        if bitmap[(i + 2) / 8] & (1 << ((i + 2) % 8)) != 0 {
            w.null();
            continue;
        }
        let value = match cell.wire {
            Wire::Null => Value::NULL,
            Wire::Tiny => {
                let [b] = le(row, &mut at)?;
                int(cell.unsigned, b, b as i8)
            }
            Wire::Short => {
                let b = le(row, &mut at)?;
                int(cell.unsigned, u16::from_le_bytes(b), i16::from_le_bytes(b))
            }
            Wire::Long => {
                let b = le(row, &mut at)?;
                int(cell.unsigned, u32::from_le_bytes(b), i32::from_le_bytes(b))
            }
            Wire::LongLong => {
                let b = le::<8>(row, &mut at)?;
                if cell.unsigned {
                    Value::UInt(u64::from_le_bytes(b))
                } else {
                    Value::Int(i64::from_le_bytes(b))
                }
            }
            Wire::Float => Value::Float(f32::from_le_bytes(le(row, &mut at)?)),
            Wire::Double => Value::Double(f64::from_le_bytes(le(row, &mut at)?)),
            Wire::Date => {
                let [len] = le::<1>(row, &mut at)?;
                let len = usize::from(len);
                let f = take(row, &mut at, len)?;
                let (mut date, mut clock, mut micros) = ([0u8; 4], [0u8; 3], 0u32);
                if len >= 4 {
                    date.copy_from_slice(&f[..4]);
                }
                if len >= 7 {
                    clock.copy_from_slice(&f[4..7]);
                }
                if len >= 11 {
                    micros = u32::from_le_bytes(f[7..11].try_into().ok()?);
                }
                Value::Date(
                    u16::from_le_bytes([date[0], date[1]]),
                    date[2],
                    date[3],
                    clock[0],
                    clock[1],
                    clock[2],
                    micros,
                )
            }
            Wire::Time => {
                let [len] = le::<1>(row, &mut at)?;
                let len = usize::from(len);
                let f = take(row, &mut at, len)?;
                if len < 8 {
                    Value::Time(false, 0, 0, 0, 0, 0)
                } else {
                    let micros = if len >= 12 {
                        u32::from_le_bytes(f[8..12].try_into().ok()?)
                    } else {
                        0
                    };
                    Value::Time(
                        f[0] == 1,
                        u32::from_le_bytes(f[1..5].try_into().ok()?),
                        f[5],
                        f[6],
                        f[7],
                        micros,
                    )
                }
            }
            Wire::Str => {
                let value = lenenc_bytes(row, &mut at)?;
                if encode(w, cell.encoder, cell.charset, Some(value)).is_err() {
                    return Some(Err(i));
                }
                continue;
            }
        };
        encode_value(w, cell.encoder, &value);
    }
    Some(Ok(at))
}

/// The `n` bytes at `*at`, moving past them.
fn take<'r>(row: &'r [u8], at: &mut usize, n: usize) -> Option<&'r [u8]> {
    let bytes = row.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(bytes)
}

/// An integer of up to 32 bits as the column's signedness reads its bytes.
fn int(unsigned: bool, as_unsigned: impl Into<i64>, as_signed: impl Into<i64>) -> Value {
    Value::Int(if unsigned {
        as_unsigned.into()
    } else {
        as_signed.into()
    })
}

/// The `N` bytes at `*at` (a little-endian number's), moving past them.
fn le<const N: usize>(row: &[u8], at: &mut usize) -> Option<[u8; N]> {
    take(row, at, N)?.try_into().ok()
}
